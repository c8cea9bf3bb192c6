"""Per-group optimizers (exercise 13b) and their validation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import classification_data

from customkeras.training import Trainer, group_optimizer

SPARSE_CE = "sparse_categorical_crossentropy"


def _two_part_model(seed):
    """Exercise 13b's shape: lower layers and upper layers as two sub-models."""
    keras.utils.set_random_seed(seed)
    lower = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu")])
    upper = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, activation="softmax")])
    return keras.Sequential([lower, upper]), lower, upper


def _reference_loop(model, lower, upper, x, y, batch_size, epochs):
    """The chapter's exercise-13b loop: one tape, each group its own optimizer."""
    pairs = ((lower, keras.optimizers.SGD(1e-4)), (upper, keras.optimizers.Nadam(1e-3)))
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    for start in list(range(0, len(x), batch_size)) * epochs:
        x_batch, y_batch = x[start:start + batch_size], y[start:start + batch_size]
        with tf.GradientTape(persistent=True) as tape:
            loss = loss_fn(y_batch, model(x_batch, training=True))
        for layers, optimizer in pairs:
            gradients = tape.gradient(loss, layers.trainable_variables)
            optimizer.apply_gradients(zip(gradients, layers.trainable_variables))
        del tape


def test_exercise_13b_each_group_moves_as_its_own_optimizer():
    x, y = classification_data(96, seed=10)
    model, lower, upper = _two_part_model(seed=11)
    initial = model.get_weights()
    trainer = Trainer(model, SPARSE_CE, {lower: keras.optimizers.SGD(1e-4),
                                         upper: keras.optimizers.Nadam(1e-3)})
    trainer.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)

    reference, ref_lower, ref_upper = _two_part_model(seed=11)
    _reference_loop(reference, ref_lower, ref_upper, x, y, batch_size=32, epochs=2)
    for got, want, before in zip(model.get_weights(), reference.get_weights(), initial):
        moved = np.abs(want - before).max()
        assert moved > 0
        # Float32 rounding differs between graph and eager; a wrong optimizer or
        # learning rate would miss by far more than 1% of the move.
        np.testing.assert_allclose(got, want, rtol=0, atol=moved * 1e-2)
    # SGD(1e-4) barely moves the lower group; Nadam(1e-3) moves the upper one more.
    lower_move = np.abs(model.get_weights()[0] - initial[0]).max()
    upper_move = np.abs(model.get_weights()[2] - initial[2]).max()
    assert upper_move > 5 * lower_move
    assert [type(o).__name__ for o in trainer.optimizer.optimizers] == ["SGD", "Nadam"]
    assert model.optimizer is trainer.optimizer


def test_list_of_pairs_and_tuple_keys():
    keras.utils.set_random_seed(0)
    first, second, third = (keras.layers.Dense(4), keras.layers.Dense(4), keras.layers.Dense(2))
    model = keras.Sequential([keras.Input((3,)), first, second, third])
    pairs = group_optimizer(model, [([first, second], keras.optimizers.SGD(0.1)),
                                    (third, keras.optimizers.Adam())])
    mapping = group_optimizer(model, {(first, second): keras.optimizers.SGD(0.1),
                                      third: keras.optimizers.Adam()})
    for optimizer in (pairs, mapping):
        optimizer.build(model.trainable_variables)
        assert [len(o.variables) for o in optimizer.optimizers] == [2, 2 + 2 * 2]


def _dense_model():
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(4, name="a"), keras.layers.Dense(2, name="b")]
    return keras.Sequential([keras.Input((3,))] + layers), layers


def test_missing_variable_is_named():
    model, (a, _) = _dense_model()
    with pytest.raises(ValueError, match=r"in no group: \['sequential\w*/b/kernel'"):
        group_optimizer(model, {a: keras.optimizers.SGD()})


def test_overlapping_groups_are_named():
    model, (a, b) = _dense_model()
    with pytest.raises(ValueError, match=r"more than one group: \['sequential\w*/a/kernel \(groups 0 and 1\)"):
        group_optimizer(model, [(a, keras.optimizers.SGD()), ((a, b), keras.optimizers.Adam())])


def test_foreign_layer_and_bad_values_are_rejected():
    model, (a, b) = _dense_model()
    outsider = keras.layers.Dense(1)
    outsider.build((None, 2))
    with pytest.raises(ValueError, match="not trainable variables of the model"):
        group_optimizer(model, {(a, b): keras.optimizers.SGD(), outsider: keras.optimizers.SGD()})
    with pytest.raises(ValueError, match="must name layers"):
        group_optimizer(model, {"a": keras.optimizers.SGD()})
    with pytest.raises(ValueError, match="must be a Keras optimizer"):
        group_optimizer(model, {(a, b): 0.1})
    with pytest.raises(ValueError, match="must not be empty"):
        group_optimizer(model, {})
