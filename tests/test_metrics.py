"""HuberMetric: the chapter's streaming arithmetic and weighted means against NumPy."""

import keras
import numpy as np
import pytest

from customkeras.metrics import HuberMetric


def numpy_huber(y_true, y_pred, threshold):
    # Equivalent closed form: quadratic up to q = min(|e|, threshold), linear beyond.
    error = np.abs(np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64))
    quadratic = np.minimum(error, threshold)
    return 0.5 * quadratic**2 + threshold * (error - quadratic)


def test_chapter_arithmetic_14_then_7():
    metric = HuberMetric(2.0)
    # total = 2 * |10 - 2| - 2**2 / 2 = 14, count = 1
    assert float(metric([[2.0]], [[10.0]])) == pytest.approx(14.0)
    # total = 14 + |1 - 0|**2 / 2 + (2 * |9.25 - 5| - 2) = 21, count = 3
    assert float(metric([[0.0], [5.0]], [[1.0], [9.25]])) == pytest.approx(7.0)
    assert [float(v) for v in (metric.total, metric.count)] == pytest.approx([21.0, 3.0])
    metric.reset_state()
    assert [float(v) for v in metric.variables] == [0.0, 0.0]
    assert float(metric.result()) == 0.0


def test_state_variables_are_named_total_and_count():
    assert [v.name for v in HuberMetric().variables] == ["total", "count"]


def test_weighted_mean_over_batches_matches_numpy():
    rng = np.random.default_rng(0)
    metric = HuberMetric(1.5)
    losses, weights = [], []
    for batch_size in (5, 8, 3):
        y_true = rng.normal(size=(batch_size, 3)).astype("float32")
        y_pred = rng.normal(scale=2.0, size=(batch_size, 3)).astype("float32")
        sample_weight = rng.uniform(0.0, 2.0, size=batch_size).astype("float32")
        metric.update_state(y_true, y_pred, sample_weight=sample_weight)
        losses.append(numpy_huber(y_true, y_pred, 1.5))
        weights.append(np.repeat(sample_weight[:, None], 3, axis=1))
    losses, weights = np.concatenate(losses), np.concatenate(weights)
    expected = (losses * weights).sum() / weights.sum()
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    # Not the unweighted mean: the test would catch ignored weights.
    assert abs(losses.mean() - expected) > 1e-3


def test_element_wise_weights():
    y_true, y_pred = np.zeros((2, 2), "float32"), np.array([[1.0, 3.0], [0.5, 4.0]], "float32")
    weights = np.array([[1.0, 0.0], [2.0, 1.0]], "float32")
    metric = HuberMetric(1.0)
    metric.update_state(y_true, y_pred, sample_weight=weights)
    losses = numpy_huber(y_true, y_pred, 1.0)
    assert float(metric.result()) == pytest.approx((losses * weights).sum() / weights.sum())


def test_weighted_metric_in_evaluate_matches_numpy():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4)).astype("float32")
    y = rng.normal(scale=3.0, size=(40, 1)).astype("float32")
    sample_weight = rng.uniform(0.1, 1.0, size=40).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", weighted_metrics=[HuberMetric(2.0, name="huber")])
    logs = model.evaluate(
        X, y, sample_weight=sample_weight, batch_size=16, verbose=0, return_dict=True
    )
    losses = numpy_huber(y, model.predict(X, verbose=0), 2.0)[:, 0]
    expected = (losses * sample_weight).sum() / sample_weight.sum()
    assert logs["huber"] == pytest.approx(expected, rel=1e-5)


def test_config_round_trip():
    metric = HuberMetric(2.5, name="robust", dtype="float64")
    config = metric.get_config()
    assert config == {"name": "robust", "dtype": "float64", "threshold": 2.5}
    assert HuberMetric.from_config(config).get_config() == config


@pytest.mark.parametrize("bad, error", [(0.0, ValueError), (-2, ValueError), ("2", TypeError)])
def test_invalid_threshold(bad, error):
    with pytest.raises(error, match="threshold.*" + repr(bad)):
        HuberMetric(bad)
