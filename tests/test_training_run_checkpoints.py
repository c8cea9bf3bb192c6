"""Run management in the library: checkpoints, exact resume, Ctrl-C, on tiny models and
random data (no datasets)."""

import os
import pathlib
import signal

import keras
import numpy as np
import pytest

from customkeras.training import Trainer
from customkeras.training.run import (CheckpointError, EpochCheckpoint, GracefulInterrupt,
                                      RunCheckpoint)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(96, 4)).astype("float32")
Y = RNG.normal(size=(96, 1)).astype("float32")


def _trainer(seed, units=3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.GaussianNoise(0.1), keras.layers.Dense(1)])
    # 96 samples / batch 8 = 12 steps per epoch, 4 per execution: 3 executions per epoch.
    trainer = Trainer(model, "mse", keras.optimizers.Nadam(1e-2), ["mae"], steps_per_execution=4)
    trainer.optimizer.build(model.trainable_variables)
    return trainer, model


def _fit(trainer, callbacks, epochs, initial_epoch=0):
    return trainer.fit(X, Y, epochs=epochs, batch_size=8, callbacks=callbacks, verbose=0,
                       seed=3, initial_epoch=initial_epoch, validation_data=(X[:16], Y[:16]))


def _values(variables):
    return [v.numpy() for v in variables]


