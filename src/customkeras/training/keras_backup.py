"""`keras.callbacks.BackupAndRestore`, exact under the Trainer.

Keras's callback saves the weights (with the optimizer state) and
`training_metadata.json` (`epoch`, `batch`), and on a rerun restores the weights and
sets `model._initial_epoch`, which the controller honours. Its weights leave out the
seed generators' states, so a model with `Dropout` would draw its first epoch's masks
again after a restore: the companion below saves them. With them, a rerun is exact at
epoch boundaries, because the Trainer's shuffle order depends only on `(seed, epoch)`. For
`save_freq=<int>` (mid-epoch saves) Keras restarts the saved epoch from its first
batch with mid-epoch weights; here, next to each save, a small companion file records
where the epoch stood (the next step, the shuffle seed, the running metrics and the
input iterator's position), so the rerun continues at the next step and ends as an
uninterrupted run would. The companion is used only while its recorded metadata
equals the callback's `training_metadata.json`; otherwise Keras's behaviour stands.
It is written with every save, epoch ends included, and holds the XLA decisions of
`jit_compile="auto"` too (`TrainingState.state_dict()`): the rerun adopts them.
"""

import json
import os
import warnings

import keras

from customkeras.training import compat

COMPANION = "customkeras_position.json"
COMPANION_STATE = "customkeras_state"


class BackupAndRestoreSupport:
    """Serves every `BackupAndRestore` among a `fit` call's callbacks.

    Args:
        callbacks: the callbacks of the call.
        state: the call's `TrainingState`.
    """

    def __init__(self, callbacks, state):
        self.state = state
        self.callbacks = [c for c in callbacks
                          if isinstance(c, keras.callbacks.BackupAndRestore)]
        for callback in self.callbacks:
            compat.hook_backup_save(callback, self._saver(callback))

    def close(self):
        """Removes the save hooks (the callbacks are the user's)."""
        for callback in self.callbacks:
            compat.unhook_backup_save(callback)

    def _with_iterator(self):
        # An epoch's own iterator matters mid-epoch only; one that carries on across
        # epochs (`steps_per_epoch`) matters at epoch boundaries too.
        state = self.state
        return (state.iterator is not None and state.checkpointable_input
                and (state.step > 0 or state.persistent_input))

    def _trackables(self, with_iterator, with_metrics=True):
        # The running metrics matter mid-epoch only; Keras's weights leave out the
        # seed generators' states.
        return self.state.trackables(with_iterator, with_metrics, with_seed_states=True)

    def _saver(self, callback):
        """`make(keras_save)`: the callback's save, then its companion."""
        def make(keras_save):
            return lambda: self._save_with_position(callback, keras_save)

        return make

    def _save_with_position(self, callback, keras_save):
        keras_save()
        metadata = _read_json(compat.backup_metadata_path(callback))
        prefix = os.path.join(callback.backup_dir, COMPANION_STATE)
        with_iterator = self._with_iterator()
        self._trackables(with_iterator).write(prefix)
        position = {"metadata": metadata, "iterator": with_iterator,
                    **self.state.state_dict()}
        with open(os.path.join(callback.backup_dir, COMPANION), "w") as f:
            json.dump(position, f)

    def on_train_begin(self):
        """After the callbacks restored: sets the resume point from the first one
        whose companion matches its metadata."""
        for callback in self.callbacks:
            metadata = _read_json(compat.backup_metadata_path(callback))
            if metadata is None:
                continue
            position = _read_json(os.path.join(callback.backup_dir, COMPANION))
            if position is None or position.get("metadata") != metadata:
                return  # Keras's own resume: `model._initial_epoch`
            epoch, step = position["epoch"], position["step"]
            # Keras's callback only learns the epoch at the next epoch's end.
            compat.set_backup_epoch(callback, epoch)
            if step and not self.state.checkpointable_input:
                warnings.warn(
                    "BackupAndRestore: the input (a generator or PyDataset) cannot be "
                    "checkpointed, so the interrupted epoch replays from its first batch",
                    stacklevel=3)
                self.state.adopt_xla(position.get("xla"))
                self.state.resume(epoch, 0, position.get("seed"))
                return
            self.state.load_state_dict(position, read=self._reader(callback, position))
            return

    def _reader(self, callback, position):
        def read(state):
            prefix = os.path.join(callback.backup_dir, COMPANION_STATE)
            with_iterator = bool(position.get("iterator")) and state.iterator is not None
            self._trackables(with_iterator, with_metrics=bool(position["step"])).read(
                prefix).expect_partial()

        return read

    def on_epoch_begin(self, epoch):
        """Keeps each callback's epoch current for its mid-epoch saves."""
        for callback in self.callbacks:
            compat.set_backup_epoch(callback, epoch)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
