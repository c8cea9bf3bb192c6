"""MomentumSGD against keras.optimizers.SGD, step by step."""

import keras
import numpy as np
import pytest

from customkeras.optimizers import MomentumSGD


@pytest.mark.parametrize(
    "momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)]
)
def test_matches_keras_sgd_step_by_step(momentum, nesterov):
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=(4, 3)), rng.normal(size=(3,))]
    ours = [keras.Variable(value.astype("float32")) for value in initial]
    reference = [keras.Variable(value.astype("float32")) for value in initial]
    optimizer = MomentumSGD(learning_rate=0.05, momentum=momentum, nesterov=nesterov)
    keras_optimizer = keras.optimizers.SGD(0.05, momentum=momentum, nesterov=nesterov)
    for _ in range(6):
        grads = [keras.ops.convert_to_tensor(rng.normal(size=value.shape).astype("float32"))
                 for value in initial]
        optimizer.apply_gradients(zip(grads, ours))
        keras_optimizer.apply_gradients(zip(grads, reference))
        for mine, theirs in zip(ours, reference):
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    moved = np.abs(ours[0].numpy() - initial[0]).max()
    assert moved > 0.05  # the comparison is not vacuous


def test_momentum_matches_hand_computed_update():
    # w = 1, g = 1 each step, lr = 0.1, momentum = 0.9:
    # v1 = -0.1, w1 = 0.9; v2 = -0.19, w2 = 0.71 (Nesterov: w1 = 0.81, w2 = 0.539).
    for nesterov, expected in [(False, [0.9, 0.71]), (True, [0.81, 0.539])]:
        w = keras.Variable([1.0])
        optimizer = MomentumSGD(0.1, momentum=0.9, nesterov=nesterov)
        trajectory = []
        for _ in range(2):
            optimizer.apply_gradients([(np.ones(1, "float32"), w)])
            trajectory.append(float(w.numpy()[0]))
        assert trajectory == pytest.approx(expected, rel=1e-6)


def test_momentum_slots_only_with_momentum():
    w = keras.Variable(np.zeros((2, 2), "float32"))
    plain, heavy = MomentumSGD(0.1), MomentumSGD(0.1, momentum=0.5)
    plain.build([w])
    heavy.build([w])
    assert len(heavy.variables) == len(plain.variables) + 1
    assert tuple(heavy.velocities[0].shape) == (2, 2)


def test_trains_a_model_like_sgd():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3)).astype("float32")
    y = X @ np.array([[1.0], [-2.0], [0.5]], "float32")
    weights = {}
    for name, optimizer in [
        ("ours", MomentumSGD(0.05, momentum=0.9, nesterov=True)),
        ("keras", keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
    ]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer=optimizer)
        model.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
        weights[name] = model.get_weights()
    for mine, theirs in zip(weights["ours"], weights["keras"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    optimizer = MomentumSGD(0.02, momentum=0.8, nesterov=True, clipnorm=1.0)
    config = optimizer.get_config()
    assert config["momentum"] == 0.8 and config["nesterov"] is True
    assert config["learning_rate"] == pytest.approx(0.02)
    assert MomentumSGD.from_config(config).get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, MomentumSGD) and restored.get_config() == config


@pytest.mark.parametrize(
    "kwargs, argument, bad, error",
    [
        ({"momentum": -0.1}, "momentum", -0.1, ValueError),
        ({"momentum": 1.5}, "momentum", 1.5, ValueError),
        ({"momentum": "0.9"}, "momentum", "0.9", TypeError),
        ({"nesterov": "yes"}, "nesterov", "yes", TypeError),
        ({"nesterov": 1}, "nesterov", 1, TypeError),
    ],
)
def test_invalid_arguments(kwargs, argument, bad, error):
    with pytest.raises(error, match=f"{argument}={bad!r}"):
        MomentumSGD(0.01, **kwargs)
