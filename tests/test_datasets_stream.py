"""stream_fashion_mnist / stream_california_housing on the real data: the same samples, in
the same order and batches, as the array loaders; seeded shuffling; whole files per worker
under tf.distribute's auto-sharding; and Keras `fit` on a stream equal to `fit` on arrays."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.experimental.ops import distribute as tf_data_distribute

from customkeras.datasets import (
    load_california_housing,
    load_fashion_mnist,
    stream_california_housing,
    stream_fashion_mnist,
    write_tfrecord_shards,
)

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="session")
def shard_cache(tmp_path_factory, data_dir):
    """One cache holding both data sets' shards, written once for the whole session."""
    cache = tmp_path_factory.mktemp("shard-cache")
    for name in ("fashion-mnist", "california-housing"):
        write_tfrecord_shards(name, data_dir=data_dir, cache_dir=cache)
    return cache


@pytest.fixture(scope="session")
def fashion_arrays(data_dir):
    return dict(zip(SPLITS, load_fashion_mnist(data_dir)))


@pytest.fixture(scope="session")
def california_arrays(data_dir):
    return dict(zip(SPLITS, load_california_housing(data_dir)))


def collect(dataset):
    """All batches of a dataset as lists of NumPy arrays, one list per component."""
    batches = [tuple(t.numpy() for t in batch) for batch in dataset]
    return [list(component) for component in zip(*batches)]


def expected_batches(array, batch_size):
    return [array[i:i + batch_size] for i in range(0, len(array), batch_size)]


@pytest.mark.parametrize("split", SPLITS)
def test_fashion_stream_equals_the_arrays(split, shard_cache, data_dir, fashion_arrays):
    dataset = stream_fashion_mnist(split, batch_size=1024, data_dir=data_dir,
                                   cache_dir=shard_cache)
    X, y = fashion_arrays[split]
    assert len(X) == {"train": 55000, "valid": 5000, "test": 10000}[split]
    seen = 0
    for index, (images, labels) in enumerate(dataset):
        want = slice(index * 1024, (index + 1) * 1024)
        # Bitwise (np.array_equal: assert_array_equal takes seconds on 55,000 images): the
        # pipeline's uint8 -> float32 / 255 is the loader's computation.
        assert np.array_equal(images.numpy(), X[want]), f"batch {index}: images differ"
        assert np.array_equal(labels.numpy(), y[want]), f"batch {index}: labels differ"
        seen += len(labels)
    assert seen == len(X)


