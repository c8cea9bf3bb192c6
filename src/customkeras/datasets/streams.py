"""The chapter's data sets as `tf.data` pipelines read from verified TFRecord shards.

The first call writes every split of a data set as TFRecord shards into the cache (see
`customkeras.datasets.tfrecords`); later calls, in any process, only verify and read them.
"""

import os
import random

import numpy as np
import sklearn
import tensorflow as tf

from customkeras import _checks
from customkeras.datasets import california_housing as california_module
from customkeras.datasets import fashion_mnist as fashion_module
from customkeras.datasets import tfrecords
from customkeras.datasets.errors import DatasetError

SPLITS = ("train", "valid", "test")
STREAMED_DATASETS = ("fashion-mnist", "california-housing")

# Shards per split: 8 divides Fashion-MNIST's 55,000 / 5,000 / 10,000 and 6 California's
# 11,610 / 3,870 / 5,160 evenly, so 2 workers sharding by file read equal shares.
_SHARDS = {"fashion-mnist": 8, "california-housing": 6}
_FASHION_VALIDATION = 5000

_FASHION_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}
_CALIFORNIA_FEATURES = {
    "features": tf.io.FixedLenFeature([8], tf.float32),
    "target": tf.io.FixedLenFeature([1], tf.float32),
}


def _parse_fashion(records):
    parsed = tf.io.parse_example(records, _FASHION_FEATURES)
    pixels = tf.reshape(tf.io.decode_raw(parsed["image"], tf.uint8), [-1, 28, 28])
    return tf.cast(pixels, tf.float32) / 255.0, parsed["label"]


def _parse_california(records):
    parsed = tf.io.parse_example(records, _CALIFORNIA_FEATURES)
    return parsed["features"], parsed["target"]


def _description(name):
    """What an entry's content depends on; read at call time, hashed into its directory."""
    if name == "fashion-mnist":
        return {
            "dataset": name,
            "source_sha256": dict(fashion_module.FASHION_MNIST_SHA256),
            "split": f"valid = first {_FASHION_VALIDATION} training images",
            "shards_per_split": _SHARDS[name],
            "features": "image: 784 raw uint8 bytes (28x28, row-major); label: int64",
        }
    return {
        "dataset": name,
        "source_sha256": california_module.CALIFORNIA_HOUSING_VALUES_SHA256,
        "split": "train_test_split(random_state=42) twice; StandardScaler fit on train",
        # The scaled values are computed by scikit-learn: a new version gets a new entry.
        "scikit_learn": sklearn.__version__,
        "shards_per_split": _SHARDS[name],
        "features": "features: 8 float32 (scaled); target: 1 float32",
    }


def _feature(values, kind):
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _example(**features):
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _fashion_records(images, labels):
    # Pixels are stored as the original uint8 bytes; the loader's `pixels / 255` must
    # map back to them exactly, which is checked rather than assumed.
    pixels = np.rint(images * np.float32(255)).astype(np.uint8)
    if not np.array_equal(np.divide(pixels, np.float32(255), dtype=np.float32), images):
        raise DatasetError("fashion-mnist: the loaded images are not uint8 pixels / 255")
    for image, label in zip(pixels, labels.tolist()):
        yield _example(image=_feature([image.tobytes()], "bytes"),
                       label=_feature([label], "int64"))


def _california_records(features, targets):
    for row, target in zip(features.tolist(), targets.tolist()):
        yield _example(features=_feature(row, "float"), target=_feature(target, "float"))


