"""Fashion-MNIST (Zalando Research, MIT licence), split as in the chapter's exercise 13."""

import numbers

import keras
import numpy as np

from customkeras.datasets.alignment import aligned_copy, aligned_empty
from customkeras.datasets.errors import DatasetError
from customkeras.datasets.idx import read_idx
from customkeras.datasets.locations import (
    explicit_data_dir,
    keras_home,
    layout_hint,
    missing_files_error,
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

FASHION_MNIST_SUBDIR = "fashion-mnist"
FASHION_MNIST_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
_TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
_TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# SHA-256 of each file's decompressed content (the published files). Compressed bytes
# legitimately differ between copies, so the archive itself is not checked.
FASHION_MNIST_SHA256 = {
    _TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    _TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    _TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    _TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

_IMAGE_SHAPE = (28, 28)


def _download(name):
    """Fetch one file into Keras's cache, as `keras.datasets.fashion_mnist` does."""
    url = FASHION_MNIST_ORIGIN + name
    try:
        # get_file only downloads a file the cache lacks; it never replaces one.
        path = keras.utils.get_file(
            name,
            origin=url,
            cache_dir=str(keras_home()),
            cache_subdir=f"datasets/{FASHION_MNIST_SUBDIR}",
        )
    except Exception as error:  # Keras wraps URL errors in a bare Exception.
        raise DatasetError(
            f"{name}: not found locally and the download from {url} failed ({error}). "
            f"{layout_hint(FASHION_MNIST_SUBDIR, list(FASHION_MNIST_SHA256))}"
        ) from error
    return path


def locate_fashion_mnist(data_dir=None):
    """Return `{file name: path}` for the four files, downloading only as a last resort.

    Args:
        data_dir: Str or path-like holding `fashion-mnist/`. Defaults to None: use
            `CUSTOMKERAS_DATA_DIR`, then `$KERAS_HOME/datasets/fashion-mnist`
            (`~/.keras/...`), then download the missing files into that cache.

    Raises:
        DatasetError: if an explicit directory lacks a file, or a download fails.
    """
    names = list(FASHION_MNIST_SHA256)
    directory = explicit_data_dir(data_dir)
    if directory is not None:
        folder = directory.path / FASHION_MNIST_SUBDIR
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise missing_files_error(directory, FASHION_MNIST_SUBDIR, missing, names)
        return {name: folder / name for name in names}
    folder = keras_home() / "datasets" / FASHION_MNIST_SUBDIR
    return {
        name: folder / name if (folder / name).is_file() else _download(name) for name in names
    }


def _read_pair(paths, images_name, labels_name):
    labels = read_idx(paths[labels_name], FASHION_MNIST_SHA256[labels_name])
    images = read_idx(paths[images_name], FASHION_MNIST_SHA256[images_name])
    expected = f"(n, {_IMAGE_SHAPE[0]}, {_IMAGE_SHAPE[1]}) uint8 images and n uint8 labels"
    if (
        images.dtype != np.uint8
        or labels.dtype != np.uint8
        or images.shape[1:] != _IMAGE_SHAPE
        or labels.shape != images.shape[:1]
    ):
        raise DatasetError(
            f"{paths[images_name]} and {paths[labels_name]}: expected {expected}, found "
            f"images {images.shape} {images.dtype} and labels {labels.shape} {labels.dtype}. "
            f"{layout_hint(FASHION_MNIST_SUBDIR, list(FASHION_MNIST_SHA256))}"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DatasetError(
            f"{paths[labels_name]}: expected labels 0-{len(FASHION_MNIST_CLASSES) - 1}, "
            f"found {int(labels.max())}. Replace the file with an intact copy."
        )
    return images, labels


def _as_unit_float(pixels):
    """Scale uint8 pixels to float32 in [0, 1] in one pass, into an aligned array."""
    out = aligned_empty(pixels.shape, np.float32)
    np.divide(pixels, np.float32(255), out=out)
    return out


def load_fashion_mnist(data_dir=None, validation_size=5000):
    """Load Fashion-MNIST split into train, validation and test sets, as in the chapter.

    Images are `pixels / 255` as float32 in [0, 1], shape (n, 28, 28); labels are int64
    class indices 0-9 into `FASHION_MNIST_CLASSES` (NumPy's default integer, so they
    compare with `np.argmax` output without a cast). The validation set is the first
    `validation_size` training images. Every file is verified (magic number, sizes,
    SHA-256 of the decompressed content) before anything is returned. Each returned
    array is its own 64-byte aligned, C-contiguous, writeable allocation, so TensorFlow
    can import it without copying.

    Where the files come from, in order: `data_dir`; `$CUSTOMKERAS_DATA_DIR`; Keras's
    cache `~/.keras/datasets/fashion-mnist`; a download into that cache.

    Args:
        data_dir: Str or path-like, a directory holding `fashion-mnist/` with
            train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
            t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz. Defaults to None.
        validation_size: Int, how many of the 60,000 training images to hold out for
            validation, 0 <= validation_size < 60,000. Defaults to 5000.

    Returns:
        `((X_train, y_train), (X_valid, y_valid), (X_test, y_test))`, by default with
        55,000 / 5,000 / 10,000 images.

    Raises:
        DatasetError: if a file is missing (from an explicit directory), damaged, or
            cannot be downloaded.
        ValueError: if `validation_size` is not a valid count.

    Example:

    >>> (X_train, y_train), (X_valid, y_valid), (X_test, y_test) = load_fashion_mnist()
    >>> X_train.shape, X_valid.shape, X_test.shape  # doctest: +SKIP
    ((55000, 28, 28), (5000, 28, 28), (10000, 28, 28))
    """
    if isinstance(validation_size, bool) or not isinstance(validation_size, numbers.Integral):
        raise ValueError(
            f"validation_size must be an int; received validation_size={validation_size!r}"
        )
    if validation_size < 0:
        raise ValueError(
            f"validation_size must be >= 0; received validation_size={validation_size}"
        )
    paths = locate_fashion_mnist(data_dir)
    train_images, train_labels = _read_pair(paths, _TRAIN_IMAGES, _TRAIN_LABELS)
    if validation_size >= len(train_labels):
        raise ValueError(
            f"validation_size must be smaller than the {len(train_labels)} training images "
            f"so that some remain for training; received validation_size={validation_size}"
        )
    X_valid = _as_unit_float(train_images[:validation_size])
    X_train = _as_unit_float(train_images[validation_size:])
    del train_images  # free the raw pixels before decoding the test set
    test_images, test_labels = _read_pair(paths, _TEST_IMAGES, _TEST_LABELS)
    X_test = _as_unit_float(test_images)
    return (
        (X_train, aligned_copy(train_labels[validation_size:], np.int64)),
        (X_valid, aligned_copy(train_labels[:validation_size], np.int64)),
        (X_test, aligned_copy(test_labels, np.int64)),
    )
