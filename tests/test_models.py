"""Custom models: forward passes against NumPy, the reconstruction loss and its metric."""

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from customkeras.models import (
    ReconstructingRegressor,
    ResidualRegressor,
    WideAndDeepRegressor,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 6)).astype("float32")
Y = (X[:, :2].sum(axis=1, keepdims=True) + 0.1).astype("float32")


def dense(layer, inputs, relu=True):
    kernel, bias = layer.get_weights()
    outputs = inputs @ kernel + bias
    return np.maximum(outputs, 0) if relu else outputs


def residual(block, inputs):
    outputs = inputs
    for layer in block.hidden:
        outputs = dense(layer, outputs)
    return inputs + outputs


def test_residual_regressor_architecture():
    model = ResidualRegressor(2)
    predictions = to_numpy(model(X))
    assert predictions.shape == (32, 2)
    # hidden1, two blocks of two Dense layers, out: 6 Dense layers, 12 variables.
    assert len(model.trainable_weights) == 12
    Z = dense(model.hidden1, X)
    for _ in range(4):  # block1 is applied 1 + 3 times with the same weights
        Z = residual(model.block1, Z)
    Z = residual(model.block2, Z)
    np.testing.assert_allclose(predictions, dense(model.out, Z, relu=False), rtol=1e-4, atol=1e-4)


def test_wide_and_deep_regressor_concatenates_inputs_and_deep_path():
    model = WideAndDeepRegressor(output_dim=3, units=7)
    predictions = to_numpy(model(X))
    assert predictions.shape == (32, 3)
    deep = dense(model.hidden2, dense(model.hidden1, X))
    wide_and_deep = np.concatenate([X, deep], axis=1)
    assert model.output_layer.kernel.shape == (6 + 7, 3)
    np.testing.assert_allclose(
        predictions, dense(model.output_layer, wide_and_deep, relu=False), rtol=1e-5, atol=1e-5
    )


def reconstruction_mse(model, inputs):
    Z = inputs
    for layer in model.hidden:
        Z = dense(layer, Z)
    return np.mean((dense(model.reconstruct, Z, relu=False) - inputs) ** 2)


def test_reconstructing_regressor_adds_weighted_reconstruction_loss():
    model = ReconstructingRegressor(1, reconstruction_weight=0.2)
    predictions = to_numpy(model(X))
    assert predictions.shape == (32, 1)
    assert model.reconstruct.kernel.shape == (30, 6)  # created in build: 6 inputs
    (loss,) = model.losses
    assert float(loss) == pytest.approx(0.2 * reconstruction_mse(model, X), rel=1e-4)


def test_reconstruction_loss_is_a_reported_metric():
    keras.utils.set_random_seed(3)
    model = ReconstructingRegressor(1)
    model.compile(loss="mse", optimizer="sgd")
    history = model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    assert "reconstruction_loss" in [m.name for m in model.metrics]
    assert len(history.history["reconstruction_loss"]) == 2
    # Batches of 10, 10, 10 and 2: weighted by batch size (as Keras's loss), the result
    # is the mean over all samples.
    logs = model.evaluate(X, Y, batch_size=10, verbose=0, return_dict=True)
    expected_reconstruction = reconstruction_mse(model, X)
    assert logs["reconstruction_loss"] == pytest.approx(expected_reconstruction, rel=1e-4)
    mse = np.mean((model.predict(X, verbose=0) - Y) ** 2)
    assert logs["loss"] == pytest.approx(mse + 0.05 * expected_reconstruction, rel=1e-4)


def test_compute_loss_adds_the_term_and_updates_the_metric():
    # A step built from model(x) and model.compute_loss (Keras's train_step, the
    # customkeras Trainer) gets the weighted term in the loss and the metric, on every
    # backend, and a compute_loss on other inputs measures those inputs.
    keras.utils.set_random_seed(4)
    model = ReconstructingRegressor(1, reconstruction_weight=0.2)
    model.compile(loss="mse")
    x = keras.ops.convert_to_tensor(X)
    y_pred = model(x, training=True)
    loss = float(to_numpy(model.compute_loss(x=x, y=Y, y_pred=y_pred)))
    first = reconstruction_mse(model, X)
    mse = np.mean((to_numpy(y_pred) - Y) ** 2)
    assert loss == pytest.approx(mse + 0.2 * first, rel=1e-4)
    assert float(model.reconstruction_tracker.result()) == pytest.approx(first, rel=1e-4)
    other = X[:8] * 3.0  # no call on these: compute_loss measures them itself
    model.compute_loss(x=other, y=Y[:8], y_pred=y_pred[:8])
    # Weighted by batch size, as Keras's loss tracker: 32 samples, then 8.
    expected_mean = (32 * first + 8 * reconstruction_mse(model, other)) / 40
    assert float(model.reconstruction_tracker.result()) == pytest.approx(expected_mean, rel=1e-4)


MODELS = [
    lambda: ResidualRegressor(2, name="residual"),
    lambda: ReconstructingRegressor(3, reconstruction_weight=0.1),
    lambda: WideAndDeepRegressor(output_dim=2, units=5, activation="tanh"),
]


@pytest.mark.parametrize("make", MODELS, ids=["residual", "reconstructing", "wide_and_deep"])
def test_config_is_exactly_the_init_arguments(make):
    model = make()
    config = model.get_config()
    rebuilt = type(model).from_config(config)
    assert rebuilt.get_config() == config
    base = {"name", "trainable", "dtype"}
    init_arguments = {
        ResidualRegressor: {"output_dim"},
        ReconstructingRegressor: {"output_dim", "reconstruction_weight"},
        WideAndDeepRegressor: {"output_dim", "units", "activation"},
    }[type(model)]
    assert set(config) == base | init_arguments


@pytest.mark.parametrize(
    "make, argument, bad, error",
    [
        (lambda v: ResidualRegressor(v), "output_dim", 0, ValueError),
        (lambda v: ReconstructingRegressor(v), "output_dim", -1, ValueError),
        (lambda v: ReconstructingRegressor(1, reconstruction_weight=v),
         "reconstruction_weight", -0.5, ValueError),
        (lambda v: ReconstructingRegressor(1, reconstruction_weight=v),
         "reconstruction_weight", "0.1", TypeError),
        (lambda v: WideAndDeepRegressor(output_dim=v), "output_dim", 1.5, TypeError),
        (lambda v: WideAndDeepRegressor(units=v), "units", 0, ValueError),
    ],
)
def test_invalid_arguments(make, argument, bad, error):
    with pytest.raises(error, match=f"{argument}={bad!r}"):
        make(bad)
