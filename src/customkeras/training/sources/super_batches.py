"""Super-batches: a tf.data pipeline's batches read `k` at a time.

A super-batch is `(batches, lengths)`: `k'` ≤ `k` of the user's batches stacked, padded
to the longest, and each one's length; the training loop runs the `k` steps of a full
one of equal batches in one XLA call (`feeds.SuperBatchFeed`).

Two ways to build them, the batches and their order being the user's either way:

* where every batch but the last holds the same `b` samples (a static batch dimension,
  or a pipeline that ends in `batch(b)` followed only by ops that keep its batches),
  `rebatch(k * b)` concatenates `k` batches per element with one copy, and one split
  per super-batch restores them; no function runs per batch;
* otherwise each batch's length is taken by a `map` and the batches are
  `padded_batch`-ed; a tf.data function call per batch costs about as much as the
  batch's copy, which is why the first way is worth its pattern-matching.
"""

import tensorflow as tf

from customkeras.training import compat

# Datasets that pass their input's batches on unchanged, so that every batch but the
# last keeps the size of a `batch(b)` under them (a `take` may end earlier, at a full
# batch). tf.data's Python classes, by name: anything else (a `map` or a `filter` of
# batches, a `repeat` that puts a short batch mid-stream) takes the general way.
_KEEPS_BATCHES = {"_PrefetchDataset", "_OptionsDataset", "_TakeDataset", "CacheDataset",
                  "_AssertCardinalityDataset"}
_BATCHES = {"_BatchDataset", "_ParallelBatchDataset"}


def fixed_batch_size(dataset):
    """`b` if every batch of `dataset` but its last holds `b` samples, else None."""
    sizes = {spec.shape[0] for spec in tf.nest.flatten(dataset.element_spec)}
    if len(sizes) == 1 and None not in sizes:
        return sizes.pop()
    while type(dataset).__name__ in _KEEPS_BATCHES:
        inputs = compat.dataset_inputs(dataset)
        if len(inputs) != 1:
            return None
        dataset = inputs[0]
    size = compat.dataset_batch_size(dataset)
    if type(dataset).__name__ not in _BATCHES or not hasattr(size, "numpy"):
        return None  # not a batch of a constant size (one built in a graph, say)
    return int(size.numpy())


def super_batched(dataset, size, element_spec):
    """`dataset`'s batches `size` at a time, as `(batches, lengths)`, prefetched one
    super-batch ahead."""
    tuple_element = isinstance(element_spec, tuple)

    def structure(arguments):  # a tuple element arrives as several arguments
        return arguments if tuple_element else arguments[0]

    batch = fixed_batch_size(dataset)
    if batch is None:
        def with_length(*arguments):
            batches = structure(arguments)
            return batches, tf.shape(tf.nest.flatten(batches)[0])[0]

        return dataset.map(with_length).padded_batch(size).prefetch(1)

    def split(*arguments):
        samples = structure(arguments)
        total = tf.shape(tf.nest.flatten(samples)[0])[0]
        count = (total + batch - 1) // batch
        lengths = tf.minimum(batch, total - tf.range(count) * batch)

        def stacked(tensor):  # rows padded to `count * batch` (a no-op when full)
            padding = [[0, count * batch - total]] + [[0, 0]] * (tensor.shape.rank - 1)
            tensor = tf.pad(tensor, padding)
            return tf.reshape(tensor, [count, batch] + tensor.shape[1:].as_list())

        return tf.nest.map_structure(stacked, samples), lengths

    return dataset.rebatch(size * batch).map(split).prefetch(1)
