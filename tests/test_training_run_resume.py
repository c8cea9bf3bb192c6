"""The library's exact resume (`EpochCheckpoint` on a directory) with the Trainer and with
Keras `fit`, extra trackables, `RunLock`, and the docstring examples of run management."""

import doctest
import importlib
import os
import pathlib
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from customkeras.training import Trainer
from customkeras.training.run import (CheckpointFallbackWarning, EpochCheckpoint, RunCheckpoint,
                                      RunLock, RunLockedError)

RNG = np.random.default_rng(11)
X = RNG.normal(size=(80, 3)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")).astype("float32")


class Crash(keras.callbacks.Callback):
    """Raises in the middle of `epoch`, as a killed process would stop."""

    def __init__(self, epoch):
        super().__init__()
        self.crash_epoch, self.epoch = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.crash_epoch and batch >= 2:
            raise RuntimeError("crash")


def _model():
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dropout(0.2), keras.layers.Dense(1)])


def _trainer_fit(directory, epochs, extra_callbacks=()):
    model = _model()
    trainer = Trainer(model, "mse", keras.optimizers.Adam(1e-2), steps_per_execution=2)
    callback = EpochCheckpoint(directory)
    history = trainer.fit(X, Y, epochs=epochs, batch_size=8, seed=3, verbose=0,
                          validation_data=(X[:16], Y[:16]),
                          callbacks=[callback, *extra_callbacks])
    return model, callback, history


def test_a_crashed_trainer_run_rerun_with_the_callback_equals_an_uninterrupted_one(tmp_path):
    straight, reference, _ = _trainer_fit(tmp_path / "straight", epochs=4)
    with pytest.raises(RuntimeError, match="crash"):
        _trainer_fit(tmp_path / "crashed", epochs=4, extra_callbacks=[Crash(epoch=2)])
    resumed, callback, history = _trainer_fit(tmp_path / "crashed", epochs=4)
    assert callback.restored.completed_epochs == 2  # the epoch in progress is replayed
    assert len(history.history["loss"]) == 2  # this fit ran epochs 3 and 4 only
    assert callback.history.keys() == reference.history.keys()
    for key, values in reference.history.items():
        np.testing.assert_allclose(callback.history[key], values, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def _keras_fit(directory, epochs, extra_callbacks=()):
    model = _model()
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(1e-2))
    callback = EpochCheckpoint(directory)
    model.fit(X, Y, epochs=epochs, batch_size=8, shuffle=False, verbose=0,
              callbacks=[callback, *extra_callbacks])
    return model, callback


def test_the_same_callback_resumes_keras_fit(tmp_path):
    straight, reference = _keras_fit(tmp_path / "straight", epochs=3)
    with pytest.raises(RuntimeError, match="crash"):
        _keras_fit(tmp_path / "crashed", epochs=3, extra_callbacks=[Crash(epoch=1)])
    resumed, callback = _keras_fit(tmp_path / "crashed", epochs=3)
    assert callback.restored.completed_epochs == 1
    np.testing.assert_allclose(callback.history["loss"], reference.history["loss"], rtol=1e-5)
    for ours, theirs in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_damaged_newest_checkpoint_warns_which_was_skipped(tmp_path):
    _trainer_fit(tmp_path, epochs=2)
    index = tmp_path / "ckpt-2.index"
    index.write_bytes(b"not an index")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, callback, history = _trainer_fit(tmp_path, epochs=2)
    messages = [str(w.message) for w in caught if issubclass(w.category, CheckpointFallbackWarning)]
    assert len(messages) == 1 and "ckpt-2 could not be read" in messages[0]
    assert callback.restored.path.endswith("ckpt-1")
    assert len(history.history["loss"]) == 1  # epoch 2 redone


def test_extra_trackables_such_as_a_dataset_iterator_resume_their_position(tmp_path):
    model = _model()
    iterator = iter(tf.data.Dataset.range(10))
    checkpoint = RunCheckpoint(tmp_path, model, extra={"iterator": iterator})
    assert [int(next(iterator)) for _ in range(3)] == [0, 1, 2]
    checkpoint.save(1, {})
    assert int(next(iterator)) == 3
    fresh = iter(tf.data.Dataset.range(10))
    RunCheckpoint(tmp_path, _model(), extra={"iterator": fresh}).restore()
    assert int(next(fresh)) == 3
    with pytest.raises(ValueError, match="reserved names"):
        RunCheckpoint(tmp_path, model, extra={"history": iterator})


def test_run_lock_admits_one_owner_names_it_and_ignores_a_dead_one(tmp_path):
    with RunLock(tmp_path) as lock:
        assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError) as caught:
            RunLock(tmp_path).acquire()
        assert caught.value.pid == os.getpid()
        assert f"{tmp_path} is in use by process {os.getpid()}" in str(caught.value)
        assert lock.held
    assert not (tmp_path / "run.lock").exists()  # a clean release leaves nothing
    # A process that took the lock (flock, as RunLock does) and died without releasing it.
    script = ("import fcntl, os, signal, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode());"
              "os.kill(os.getpid(), signal.SIGKILL)")
    dead = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run.lock")], timeout=60)
    assert dead.returncode == -9 and (tmp_path / "run.lock").exists()
    with RunLock(tmp_path):
        assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("module", ["customkeras.training.run.callbacks",
                                    "customkeras.training.run.interrupt",
                                    "customkeras.cli.artifacts", "customkeras.experiments"])
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, result
    assert pathlib.Path.cwd() == tmp_path
