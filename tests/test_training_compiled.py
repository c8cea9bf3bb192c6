"""`Trainer(compiled_model)` is a drop-in for `model.fit` (issue 10, item 2).

Each test trains twin models (same initial weights, same data order), one with Keras
`fit` and one with the Trainer, and compares the history (keys exactly as Keras names
them) and the weights to 1e-5; `evaluate` and `predict` likewise.
"""

import keras
import numpy as np
import pytest
from custom_step_helpers import (
    assert_same_logs,
    assert_same_predictions,
    assert_same_run,
    assert_same_weights,
    regression_data,
)
from training_helpers import classification_data, mlp

from customkeras import models
from customkeras.training import Trainer

FIT = dict(batch_size=16, shuffle=False, verbose=0)


def _two_outputs(seed, as_dict):
    """Inputs (n, 8) -> a regression output "a" (1 unit) and a 3-class softmax "b"."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    a = keras.layers.Dense(1, name="a")(hidden)
    b = keras.layers.Dense(3, activation="softmax", name="b")(hidden)
    return keras.Model(inputs, {"a": a, "b": b} if as_dict else [a, b])


def _two_output_data(n, seed=0):
    x, labels = classification_data(n, seed=seed)
    return x, x[:, :1] * 2.0 - x[:, 1:2], labels


def _compile_options(as_dict):
    if as_dict:
        return dict(loss={"a": "mse", "b": "sparse_categorical_crossentropy"},
                    loss_weights={"a": 1.0, "b": 0.5},
                    metrics={"a": ["mae"], "b": ["accuracy"]})
    return dict(loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[1.0, 0.5],
                metrics=[["mae"], ["accuracy"]])


def _compiled(build, optimizer=None, **compile_kwargs):
    """`build()` compiled with `compile_kwargs` and a fresh `optimizer()` (or Adam)."""
    model = build()
    model.compile(optimizer=optimizer() if optimizer else "adam", **compile_kwargs)
    return model


def _twins(build, **compile_kwargs):
    """Two models from `build()`, both compiled alike (each with its own optimizer)."""
    return [_compiled(build, **compile_kwargs) for _ in range(2)]


def test_compiled_model_fit_evaluate_predict():
    x, y = classification_data(100, seed=1)
    reference, model = _twins(lambda: mlp(seed=1), optimizer=lambda: keras.optimizers.Nadam(0.01),
                              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    initial = model.get_weights()
    trainer = Trainer(model)
    # Before any training too (the compiled metrics are not built yet).
    assert_same_predictions(trainer.predict(x), reference.predict(x, verbose=0))
    options = dict(FIT, epochs=2, validation_data=(x[:40], y[:40]))
    expected = reference.fit(x, y, **options)
    history = trainer.fit(x, y, **options)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert_same_run(history, expected, model, reference, initial)
    assert trainer.optimizer is model.optimizer  # the compiled optimizer, not a new one
    assert_same_logs(trainer.evaluate(x, y, verbose=0, return_dict=True), reference.evaluate(x, y, verbose=0, return_dict=True))
    assert_same_predictions(trainer.predict(x), reference.predict(x, verbose=0))
    assert_same_predictions(trainer.predict(x[:50], batch_size=7),
                            reference.predict(x[:50], batch_size=7, verbose=0))


@pytest.mark.parametrize("as_dict", [False, True], ids=["list", "dict"])
def test_multi_output_losses_weights_and_metrics_per_output(as_dict):
    x, ya, yb = _two_output_data(90, seed=2)
    y = {"a": ya, "b": yb} if as_dict else [ya, yb]
    reference, model = _twins(lambda: _two_outputs(2, as_dict), **_compile_options(as_dict))
    initial = model.get_weights()
    y_valid = {"a": ya[:30], "b": yb[:30]} if as_dict else [ya[:30], yb[:30]]
    options = dict(FIT, epochs=2, validation_data=(x[:30], y_valid))
    expected = reference.fit(x, y, **options)
    trainer = Trainer(model)
    history = trainer.fit(x, y, **options)
    names = ["a_loss", "a_mae", "b_accuracy", "b_loss", "loss"]
    assert sorted(expected.history) == sorted(names + [f"val_{n}" for n in names])
    assert_same_run(history, expected, model, reference, initial)
    assert_same_logs(trainer.evaluate(x, y, verbose=0, return_dict=True), reference.evaluate(x, y, verbose=0, return_dict=True))
    predictions = trainer.predict(x)
    assert_same_predictions(predictions, reference.predict(x, verbose=0))
    assert isinstance(predictions, dict if as_dict else list)


@pytest.mark.parametrize("as_dict", [False, True], ids=["list", "dict"])
def test_trainer_arguments_take_loss_weights_like_compile(as_dict):
    x, ya, yb = _two_output_data(64, seed=3)
    y = {"a": ya, "b": yb} if as_dict else [ya, yb]
    reference = _compiled(lambda: _two_outputs(3, as_dict), **_compile_options(as_dict))
    expected = reference.fit(x, y, **FIT, epochs=2)
    model = _two_outputs(3, as_dict)
    options = _compile_options(as_dict)
    trainer = Trainer(model, options["loss"], keras.optimizers.Adam(),
                      metrics=options["metrics"], loss_weights=options["loss_weights"])
    history = trainer.fit(x, y, **FIT, epochs=2)
    assert_same_run(history, expected, model, reference, _two_outputs(3, as_dict).get_weights())


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "arguments"])
def test_weighted_metrics_with_sample_weight(compiled):
    x, y = regression_data(80, seed=4)
    weights = np.random.default_rng(4).uniform(0, 3, 80).astype("float32")
    val_weights = weights[:32][::-1].copy()
    spec = dict(loss="mse", metrics=["mae"], weighted_metrics=["mae"])
    reference = _compiled(lambda: _regressor(4), **spec)
    options = dict(FIT, epochs=2, sample_weight=weights,
                   validation_data=(x[:32], y[:32], val_weights))
    expected = reference.fit(x, y, **options)
    if compiled:
        model = _compiled(lambda: _regressor(4), **spec)
        trainer = Trainer(model)
    else:
        model = _regressor(4)
        trainer = Trainer(model, "mse", "adam", metrics=["mae"], weighted_metrics=["mae"])
    history = trainer.fit(x, y, **options)
    assert sorted(history.history) == [
        "loss", "mae", "val_loss", "val_mae", "val_weighted_mae", "weighted_mae"]
    assert_same_run(history, expected, model, reference, _regressor(4).get_weights())
    # Not vacuous: the weighted and the plain MAE differ.
    assert abs(history.history["weighted_mae"][0] - history.history["mae"][0]) > 1e-4
    assert_same_logs(trainer.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True),
                     reference.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True))


def _regressor(seed, n_features=4, **dense_kwargs):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_features,)),
                             keras.layers.Dense(8, activation="relu", **dense_kwargs),
                             keras.layers.Dense(1)])


def test_metrics_the_model_updates_itself_are_logged():
    x, y = regression_data(64, n_features=8, seed=5)

    def build():
        keras.utils.set_random_seed(5)
        model = models.ReconstructingRegressor(1, reconstruction_weight=0.5)
        model(x[:1])
        return model

    reference, model = _twins(build, loss="mse", optimizer=lambda: keras.optimizers.Nadam(0.01))
    initial = model.get_weights()
    options = dict(FIT, epochs=2, validation_data=(x[:32], y[:32]))
    expected = reference.fit(x, y, **options)
    assert {"reconstruction_loss", "val_reconstruction_loss"} <= set(expected.history)
    trainer = Trainer(model)
    history = trainer.fit(x, y, **options)
    assert_same_run(history, expected, model, reference, initial)
    assert_same_logs(trainer.evaluate(x, y, verbose=0, return_dict=True), reference.evaluate(x, y, verbose=0, return_dict=True))


@pytest.fixture
def dtype_policy():
    """Sets a global dtype policy for one test and always restores the previous one."""
    previous = keras.config.dtype_policy()
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "arguments"])
def test_mixed_float16_scales_the_loss_as_compile_does(dtype_policy, compiled):
    dtype_policy("mixed_float16")
    x, y = regression_data(64, seed=6)
    reference = _compiled(lambda: _regressor(6), loss="mse", metrics=["mae"],
                          optimizer=lambda: keras.optimizers.Adam(0.01))
    assert isinstance(reference.optimizer, keras.optimizers.LossScaleOptimizer)
    expected = reference.fit(x, y, **FIT, epochs=2)
    model = _regressor(6)
    if compiled:
        model.compile(keras.optimizers.Adam(0.01), "mse", metrics=["mae"])
        trainer = Trainer(model)
    else:
        trainer = Trainer(model, "mse", keras.optimizers.Adam(0.01), metrics=["mae"])
    history = trainer.fit(x, y, **FIT, epochs=2)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.layers[0].compute_dtype == "float16"
    assert_same_run(history, expected, model, reference, _regressor(6).get_weights())
    # The loss scale evolved alike (it halves on overflow, grows after finite steps).
    np.testing.assert_allclose(float(trainer.optimizer.dynamic_scale),
                               float(reference.optimizer.dynamic_scale))


def test_mixed_bfloat16_runs_as_fit(dtype_policy):
    dtype_policy("mixed_bfloat16")
    x, y = regression_data(64, seed=7)
    reference, model = _twins(lambda: _regressor(7), loss="mse", metrics=["mae"])
    assert model.layers[0].compute_dtype == "bfloat16"
    expected = reference.fit(x, y, **FIT, epochs=2)
    # Plain steps, as `fit`'s: bfloat16 rounding magnifies XLA's other float order.
    history = Trainer(model, jit_compile=False).fit(x, y, **FIT, epochs=2)
    assert np.all(np.isfinite(history.history["loss"]))
    assert_same_run(history, expected, model, reference, _regressor(7).get_weights())


def test_use_ema_weights_are_finalized_at_the_end_of_fit():
    x, y = regression_data(80, seed=8)

    def ema_optimizer():
        return keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9)

    reference, model = _twins(lambda: _regressor(8), loss="mse", optimizer=ema_optimizer)
    expected = reference.fit(x, y, **FIT, epochs=3)
    history = Trainer(model).fit(x, y, **FIT, epochs=3)
    assert_same_run(history, expected, model, reference, _regressor(8).get_weights())
    # Not vacuous: without the EMA swap, the final weights differ.
    plain = _compiled(lambda: _regressor(8), loss="mse",
                      optimizer=lambda: keras.optimizers.Adam(0.05))
    plain.fit(x, y, **FIT, epochs=3)
    assert max(np.max(np.abs(a - b))
               for a, b in zip(plain.get_weights(), model.get_weights())) > 1e-3


def test_gradient_accumulation_steps():
    x, y = regression_data(96, seed=9)

    def accumulating():
        return keras.optimizers.SGD(0.05, gradient_accumulation_steps=3)

    reference, model = _twins(lambda: _regressor(9), loss="mse", metrics=["mae"],
                              optimizer=accumulating)
    expected = reference.fit(x, y, **FIT, epochs=2)
    trainer = Trainer(model)
    history = trainer.fit(x, y, **FIT, epochs=2)
    assert_same_run(history, expected, model, reference, _regressor(9).get_weights())
    # 12 steps, one update every 3 (Keras counts the updates).
    assert int(model.optimizer.iterations) == int(reference.optimizer.iterations) == 4


@pytest.mark.parametrize("option", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_gradient_clipping_options(option):
    x, y = regression_data(64, seed=10)
    y = y * 50.0  # large errors: the gradients are clipped at every step

    def clipped():
        return keras.optimizers.SGD(0.01, **{option: 0.5})

    reference, model = _twins(lambda: _regressor(10), loss="mse", optimizer=clipped)
    expected = reference.fit(x, y, **FIT, epochs=2)
    # Plain steps, as `fit`'s: the losses are ~3e3, where XLA's float order moves the
    # fifth decimal.
    history = Trainer(model, jit_compile=False).fit(x, y, **FIT, epochs=2)
    assert_same_run(history, expected, model, reference, _regressor(10).get_weights())
    unclipped = _compiled(lambda: _regressor(10), loss="mse",
                          optimizer=lambda: keras.optimizers.SGD(0.01))
    unclipped.fit(x, y, **FIT, epochs=2)
    assert max(np.max(np.abs(a - b))
               for a, b in zip(unclipped.get_weights(), model.get_weights())) > 1e-3


def test_regularization_and_constraints_of_a_compiled_model():
    x, y = classification_data(64, seed=11)
    build = lambda: mlp(seed=11, kernel_regularizer=keras.regularizers.l2(0.05),  # noqa: E731
                        kernel_constraint=keras.constraints.MaxNorm(0.5))
    reference, model = _twins(build, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    expected = reference.fit(x, y, **FIT, epochs=2)
    history = Trainer(model).fit(x, y, **FIT, epochs=2)
    assert_same_run(history, expected, model, reference, build().get_weights())
    assert_same_weights(model, reference)
