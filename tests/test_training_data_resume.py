"""Streamed training stopped mid-epoch and resumed equals the uninterrupted run.

A run is interrupted in the middle of an epoch, then a new process-like run (new
model, new Trainer, the pipeline built again) resumes it:

- stopped by `model.stop_training` from a callback (as a Ctrl-C does), resumed with
  the library's `customkeras.training.run.EpochCheckpoint`;
- crashed (an exception from a callback, or SIGKILL in a subprocess), resumed with
  Keras's `keras.callbacks.BackupAndRestore(save_freq=1)`, which saves mid-epoch.

For a deterministic tf.data pipeline the checkpoint holds the input iterator's
position, so the resumed run ends with the history and weights of the uninterrupted
run. A generator or a PyDataset cannot be checkpointed: the resumed run replays the
epoch from the pipeline's start, and warns.
"""

import os
import pathlib
import re
import signal
import subprocess
import warnings

import keras
import pytest
import tensorflow as tf
from data_source_helpers import (
    ArrayPyDataset,
    assert_same_history,
    assert_same_weights,
    batch_generator,
    data,
    trainer_for,
)
from training_helpers import mlp

from customkeras.training.run import EpochCheckpoint

TESTS = pathlib.Path(__file__).resolve().parent
EPOCHS = 4
STOP = (2, 1)  # (epoch, batch): stopped after the second batch of the third epoch
# Several steps per graph call, so that the stop lands in the middle of an epoch.
STEPS_PER_EXECUTION = 2
# How a warning that the epoch is replayed from the pipeline's start may read.
REPLAY = re.compile(r"(?i)replay|restart|from (its|the) (start|beginning)|"
                    r"cannot be (checkpointed|saved|restored)|not checkpointable")

X, Y, W = data(100)
XV, YV, _ = data(40, seed=5)


def shuffled():
    """Reshuffled at every pass, with a seed: a deterministic pipeline of 7 batches."""
    return tf.data.Dataset.from_tensor_slices((X, Y, W)).shuffle(
        100, seed=7, reshuffle_each_iteration=True).batch(16)


def validation():
    return tf.data.Dataset.from_tensor_slices((XV, YV)).batch(16)


def repeated():
    """Repeated, then shuffled: one endless stream whose iterator TensorFlow checkpoints
    exactly. (`shuffle(reshuffle_each_iteration=True).repeat()` is not: TF 2.21 does not
    save the seed of the next pass's order, tensorflow/tensorflow#48178, and a restored
    iterator draws it anew.)"""
    return tf.data.Dataset.from_tensor_slices((X, Y, W)).repeat().shuffle(100, seed=7).batch(16)


PIPELINES = {
    # One pass per epoch, a new order each pass.
    "finite, reshuffled": (shuffled, {}),
    # 5 steps per epoch of one endless stream: each epoch continues the last one.
    "repeated, steps_per_epoch": (repeated, {"steps_per_epoch": 5}),
}


class StopAt(keras.callbacks.Callback):
    """Sets `model.stop_training` after batch `batch` of epoch `epoch`, as Ctrl-C does."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.stop, self.stopped_at, self.epoch = (epoch, batch), None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped_at is None and (self.epoch, batch) >= self.stop:
            self.stopped_at = (self.epoch, batch)
            self.interrupt()

    def interrupt(self):
        self.model.stop_training = True


class Crash(RuntimeError):
    """A failure in the middle of training."""


class CrashAt(StopAt):
    """Raises `Crash` after batch `batch` of epoch `epoch`: no more callbacks run."""

    def interrupt(self):
        raise Crash(f"crashed after batch {self.stopped_at[1]} of epoch {self.stopped_at[0]}")


def backup(directory):
    """Keras's BackupAndRestore, saving after every execution."""
    return keras.callbacks.BackupAndRestore(str(directory), save_freq=1)


def _assert_stopped_mid_epoch(stop, trainer, fit_kwargs):
    assert stop.stopped_at is not None, "the run was not stopped"
    steps_per_epoch = fit_kwargs.get("steps_per_epoch", 7)  # else 7 batches of 16 per pass
    iterations = int(trainer.optimizer.iterations.numpy())
    assert STOP[0] * steps_per_epoch < iterations < (STOP[0] + 1) * steps_per_epoch, iterations


def _fit(make, fit_kwargs, callbacks=(), trainers=None):
    model = mlp(seed=1)
    trainer = trainer_for(model, steps_per_execution=STEPS_PER_EXECUTION)
    if trainers is not None:  # seen by the caller even if `fit` raises
        trainers.append(trainer)
    history = trainer.fit(make(), epochs=EPOCHS, shuffle=False, verbose=0,
                          validation_data=validation(), callbacks=list(callbacks), **fit_kwargs)
    return model, trainer, history


