"""Epoch checkpoints that let an interrupted run resume exactly where it stopped.

A checkpoint (written with `tf.train.CheckpointManager`) holds the model's weights, the
optimizer state, the number of completed epochs, the history of those epochs and the
random state (the layers' seed generators plus Python's and NumPy's global generators).
Because the `Trainer` shuffles each epoch as a function of (seed, epoch), restoring it and
calling `fit(..., initial_epoch=epoch)` reproduces an uninterrupted run exactly.

Only whole epochs are checkpointed. A run stopped mid-epoch (SIGKILL, or Ctrl-C) resumes
from the start of that epoch, from the state it had then, so its history still equals an
uninterrupted run's.

In a multi-worker run every worker saves (saving may read variables collectively, so all
must take part), but only the chief's checkpoints are kept: the others write theirs to a
temporary directory and delete it at once, as TensorFlow's own multi-worker checkpointing
does (`workertemp_<task id>`). Every worker restores from the chief's directory, which
must therefore be visible to all of them (a shared file system, or one machine).
"""

import json
import os
import pathlib
import random
import shutil
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from customkeras.cli.errors import CommandError

History = dict[str, list[float]]


def _rng_state() -> str:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return json.dumps({
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "python": [version, list(state), gauss],
    })


def _set_rng_state(text: str) -> None:
    if not text:
        return
    state = json.loads(text)
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


class RunCheckpoint:
    """The resumable state of one training run, in `directory`.

    Args:
        directory: where the checkpoint files go (created on first save).
        model: the model being trained (built: its variables must exist).
        optimizers: every optimizer object holding training state, e.g. the Trainer's
            optimizer and, for per-group optimizers, each group's optimizer.
        max_to_keep: how many recent checkpoints to keep. Defaults to 2, so a damaged
            latest checkpoint can fall back to the one before.
        temporary_directory: None for the process that keeps the checkpoints (the
            chief); for another worker of a multi-worker run, where its copy of each
            save goes before being deleted. Defaults to None.
    """

    def __init__(self, directory: str | os.PathLike, model: keras.Model,
                 optimizers: Sequence, max_to_keep: int = 2,
                 temporary_directory: str | os.PathLike | None = None):
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self._history = tf.Variable("{}", dtype=tf.string, trainable=False, name="history")
        self._rng = tf.Variable("", dtype=tf.string, trainable=False, name="rng_state")
        weight_ids = {id(weight) for weight in model.weights}
        # Seed-generator states are model variables but not weights; track them by name.
        seed_states = [v for v in model.variables if id(v) not in weight_ids]
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizers=list(optimizers), seed_states=seed_states,
            completed_epochs=self._epoch, history=self._history, rng_state=self._rng)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, os.fspath(directory), max_to_keep=max_to_keep)
        self._temporary = None
        self._saved = None  # a non-chief worker's last save, as the chief's path
        if temporary_directory is not None:
            self._temporary = pathlib.Path(temporary_directory)
            self.remove_temporary()  # left over by a worker killed while saving

    @property
    def latest(self) -> str | None:
        """Path prefix of the newest checkpoint, or `None` when there is none.

        On a non-chief worker: the newest when this object was created, or the chief's
        copy of this worker's last save.
        """
        return self._saved or self._manager.latest_checkpoint

    def save(self, completed_epochs: int, history: Mapping[str, Sequence[float]]) -> str:
        """Writes a checkpoint after `completed_epochs` whole epochs (numbered by it).

        Returns:
            The checkpoint's path prefix (on a non-chief worker, the chief's).
        """
        self._epoch.assign(completed_epochs)
        self._history.assign(json.dumps({k: list(v) for k, v in history.items()}))
        self._rng.assign(_rng_state())
        if self._temporary is None:
            return self._manager.save(checkpoint_number=completed_epochs)
        try:
            tf.train.CheckpointManager(self._checkpoint, os.fspath(self._temporary),
                                       max_to_keep=1).save(checkpoint_number=completed_epochs)
        finally:
            self.remove_temporary()
        self._saved = os.path.join(self._manager.directory, f"ckpt-{completed_epochs}")
        return self._saved

    def remove_temporary(self) -> None:
        """Deletes a non-chief worker's temporary checkpoint directory, if any."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def restore(self) -> tuple[int, History] | None:
        """Restores the newest readable checkpoint.

        Returns:
            `(completed_epochs, history)`, or `None` when there is no checkpoint.

        Raises:
            CommandError: no checkpoint can be read, or they do not fit this model
                (e.g. the configuration was edited).
        """
        candidates = list(reversed(self._manager.checkpoints))
        failures = []
        for path in candidates:
            try:
                status = self._checkpoint.restore(path)
                status.assert_existing_objects_matched()
            # A damaged file surfaces as any of these, depending on which bytes are bad.
            except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError,
                    OSError) as error:
                failures.append(f"{path}: {str(error).splitlines()[0]}")
                continue
            _set_rng_state(self._rng.numpy().decode("utf-8"))
            history = json.loads(self._history.numpy().decode("utf-8"))
            return int(self._epoch.numpy()), history
        if failures:
            raise CommandError(
                "Cannot restore any checkpoint (damaged, or made for another model):\n  "
                + "\n  ".join(failures), exit_code=1)
        return None


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints at the start of training and after each whole epoch.

    An epoch is whole when its last training batch ran (`on_train_batch_end` saw batch
    index `params["steps"] - 1`); an epoch cut short by `model.stop_training` (Ctrl-C)
    is neither recorded nor checkpointed, so resuming replays it from its start.

    Args:
        checkpoint: the `RunCheckpoint` to write.
        history: the history of epochs completed before this `fit` (when resuming).
        on_epoch_saved: called with the history after each epoch's checkpoint, e.g.
            to keep `history.csv` current. Defaults to nothing.
    """

    def __init__(self, checkpoint: RunCheckpoint, history: Mapping[str, Sequence[float]],
                 on_epoch_saved: Callable[[History], None] | None = None):
        super().__init__()
        self._checkpoint = checkpoint
        self._on_epoch_saved = on_epoch_saved
        self._last_batch = -1
        self.history: History = {key: list(values) for key, values in history.items()}

    @property
    def completed_epochs(self) -> int:
        return len(next(iter(self.history.values()), []))

    def on_train_begin(self, logs=None):
        # A run interrupted in its first epoch can then resume from its initial state.
        if self._checkpoint.latest is None:
            self._checkpoint.save(self.completed_epochs, self.history)

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch = batch

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps")
        if steps is not None and self._last_batch + 1 < steps:
            return
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self._checkpoint.save(epoch + 1, self.history)
        if self._on_epoch_saved is not None:
            self._on_epoch_saved(self.history)
