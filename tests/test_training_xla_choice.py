"""`jit_compile="auto"` (`xla_choice`): decided from the model and the device, never from
timings or run lengths, so that however a run is cut its numbers are the same.

XLA and plain steps compute different floats (and on a CPU, other random draws), so
each test compares bits with a run whose XLA mode is known.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from data_source_helpers import data
from training_helpers import max_abs_difference

from customkeras.training import Trainer, xla_choice

X, Y, W = data(1000)


def dropout_mlp(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax")])


def conv_model(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 1)), keras.layers.Conv1D(4, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])


def _fit(model, jit_compile="auto", steps_per_execution="auto", calls=((0, 2),), x=X,
         y=Y, **kwargs):
    trainer = Trainer(model, "sparse_categorical_crossentropy", "adam",
                      metrics=["accuracy"], jit_compile=jit_compile,
                      steps_per_execution=steps_per_execution)
    logs = {}
    for initial_epoch, epochs in calls:  # a run cut into several calls
        history = trainer.fit(x, y, batch_size=16, epochs=epochs, initial_epoch=initial_epoch,
                              seed=3, verbose=0, **kwargs)
        for key, values in history.history.items():
            logs.setdefault(key, []).extend(values)
    return trainer, logs


def test_auto_uses_xla_from_the_first_step_on_a_dense_model():
    trainer, logs = _fit(dropout_mlp(), calls=((0, 1),), x=X[:16], y=Y[:16])  # one step
    assert trainer.xla_decisions["train"] == (True, "auto: a CPU, no convolutions")
    expected = _fit(dropout_mlp(), jit_compile=True, calls=((0, 1),), x=X[:16], y=Y[:16])[1]
    assert logs == expected


def test_auto_leaves_convolutions_on_a_cpu_plain():
    model = conv_model()
    trainer, logs = _fit(model, x=X[:, :, None])
    uses_xla, reason = trainer.xla_decisions["train"]
    assert not uses_xla and "convolutions" in reason, reason
    reference = conv_model()
    assert logs == _fit(reference, jit_compile=False, x=X[:, :, None])[1]
    assert max_abs_difference(model.get_weights(), reference.get_weights()) == 0


def test_the_policy_reads_the_step_ops_and_the_device():
    choice = xla_choice.XlaChoice("auto", allowed=True)
    assert choice.for_pass("train", lambda: {"MatMul", "Relu"})
    assert not choice.for_pass("test", lambda: {"MatMul", "DepthwiseConv2dNative"})
    assert choice.for_pass("test", lambda: pytest.fail("decided once per kind")) is False
    assert not xla_choice.XlaChoice("auto", allowed=False).for_pass("train", set)
    assert xla_choice.XlaChoice(True, allowed=True).for_pass("train", {"Conv2D"}.copy)
    assert not xla_choice.XlaChoice(False, allowed=True).for_pass("train", set)


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_a_run_cut_into_calls_gives_the_bits_of_one_call(jit_compile):
    # 63 steps per epoch, 4 epochs, Dropout: one call, then 1 + 2 + 1 epochs.
    model = dropout_mlp()
    _, logs = _fit(model, jit_compile, calls=((0, 4),))
    cut = dropout_mlp()
    _, cut_logs = _fit(cut, jit_compile, calls=((0, 1), (1, 3), (3, 4)))
    assert cut_logs == logs
    assert max_abs_difference(model.get_weights(), cut.get_weights()) == 0


@pytest.mark.parametrize("steps_per_execution", [1, 7, 64])
def test_execution_sizes_never_change_the_bits_on_arrays(steps_per_execution):
    # The adaptive size ("auto") follows the clock; it may, since no size changes bits.
    model, reference = dropout_mlp(), dropout_mlp()
    _, logs = _fit(model, steps_per_execution=steps_per_execution)
    _, expected = _fit(reference)
    assert logs == expected
    assert max_abs_difference(model.get_weights(), reference.get_weights()) == 0


def _stream():
    # 1,000 samples in batches of 8: 125 batches, so the pass ends with a ragged
    # super-batch of 29 batches whose steps run one at a time.
    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(8)


class _EveryBatch(keras.callbacks.Callback):
    """A batch hook: under `steps_per_execution="auto"`, one step per execution."""

    def on_train_batch_end(self, batch, logs=None):
        pass


@pytest.mark.parametrize("steps_per_execution, callbacks", [
    (1, ()), (7, ()), (32, ()), (96, ()), ("auto", (_EveryBatch(),))])
def test_super_batches_or_steps_one_by_one_give_the_same_bits(steps_per_execution, callbacks):
    # tf.data under XLA reads super-batches of 32 batches where executions are
    # multiples of 32 ("auto" plans them), else one batch per step; a step computes
    # the same bits either way, the ragged last super-batch's included.
    def run(spe, callbacks=()):
        model = dropout_mlp()
        trainer = Trainer(model, "sparse_categorical_crossentropy", "adam",
                          steps_per_execution=spe)
        history = trainer.fit(_stream(), epochs=2, verbose=0, shuffle=False,
                              callbacks=list(callbacks))
        return history, model

    history, model = run(steps_per_execution, callbacks)
    expected, reference = run("auto")
    assert history.history == expected.history
    assert max_abs_difference(model.get_weights(), reference.get_weights()) == 0


def test_jit_compile_false_equals_keras_fit_over_2000_steps_with_dropout():
    # 1,000 samples, batch 16, 32 epochs: 2,016 steps with Dropout's seeded draws.
    x, y = X, Y
    reference = dropout_mlp()
    reference.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    expected = reference.fit(x, y, batch_size=16, epochs=32, shuffle=False, verbose=0)
    model = dropout_mlp()
    history = Trainer(model, "sparse_categorical_crossentropy", keras.optimizers.Adam(),
                      metrics=["accuracy"], jit_compile=False).fit(
        x, y, batch_size=16, epochs=32, shuffle=False, verbose=0)
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=0, atol=1e-5, err_msg=key)
    assert max_abs_difference(model.get_weights(), reference.get_weights()) < 1e-5


def test_the_device_is_where_the_model_variables_are():
    # A model pinned to the CPU on a GPU machine runs its steps there: XLA's CPU
    # convolutions (slow) and super-batches (measured on a CPU) follow its variables.
    from types import SimpleNamespace

    from customkeras.training.xla_choice import XlaChoice, on_accelerator

    def model_on(device):
        return SimpleNamespace(variables=[SimpleNamespace(device=device)])

    gpu = model_on("/job:localhost/replica:0/task:0/device:GPU:0")
    cpu = model_on("/job:localhost/replica:0/task:0/device:CPU:0")
    assert on_accelerator(gpu) and not on_accelerator(cpu)
    convolutions = lambda: {"Conv2D", "MatMul"}  # noqa: E731
    assert XlaChoice("auto", True, gpu)._decide(convolutions) == (True, "auto: a GPU or TPU")
    assert XlaChoice("auto", True, cpu)._decide(convolutions)[0] is False