def _make_splits(name, data_dir):
    """Load the data set with its array loader and cut each split into record shards."""
    if name == "fashion-mnist":
        arrays = fashion_module.load_fashion_mnist(data_dir, _FASHION_VALIDATION)
        to_records = _fashion_records
    else:
        arrays = california_module.load_california_housing(data_dir)
        to_records = _california_records
    splits = {}
    for split, (x, y) in zip(SPLITS, arrays):
        bounds = np.linspace(0, len(x), _SHARDS[name] + 1).round().astype(int)
        splits[split] = [to_records(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return splits


def _optional_path(name, value):
    if value is None:
        return None
    _checks.instance(name, value, (str, os.PathLike), "a path (str or os.PathLike) or None")
    if not os.fspath(value):
        raise ValueError(f"`{name}` must be a non-empty path or None; received {name}={value!r}")
    return value


def _entry(name, data_dir, cache_dir, overwrite):
    description = _description(name)
    root = tfrecords.cache_root(cache_dir)
    return tfrecords.build_entry(
        root, name, description, lambda: _make_splits(name, data_dir), overwrite=overwrite
    ) + (description,)


def write_tfrecord_shards(dataset, *, data_dir=None, cache_dir=None, overwrite=False):
    """Write a data set's TFRecord shards into the cache, unless they are already there.

    The `stream_*` functions call this on first use; call it yourself to prepare the cache
    before starting several workers, or with `overwrite=True` to replace damaged shards.
    Every split is written, as several shards each (8 for Fashion-MNIST, 6 for California
    housing), with a manifest of their SHA-256. The entry is written under a temporary
    name and renamed into place, so concurrent processes never see half of it.

    Args:
        dataset: Str, "fashion-mnist" or "california-housing".
        data_dir: Str or path-like, where the source files are read from (as for
            `load_fashion_mnist` / `load_california_housing`). Defaults to None.
        cache_dir: Str or path-like, the cache directory. Defaults to None:
            `$CUSTOMKERAS_CACHE_DIR` if set, else `~/.keras/datasets/customkeras-tfrecords`
            (under `$KERAS_HOME` if set).
        overwrite: Bool, whether to rewrite an existing entry. Defaults to False.

    Returns:
        The `pathlib.Path` of the entry's directory (it holds `manifest.json`).

    Example:

    >>> write_tfrecord_shards("california-housing", cache_dir="/tmp/shards")  # doctest: +SKIP
    PosixPath('/tmp/shards/california-housing-...')
    """
    _checks.instance("dataset", dataset, str, "a str")
    _checks.one_of("dataset", dataset, STREAMED_DATASETS)
    _optional_path("data_dir", data_dir)
    _optional_path("cache_dir", cache_dir)
    _checks.instance("overwrite", overwrite, bool, "True or False")
    directory, _, description = _entry(dataset, data_dir, cache_dir, overwrite)
    tfrecords.read_manifest(directory, description, _fix(dataset, directory, cache_dir))
    return directory


def _fix(name, directory, cache_dir):
    where = "" if cache_dir is None else f", cache_dir={os.fspath(cache_dir)!r}"
    return (
        f"To fix: delete {directory} or call customkeras.datasets.write_tfrecord_shards("
        f"{name!r}, overwrite=True{where}); either rewrites it from the source data."
    )


def _epoch(epoch, shuffle):
    """Checks `epoch`: None, an int >= 0, or an integer scalar `tf.Variable`."""
    if epoch is None:
        return None
    if isinstance(epoch, tf.Variable):
        if not epoch.dtype.is_integer or epoch.shape.rank != 0:
            raise ValueError("`epoch` must be None, an int >= 0 or a scalar integer "
                             f"tf.Variable; received a tf.Variable of dtype "
                             f"{epoch.dtype.name} and shape {epoch.shape}")
    else:
        epoch = _checks.integer("epoch", epoch, 0,
                                alternative="a scalar integer tf.Variable, or None")
    if not shuffle:
        shown = "a tf.Variable" if isinstance(epoch, tf.Variable) else epoch
        raise ValueError(f"`epoch` orders a shuffled stream: pass shuffle=True with it, or "
                         f"leave epoch=None; received shuffle=False, epoch={shown}")
    return epoch


def _stream(name, parse, split, batch_size, shuffle, seed, data_dir, cache_dir,
            max_examples=None, epoch=None):
    _checks.instance("split", split, str, "a str")
    _checks.one_of("split", split, SPLITS)
    batch_size = _checks.positive_int("batch_size", batch_size)
    _checks.instance("shuffle", shuffle, bool, "True or False")
    seed = _checks.optional_seed("seed", seed)
    epoch = _epoch(epoch, shuffle)
    if epoch is not None and seed is None:
        # A stateless order needs a seed: one drawn now (a random order sequence each run).
        seed = random.SystemRandom().randrange(_checks.SEED_MAX + 1)
    if max_examples is not None:
        max_examples = _checks.positive_int("max_examples", max_examples)
    _optional_path("data_dir", data_dir)
    _optional_path("cache_dir", cache_dir)
    directory, _, description = _entry(name, data_dir, cache_dir, overwrite=False)
    fix = _fix(name, directory, cache_dir)
    manifest = tfrecords.read_manifest(directory, description, fix)
    paths = tfrecords.verified_shards(directory, manifest, split, fix)
    examples = manifest["splits"][split]["examples"]
    return tfrecords.record_dataset(paths, examples, batch_size, shuffle, seed, parse,
                                    max_examples, epoch)


def stream_fashion_mnist(split, *, batch_size=32, shuffle=False, seed=None, data_dir=None,
                         cache_dir=None, max_examples=None, epoch=None):
    """Return one Fashion-MNIST split as a `tf.data.Dataset` of `(images, labels)` batches.

    The samples are those of `load_fashion_mnist()`'s split (55,000 / 5,000 / 10,000
    images), and without shuffling in the same order: images float32 `pixels / 255` of
    shape (batch, 28, 28), labels int64 of shape (batch,); the last batch may be smaller.
    They are read from TFRecord shards in the cache (written on first use by
    `write_tfrecord_shards`, whose SHA-256 are checked at every call), several per split,
    so that `tf.distribute`'s auto-sharding gives each worker whole files.

    Args:
        split: Str, "train", "valid" or "test".
        batch_size: Int, examples per batch. Defaults to 32.
        shuffle: Bool, whether to shuffle the examples over the whole split, anew at each
            pass. Defaults to False.
        seed: Int or None, the shuffle's seed, for the same order sequence every run.
            Defaults to None (a random order each run).
        data_dir: Str or path-like, where the source files are read from when the shards
            must be written (see `load_fashion_mnist`). Defaults to None.
        cache_dir: Str or path-like, the shard cache. Defaults to None:
            `$CUSTOMKERAS_CACHE_DIR`, else `~/.keras/datasets/customkeras-tfrecords`.
        max_examples: Int or None, read only the split's first that many examples (a
            quick run; shuffled among themselves). Defaults to None (all).
        epoch: None, an int >= 0, or an integer scalar `tf.Variable` (with
            `shuffle=True`): make each pass's order a function of `(seed, epoch)` only,
            a stateless permutation of the split, so that a resumed run sees the orders
            of an uninterrupted one. A `tf.Variable` is read when a pass starts: set it
            to the epoch in a callback's `on_epoch_begin`. Defaults to None (a new order
            at each pass, from the pipeline's reshuffle state, which TensorFlow does not
            checkpoint).

    Returns:
        A `tf.data.Dataset` with a known number of batches, prefetched.

    Raises:
        DatasetError: if a shard or the manifest is missing, truncated or changed (the
            message names the file and how to rewrite it), or the source data is.

    Example:

    >>> train = stream_fashion_mnist("train", batch_size=32, shuffle=True, seed=42)
    >>> model.fit(train, epochs=2, validation_data=stream_fashion_mnist("valid"))  # doctest: +SKIP
    """
    return _stream("fashion-mnist", _parse_fashion, split, batch_size, shuffle, seed,
                   data_dir, cache_dir, max_examples, epoch)


def stream_california_housing(split, *, batch_size=32, shuffle=False, seed=None,
                              data_dir=None, cache_dir=None, max_examples=None, epoch=None):
    """Return one California housing split as a `tf.data.Dataset` of `(features, targets)`.

    The samples are those of `load_california_housing()`'s split (11,610 / 3,870 / 5,160
    rows), scaled the same way (a `StandardScaler` fitted on the training split), and
    without shuffling in the same order: features float32 of shape (batch, 8), targets
    float32 of shape (batch, 1); the last batch may be smaller. They are read from
    verified TFRecord shards in the cache, as `stream_fashion_mnist` does.

    Args:
        split: Str, "train", "valid" or "test".
        batch_size: Int, examples per batch. Defaults to 32.
        shuffle: Bool, whether to shuffle the examples over the whole split, anew at each
            pass. Defaults to False.
        seed: Int or None, the shuffle's seed. Defaults to None (a random order each run).
        data_dir: Str or path-like, where the source data is read from when the shards
            must be written (see `load_california_housing`). Defaults to None.
        cache_dir: Str or path-like, the shard cache. Defaults to None:
            `$CUSTOMKERAS_CACHE_DIR`, else `~/.keras/datasets/customkeras-tfrecords`.
        max_examples: Int or None, read only the split's first that many examples (a
            quick run; shuffled among themselves). Defaults to None (all).
        epoch: None, an int >= 0, or an integer scalar `tf.Variable` (with
            `shuffle=True`): make each pass's order a function of `(seed, epoch)` only,
            a stateless permutation of the split, so that a resumed run sees the orders
            of an uninterrupted one. A `tf.Variable` is read when a pass starts: set it
            to the epoch in a callback's `on_epoch_begin`. Defaults to None (a new order
            at each pass, from the pipeline's reshuffle state, which TensorFlow does not
            checkpoint).

    Returns:
        A `tf.data.Dataset` with a known number of batches, prefetched.

    Raises:
        DatasetError: if a shard or the manifest is missing, truncated or changed, or the
            source data is.

    Example:

    >>> train = stream_california_housing("train", shuffle=True, seed=42)
    >>> model.fit(train, epochs=10)  # doctest: +SKIP
    """
    return _stream("california-housing", _parse_california, split, batch_size, shuffle, seed,
                   data_dir, cache_dir, max_examples, epoch)
