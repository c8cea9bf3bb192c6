"""`Trainer.predict` under XLA (`jit_compile=True`) returns Keras `model.predict`'s outputs.

An XLA-compiled `tf.while_loop` that writes a dynamic-size `TensorArray` returns it
empty, so the prediction loop over resident arrays once returned shape `(0, ...)`:
the loop now stays plain and XLA compiles the step. XLA's forward pass agrees with the
plain one to ~1e-6 on these models.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from customkeras.training import Trainer

TOLERANCE = 1e-5


def _mlp():
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3)])


def _two_outputs(as_dict):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    first, second = keras.layers.Dense(3)(hidden), keras.layers.Dense(1)(hidden)
    return keras.Model(inputs, {"a": first, "b": second} if as_dict else [first, second])


def _x(n):
    return np.random.default_rng(n).normal(size=(n, 8)).astype("float32")


def _xla_predict_step_used(trainer):
    return any(kind == "predict" and mode == "per step"
               for kind, _, mode in trainer.execution_counts)


def _assert_same_outputs(actual, expected):
    assert type(actual) is type(expected)
    for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected)):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=0, atol=TOLERANCE)
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected)


# (samples, steps_per_execution): a smaller last batch; one full batch; one batch smaller
# than batch_size (no full batch: all plain); 10 steps in executions of 7 + 2 XLA steps
# and the last, smaller batch plain.
SIZES = [(100, 100), (32, 100), (20, 100), (300, 7)]


@pytest.mark.parametrize("n, steps_per_execution", SIZES,
                         ids=[f"{n}-samples-spe-{s}" for n, s in SIZES])
@pytest.mark.parametrize("data_kind", ["arrays", "tf.data"])
def test_predict_under_xla_matches_keras(n, steps_per_execution, data_kind):
    model, x = _mlp(), _x(n)
    expected = model.predict(x, batch_size=32, verbose=0)
    trainer = Trainer(model, "mse", "sgd", jit_compile=True,
                      steps_per_execution=steps_per_execution)
    data = x if data_kind == "arrays" else tf.data.Dataset.from_tensor_slices(x).batch(32)
    _assert_same_outputs(trainer.predict(data), expected)
    # A second call reuses the loops and gives the same bits.
    np.testing.assert_array_equal(trainer.predict(data), trainer.predict(data))
    if n >= 32 or data_kind != "arrays":  # arrays: only full batches run under XLA
        assert _xla_predict_step_used(trainer)


@pytest.mark.parametrize("as_dict", [False, True], ids=["list", "dict"])
@pytest.mark.parametrize("data_kind", ["arrays", "tf.data"])
def test_predict_under_xla_matches_keras_for_two_outputs(as_dict, data_kind):
    model, x = _two_outputs(as_dict), _x(100)
    expected = model.predict(x, batch_size=32, verbose=0)
    trainer = Trainer(model, ["mse", "mse"] if not as_dict else {"a": "mse", "b": "mse"},
                      "sgd", jit_compile=True, steps_per_execution=2)
    data = x if data_kind == "arrays" else tf.data.Dataset.from_tensor_slices(x).batch(32)
    _assert_same_outputs(trainer.predict(data), expected)
    assert _xla_predict_step_used(trainer)


def test_predict_plain_and_xla_share_a_trainer():
    # Plain then XLA executions of one Trainer (arrays, then tf.data) all agree.
    model, x = _mlp(), _x(100)
    expected = model.predict(x, batch_size=32, verbose=0)
    trainer = Trainer(model, "mse", "sgd", jit_compile=True)
    for data in (x, tf.data.Dataset.from_tensor_slices(x).batch(32), x[:64]):
        outputs = trainer.predict(data)
        _assert_same_outputs(outputs, expected[:len(outputs)])
        assert len(outputs) in (64, 100)
