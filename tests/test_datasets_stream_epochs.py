"""Streams whose shuffle order is a function of `(seed, epoch)` (`epoch=`), on the real data.

A pass's order must depend on the seed and the epoch only: not on how many passes or
iterators came before (TensorFlow does not checkpoint a reshuffling pipeline's state,
tensorflow/tensorflow#48178), so that a resumed run sees an uninterrupted run's orders.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.experimental.ops import distribute as tf_data_distribute

from customkeras.datasets import (
    load_california_housing,
    stream_california_housing,
    stream_fashion_mnist,
    write_tfrecord_shards,
)
from customkeras.datasets.tfrecords import epoch_permutation

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def shard_cache(tmp_path_factory, data_dir):
    cache = tmp_path_factory.mktemp("epoch-shard-cache")
    write_tfrecord_shards("california-housing", data_dir=data_dir, cache_dir=cache)
    return cache


@pytest.fixture(scope="module")
def valid_arrays(data_dir):
    return load_california_housing(data_dir)[1]


def rows(dataset):
    return np.concatenate([features.numpy() for features, _ in dataset])


def stream(shard_cache, data_dir, **options):
    options = {"shuffle": True, "seed": 7, **options}
    return stream_california_housing("valid", batch_size=256, data_dir=data_dir,
                                     cache_dir=shard_cache, **options)


def test_an_int_epoch_fixes_the_order_of_that_epoch(shard_cache, data_dir, valid_arrays):
    X, y = valid_arrays
    epoch_0 = stream(shard_cache, data_dir, epoch=0)
    first, second = rows(epoch_0), rows(epoch_0)
    np.testing.assert_array_equal(first, second)  # no reshuffle between passes
    np.testing.assert_array_equal(first, rows(stream(shard_cache, data_dir, epoch=0)))
    epoch_1 = rows(stream(shard_cache, data_dir, epoch=1))
    other_seed = rows(stream(shard_cache, data_dir, epoch=0, seed=8))
    assert not np.array_equal(first, X) and not np.array_equal(first, epoch_1)
    assert not np.array_equal(first, other_seed)
    for order in (first, epoch_1, other_seed):  # every row exactly once
        np.testing.assert_array_equal(np.sort(order, axis=0), np.sort(X, axis=0))
    # The order is the documented permutation, and features and targets stay paired.
    order = epoch_permutation(len(X), 7, 1).numpy()
    np.testing.assert_array_equal(epoch_1, X[order])
    targets = np.concatenate([t.numpy() for _, t in stream(shard_cache, data_dir, epoch=1)])
    np.testing.assert_array_equal(targets, y[order])
    assert int(epoch_0.cardinality()) == -(-len(X) // 256)


def test_a_variable_epoch_gives_its_order_whatever_came_before(shard_cache, data_dir):
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = stream(shard_cache, data_dir, epoch=epoch)
    expected = {e: rows(stream(shard_cache, data_dir, epoch=e)) for e in (2, 3)}
    # Iterators made and dropped before (as a fast-forward or Keras's iterator rules
    # make them) change nothing: the pass reads the variable when it starts.
    for _ in range(3):
        next(iter(dataset))
    epoch.assign(3)
    np.testing.assert_array_equal(rows(dataset), expected[3])
    epoch.assign(2)
    np.testing.assert_array_equal(rows(dataset), expected[2])
    # Distributed as the Trainer and Keras do, and auto-sharded by file for two workers.
    distributed = tf.distribute.get_strategy().experimental_distribute_dataset(dataset)
    np.testing.assert_array_equal(rows(distributed), expected[2])
    for worker in range(2):
        part = rows(tf_data_distribute._AutoShardDataset(dataset, num_workers=2, index=worker))
        assert 0 < len(part) < len(expected[2])


def _model_and_epoch_stream(shard_cache, data_dir):
    """A seeded compiled model, a reshuffled housing stream whose order is that of a
    `tf.Variable` epoch, and the callback that sets the variable at each epoch's start."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input([8]), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    epoch = tf.Variable(0, dtype=tf.int64)
    set_epoch = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epoch.assign(e))
    train = stream_california_housing("train", batch_size=64, shuffle=True, seed=5,
                                      data_dir=data_dir, cache_dir=shard_cache,
                                      max_examples=1000, epoch=epoch)
    return model, train, set_epoch