def _resume(make, fit_kwargs, callback):
    """Resumes with `callback`; returns `(model, trainer, history, replay warnings)`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, trainer, history = _fit(make, fit_kwargs, [callback])
    replay_warnings = [str(w.message) for w in caught if REPLAY.search(str(w.message))]
    return model, trainer, history, replay_warnings


def _assert_resumed_equals_uninterrupted(resumed, uninterrupted, name):
    """The epochs run after resuming, the final weights and step count are the
    uninterrupted run's."""
    model, trainer, history, _ = resumed
    reference, reference_trainer, expected = uninterrupted
    tail = {key: values[STOP[0]:] for key, values in expected.history.items()}
    assert_same_history(history, tail, f"{name}: epochs run after resuming")
    assert_same_weights(model, reference, name)
    assert (int(trainer.optimizer.iterations.numpy())
            == int(reference_trainer.optimizer.iterations.numpy())), name


@pytest.mark.parametrize("name", list(PIPELINES))
def test_tf_data_stopped_mid_epoch_resumes_exactly(name, tmp_path):
    make, fit_kwargs = PIPELINES[name]
    uninterrupted = _fit(make, fit_kwargs)

    stop = StopAt(*STOP)
    _, trainer, _ = _fit(make, fit_kwargs, [EpochCheckpoint(tmp_path), stop])
    _assert_stopped_mid_epoch(stop, trainer, fit_kwargs)

    checkpoint = EpochCheckpoint(tmp_path)
    resumed = _resume(make, fit_kwargs, checkpoint)
    assert checkpoint.restored is not None, f"{name}: nothing was restored"
    assert checkpoint.restored.completed_epochs == STOP[0], name
    assert_same_history(checkpoint.history, uninterrupted[2], f"{name}: whole history")
    _assert_resumed_equals_uninterrupted(resumed, uninterrupted, name)
    assert not resumed[-1], f"{name}: a checkpointable pipeline warned {resumed[-1]}"


@pytest.mark.parametrize("name", list(PIPELINES))
def test_tf_data_crashed_mid_epoch_resumes_exactly_with_backup_and_restore(name, tmp_path):
    make, fit_kwargs = PIPELINES[name]
    uninterrupted = _fit(make, fit_kwargs)

    crash, trainers = CrashAt(*STOP), []
    with pytest.raises(Crash):
        _fit(make, fit_kwargs, [backup(tmp_path), crash], trainers)
    _assert_stopped_mid_epoch(crash, trainers[0], fit_kwargs)

    resumed = _resume(make, fit_kwargs, backup(tmp_path))
    _assert_resumed_equals_uninterrupted(resumed, uninterrupted, name)
    assert not resumed[-1], f"{name}: a checkpointable pipeline warned {resumed[-1]}"


KILLED = r"""
import os
import signal
import sys

from test_training_data_resume import PIPELINES, STOP, StopAt, _fit, backup


class KillAt(StopAt):
    # A machine that dies: no callback, no `finally`, nothing flushed.
    def interrupt(self):
        os.kill(os.getpid(), signal.SIGKILL)


make, fit_kwargs = PIPELINES[sys.argv[2]]
_fit(make, fit_kwargs, [backup(sys.argv[1]), KillAt(*STOP)])
"""


@pytest.mark.slow
def test_tf_data_killed_mid_epoch_resumes_exactly(python_executable, tmp_path):
    name = "repeated, steps_per_epoch"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([python_executable, "-c", KILLED, str(tmp_path), name],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    make, fit_kwargs = PIPELINES[name]
    resumed = _resume(make, fit_kwargs, backup(tmp_path))
    _assert_resumed_equals_uninterrupted(resumed, _fit(make, fit_kwargs), name)
    assert not resumed[-1]


NOT_CHECKPOINTABLE = {
    # Each epoch reads the generator's next 4 batches: one whole cycle of its data, so
    # replaying an epoch from the generator's start reads the same batches again.
    "generator": (lambda: batch_generator(X, Y, W), {"steps_per_epoch": 4}),
    "PyDataset": (lambda: ArrayPyDataset(X, Y, W, batch_size=16), {}),
}


@pytest.mark.parametrize("name", list(NOT_CHECKPOINTABLE))
def test_generator_and_pydataset_resume_by_replaying_the_epoch(name, tmp_path):
    make, fit_kwargs = NOT_CHECKPOINTABLE[name]
    uninterrupted = _fit(make, fit_kwargs)
    stop = StopAt(*STOP)
    _, trainer, _ = _fit(make, fit_kwargs, [EpochCheckpoint(tmp_path), stop])
    _assert_stopped_mid_epoch(stop, trainer, fit_kwargs)

    checkpoint = EpochCheckpoint(tmp_path)
    resumed = _resume(make, fit_kwargs, checkpoint)
    assert checkpoint.restored.completed_epochs == STOP[0], name
    # These pipelines yield the same batches in every epoch: the replay is exact.
    _assert_resumed_equals_uninterrupted(resumed, uninterrupted, name)
    assert resumed[-1], f"{name}: resuming did not say that the epoch is replayed"


def test_generator_crashed_mid_epoch_warns_that_backup_and_restore_replays(tmp_path):
    make, fit_kwargs = NOT_CHECKPOINTABLE["generator"]
    with pytest.raises(Crash):
        _fit(make, fit_kwargs, [backup(tmp_path), CrashAt(*STOP)])
    _, _, history, replay_warnings = _resume(make, fit_kwargs, backup(tmp_path))
    assert replay_warnings, "resuming did not say that the epoch is replayed"
    assert len(history.history["loss"]) == EPOCHS - STOP[0]
