"""Custom layers against Keras built-ins and NumPy references."""

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from customkeras.layers import (
    Exponential,
    GaussianNoise,
    LayerNormalization,
    ResidualBlock,
    SimpleDense,
    SumProductQuotient,
)

RNG = np.random.default_rng(42)


# ---- LayerNormalization (exercise 12) -----------------------------------------------

@pytest.mark.parametrize("shape", [(64, 8), (4, 10, 6)], ids=["rank2", "rank3"])
@pytest.mark.parametrize("random_weights", [False, True], ids=["default", "random"])
def test_layer_normalization_matches_keras(shape, random_weights):
    X = (RNG.normal(size=shape) * RNG.uniform(0.01, 10.0, size=shape[-1])).astype("float32")
    ours, reference = LayerNormalization(), keras.layers.LayerNormalization()
    ours.build(X.shape)
    reference.build(X.shape)
    if random_weights:
        alpha, beta = RNG.random(shape[-1]), RNG.random(shape[-1])
        ours.set_weights([alpha, beta])
        reference.set_weights([alpha, beta])
    assert np.max(np.abs(to_numpy(ours(X)) - to_numpy(reference(X)))) <= 1e-5


def test_layer_normalization_small_variance_puts_epsilon_inside_sqrt():
    # Where the variance is comparable to epsilon, (sigma + eps) and sqrt(var + eps)
    # differ a lot; Keras (and we) use the latter.
    X = np.array([[1.0, 1.01, 0.99, 1.0], [5.0, 5.0, 5.0, 5.0]], "float32")
    expected = (X - X.mean(-1, keepdims=True)) / np.sqrt(X.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(to_numpy(LayerNormalization()(X)), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(keras.layers.LayerNormalization()(X)), expected,
                               atol=1e-5)


def test_layer_normalization_weights():
    layer = LayerNormalization()
    layer.build((None, 3, 7))
    assert [w.name for w in layer.weights] == ["alpha", "beta"]
    assert [tuple(w.shape) for w in layer.weights] == [(7,), (7,)]
    np.testing.assert_array_equal(layer.alpha.numpy(), np.ones(7))
    np.testing.assert_array_equal(layer.beta.numpy(), np.zeros(7))


# ---- Exponential, SimpleDense, SumProductQuotient -----------------------------------

def test_exponential():
    x = np.array([[-1.0, 0.0, 1.0, 3.0]], "float32")
    np.testing.assert_allclose(Exponential()(x), np.exp(x), rtol=1e-6)


def test_simple_dense_matches_numpy_and_keras_dense():
    X = RNG.normal(size=(5, 4)).astype("float32")
    layer = SimpleDense(3, activation="relu")
    output = to_numpy(layer(X))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    np.testing.assert_allclose(output, np.maximum(X @ kernel + bias, 0), rtol=1e-5, atol=1e-6)
    dense = keras.layers.Dense(3, activation="relu")
    dense.build(X.shape)
    dense.set_weights([kernel, bias])
    np.testing.assert_allclose(output, to_numpy(dense(X)), rtol=1e-6, atol=1e-6)
    assert layer.compute_output_shape((None, 7, 4)) == (None, 7, 3)


def test_sum_product_quotient_chapter_values():
    X1 = np.array([[3.0, 6.0], [2.0, 7.0]], "float32")
    X2 = np.array([[6.0, 12.0], [4.0, 3.0]], "float32")
    outputs = SumProductQuotient()((X1, X2))
    for output, expected in zip(outputs, (X1 + X2, X1 * X2, X1 / X2)):
        np.testing.assert_allclose(output, expected, rtol=1e-6)


def test_sum_product_quotient_in_a_functional_model():
    first, second = keras.Input((2,)), keras.Input((2,))
    outputs = SumProductQuotient()((first, second))
    assert [tuple(o.shape) for o in outputs] == [(None, 2)] * 3
    layer = SumProductQuotient()
    assert layer.compute_output_shape(((None, 1), (None, 3))) == ((None, 3),) * 3
    with pytest.raises(ValueError, match="broadcastable"):
        layer.compute_output_shape(((None, 2), (None, 3)))
    with pytest.raises(ValueError, match="pair"):
        layer(np.ones((2, 2)))


# ---- GaussianNoise ------------------------------------------------------------------

def test_gaussian_noise_only_in_training():
    X = RNG.normal(size=(200, 50)).astype("float32")
    layer = GaussianNoise(0.5, seed=1)
    np.testing.assert_array_equal(layer(X), X)
    np.testing.assert_array_equal(layer(X, training=False), X)
    noisy = np.asarray(layer(X, training=True)) - X
    assert abs(noisy.std() - 0.5) < 0.02 and abs(noisy.mean()) < 0.02
    # Fresh noise at every call.
    assert not np.allclose(noisy, np.asarray(layer(X, training=True)) - X)
    # A model passes training=True in fit only, so predict leaves inputs unchanged.
    model = keras.Sequential([keras.Input((50,)), GaussianNoise(1.0)])
    np.testing.assert_array_equal(model.predict(X, verbose=0), X)


def test_gaussian_noise_seed_reproducible():
    X = np.zeros((3, 4), "float32")
    first = np.asarray(GaussianNoise(1.0, seed=5)(X, training=True))
    np.testing.assert_array_equal(first, GaussianNoise(1.0, seed=5)(X, training=True))
    np.testing.assert_array_equal(GaussianNoise(0.0)(X, training=True), X)


# ---- ResidualBlock ------------------------------------------------------------------

def test_residual_block_matches_numpy():
    X = RNG.normal(size=(6, 5)).astype("float32")
    block = ResidualBlock(3, 5)
    output = to_numpy(block(X))
    assert len(block.hidden) == 3 and len(block.trainable_weights) == 6
    Z = X
    for layer in block.hidden:
        kernel, bias = layer.get_weights()
        Z = np.maximum(Z @ kernel + bias, 0)
    np.testing.assert_allclose(output, X + Z, rtol=1e-5, atol=1e-5)


def test_residual_block_needs_matching_width():
    with pytest.raises(ValueError, match="n_units=4"):
        ResidualBlock(2, 4)(np.ones((2, 3), "float32"))


# ---- configs and validation ---------------------------------------------------------

LAYERS = [
    Exponential(name="exp"),
    SimpleDense(3, activation="relu", kernel_regularizer="l2", name="dense"),
    SumProductQuotient(),
    GaussianNoise(0.3, seed=2),
    LayerNormalization(epsilon=1e-4),
    ResidualBlock(2, 8),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize(
    "make, argument, bad, error",
    [
        (lambda v: SimpleDense(v), "units", 0, ValueError),
        (lambda v: SimpleDense(v), "units", -3, ValueError),
        (lambda v: SimpleDense(v), "units", 2.5, TypeError),
        (lambda v: GaussianNoise(v), "stddev", -0.1, ValueError),
        (lambda v: GaussianNoise(v), "stddev", "0.1", TypeError),
        (lambda v: GaussianNoise(1.0, seed=v), "seed", "a", TypeError),
        (lambda v: LayerNormalization(v), "epsilon", 0.0, ValueError),
        (lambda v: ResidualBlock(v, 3), "n_layers", 0, ValueError),
        (lambda v: ResidualBlock(2, v), "n_units", 0, ValueError),
        (lambda v: ResidualBlock(2, v), "n_units", True, TypeError),
    ],
)
def test_invalid_arguments(make, argument, bad, error):
    with pytest.raises(error, match=f"{argument}={bad!r}"):
        make(bad)
