"""GlorotNormal / glorot_normal, L1 / l1 and NonNegative / non_negative."""

import keras
import numpy as np
import pytest

from customkeras.constraints import NonNegative, non_negative
from customkeras.initializers import GlorotNormal, glorot_normal
from customkeras.layers import SimpleDense
from customkeras.regularizers import L1, l1


# ---- initializers -------------------------------------------------------------------

@pytest.mark.parametrize("initializer", [GlorotNormal(), glorot_normal], ids=["class", "fn"])
@pytest.mark.parametrize(
    "shape, expected_std",
    [((200, 300), np.sqrt(2 / 500)), ((3, 3, 16, 32), np.sqrt(2 / (9 * 16 + 9 * 32)))],
)
def test_glorot_normal_statistics(initializer, shape, expected_std):
    values = np.asarray(initializer(shape, dtype="float32"))
    assert values.shape == shape
    # 60 000 / 13 824 samples: the sample std's relative error is ~0.3% / 0.6%, and
    # the mean's error is std / sqrt(n); both bounds are 5 of those standard errors.
    assert abs(values.std() / expected_std - 1) < 0.03
    assert abs(values.mean()) < 5 * expected_std / np.sqrt(values.size)
    # A plain normal, not truncated: some draws beyond 2 stddevs (4.6% expected).
    assert np.mean(np.abs(values) > 2 * expected_std) > 0.03


def test_glorot_normal_seed():
    first = np.asarray(GlorotNormal(seed=7)((20, 10)))
    np.testing.assert_array_equal(first, np.asarray(GlorotNormal(seed=7)((20, 10))))
    assert not np.allclose(first, np.asarray(GlorotNormal(seed=8)((20, 10))))


def test_glorot_initializer_config_and_validation():
    initializer = GlorotNormal(seed=3)
    assert initializer.get_config() == {"seed": 3}
    assert GlorotNormal.from_config(initializer.get_config()).seed == 3
    with pytest.raises(TypeError, match=r"seed.*'x'"):
        GlorotNormal(seed="x")
    with pytest.raises(ValueError, match=r"seed.*-1"):
        GlorotNormal(seed=-1)
    with pytest.raises(ValueError, match=r"shape.*\(5,\)"):
        glorot_normal((5,))


# ---- regularizers -------------------------------------------------------------------

def test_l1_values_match_numpy():
    weights = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    np.testing.assert_allclose(L1(0.3)(weights), 0.3 * np.abs(weights).sum(), rtol=1e-6)
    np.testing.assert_allclose(l1(weights), 0.01 * np.abs(weights).sum(), rtol=1e-6)
    assert float(L1(0.0)(weights)) == 0.0


@pytest.mark.parametrize(
    "regularizer, factor", [(L1(0.1), 0.1), (l1, 0.01)], ids=["class", "fn"]
)
def test_regularizer_adds_to_model_losses(regularizer, factor):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            SimpleDense(4, kernel_regularizer=regularizer),
            keras.layers.Dense(1, kernel_regularizer=regularizer),
        ]
    )
    model(np.ones((2, 5), "float32"))
    expected = [factor * np.abs(layer.kernel.numpy()).sum() for layer in model.layers]
    losses = [float(keras.ops.convert_to_numpy(loss)) for loss in model.losses]
    np.testing.assert_allclose(sorted(losses), sorted(expected), rtol=1e-6)


def test_l1_config_and_validation():
    assert L1(0.2).get_config() == {"factor": 0.2}
    assert L1.from_config({"factor": 0.2}).factor == 0.2
    for bad, error in [(-0.1, ValueError), (float("nan"), ValueError),
                       (float("inf"), ValueError), ("0.1", TypeError), (None, TypeError)]:
        with pytest.raises(error, match="factor.*" + repr(bad)):
            L1(bad)


# ---- constraints --------------------------------------------------------------------

def test_non_negative_values():
    weights = np.array([[-2.0, 0.0], [0.5, -1e-9]], "float32")
    expected = np.maximum(weights, 0)
    np.testing.assert_array_equal(non_negative(weights), expected)
    np.testing.assert_array_equal(NonNegative()(weights), expected)


@pytest.mark.parametrize("constraint", [NonNegative(), non_negative], ids=["class", "fn"])
def test_constraint_holds_after_an_optimizer_step(constraint):
    layer = SimpleDense(3, kernel_constraint=constraint, kernel_initializer="ones")
    layer.build((None, 4))
    gradient = np.array(
        [[5.0, -1.0, 0.5]] * 4, "float32"
    )  # pushes the first column below zero
    before = layer.kernel.numpy()
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), layer.kernel)])
    after = layer.kernel.numpy()
    np.testing.assert_array_equal(after, np.maximum(before - gradient, 0))
    assert (after >= 0).all() and (after[:, 0] == 0).all()


def test_constraint_config():
    assert NonNegative().get_config() == {}
    assert isinstance(NonNegative.from_config({}), NonNegative)
    restored = keras.constraints.deserialize(keras.constraints.serialize(NonNegative()))
    assert isinstance(restored, NonNegative)
