"""Huber loss: customkeras.losses against keras.losses.Huber and a NumPy reference."""

import re

import keras
import numpy as np
import pytest

from customkeras.losses import HuberLoss, create_huber, huber, huber_fn


def numpy_huber(y_true, y_pred, threshold):
    error = np.abs(np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64))
    return np.where(
        error <= threshold, 0.5 * error**2, threshold * error - 0.5 * threshold**2
    )


@pytest.fixture(scope="module")
def targets():
    rng = np.random.default_rng(42)
    y_true = rng.normal(size=(32, 3)).astype("float32")
    y_pred = (y_true + rng.normal(scale=3.0, size=(32, 3))).astype("float32")
    return y_true, y_pred, rng.uniform(0.1, 2.0, size=32).astype("float32")


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0, 5.0])
def test_huber_loss_matches_keras_huber(targets, threshold):
    y_true, y_pred, weights = targets
    ours, reference = HuberLoss(threshold), keras.losses.Huber(delta=threshold)
    np.testing.assert_allclose(
        ours(y_true, y_pred), reference(y_true, y_pred), rtol=1e-6
    )
    np.testing.assert_allclose(
        ours(y_true, y_pred, sample_weight=weights),
        reference(y_true, y_pred, sample_weight=weights),
        rtol=1e-6,
    )


@pytest.mark.parametrize("threshold", [0.5, 2.0])
def test_element_wise_functions_match_numpy(targets, threshold):
    y_true, y_pred, _ = targets
    np.testing.assert_allclose(
        huber(y_true, y_pred, threshold), numpy_huber(y_true, y_pred, threshold), rtol=1e-5
    )
    np.testing.assert_allclose(
        create_huber(threshold)(y_true, y_pred),
        numpy_huber(y_true, y_pred, threshold),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        huber_fn(y_true, y_pred), numpy_huber(y_true, y_pred, 1.0), rtol=1e-5
    )


def test_chapter_values():
    # Quadratic below the threshold, linear above: 0.5 * 0.5**2 and 2 * |10 - 2| - 2.
    np.testing.assert_allclose(huber_fn([[0.0, 0.0]], [[0.5, 3.0]]), [[0.125, 2.5]])
    np.testing.assert_allclose(create_huber(2.0)([[2.0]], [[10.0]]), [[14.0]])


def test_create_huber_names_its_threshold():
    assert create_huber(2.0).__name__ == "huber_2"


def test_huber_loss_config_keeps_threshold():
    loss = HuberLoss(3.5, name="robust", reduction="sum")
    config = loss.get_config()
    assert config == {"name": "robust", "reduction": "sum", "threshold": 3.5}
    rebuilt = HuberLoss.from_config(config)
    assert rebuilt.get_config() == config
    y_true, y_pred = np.zeros((4, 1)), np.array([[1.0], [3.0], [5.0], [-7.0]])
    np.testing.assert_allclose(rebuilt(y_true, y_pred), loss(y_true, y_pred))
    np.testing.assert_allclose(loss(y_true, y_pred), numpy_huber(y_true, y_pred, 3.5).sum())


def test_huber_loss_round_trips_through_keras_serialization():
    restored = keras.losses.deserialize(keras.losses.serialize(HuberLoss(2.5)))
    assert isinstance(restored, HuberLoss) and restored.threshold == 2.5


@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
     (float("inf"), ValueError), ("1", TypeError), (True, TypeError), (None, TypeError)],
)
def test_invalid_threshold_is_rejected(bad, error):
    # A wrong value is a ValueError, a wrong type (bool included) a TypeError.
    with pytest.raises(error, match=r"threshold.*received threshold=" + re.escape(repr(bad))):
        HuberLoss(bad)
    with pytest.raises(error, match="threshold"):
        create_huber(bad)


def test_create_huber_closure_never_reloads_as_threshold_1():
    # A closure cannot be rebuilt from a file: Keras must fail loudly, never fall back
    # to another function (use HuberLoss to save a threshold).
    serialized = keras.saving.serialize_keras_object(create_huber(2.0))
    with pytest.raises(TypeError, match="huber_2"):
        keras.saving.deserialize_keras_object(serialized)
