"""Small models and data shared by the tests/test_training_*.py files."""

import keras
import numpy as np


def classification_data(n, n_features=8, n_classes=3, seed=0):
    """Random float32 features and integer labels, `n` samples."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype("float32")
    y = rng.integers(0, n_classes, size=n)
    return x, y


def mlp(seed=0, n_features=8, n_classes=3, hidden=16, **dense_kwargs):
    """A small softmax MLP whose initial weights depend only on `seed`."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((n_features,)),
        keras.layers.Dense(hidden, activation="relu", **dense_kwargs),
        keras.layers.Dense(n_classes, activation="softmax"),
    ])


def max_abs_difference(weights_a, weights_b):
    """Largest absolute difference between two lists of arrays of equal shapes."""
    assert len(weights_a) == len(weights_b)
    return max(float(np.max(np.abs(a - b))) for a, b in zip(weights_a, weights_b))