def test_fit_with_an_epoch_callback_resumes_with_the_uninterrupted_orders(shard_cache,
                                                                          data_dir):
    # Keras `fit` itself (no fast-forward of iterators): a run resumed at epoch 2 in a new
    # pipeline, from the weights after epoch 2, ends with the uninterrupted run's weights.
    def run(epochs, initial_epoch=0, weights=None):
        model, train, set_epoch = _model_and_epoch_stream(shard_cache, data_dir)
        if weights is not None:
            model.set_weights(weights)
        history = model.fit(train, epochs=epochs, initial_epoch=initial_epoch,
                            callbacks=[set_epoch], shuffle=False, verbose=0)
        return model.get_weights(), history.history["loss"]

    weights, losses = run(4)
    halfway, first_losses = run(2)
    resumed, later_losses = run(4, initial_epoch=2, weights=halfway)
    assert first_losses + later_losses == losses
    for ours, reference in zip(resumed, weights, strict=True):
        np.testing.assert_array_equal(ours, reference)


def test_the_trainer_sets_the_epoch_before_it_reads_a_pass(shard_cache, data_dir, tmp_path):
    # What the CLI's `--input stream` relies on: the Trainer calls `on_epoch_begin` before
    # the epoch's first batch is read, so a run resumed by `EpochCheckpoint` in a new
    # model, pipeline and variable ends with the uninterrupted run's bits.
    from customkeras.training import Trainer
    from customkeras.training.run import EpochCheckpoint

    def run(epochs, directory):
        model, train, set_epoch = _model_and_epoch_stream(shard_cache, data_dir)
        history = Trainer(model).fit(train, epochs=epochs, shuffle=False, verbose=0, callbacks=[
            set_epoch, EpochCheckpoint(str(directory))])
        return model.get_weights(), history.history["loss"]

    weights, losses = run(4, tmp_path / "whole")
    _, first_losses = run(2, tmp_path / "halted")
    resumed, later_losses = run(4, tmp_path / "halted")
    assert first_losses + later_losses == losses
    for ours, reference in zip(resumed, weights, strict=True):
        np.testing.assert_array_equal(ours, reference)


def test_bad_epochs_are_refused_naming_the_argument(shard_cache, data_dir):
    with pytest.raises(ValueError, match=r"`epoch`.*shuffle=True.*shuffle=False, epoch=0"):
        stream(shard_cache, data_dir, shuffle=False, epoch=0)
    with pytest.raises(ValueError, match=r"`epoch` must be .*>= 0.*-1"):
        stream(shard_cache, data_dir, epoch=-1)
    with pytest.raises(TypeError, match="`epoch`"):
        stream(shard_cache, data_dir, epoch=1.5)
    with pytest.raises(ValueError, match=r"`epoch` must be .*tf.Variable of dtype float32"):
        stream(shard_cache, data_dir, epoch=tf.Variable(0.0))
    with pytest.raises(ValueError, match=r"`epoch` must be .*shape \(2,\)"):
        stream(shard_cache, data_dir, epoch=tf.Variable([0, 1]))


def test_without_a_seed_an_epoch_order_is_still_a_permutation(shard_cache, data_dir,
                                                             valid_arrays):
    X, _ = valid_arrays
    order = rows(stream(shard_cache, data_dir, seed=None, epoch=0))
    np.testing.assert_array_equal(np.sort(order, axis=0), np.sort(X, axis=0))


def test_fashion_mnist_takes_an_epoch_too(tmp_path_factory, data_dir):
    cache = tmp_path_factory.mktemp("fashion-shards")
    images = [stream_fashion_mnist("train", batch_size=100, shuffle=True, seed=1, epoch=e,
                                   data_dir=data_dir, cache_dir=cache, max_examples=300)
              for e in (0, 0, 1)]
    first, again, other = ([b.numpy() for b, _ in dataset] for dataset in images)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
