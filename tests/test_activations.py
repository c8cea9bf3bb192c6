"""Stable softplus: value and custom gradient against a float64 NumPy reference, on the
running Keras backend (its own autodiff: tf.GradientTape, jax.grad, torch.autograd)."""

import keras
import numpy as np
import pytest
from keras import ops
from scipy.special import expit

from customkeras._backend import gradient_of_sum
from customkeras.activations import softplus

# Includes the chapter's overflow cases: exp(1e3) and exp(1e30) are inf in float32.
POINTS = np.array(
    [-1e30, -1e3, -100.0, -30.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 30.0, 100.0, 1e3, 1e30],
    dtype=np.float32,
)


def reference_softplus(x):
    x = np.asarray(x, dtype=np.float64)
    return np.logaddexp(0.0, x)


def reference_gradient(x):
    return expit(np.asarray(x, dtype=np.float64))  # the sigmoid, without overflow


def compiled(function):
    """`function` as a training step runs it: traced by tf.function or jax.jit."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function  # PyTorch: Keras runs fit eagerly by default


def test_value_and_gradient_match_float64_reference():
    value, gradient = gradient_of_sum(softplus, POINTS)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(value, reference_softplus(POINTS), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(gradient, reference_gradient(POINTS), rtol=1e-6, atol=1e-30)


def test_naive_formula_fails_where_ours_does_not():
    # The reason for the custom gradient: the textbook formula overflows at 1e3.
    value, gradient = gradient_of_sum(lambda z: ops.log(1.0 + ops.exp(z)), POINTS[-2:])
    assert not np.all(np.isfinite(value)) or not np.all(np.isfinite(gradient))


def test_random_inputs_and_compiled():
    x = np.random.default_rng(0).normal(scale=20.0, size=(64, 8)).astype(np.float32)
    value, gradient = gradient_of_sum(compiled(softplus), x)
    np.testing.assert_allclose(value, reference_softplus(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gradient, reference_gradient(x), rtol=1e-6, atol=1e-7)


def test_integer_input_is_cast_to_float():
    result = softplus(np.array([0, 2]))
    assert keras.backend.standardize_dtype(result.dtype) == "float32"
    np.testing.assert_allclose(result, reference_softplus([0, 2]), rtol=1e-6)


def test_works_as_a_dense_activation():
    layer = keras.layers.Dense(3, activation=softplus)
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    layer.build(x.shape)
    kernel, bias = (w.numpy() for w in layer.weights)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), reference_softplus(x @ kernel + bias), rtol=1e-5,
        atol=1e-6,
    )


def test_is_registered_as_a_plain_function():
    config = keras.activations.serialize(softplus)
    restored = keras.activations.deserialize(config)
    assert restored is softplus


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_keeps_float_dtype(dtype):
    x = np.array([1.0, -1.0], dtype=dtype)
    result = softplus(x)
    # The dtype the backend gives such an input (JAX without x64 makes float64 float32).
    expected = keras.backend.standardize_dtype(ops.convert_to_tensor(x).dtype)
    assert keras.backend.standardize_dtype(result.dtype) == expected
    np.testing.assert_allclose(np.asarray(result, np.float64), reference_softplus(x),
                               rtol=1e-3 if dtype == "float16" else 1e-6)


def test_fit_matches_keras_softplus():
    # The custom gradient inside the backend's compiled train step: training with it
    # follows training with Keras's own softplus, step for step.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(128, 4)).astype(np.float32)
    y = reference_softplus(X @ np.array([[1.0], [-2.0], [0.5], [3.0]])).astype(np.float32)
    weights, losses = {}, {}
    for name, activation in [("ours", softplus), ("keras", keras.activations.softplus)]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation=activation)])
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.1))
        history = model.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
        weights[name], losses[name] = model.get_weights(), history.history["loss"]
    assert losses["ours"][-1] < 0.9 * losses["ours"][0]  # it did train
    np.testing.assert_allclose(losses["ours"], losses["keras"], rtol=1e-5)
    for mine, theirs in zip(weights["ours"], weights["keras"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
