"""The chapter's loop semantics: loss terms, sample weights, metrics, history keys."""

import keras
import numpy as np
import pytest
from training_helpers import classification_data, max_abs_difference, mlp

from customkeras.training import Trainer

SPARSE_CE = "sparse_categorical_crossentropy"


def _regularized_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.l2(0.05)),
        keras.layers.ActivityRegularization(l1=0.01),  # an `add_loss` term
        keras.layers.Dense(3, activation="softmax"),
    ])


def test_loss_is_mean_main_loss_plus_model_losses():
    x, y = classification_data(40)
    model = _regularized_model(seed=0)
    trainer = Trainer(model, SPARSE_CE, keras.optimizers.SGD(learning_rate=0.0))
    history = trainer.fit(x, y, batch_size=40, verbose=0)  # one step, frozen weights

    y_pred = model(x, training=True)
    main = float(np.mean(keras.losses.sparse_categorical_crossentropy(y, y_pred)))
    extra = sum(float(term) for term in model.losses)
    assert extra > 1e-3  # the model really has extra terms
    np.testing.assert_allclose(history.history["loss"][0], main + extra, rtol=1e-5)
    np.testing.assert_allclose(trainer.evaluate(x, y, batch_size=40, verbose=0, return_dict=True)["loss"], main + extra, rtol=1e-5)


def test_sample_weights_and_regularization_match_keras_fit():
    x, y = classification_data(96, seed=1)
    weights = np.random.default_rng(1).uniform(0, 2, size=96).astype("float32")
    reference = _regularized_model(seed=2)
    reference.compile(keras.optimizers.Adam(0.01), SPARSE_CE, metrics=["accuracy"])
    expected = reference.fit(
        x, y, sample_weight=weights, batch_size=32, epochs=2, shuffle=False, verbose=0
    )
    model = _regularized_model(seed=2)
    trainer = Trainer(model, SPARSE_CE, keras.optimizers.Adam(0.01), metrics=["accuracy"])
    history = trainer.fit(
        x, y, sample_weight=weights, batch_size=32, epochs=2, shuffle=False, verbose=0
    )
    assert max_abs_difference(model.get_weights(), reference.get_weights()) < 1e-5
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history.history[key], expected.history[key], atol=1e-6)
    unweighted = Trainer(_regularized_model(seed=2), SPARSE_CE, keras.optimizers.Adam(0.01))
    plain = unweighted.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    assert abs(plain.history["loss"][0] - history.history["loss"][0]) > 1e-3


def test_metrics_reset_each_epoch_and_validation_matches_keras():
    x, y = classification_data(128, seed=2)
    validation = classification_data(40, seed=3)
    reference = mlp(seed=3)
    reference.compile(keras.optimizers.Nadam(0.02), SPARSE_CE,
                      metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(2, name="top2")])
    expected = reference.fit(x, y, epochs=3, shuffle=False, validation_data=validation, verbose=0)
    trainer = Trainer(mlp(seed=3), SPARSE_CE, keras.optimizers.Nadam(0.02),
                      metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(2, name="top2")])
    history = trainer.fit(x, y, epochs=3, shuffle=False, validation_data=validation, verbose=0)

    assert set(history.history) == set(expected.history) == {
        "loss", "accuracy", "top2", "val_loss", "val_accuracy", "val_top2"}
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, atol=1e-5, err_msg=key)


def test_evaluate_matches_keras_and_does_not_accumulate():
    x, y = classification_data(50, seed=4)
    model = mlp(seed=4)
    trainer = Trainer(model, SPARSE_CE, "sgd", metrics=["accuracy"])
    first = trainer.evaluate(x[:20], y[:20], batch_size=8, verbose=0, return_dict=True)
    second = trainer.evaluate(x[20:], y[20:], batch_size=8, verbose=0, return_dict=True)
    model.compile("sgd", SPARSE_CE, metrics=["accuracy"])
    expected = model.evaluate(x[20:], y[20:], batch_size=8, verbose=0, return_dict=True)
    assert set(second) == {"loss", "accuracy"}
    for key in second:
        np.testing.assert_allclose(second[key], expected[key], rtol=1e-5)
    assert first["loss"] != pytest.approx(second["loss"])


def test_regression_metric_names_follow_keras():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], "float32")  # labels (n,), output (n, 1)

    def regressor():
        keras.utils.set_random_seed(5)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])

    metrics = ["mae", keras.metrics.RootMeanSquaredError(name="rmse")]
    reference = regressor()
    reference.compile("sgd", "mse", metrics=metrics)
    expected = reference.fit(x, y, epochs=2, shuffle=False, verbose=0)
    history = Trainer(regressor(), "mse", "sgd",
                      metrics=["mae", keras.metrics.RootMeanSquaredError(name="rmse")]).fit(
        x, y, epochs=2, shuffle=False, verbose=0)
    assert list(history.history) == ["loss", "mae", "rmse"]
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)


@pytest.mark.parametrize(
    "labels, units, activation, loss",
    [("sparse", 3, "softmax", "sparse_categorical_crossentropy"),
     ("sparse column", 3, "softmax", "sparse_categorical_crossentropy"),
     ("one-hot", 3, "softmax", "categorical_crossentropy"),
     ("binary", 1, "sigmoid", "binary_crossentropy")],
)
def test_accuracy_resolves_like_keras(labels, units, activation, loss):
    # "accuracy" means sparse categorical, categorical or binary accuracy depending on
    # the labels and outputs, as `compile` decides: the histories must agree.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 4)).astype("float32")
    classes = rng.integers(0, units if units > 1 else 2, size=48)
    y = {"sparse": classes, "sparse column": classes[:, None],
         "one-hot": np.eye(3, dtype="float32")[classes],
         "binary": classes[:, None].astype("float32")}[labels]

    def model():
        keras.utils.set_random_seed(3)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])

    reference = model()
    reference.compile("sgd", loss, metrics=["accuracy"])
    expected = reference.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    history = Trainer(model(), loss, "sgd", metrics=["accuracy"]).fit(
        x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)
