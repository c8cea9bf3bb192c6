"""Pipelines, models and comparisons shared by the tests/test_training_data_*.py files.

Every test there runs the same pipeline through Keras (`model.fit` / `evaluate` /
`predict`) and through `Trainer`, on two models with the same initial weights, and
compares the results. A pipeline is built twice (`make()` functions), because a
generator or an iterator can be consumed only once.
"""

import keras
import numpy as np
import tensorflow as tf
from training_helpers import classification_data, max_abs_difference, mlp

from customkeras.training import Trainer

LOSS = "sparse_categorical_crossentropy"
TOLERANCE = 1e-5


def data(n=100, seed=0):
    """`(x, y, sample_weight)`: 8 float32 features, 3 classes, weights in [0, 2)."""
    x, y = classification_data(n, seed=seed)
    weights = np.random.default_rng(seed + 1).uniform(0, 2, n).astype("float32")
    return x, y, weights


def batches(*arrays, batch_size=32):
    """A `tf.data.Dataset` of batches of `arrays` (one array: `x` alone), in order."""
    elements = arrays[0] if len(arrays) == 1 else tuple(arrays)
    return tf.data.Dataset.from_tensor_slices(elements).batch(batch_size)


def batch_generator(*arrays, batch_size=32, cycles=None):
    """A Python generator of `arrays`' batches in order, repeated `cycles` times (None: forever)."""
    n = len(arrays[0])
    cycle = 0
    while cycles is None or cycle < cycles:
        for start in range(0, n, batch_size):
            yield tuple(a[start:start + batch_size] for a in arrays)
        cycle += 1


class ArrayPyDataset(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` of the batches of `arrays`, in order.

    Args:
        *arrays: `x`, `y` and optionally the sample weights.
        batch_size: samples per batch. Defaults to 32.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size`.
    """

    def __init__(self, *arrays, batch_size=32, **kwargs):
        super().__init__(**kwargs)
        self.arrays, self.batch_size = arrays, batch_size

    def __len__(self):
        return -(-len(self.arrays[0]) // self.batch_size)

    def __getitem__(self, index):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return tuple(a[window] for a in self.arrays)


def compiled_mlp(seed=1):
    """`mlp(seed)` compiled for Keras `fit` with the loss and optimizer `trainer_for` uses."""
    model = mlp(seed=seed)
    model.compile(keras.optimizers.Nadam(0.01), LOSS, metrics=["accuracy"])
    return model


def trainer_for(model, **kwargs):
    """A `Trainer` for `model` with the loss, optimizer and metric of `compiled_mlp`."""
    return Trainer(model, LOSS, keras.optimizers.Nadam(0.01), metrics=["accuracy"], **kwargs)


def twins(seed=1):
    """`(keras_model, trainer_model)`: the same MLP twice, with equal initial weights."""
    reference = compiled_mlp(seed)
    model = mlp(seed=seed)
    model.set_weights(reference.get_weights())
    return reference, model


def assert_same_history(actual, expected, name=""):
    """Same keys, and every per-epoch value within `TOLERANCE`."""
    actual = getattr(actual, "history", actual)
    expected = getattr(expected, "history", expected)
    assert sorted(actual) == sorted(expected), name
    for key, values in expected.items():
        assert len(actual[key]) == len(values), f"{name}: {key}"
        np.testing.assert_allclose(actual[key], values, rtol=0, atol=TOLERANCE,
                                   err_msg=f"{name}: {key}")


def assert_same_weights(actual, expected, name=""):
    """Both lists of weights within `TOLERANCE` of each other."""
    actual = actual.get_weights() if isinstance(actual, keras.Model) else actual
    expected = expected.get_weights() if isinstance(expected, keras.Model) else expected
    difference = max_abs_difference(actual, expected)
    assert difference < TOLERANCE, f"{name}: weights differ by {difference}"


def assert_trained(model, seed=1):
    """The weights moved away from `mlp(seed)`'s: a comparison is not vacuous."""
    assert max_abs_difference(model.get_weights(), mlp(seed=seed).get_weights()) > 1e-3


def assert_same_logs(actual, expected, name=""):
    """Same keys, and every value within `TOLERANCE` (evaluate's dicts)."""
    assert sorted(actual) == sorted(expected), name
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=TOLERANCE,
                                   err_msg=f"{name}: {key}")


def write_shards(directory, x, y, count):
    """Writes `(x, y)` as `count` TFRecord files of consecutive records; returns their paths."""
    paths = []
    for index, (xs, ys) in enumerate(zip(np.array_split(x, count), np.array_split(y, count))):
        path = str(directory / f"shard-{index}-of-{count}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for features, label in zip(xs, ys):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=features)),
                    "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                })).SerializeToString())
        paths.append(path)
    return paths


def read_records(paths):
    """The `(x, y)` records of TFRecord files written by `write_shards`, unbatched."""
    spec = {"x": tf.io.FixedLenFeature([8], tf.float32), "y": tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        return example["x"], example["y"]

    return tf.data.TFRecordDataset(list(paths)).map(parse)
