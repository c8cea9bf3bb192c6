"""Every custom piece survives saving: get_config round trips, registration, and .keras
files reloaded with keras.saving.load_model in a fresh process (safe mode, no
custom_objects)."""

import json
import os
import subprocess
import textwrap

import keras
import numpy as np
import pytest

import customkeras  # noqa: F401  (registers everything, as a user's import does)
from customkeras.activations import softplus
from customkeras.constraints import NonNegative, non_negative
from customkeras.initializers import GlorotNormal, glorot_normal
from customkeras.layers import (
    Exponential,
    GaussianNoise,
    LayerNormalization,
    ResidualBlock,
    SimpleDense,
    SumProductQuotient,
)
from customkeras.losses import HuberLoss, huber_fn
from customkeras.metrics import HuberMetric
from customkeras.models import (
    ReconstructingRegressor,
    ResidualRegressor,
    WideAndDeepRegressor,
)
from customkeras.optimizers import MomentumSGD
from customkeras.regularizers import L1, l1

OBJECTS = [
    HuberLoss(2.0, reduction="sum"),
    HuberMetric(2.0, name="huber"),
    GlorotNormal(seed=4),
    L1(0.2),
    NonNegative(),
    Exponential(),
    SimpleDense(
        4,
        activation=softplus,
        kernel_initializer=GlorotNormal(seed=1),
        kernel_regularizer=L1(0.1),
        kernel_constraint=NonNegative(),
    ),
    SumProductQuotient(),
    GaussianNoise(0.2, seed=3),
    LayerNormalization(epsilon=1e-4),
    ResidualBlock(3, 5),
    ResidualRegressor(2),
    ReconstructingRegressor(1, reconstruction_weight=0.3),
    WideAndDeepRegressor(output_dim=2, units=4, activation="tanh"),
    MomentumSGD(0.03, momentum=0.7, nesterov=True),
]


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda obj: type(obj).__name__)
def test_get_config_round_trip(obj):
    config = obj.get_config()
    assert type(obj).from_config(config).get_config() == config
    # The full Keras path: registered name in, same class and config out (safe mode).
    serialized = keras.saving.serialize_keras_object(obj)
    assert serialized["registered_name"] == f"customkeras>{type(obj).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
    assert type(restored) is type(obj) and restored.get_config() == config


@pytest.mark.parametrize(
    "function", [huber_fn, softplus, glorot_normal, l1, non_negative],
    ids=lambda f: f.__name__,
)
def test_plain_functions_are_registered(function):
    serialized = keras.saving.serialize_keras_object(function)
    # Keras stores a registered function as {"class_name": "function", "config": name}.
    assert serialized["config"] == f"customkeras>{function.__name__}"
    assert keras.saving.deserialize_keras_object(serialized, safe_mode=True) is function


RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import customkeras

    directory = sys.argv[1]
    data = np.load(f"{directory}/data.npz")
    names = json.load(open(f"{directory}/names.json"))
    results, report = {}, {}
    for name in names:
        model = keras.saving.load_model(f"{directory}/{name}.keras")  # safe mode on
        results[name] = model.predict(data["X"], verbose=0)
        results[name + "_optimizer"] = np.concatenate(
            [np.ravel(v.numpy()) for v in model.optimizer.variables[2:]] or [np.zeros(0)])
        report[name] = {
            "evaluate": model.evaluate(data["X"], data["y"], verbose=0, return_dict=True),
            "loss": keras.saving.serialize_keras_object(model.loss),
            "optimizer": type(model.optimizer).__name__,
            "optimizer_config": model.optimizer.get_config(),
            "model_class": type(model).__name__,
        }
    np.savez(f"{directory}/reloaded.npz", **results)
    json.dump(report, open(f"{directory}/report.json", "w"), default=float)
    """
)


def every_piece_model():
    """A functional model using every custom layer, initializer, regularizer,
    constraint, activation, loss, metric and the optimizer."""
    inputs = keras.Input((8,))
    noisy = GaussianNoise(0.1, seed=1)(inputs)
    normalized = LayerNormalization()(noisy)
    hidden = SimpleDense(
        8,
        activation=softplus,
        kernel_initializer=GlorotNormal(seed=2),
        kernel_regularizer=L1(0.01),
        kernel_constraint=NonNegative(),
    )(normalized)
    hidden = ResidualBlock(2, 8)(hidden)
    side = keras.layers.Dense(
        8,
        activation=softplus,
        kernel_initializer=glorot_normal,
        kernel_regularizer=l1,
        kernel_constraint=non_negative,
    )(inputs)
    positive = Exponential()(keras.layers.Dense(8, activation="tanh")(side))
    total, product, quotient = SumProductQuotient()((hidden, positive))
    outputs = keras.layers.Dense(1)(keras.layers.Concatenate()([total, product, quotient]))
    model = keras.Model(inputs, outputs)
    model.compile(
        loss=HuberLoss(2.0),
        optimizer=MomentumSGD(0.01, momentum=0.9, nesterov=True),
        metrics=[HuberMetric(2.0, name="huber")],
    )
    return model


def subclassed_models():
    models = {
        "residual": ResidualRegressor(1),
        "reconstructing": ReconstructingRegressor(1, reconstruction_weight=0.1),
        "wide_and_deep": WideAndDeepRegressor(output_dim=1, units=6),
    }
    models["residual"].compile(loss=huber_fn, optimizer=MomentumSGD(0.001, momentum=0.5))
    models["reconstructing"].compile(loss="mse", optimizer="nadam")
    models["wide_and_deep"].compile(loss=HuberLoss(0.5), optimizer=MomentumSGD(0.01))
    return models


@pytest.mark.slow
def test_models_reload_in_a_fresh_process(tmp_path, python_executable):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 8)).astype("float32")
    y = (X[:, :1] * 2 + X[:, 1:2] ** 2).astype("float32")
    np.savez(tmp_path / "data.npz", X=X, y=y)
    models = {"every_piece": every_piece_model(), **subclassed_models()}
    expected = {}
    for name, model in models.items():
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        model.save(tmp_path / f"{name}.keras")
        expected[name] = model.predict(X, verbose=0)
        expected[name + "_evaluate"] = model.evaluate(X, y, verbose=0, return_dict=True)
        expected[name + "_optimizer"] = np.concatenate(
            [np.ravel(v.numpy()) for v in model.optimizer.variables[2:]] or [np.zeros(0)]
        )
    (tmp_path / "names.json").write_text(json.dumps(list(models)))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [python_executable, "-c", RELOAD_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    reloaded = np.load(tmp_path / "reloaded.npz")
    report = json.loads((tmp_path / "report.json").read_text())

    for name, model in models.items():
        np.testing.assert_array_equal(reloaded[name], expected[name], err_msg=name)
        np.testing.assert_array_equal(
            reloaded[name + "_optimizer"], expected[name + "_optimizer"], err_msg=name
        )
        assert report[name]["evaluate"] == pytest.approx(expected[name + "_evaluate"], rel=1e-6)
        assert report[name]["model_class"] == type(model).__name__
        assert report[name]["optimizer_config"] == pytest.approx(model.optimizer.get_config())

    # The loss keeps its threshold (keras.losses.Huber 3.15.1 would reload with 1).
    assert report["every_piece"]["loss"]["config"]["threshold"] == 2.0
    assert report["every_piece"]["loss"]["registered_name"] == "customkeras>HuberLoss"
    assert report["wide_and_deep"]["loss"]["config"]["threshold"] == 0.5
    assert report["residual"]["loss"]["config"] == "customkeras>huber_fn"
    assert report["every_piece"]["optimizer"] == "MomentumSGD"
    assert {"loss", "huber"} <= set(report["every_piece"]["evaluate"])
    assert "reconstruction_loss" in report["reconstructing"]["evaluate"]
    # The optimizer state (velocities) was really saved and is not all zeros.
    assert np.abs(expected["every_piece_optimizer"]).max() > 0


# ---- import customkeras on every backend --------------------------------------------

@pytest.mark.parametrize("part", ["training", "tracing", "autodiff"])
def test_tensorflow_only_parts_say_so_on_other_backends(part):
    import importlib

    backend = keras.backend.backend()
    if backend == "tensorflow":
        assert importlib.import_module(f"customkeras.{part}") is getattr(customkeras, part)
        return
    # `import customkeras` worked (this module did it); the TF-only part explains itself.
    with pytest.raises(ImportError, match=rf"customkeras\.{part} runs on the TensorFlow "
                                          rf"backend only.*'{backend}'.*KERAS_BACKEND=tensorflow"):
        importlib.import_module(f"customkeras.{part}")
    with pytest.raises(ImportError, match=f"customkeras.{part}"):
        getattr(customkeras, part)
