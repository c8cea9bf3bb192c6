"""Keras callbacks driven by the Trainer."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import classification_data, mlp

from customkeras.training import Trainer

SPARSE_CE = "sparse_categorical_crossentropy"


def _trainer(seed=0, optimizer="sgd", **kwargs):
    return Trainer(mlp(seed=seed), SPARSE_CE, optimizer, metrics=["accuracy"],
                   jit_compile=False, **kwargs)


class Recorder(keras.callbacks.Callback):
    """Records the hook calls the Trainer makes."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin",))

    def on_test_end(self, logs=None):
        self.calls.append(("test_end", sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_hooks_run_at_execution_boundaries():
    x, y = classification_data(80)  # 10 steps of 8; executions of 4, 4 and 2 steps
    recorder = Recorder()
    _trainer(steps_per_execution=4).fit(
        x, y, batch_size=8, validation_data=(x[:16], y[:16]), callbacks=[recorder], verbose=0
    )
    keys = ["accuracy", "loss"]
    assert recorder.calls == [
        ("train_begin",), ("epoch_begin", 0),
        ("batch_begin", 0), ("batch_end", 3, keys),
        ("batch_begin", 4), ("batch_end", 7, keys),
        ("batch_begin", 8), ("batch_end", 9, keys),
        ("test_begin",), ("test_end", keys),
        ("epoch_end", 0, keys + ["val_accuracy", "val_loss"]), ("train_end",),
    ]


def test_stop_training_is_honoured_between_executions():
    class StopNow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    x, y = classification_data(80)
    trainer = _trainer(steps_per_execution=3)
    history = trainer.fit(x, y, batch_size=8, epochs=5, callbacks=[StopNow()], verbose=0)
    assert int(trainer.optimizer.iterations) == 3
    assert len(history.history["loss"]) == 1
    # The next fit starts again (stop_training is reset at the start of fit).
    trainer.fit(x, y, batch_size=8, verbose=0)
    assert int(trainer.optimizer.iterations) == 13


def test_early_stopping_csv_logger_and_checkpoint(tmp_path):
    x, y = classification_data(64, seed=1)
    csv_path = tmp_path / "log.csv"
    checkpoint = tmp_path / "model.keras"
    trainer = _trainer(seed=1)
    history = trainer.fit(
        x, y, epochs=10, validation_data=(x[:32], y[:32]), verbose=0,
        callbacks=[
            # No improvement can beat min_delta: stops after patience + 1 epochs.
            keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=1e9),
            keras.callbacks.CSVLogger(str(csv_path)),
            keras.callbacks.ModelCheckpoint(str(checkpoint)),
        ],
    )
    assert len(history.history["loss"]) == 2
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([float(r[key]) for r in rows], history.history[key], rtol=1e-6)
    reloaded = keras.saving.load_model(checkpoint)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), trainer.model.predict(x, verbose=0),
                               rtol=1e-6)


def _event_tags(directory):
    tags = set()
    for path in directory.rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_tensorboard_writes_train_and_validation_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = classification_data(64, seed=2)
    _trainer(seed=2).fit(
        x, y, epochs=2, validation_data=(x[:32], y[:32]), verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path))],
    )
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= _event_tags(tmp_path / "train")
    assert {"epoch_loss", "epoch_accuracy"} <= _event_tags(tmp_path / "validation")


def test_learning_rate_scheduler_single_and_group_optimizers():
    x, y = classification_data(32, seed=3)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    trainer = _trainer(seed=3)
    history = trainer.fit(x, y, epochs=3, callbacks=[schedule], verbose=0)
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.1 / 3], rtol=1e-6)
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.1 / 3)

    model = mlp(seed=3)
    groups = {model.layers[0]: keras.optimizers.SGD(0.5), model.layers[1]: keras.optimizers.Adam()}
    trainer = Trainer(model, SPARSE_CE, groups, jit_compile=False)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2)
    trainer.fit(x, y, epochs=2, callbacks=[schedule], verbose=0)
    rates = [float(o.learning_rate) for o in trainer.optimizer.optimizers]
    np.testing.assert_allclose(rates, [0.5 / 4, 0.001 / 4], rtol=1e-6)