def _assert_same(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_restore_brings_back_weights_optimizer_epoch_history_and_rng(tmp_path):
    trainer, model = _trainer(seed=1)
    checkpoint = RunCheckpoint(tmp_path, model, [trainer.optimizer])
    _fit(trainer, [], epochs=1)
    history = {"loss": [0.5], "val_loss": [0.25]}
    np.random.seed(11)
    checkpoint.save(1, history)
    expected_draw = np.random.rand(3)
    weights, slots = _values(model.variables), _values(trainer.optimizer.variables)

    other, other_model = _trainer(seed=2)  # different initial weights
    assert not np.array_equal(other_model.weights[0], model.weights[0])
    np.random.seed(99)
    restored = RunCheckpoint(tmp_path, other_model, [other.optimizer]).restore()
    assert (restored.completed_epochs, restored.history) == (1, history)
    _assert_same(_values(other_model.variables), weights)  # includes the noise seed state
    _assert_same(_values(other.optimizer.variables), slots)
    np.testing.assert_array_equal(np.random.rand(3), expected_draw)


def test_resume_from_an_epoch_checkpoint_equals_an_uninterrupted_run(tmp_path):
    straight, straight_model = _trainer(seed=1)
    reference = EpochCheckpoint(RunCheckpoint(tmp_path / "a", straight_model,
                                              [straight.optimizer]))
    _fit(straight, [reference], epochs=2)

    first, first_model = _trainer(seed=1)
    callback = EpochCheckpoint(RunCheckpoint(tmp_path / "b", first_model, [first.optimizer]))
    _fit(first, [callback], epochs=1)
    resumed, resumed_model = _trainer(seed=1)
    callback = EpochCheckpoint(RunCheckpoint(tmp_path / "b", resumed_model, [resumed.optimizer]))
    assert callback.restore().completed_epochs == 1
    _fit(resumed, [callback], epochs=2, initial_epoch=1)

    assert callback.history == reference.history
    _assert_same(_values(resumed_model.variables), _values(straight_model.variables))


class _StopAt(keras.callbacks.Callback):
    """Stops training after the execution ending at `batch` of `epoch`."""

    def __init__(self, epoch, batch, action=None):
        super().__init__()
        self.target, self.epoch = (epoch, batch), None
        self.action = action or (lambda: setattr(self.model, "stop_training", True))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.target:
            self.action()


def test_an_epoch_cut_short_is_not_recorded_or_checkpointed(tmp_path):
    trainer, model = _trainer(seed=1)
    checkpoint = RunCheckpoint(tmp_path, model, [trainer.optimizer])
    callback = EpochCheckpoint(checkpoint)
    _fit(trainer, [callback, _StopAt(epoch=1, batch=3)], epochs=3)
    assert callback.completed_epochs == 1
    assert len(callback.history["loss"]) == 1 and len(callback.history["val_mae"]) == 1
    assert pathlib.Path(checkpoint.latest).name == "ckpt-1"


def test_the_first_checkpoint_is_the_initial_state(tmp_path):
    trainer, model = _trainer(seed=1)
    initial = _values(model.weights)
    checkpoint = RunCheckpoint(tmp_path, model, [trainer.optimizer])
    _fit(trainer, [EpochCheckpoint(checkpoint), _StopAt(epoch=0, batch=3)], epochs=2)
    assert pathlib.Path(checkpoint.latest).name == "ckpt-0"
    fresh, fresh_model = _trainer(seed=5)
    restored = RunCheckpoint(tmp_path, fresh_model, [fresh.optimizer]).restore()
    assert (restored.completed_epochs, restored.history) == (0, {})
    _assert_same(_values(fresh_model.weights), initial)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    trainer, model = _trainer(seed=1)
    checkpoint = RunCheckpoint(tmp_path, model, [trainer.optimizer])
    checkpoint.save(1, {"loss": [1.0]})
    checkpoint.save(2, {"loss": [1.0, 0.5]})
    data = next(tmp_path.glob("ckpt-2.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated by a crash
    other, other_model = _trainer(seed=2)
    restored = RunCheckpoint(tmp_path, other_model, [other.optimizer]).restore()
    assert (restored.completed_epochs, restored.history) == (1, {"loss": [1.0]})
    assert [pathlib.Path(path).name for path, _ in restored.skipped] == ["ckpt-2"]
    for index in tmp_path.glob("ckpt-*.index"):
        index.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="Cannot restore any checkpoint"):
        RunCheckpoint(tmp_path, other_model, [other.optimizer]).restore()


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    trainer, model = _trainer(seed=1)
    RunCheckpoint(tmp_path, model, [trainer.optimizer]).save(1, {})
    wider, wider_model = _trainer(seed=1, units=5)
    with pytest.raises(CheckpointError, match="made for another model"):
        RunCheckpoint(tmp_path, wider_model, [wider.optimizer]).restore()


def test_sigint_stops_training_at_the_next_execution_and_restores_the_handler():
    trainer, model = _trainer(seed=1)
    before = signal.getsignal(signal.SIGINT)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    interrupt = GracefulInterrupt(model, stream=open(os.devnull, "w"))
    with interrupt:
        ctrl_c = _StopAt(epoch=0, batch=3, action=lambda: os.kill(os.getpid(), signal.SIGINT))
        _fit(trainer, [interrupt, ctrl_c, Record()], epochs=5)
    assert interrupt.requested
    assert seen == [3]  # the running execution finished, no further one started
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_sigint_aborts_at_once():
    _, model = _trainer(seed=1)
    with GracefulInterrupt(model, stream=open(os.devnull, "w")):
        os.kill(os.getpid(), signal.SIGINT)
        assert model.stop_training
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_a_failed_save_is_a_checkpoint_write_error_and_keeps_the_previous_one(tmp_path,
                                                                              monkeypatch):
    import tensorflow as tf

    from customkeras.training.run import CheckpointWriteError

    trainer, model = _trainer(seed=1)
    checkpoint = RunCheckpoint(tmp_path, model, [trainer.optimizer])
    checkpoint.save(1, {"loss": [1.0]})

    def no_space(self, prefix, *args, **kwargs):
        os.makedirs(f"{prefix}_temp")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device [Op:SaveV2]")

    monkeypatch.setattr(tf.train.Checkpoint, "write", no_space)
    with pytest.raises(CheckpointWriteError, match="ckpt-2: No space left on device") as caught:
        checkpoint.save(2, {"loss": [1.0, 0.5]})
    assert caught.value.path == str(tmp_path / "ckpt-2")
    assert checkpoint.numbers() == [1] and not list(tmp_path.glob("*_temp"))
    assert pathlib.Path(checkpoint.latest).name == "ckpt-1"
