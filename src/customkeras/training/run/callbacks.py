"""`EpochCheckpoint`: exact resume of a training run, as a Keras callback."""

import json
import os
import warnings
from collections.abc import Callable, Mapping

import keras
import tensorflow as tf

from customkeras import _checks
from customkeras.training import compat
from customkeras.training.model_setup import optimizers_of
from customkeras.training.run.checkpoint import (History, RestoredCheckpoint, RunCheckpoint,
                                                 checkpoint_metadata)

# Mid-epoch checkpoints (`save_freq=N`) live in this subdirectory of the checkpoint
# directory, numbered `epoch * MID_EPOCH_NUMBERS + step`, each with its position file
# (the running metrics and the input iterator, which exist only once the epoch began).
MID_EPOCH_DIR = "mid-epoch"
MID_EPOCH_NUMBERS = 10**9
POSITION_PREFIX = "position"


class CheckpointFallbackWarning(UserWarning):
    """The newest checkpoint could not be read; an older one was restored instead."""


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints after each whole epoch, and resumes from the newest checkpoint.

    In `on_train_begin` it restores the newest readable checkpoint (weights, optimizer
    state, random state, history) and sets `model._initial_epoch`, the Keras convention
    (as `keras.callbacks.BackupAndRestore` does) that makes `Trainer.fit` and Keras `fit`
    start at the first epoch not yet done. With the `Trainer`, whose epoch order depends
    only on `(seed, epoch)`, the resumed run ends with the history and weights of an
    uninterrupted one. With no checkpoint yet, it saves the initial state first, so a
    run killed in its first epoch resumes from it.

    An epoch is whole when its last training batch ran (`on_train_batch_end` saw batch
    index `params["steps"] - 1`; with an unknown number of steps, every epoch that ends
    is whole). With `save_freq="epoch"`, an epoch cut short by `model.stop_training`
    (Ctrl-C, see `GracefulInterrupt`; `fit(max_time=...)`) is neither recorded nor
    checkpointed, so resuming replays it from its start.

    With `save_freq=N` (under the `Trainer`), it also saves every N steps of an epoch,
    and where an epoch is cut short: the weights, optimizer and random states, the
    epoch's running metrics and logs, and a tf.data iterator's position (in the
    `mid-epoch/` subdirectory, the newest only). A run killed mid-epoch resumes at the
    step after its last save and ends with the uninterrupted run's bits. The `Trainer`
    ends its executions at multiples of N, so the save happens at the exact step.

    Under the `Trainer`, every checkpoint also records the XLA decisions of
    `jit_compile="auto"` (`RestoredCheckpoint.xla`), and a resumed run adopts them
    (`TrainingState.adopt_xla`): resumed on a machine that would decide otherwise (a
    CPU after a GPU), it keeps the run's, with an `XlaDecisionWarning`.

    Args:
        checkpoint: a directory, or a `RunCheckpoint`. A directory's checkpoint is made
            in `on_train_begin` from the model and `model.optimizer` (the `Trainer` sets
            it; for per-group optimizers, each group's too).
        extra: with a directory: more trackables to save, e.g. `{"iterator": it}`.
            Defaults to none.
        max_to_keep: with a directory: how many checkpoints to keep. Defaults to 2.
        metadata: a string saved with every checkpoint (e.g. a configuration), read
            back as `restored.metadata`. Defaults to `""`.
        on_epoch_saved: called with the history after each epoch's checkpoint, e.g. to
            keep a CSV file current. Defaults to nothing.
        save_freq: `"epoch"`, or an int N: also save every N training steps of an
            epoch and where an epoch is cut short (Keras `ModelCheckpoint`'s
            convention; mid-epoch saves need the `Trainer`). Defaults to `"epoch"`.

    Attributes:
        restored: the `RestoredCheckpoint` this run continued from, or None.
        history: `{name: [value per epoch]}` of every completed epoch, restored ones
            included.

    Example:

    >>> import tempfile
    >>> import keras, numpy as np
    >>> from customkeras.training import Trainer
    >>> from customkeras.training.run import EpochCheckpoint
    >>> run_dir = tempfile.mkdtemp()
    >>> def train(epochs):
    ...     keras.utils.set_random_seed(1)
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ...     trainer = Trainer(model, "mse", keras.optimizers.SGD(0.1))
    ...     callback = EpochCheckpoint(run_dir)
    ...     trainer.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=epochs, seed=0,
    ...                 callbacks=[callback], verbose=0)
    ...     return callback
    >>> train(epochs=1).history["loss"] == train(epochs=2).history["loss"][:1]
    True
    >>> train(epochs=2).restored.completed_epochs  # nothing left to do
    2
    """

    def __init__(self, checkpoint: str | os.PathLike | RunCheckpoint, *,
                 extra: Mapping | None = None, max_to_keep: int = 2, metadata: str = "",
                 on_epoch_saved: Callable[[History], None] | None = None,
                 save_freq: str | int = "epoch"):
        super().__init__()
        if save_freq != "epoch":
            save_freq = _checks.integer("save_freq", save_freq, 1, alternative="'epoch'")
        self.save_freq = save_freq
        if isinstance(checkpoint, RunCheckpoint):
            self._checkpoint, self._directory = checkpoint, None
        elif isinstance(checkpoint, (str, os.PathLike)):
            self._checkpoint, self._directory = None, os.fspath(checkpoint)
        else:
            raise TypeError("`checkpoint` must be a directory or a RunCheckpoint; received "
                            f"checkpoint={checkpoint!r} (of type {type(checkpoint).__name__})")
        self._extra, self._max_to_keep = extra, max_to_keep
        self._metadata = metadata
        self._on_epoch_saved = on_epoch_saved
        self._restore_done = False
        self._last_batch = -1
        self._state = None
        self._mid_epoch = None
        self.restored: RestoredCheckpoint | None = None
        self.history: History = {}

    @property
    def step_interval(self) -> int | None:
        """`save_freq` when it is a number of steps: the `Trainer` ends its
        executions at its multiples."""
        return None if self.save_freq == "epoch" else self.save_freq

    def set_training_state(self, state):
        """Takes the `Trainer`'s `TrainingState` (the input iterator, every optimizer)."""
        self._state = state

    def _iterator_prefix(self, epoch):
        return os.path.join(self._checkpoint.directory, f"input-iterator-{epoch}")

    @property
    def checkpoint(self) -> RunCheckpoint | None:
        """The `RunCheckpoint` written (None before `on_train_begin` for a directory)."""
        return self._checkpoint

    @property
    def completed_epochs(self) -> int:
        """The number of whole epochs the history holds."""
        return len(next(iter(self.history.values()), []))

    def restore(self) -> RestoredCheckpoint | None:
        """Restores the newest checkpoint now, instead of in `on_train_begin`.

        For a caller that wants to know where the run stands before calling `fit`.
        Newer checkpoints that could not be read are listed in `restored.skipped`
        (no warning is issued).

        Raises:
            CheckpointError: no checkpoint can be read, or they do not fit the model.
        """
        if self._checkpoint is None:
            raise ValueError("EpochCheckpoint.restore() before training needs a "
                             "RunCheckpoint; with a directory, the model is known only "
                             "when training begins")
        self.restored = self._checkpoint.restore()
        self.history = ({} if self.restored is None else
                        {k: list(v) for k, v in self.restored.history.items()})
        self._restore_done = True
        return self.restored

    def on_train_begin(self, logs=None):
        if self._checkpoint is None:
            optimizers = optimizers_of(self.model)
            if optimizers and not getattr(optimizers[0], "built", True):
                # Optimizer variables must exist before loading, as BackupAndRestore does.
                optimizers[0].build(self.model.trainable_variables)
            self._checkpoint = RunCheckpoint(self._directory, self.model, optimizers,
                                             extra=self._extra, max_to_keep=self._max_to_keep)
        if not self._restore_done:
            self.restore()
            for path, reason in (self.restored.skipped if self.restored else ()):
                warnings.warn(f"Checkpoint {path} could not be read ({reason}); resuming "
                              f"from {self.restored.path}.", CheckpointFallbackWarning,
                              stacklevel=2)
        if self.restored is None:
            # A run interrupted in its first epoch can then resume from its initial state.
            self._checkpoint.save(self.completed_epochs, self.history, metadata=self._metadata,
                                  xla=self._xla_decisions())
        # `_initial_epoch or initial_epoch` is what fit reads: None leaves its argument alone.
        compat.set_initial_epoch(self.model, self.completed_epochs or None)
        state = self._state
        if state is not None and self.restored is not None:
            state.adopt_xla(self.restored.xla)  # the run's, not this machine's
        if self.step_interval and state is not None:
            temporary = self._checkpoint.temporary_directory
            self._mid_epoch = RunCheckpoint(
                os.path.join(self._checkpoint.directory, MID_EPOCH_DIR), self.model,
                optimizers_of(self.model), max_to_keep=1,
                temporary_directory=None if temporary is None else os.path.join(
                    temporary, MID_EPOCH_DIR))
            if self._resume_mid_epoch(state):
                return
        if state is not None and self.restored is not None and self.completed_epochs:
            if not state.checkpointable_input:
                warnings.warn("EpochCheckpoint: the input (a generator or PyDataset) cannot "
                              "be checkpointed: the resumed epochs read it from its start, "
                              "and an interrupted epoch is replayed", stacklevel=2)
            elif state.persistent_input:
                # A repeated pipeline carries on across epochs: put its position back.
                prefix = self._iterator_prefix(self.completed_epochs)
                state.resume(self.completed_epochs, restore=lambda s: tf.train.Checkpoint(
                    iterator=s.iterator).read(prefix).expect_partial())

    # Its batch hook only needs where an execution ended: the Trainer keeps its fast
    # path (one call per execution) for it (`training.callback_hooks`).
    batch_hooks_per_execution = True

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch = batch
        steps = self.params.get("steps") if self.params else None
        step = batch + 1
        if (self._mid_epoch is not None and step % self.step_interval == 0
                and (steps is None or step < steps)):
            self._save_mid_epoch()

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps") if self.params else None
        if steps is not None and self._last_batch + 1 < steps:
            if self._mid_epoch is not None and self._state.step > 0:
                self._save_mid_epoch()  # cut short: resume from here
            return
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        state = self._state
        if state is not None and state.persistent_input and state.checkpointable_input \
                and state.iterator is not None:
            tf.train.Checkpoint(iterator=state.iterator).write(self._iterator_prefix(epoch + 1))
        self._checkpoint.save(epoch + 1, self.history, metadata=self._metadata,
                              xla=self._xla_decisions())
        if self._on_epoch_saved is not None:
            self._on_epoch_saved(self.history)

    def _xla_decisions(self):
        """The XLA decisions of `jit_compile="auto"` so far (none under Keras `fit`)."""
        return None if self._state is None else self._state.state_dict().get("xla")

    # ---- mid-epoch checkpoints (`save_freq=N`) ----------------------------------------

    def _position_prefix(self, number, writing=False):
        # A non-chief worker writes its copy to its temporary directory.
        directory = (writing and self._mid_epoch.temporary_directory) or (
            self._mid_epoch.directory)
        return os.path.join(directory, f"{POSITION_PREFIX}-{number}")

    def _save_mid_epoch(self):
        state = self._state
        number = state.epoch * MID_EPOCH_NUMBERS + state.step
        with_iterator = state.iterator is not None and state.checkpointable_input
        prefix = self._position_prefix(number, writing=True)
        state.trackables(with_iterator).write(prefix)
        position = {**state.state_dict(), "iterator": with_iterator, "number": number,
                    "metadata": self._metadata}
        self._mid_epoch.save(self.completed_epochs, self.history,
                             metadata=json.dumps(position), number=number,
                             xla=position.get("xla"))
        # The newest position only, as the newest checkpoint.
        directory = os.path.dirname(prefix)
        for name in os.listdir(directory):
            if name.startswith(f"{POSITION_PREFIX}-") and not name.startswith(
                    f"{POSITION_PREFIX}-{number}."):
                os.remove(os.path.join(directory, name))

    def _resume_mid_epoch(self, state):
        """Restores the newest mid-epoch checkpoint when it is newer than the epoch
        checkpoint restored; returns whether it did."""
        found = checkpoint_metadata(self._mid_epoch.directory)
        if found is None:
            return False
        try:
            position = json.loads(found[1])
        except ValueError:
            return False
        if position.get("epoch", -1) < self.completed_epochs or (
                position.get("metadata") != self._metadata):
            return False  # older than the last whole epoch, or another configuration
        restored = self._mid_epoch.restore()
        if restored is None:
            return False
        self.history = {k: list(v) for k, v in restored.history.items()}
        if not state.checkpointable_input:
            warnings.warn("EpochCheckpoint: the input (a generator or PyDataset) cannot be "
                          "checkpointed, so the interrupted epoch replays from its first "
                          "batch", stacklevel=3)
            state.adopt_xla(position.get("xla"))
            state.resume(position["epoch"], 0, position.get("seed"))
            return True
        prefix = self._position_prefix(position["number"])

        def read(state):
            with_iterator = bool(position["iterator"]) and state.iterator is not None
            state.trackables(with_iterator).read(prefix).expect_partial()

        state.load_state_dict(position, read=read)
        return True

    def on_train_end(self, logs=None):
        # Only this fit is affected: a later fit without this callback starts as asked,
        # and a later fit with it restores again.
        compat.set_initial_epoch(self.model, None)
        self._restore_done = False
