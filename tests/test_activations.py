"""Stable softplus: value and custom gradient against a float64 NumPy reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit

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


def value_and_gradient(function, x):
    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = function(variable)
    return value.numpy(), tape.gradient(value, variable).numpy()


def test_value_and_gradient_match_float64_reference():
    value, gradient = value_and_gradient(softplus, POINTS)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(value, reference_softplus(POINTS), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(gradient, reference_gradient(POINTS), rtol=1e-6, atol=1e-30)


def test_naive_formula_fails_where_ours_does_not():
    # The reason for the custom gradient: the textbook formula overflows at 1e3.
    value, gradient = value_and_gradient(lambda z: tf.math.log(1.0 + tf.exp(z)), POINTS[-2:])
    assert not np.all(np.isfinite(value)) or not np.all(np.isfinite(gradient))


def test_random_inputs_and_graph_mode():
    x = np.random.default_rng(0).normal(scale=20.0, size=(64, 8)).astype(np.float32)
    value, gradient = value_and_gradient(tf.function(softplus), x)
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
        layer(x), reference_softplus(x @ kernel + bias), rtol=1e-5, atol=1e-6
    )


def test_is_registered_as_a_plain_function():
    config = keras.activations.serialize(softplus)
    restored = keras.activations.deserialize(config)
    assert restored is softplus


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_keeps_float_dtype(dtype):
    result = softplus(np.array([1.0, -1.0], dtype=dtype))
    assert keras.backend.standardize_dtype(result.dtype) == dtype
