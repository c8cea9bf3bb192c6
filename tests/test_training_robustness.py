"""Divergence, bad input, progress output, resume determinism, XLA fallback."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import classification_data, max_abs_difference, mlp

from customkeras.training import Trainer, TrainingDivergedError
from customkeras.training.executions import ExecutionPlanner

SPARSE_CE = "sparse_categorical_crossentropy"


def _linear(seed=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def _regression_data(n=80):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 4)).astype("float32"),
            rng.normal(size=(n, 1)).astype("float32"))


def test_nan_loss_names_epoch_and_step_and_keeps_last_finite_weights():
    x, y = _regression_data()
    # A NaN target makes the squared error NaN on any CPU (NaN - p is NaN by IEEE 754);
    # a NaN input need not: some CPUs' max (ReLU) turns it into a number.
    y[50] = np.nan  # sample 50 is in step 7 (batch 8, no shuffling)
    model = _linear()
    trainer = Trainer(model, "mse", keras.optimizers.SGD(0.01), steps_per_execution=4)
    with pytest.raises(TrainingDivergedError, match="epoch 1, step 7: the loss was nan") as caught:
        trainer.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert (caught.value.epoch, caught.value.step, caught.value.restored_step) == (1, 7, 4)
    # Steps 5-8 were one execution: the weights are those after step 4.
    reference = _linear()
    Trainer(reference, "mse", keras.optimizers.SGD(0.01)).fit(
        x[:32], y[:32], batch_size=8, shuffle=False, verbose=0
    )
    assert max_abs_difference(model.get_weights(), reference.get_weights()) == 0.0


def test_overflowing_weights_with_finite_loss_are_detected():
    x, y = _regression_data(8)
    y[:] = 5e18  # loss ~2.5e37 is finite; the update overflows float32
    model = _linear()
    initial = model.get_weights()
    trainer = Trainer(model, "mse", keras.optimizers.SGD(1e20))
    with pytest.raises(TrainingDivergedError, match="epoch 1, step 1: the weights became non-finite"):
        trainer.fit(x, y, batch_size=8, verbose=0)
    assert max_abs_difference(model.get_weights(), initial) == 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(y=np.zeros(39, int)), r"`x` and `y` must have the same number of samples; received 40 and 39"),
        (dict(x=np.zeros((40, 8, 1), "float32")), r"`x` must have shape \('n', 8\).*received shape \(40, 8, 1\)"),
        (dict(y=np.full(40, 3)), r"`y` labels must be in \[0, 2\] for a model with 3 outputs; received labels from 3 to 3"),
        (dict(y=np.zeros((40, 3))), r"`y` must hold one class index per sample"),
        (dict(batch_size=0), r"`batch_size` must be an integer >= 1; received batch_size=0"),
        (dict(epochs=-1), r"`epochs` must be an integer >= 0; received epochs=-1"),
        (dict(sample_weight=np.ones(7)), r"`x` and `sample_weight` must have the same number of samples; received 40 and 7"),
        (dict(sample_weight=np.ones((40, 2))), r"`sample_weight` must have shape \('n',\) or \('n', 1\) .*received shape \(40, 2\)"),
        (dict(validation_data=(np.zeros((5, 8)),)), r"`validation_data` must be a tuple"),
        (dict(validation_data=(np.zeros((5, 8)), np.full(5, 7))), r"`validation_data\[1\]` labels must be in \[0, 2\]"),
        (dict(verbose=3), r"`verbose` must be one of"),
        (dict(x=np.array(["a"] * 40)), r"`x` must be numeric"),
    ],
)
def test_bad_input_fails_before_training(change, message):
    x, y = classification_data(40)
    arguments = dict(x=x, y=y, batch_size=8, verbose=0)
    arguments.update(change)
    model = mlp()
    before = model.get_weights()
    trainer = Trainer(model, SPARSE_CE, "sgd")
    with pytest.raises(ValueError, match=message):
        trainer.fit(arguments.pop("x"), arguments.pop("y"), **arguments)
    assert max_abs_difference(model.get_weights(), before) == 0.0


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"`steps_per_execution` must be an integer >= 1 or 'auto' or an ExecutionPlanner; received steps_per_execution=0"):
        Trainer(mlp(), SPARSE_CE, "sgd", steps_per_execution=0)
    with pytest.raises(ValueError, match="`loss` must be"):
        Trainer(mlp(), "no_such_loss", "sgd")
    with pytest.raises(ValueError, match="`jit_compile` must be"):
        Trainer(mlp(), SPARSE_CE, "sgd", jit_compile="yes")


def test_line_progress_without_terminal_and_silence(capsys):
    x, y = classification_data(64)
    trainer = Trainer(mlp(), SPARSE_CE, "sgd", metrics=["accuracy"])
    history = trainer.fit(x, y, epochs=2, validation_data=(x[:16], y[:16]))  # verbose="auto"
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2 and err == ""
    for epoch, line in enumerate(lines):
        assert re.match(rf"Epoch {epoch + 1}/2 - 2/2 - \d+s - [\d.]+ms/step - loss: ", line)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert f"{key}: {history.history[key][epoch]:.4f}" in line

    trainer.fit(x, y, epochs=2, validation_data=(x[:16], y[:16]), verbose=0)
    assert capsys.readouterr() == ("", "")


def test_progress_bars_show_epochs_iterations_and_metrics(capsys):
    x, y = classification_data(64)
    Trainer(mlp(), SPARSE_CE, "sgd", metrics=["accuracy"]).fit(
        x, y, epochs=2, validation_data=(x[:16], y[:16]), verbose=1
    )
    err = capsys.readouterr().err
    assert "All epochs" in err and "Epoch 2/2" in err and "2/2" in err
    assert "val_loss: " in err and "accuracy: " in err


def test_resume_from_initial_epoch_replays_an_uninterrupted_run(tmp_path):
    x, y = classification_data(96, seed=6)

    def new_trainer():
        return Trainer(mlp(seed=6), SPARSE_CE, keras.optimizers.Adam(0.01), metrics=["accuracy"])

    uninterrupted = new_trainer()
    full = uninterrupted.fit(x, y, epochs=3, seed=42, verbose=0)

    first = new_trainer()
    first.fit(x, y, epochs=1, seed=42, verbose=0)
    # Resume in a fresh Trainer from a checkpoint of the model and optimizer.
    resumed = new_trainer()
    resumed.optimizer.build(resumed.model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=first.model, optimizer=first.optimizer)
    path = checkpoint.write(str(tmp_path / "checkpoint"))
    tf.train.Checkpoint(model=resumed.model, optimizer=resumed.optimizer).read(path).assert_consumed()
    rest = resumed.fit(x, y, epochs=3, initial_epoch=1, seed=42, verbose=0)

    assert max_abs_difference(resumed.model.get_weights(), uninterrupted.model.get_weights()) == 0.0
    assert rest.history["loss"] == full.history["loss"][1:]
    assert rest.history["accuracy"] == full.history["accuracy"][1:]
    other_seed = new_trainer()
    other_seed.fit(x, y, epochs=3, seed=43, verbose=0)
    assert max_abs_difference(other_seed.model.get_weights(), uninterrupted.model.get_weights()) > 0


class _HostIdentity(keras.layers.Layer):
    """Calls NumPy through `tf.numpy_function`, which XLA cannot compile."""

    def call(self, inputs):
        outputs = tf.numpy_function(lambda a: a, [inputs], tf.float32, stateful=False)
        outputs.set_shape(inputs.shape)
        return outputs


def test_auto_jit_falls_back_when_xla_cannot_compile():
    x, y = _regression_data(40)

    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), _HostIdentity(), keras.layers.Dense(1)])

    with pytest.warns(UserWarning, match="XLA could not compile"):
        history = Trainer(model(), "mse", "sgd").fit(x, y, epochs=2, verbose=0)
    expected = Trainer(model(), "mse", "sgd", jit_compile=False).fit(x, y, epochs=2, verbose=0)
    assert history.history == expected.history
    with pytest.raises(tf.errors.InvalidArgumentError):
        Trainer(model(), "mse", "sgd", jit_compile=True).fit(x, y, verbose=0)


def test_auto_steps_per_execution_adapts_to_the_time_per_call():
    now = [0.0]
    planner = ExecutionPlanner("auto", clock=lambda: now[0])

    def one_pass(seconds_per_step):
        sizes = []
        for first, count in planner.executions(100_000):
            sizes.append(count)
            now[0] += count * seconds_per_step
        return sizes

    # Fast steps: calls grow (at most 4x per call) until one takes ~0.2 s.
    sizes = one_pass(seconds_per_step=1e-4)
    assert sizes[:5] == [100, 100, 400, 1600, 2000]
    assert sum(sizes) == 100_000
    # Slow steps: calls shrink so the display and Ctrl-C stay responsive.
    sizes = one_pass(seconds_per_step=0.01)
    assert sizes[:4] == [2000, 2000, 500, 125] and sizes[5] == 20
    fixed = ExecutionPlanner(7, clock=lambda: now[0])
    assert [c for _, c in fixed.executions(15)] == [7, 7, 1]
    # No execution crosses a feed's boundary (where its XLA mode changes); executions
    # of super-batches are multiples of their size.
    with_xla = ExecutionPlanner(4)
    assert list(with_xla.executions(11, next_boundary=lambda step: 10 if step < 10 else None)
                ) == [(0, 4), (4, 4), (8, 2), (10, 1)]
    assert [c for _, c in ExecutionPlanner(7).executions(20, multiple=3)] == [6, 6, 6, 2]
