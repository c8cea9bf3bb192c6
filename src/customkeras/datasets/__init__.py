"""The chapter's data sets, offline-capable and verified.

`load_fashion_mnist` and `load_california_housing` return the chapter's train /
validation / test splits. They look for the files in the `data_dir` argument, then in the
directory named by `CUSTOMKERAS_DATA_DIR`, then in the usual Keras and scikit-learn
caches, and only then download. A data directory is laid out as::

    <dir>/fashion-mnist/train-images-idx3-ubyte.gz     (and the 3 other IDX .gz files)
    <dir>/california-housing/cal_housing.tgz           (or cal_housing.data)

Damaged, truncated or missing files raise `DatasetError` (a `ValueError`) naming the file,
what was expected and found, and how to fix it; nothing is ever half-loaded.

`stream_fashion_mnist` and `stream_california_housing` give the same splits as `tf.data`
pipelines, read from TFRecord shards that `write_tfrecord_shards` writes once into a cache
(`cache_dir`, else `CUSTOMKERAS_CACHE_DIR`, else `~/.keras/datasets/customkeras-tfrecords`)
and that are verified against their manifest's SHA-256 at every use.
"""

from customkeras.datasets.california_housing import (
    CALIFORNIA_HOUSING_FEATURES,
    load_california_housing,
)
from customkeras.datasets.errors import DatasetError
from customkeras.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from customkeras.datasets.idx import read_idx, write_idx
from customkeras.datasets.locations import DATA_DIR_ENV
from customkeras.datasets.streams import (
    stream_california_housing,
    stream_fashion_mnist,
    write_tfrecord_shards,
)
from customkeras.datasets.tfrecords import CACHE_DIR_ENV

__all__ = [
    "CACHE_DIR_ENV",
    "CALIFORNIA_HOUSING_FEATURES",
    "DATA_DIR_ENV",
    "DatasetError",
    "FASHION_MNIST_CLASSES",
    "load_california_housing",
    "load_fashion_mnist",
    "read_idx",
    "stream_california_housing",
    "stream_fashion_mnist",
    "write_idx",
    "write_tfrecord_shards",
]