def test_fashion_stream_specs_and_batches(shard_cache, data_dir, fashion_arrays):
    dataset = stream_fashion_mnist("valid", data_dir=data_dir, cache_dir=shard_cache)
    assert dataset.element_spec == (
        tf.TensorSpec((None, 28, 28), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    )
    assert int(dataset.cardinality()) == 157  # 156 batches of 32, then one of 8
    images, labels = collect(dataset)
    X, y = fashion_arrays["valid"]
    assert [len(b) for b in images] == [32] * 156 + [8]
    for got, want in zip(labels, expected_batches(y, 32)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(images[-1], X[-8:])


@pytest.mark.parametrize("split", SPLITS)
def test_california_stream_equals_the_scaled_arrays(split, shard_cache, data_dir,
                                                    california_arrays):
    dataset = stream_california_housing(split, data_dir=data_dir, cache_dir=shard_cache)
    assert dataset.element_spec == (
        tf.TensorSpec((None, 8), tf.float32),
        tf.TensorSpec((None, 1), tf.float32),
    )
    features, targets = collect(dataset)
    X, y = california_arrays[split]
    assert len(features) == int(dataset.cardinality()) == -(-len(X) // 32)
    for got, want in zip(features, expected_batches(X, 32)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.concatenate(targets), y)
    # Scaled with training statistics: the training split is standardized.
    if split == "train":
        np.testing.assert_allclose(np.concatenate(features).mean(axis=0), 0, atol=1e-5)


@pytest.mark.parametrize("batch_size", [3, 7, 100, 1024, 1500, 5000])
def test_batches_are_those_of_the_arrays_for_any_batch_size(batch_size, shard_cache, data_dir,
                                                            california_arrays):
    # Records are parsed ~1,024 at a time and re-cut into batches: the batches must be
    # exactly consecutive slices whatever the batch size (smaller, larger, not dividing).
    dataset = stream_california_housing("valid", batch_size=batch_size, data_dir=data_dir,
                                        cache_dir=shard_cache)
    features, _ = collect(dataset)
    X, _ = california_arrays["valid"]
    want = expected_batches(X, batch_size)
    assert [len(b) for b in features] == [len(b) for b in want]
    assert int(dataset.cardinality()) == len(want)
    for got, expected in zip(features, want):
        np.testing.assert_array_equal(got, expected)


def test_max_examples_reads_the_first_records_shuffled_among_themselves(
        shard_cache, data_dir, california_arrays):
    X, _ = california_arrays["train"]
    first = stream_california_housing("train", batch_size=4, data_dir=data_dir,
                                      cache_dir=shard_cache, max_examples=10)
    assert int(first.cardinality()) == 3
    np.testing.assert_array_equal(np.concatenate(collect(first)[0]), X[:10])
    shuffled = stream_california_housing("train", batch_size=4, shuffle=True, seed=1,
                                         data_dir=data_dir, cache_dir=shard_cache,
                                         max_examples=10)
    rows = np.concatenate(collect(shuffled)[0])
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(X[:10], axis=0))
    with pytest.raises(ValueError, match="max_examples"):
        stream_california_housing("train", data_dir=data_dir, cache_dir=shard_cache,
                                  max_examples=0)


def test_shuffle_is_a_seeded_permutation_reshuffled_each_pass(shard_cache, data_dir,
                                                              california_arrays):
    def stream(**options):
        return stream_california_housing("valid", batch_size=256, data_dir=data_dir,
                                         cache_dir=shard_cache, **options)

    X, y = california_arrays["valid"]
    shuffled = stream(shuffle=True, seed=7)
    first, second = (np.concatenate(collect(shuffled)[0]) for _ in range(2))
    again = np.concatenate(collect(stream(shuffle=True, seed=7))[0])
    other_seed = np.concatenate(collect(stream(shuffle=True, seed=8))[0])
    np.testing.assert_array_equal(first, again)  # same seed, same order
    assert not np.array_equal(first, X)  # shuffled
    assert not np.array_equal(first, second)  # a new order at each pass
    assert not np.array_equal(first, other_seed)
    for order in (first, second, other_seed):  # every row exactly once
        np.testing.assert_array_equal(np.sort(order, axis=0), np.sort(X, axis=0))
    # Features and targets stay paired.
    features, targets = (np.concatenate(c) for c in collect(stream(shuffle=True, seed=3)))
    rows = {tuple(row): t for row, t in zip(X.tolist(), y[:, 0].tolist())}
    assert all(rows[tuple(row)] == t for row, t in zip(features.tolist(), targets[:, 0]))


def test_auto_shard_gives_each_worker_whole_files(shard_cache, data_dir, california_arrays):
    # What MultiWorkerMirroredStrategy applies to a dataset (AutoShardPolicy.AUTO): it
    # finds the TFRecord reader and hands out files, so no worker reads all the data.
    dataset = stream_california_housing("train", batch_size=100, data_dir=data_dir,
                                        cache_dir=shard_cache)
    X, _ = california_arrays["train"]
    shards = np.array_split(X, 6)  # 6 shards of 1,935 rows, in order
    for worker in range(2):
        part = tf_data_distribute._AutoShardDataset(dataset, num_workers=2, index=worker)
        rows = np.concatenate(collect(part)[0])
        np.testing.assert_array_equal(rows, np.concatenate(shards[worker::2]))


def test_keras_fit_on_the_stream_equals_fit_on_the_arrays(shard_cache, data_dir,
                                                          california_arrays):
    def trained(x, y=None):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input([8]), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        history = model.fit(x, y, batch_size=None if y is None else 32, epochs=1,
                            shuffle=False, verbose=0)
        return history.history["loss"], model.get_weights()

    X, y = california_arrays["train"]
    stream_loss, stream_weights = trained(
        stream_california_housing("train", data_dir=data_dir, cache_dir=shard_cache))
    array_loss, array_weights = trained(X, y)
    np.testing.assert_allclose(stream_loss, array_loss, rtol=1e-6)
    for got, want in zip(stream_weights, array_weights):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
