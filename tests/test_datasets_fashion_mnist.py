"""load_fashion_mnist: the real data (shapes, balance, pixel mean, equality with Keras's own
loader), where the files are looked for, and the errors for missing or damaged files."""

import gzip
import hashlib
import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from customkeras.datasets import (
    FASHION_MNIST_CLASSES,
    DatasetError,
    load_fashion_mnist,
    write_idx,
)
from customkeras.datasets import fashion_mnist as fashion_module

NAMES = list(fashion_module.FASHION_MNIST_SHA256)
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
N_TRAIN, N_TEST = 12, 4


def make_fake_fashion(root, tag, n_train=N_TRAIN, n_train_labels=None, image_shape=(28, 28)):
    """Write a tiny Fashion-MNIST, all labels equal to `tag`, under root/fashion-mnist/.

    Returns the SHA-256 table of its decompressed contents.
    """
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(tag)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
        TRAIN_LABELS: np.full(n_train_labels or n_train, tag, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (N_TEST, *image_shape), dtype=np.uint8),
        TEST_LABELS: np.full(N_TEST, tag, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, overwrite=True)
    return {
        name: hashlib.sha256(gzip.decompress((folder / name).read_bytes())).hexdigest()
        for name in NAMES
    }


class FakeGetFile:
    """Stands in for keras.utils.get_file: offline (raising what Keras raises for a
    URLError), or serving the files of a local "server" directory into the cache."""

    def __init__(self, server=None):
        self.server = server
        self.calls = []

    def __call__(self, fname, origin, cache_dir, cache_subdir):
        self.calls.append(fname)
        if self.server is None:
            raise Exception(
                f"URL fetch failure on {origin}: None -- [Errno -3] "
                "Temporary failure in name resolution"
            )
        folder = pathlib.Path(cache_dir) / cache_subdir
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.server / fname, folder / fname)
        return str(folder / fname)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No CUSTOMKERAS_DATA_DIR, no KERAS_HOME, an empty HOME, and no network."""
    monkeypatch.delenv("CUSTOMKERAS_DATA_DIR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    get_file = FakeGetFile()
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    return get_file


def use_checksums(monkeypatch, table):
    """Make the loader accept the small files a test wrote (and only those)."""
    monkeypatch.setattr(fashion_module, "FASHION_MNIST_SHA256", table)


def keras_cache(tmp_path):
    return tmp_path / "home" / ".keras" / "datasets"


def loaded_tag(splits):
    labels = np.concatenate([y for _, y in splits])
    assert labels.size and np.all(labels == labels[0])
    return int(labels[0])


# ------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def fashion(data_dir):
    return load_fashion_mnist(data_dir)


@pytest.fixture(scope="module")
def keras_reference(data_dir):
    """Keras's own loader (np.frombuffer over gzip) reading the same files."""
    folder = data_dir / "fashion-mnist"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            keras.src.datasets.fashion_mnist,
            "get_file",
            lambda fname, origin, cache_subdir: str(folder / fname),
        )
        return keras.datasets.fashion_mnist.load_data()


def test_real_shapes_and_types(fashion):
    (X_train, y_train), (X_valid, y_valid), (X_test, y_test) = fashion
    assert X_train.shape == (55_000, 28, 28) and y_train.shape == (55_000,)
    assert X_valid.shape == (5_000, 28, 28) and y_valid.shape == (5_000,)
    assert X_test.shape == (10_000, 28, 28) and y_test.shape == (10_000,)
    for X, y in fashion:
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert X.min() == 0.0 and X.max() == 1.0
        assert set(np.unique(y)) == set(range(10))


def test_real_data_equals_keras_loader_scaled_as_in_the_chapter(fashion, keras_reference):
    (X_train, y_train), (X_valid, y_valid), (X_test, y_test) = fashion
    (X_full_ref, y_full_ref), (X_test_ref, y_test_ref) = keras_reference
    X_full_ref = X_full_ref.astype(np.float32) / 255.0
    np.testing.assert_array_equal(X_valid, X_full_ref[:5000])
    np.testing.assert_array_equal(X_train, X_full_ref[5000:])
    np.testing.assert_array_equal(y_valid, y_full_ref[:5000])
    np.testing.assert_array_equal(y_train, y_full_ref[5000:])
    np.testing.assert_array_equal(X_test, X_test_ref.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(y_test, y_test_ref)


def test_real_class_balance(fashion):
    (_, y_train), (_, y_valid), (_, y_test) = fashion
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    train_full = np.concatenate([y_valid, y_train])
    np.testing.assert_array_equal(np.bincount(train_full, minlength=10), [6000] * 10)


def test_real_train_pixel_mean(fashion):
    # Fashion-MNIST's published statistics (mean 0.2860, std 0.3530) are over all
    # 60,000 training images; the 55,000 left after the validation split round the same.
    (X_train, _), (X_valid, _), _ = fashion
    full = np.concatenate([X_valid, X_train])
    assert round(float(full.mean(dtype=np.float64)), 4) == 0.2860
    assert round(float(full.std(dtype=np.float64)), 4) == 0.3530
    assert round(float(X_train.mean(dtype=np.float64)), 4) == 0.2860


def test_real_arrays_are_aligned_separate_and_importable_by_tensorflow(fashion):
    arrays = [array for split in fashion for array in split]
    for array in arrays:
        assert array.ctypes.data % 64 == 0
        assert array.flags.c_contiguous and array.flags.writeable
    for i, first in enumerate(arrays):
        for second in arrays[i + 1 :]:
            assert not np.shares_memory(first, second)
    # Zero-copy import aborts the process on a misaligned array (see PITFALLS).
    X_valid = fashion[1][0]
    tensor = tf.experimental.dlpack.from_dlpack(X_valid.__dlpack__())
    expected = float(X_valid.sum(dtype=np.float64))
    assert float(tf.reduce_sum(tensor)) == pytest.approx(expected, rel=1e-5)


def test_real_data_from_the_environment_variable(fashion, data_dir, offline, monkeypatch):
    monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(data_dir))
    from_variable = load_fashion_mnist()
    for (X, y), (X_ref, y_ref) in zip(from_variable, fashion):
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)
    assert offline.calls == []


def test_class_names():
    assert len(FASHION_MNIST_CLASSES) == 10 == len(set(FASHION_MNIST_CLASSES))
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"


# -------------------------------------------------------------------- lookup order


def test_argument_wins_over_variable_and_cache(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path / "argument", 1))
    make_fake_fashion(tmp_path / "variable", 2)
    make_fake_fashion(keras_cache(tmp_path).parent / "datasets", 3)
    monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(tmp_path / "variable"))
    assert loaded_tag(load_fashion_mnist(tmp_path / "argument", validation_size=2)) == 1
    assert loaded_tag(load_fashion_mnist(str(tmp_path / "argument"), validation_size=2)) == 1
    assert offline.calls == []


def test_variable_wins_over_cache(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path / "variable", 2))
    make_fake_fashion(keras_cache(tmp_path), 3)
    monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(tmp_path / "variable"))
    assert loaded_tag(load_fashion_mnist(validation_size=2)) == 2
    assert offline.calls == []


def test_keras_cache_is_used_before_any_download(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(keras_cache(tmp_path), 3))
    assert loaded_tag(load_fashion_mnist(validation_size=2)) == 3
    assert offline.calls == []


def test_keras_home_variable_moves_the_cache(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path / "keras_home" / "datasets", 4))
    make_fake_fashion(keras_cache(tmp_path), 3)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    assert loaded_tag(load_fashion_mnist(validation_size=2)) == 4


def test_download_fills_only_the_missing_files_of_the_cache(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path / "server", 5))
    offline.server = tmp_path / "server" / "fashion-mnist"
    cache = keras_cache(tmp_path) / "fashion-mnist"
    cache.mkdir(parents=True)
    shutil.copyfile(offline.server / TEST_LABELS, cache / TEST_LABELS)
    assert loaded_tag(load_fashion_mnist(validation_size=2)) == 5
    assert sorted(offline.calls) == sorted(set(NAMES) - {TEST_LABELS})
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)
    offline.calls.clear()
    assert loaded_tag(load_fashion_mnist(validation_size=2)) == 5
    assert offline.calls == []


def test_offline_without_data_is_a_clear_error(tmp_path, offline):
    with pytest.raises(DatasetError) as caught:
        load_fashion_mnist()
    message = str(caught.value)
    assert "download from https://storage.googleapis.com" in message
    assert "Temporary failure in name resolution" in message
    assert "CUSTOMKERAS_DATA_DIR" in message and "fashion-mnist/" in message
    assert len(offline.calls) == 1


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_explicit_directory_without_files_never_falls_through(tmp_path, offline, monkeypatch, how):
    use_checksums(monkeypatch, make_fake_fashion(keras_cache(tmp_path), 3))
    empty = tmp_path / "empty"
    empty.mkdir()
    if how == "variable":
        monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(empty))
    with pytest.raises(DatasetError) as caught:
        load_fashion_mnist(empty if how == "argument" else None)
    message = str(caught.value)
    assert str(empty / "fashion-mnist") in message and "does not exist" in message
    origin = "CUSTOMKERAS_DATA_DIR" if how == "variable" else "data_dir"
    assert f"data directory from {origin}={str(empty)!r}" in message
    assert all(name in message for name in NAMES)
    assert offline.calls == []


def test_directory_missing_one_file_names_it(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path, 1))
    (tmp_path / "fashion-mnist" / TEST_IMAGES).unlink()
    with pytest.raises(DatasetError, match=f"missing {TEST_IMAGES}.*it holds"):
        load_fashion_mnist(tmp_path)


# ------------------------------------------------------------------ damaged files


def test_checksum_mismatch_names_the_file_and_keeps_it(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path / "good", 1))
    make_fake_fashion(tmp_path / "other", 2)
    folder = tmp_path / "good" / "fashion-mnist"
    shutil.copyfile(tmp_path / "other" / "fashion-mnist" / TRAIN_LABELS, folder / TRAIN_LABELS)
    before = (folder / TRAIN_LABELS).read_bytes()
    with pytest.raises(DatasetError, match="SHA-256") as caught:
        load_fashion_mnist(tmp_path / "good", validation_size=2)
    assert str(folder / TRAIN_LABELS) in str(caught.value)
    assert (folder / TRAIN_LABELS).read_bytes() == before


def test_real_checksums_reject_a_fake_file(tmp_path, offline):
    make_fake_fashion(tmp_path, 1)
    with pytest.raises(DatasetError, match="SHA-256 of the decompressed content differs"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"n_train_labels": N_TRAIN - 1}, "labels"),
        ({"image_shape": (27, 28)}, r"\(n, 28, 28\)"),
    ],
)
def test_inconsistent_files(tmp_path, offline, monkeypatch, kwargs, expected):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path, 1, **kwargs))
    with pytest.raises(DatasetError, match=expected) as caught:
        load_fashion_mnist(tmp_path, validation_size=2)
    assert TRAIN_IMAGES in str(caught.value) and TRAIN_LABELS in str(caught.value)


def test_label_out_of_range(tmp_path, offline, monkeypatch):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path, 10))
    with pytest.raises(DatasetError, match="expected labels 0-9, found 10"):
        load_fashion_mnist(tmp_path, validation_size=2)


# -------------------------------------------------------------------- validation_size


@pytest.mark.parametrize("validation_size", [0, 1, 5, N_TRAIN - 1])
def test_validation_is_the_first_training_images(tmp_path, offline, monkeypatch, validation_size):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path, 7))
    pixels = keras_free_read(tmp_path / "fashion-mnist" / TRAIN_IMAGES)
    (X_train, y_train), (X_valid, y_valid), (X_test, _) = load_fashion_mnist(
        tmp_path, validation_size=validation_size
    )
    assert X_valid.shape == (validation_size, 28, 28) and y_valid.shape == (validation_size,)
    assert X_train.shape == (N_TRAIN - validation_size, 28, 28)
    np.testing.assert_array_equal(X_valid, pixels[:validation_size].astype(np.float32) / 255)
    np.testing.assert_array_equal(X_train, pixels[validation_size:].astype(np.float32) / 255)
    assert X_test.shape == (N_TEST, 28, 28)


def keras_free_read(path):
    with gzip.open(path) as stream:
        return np.frombuffer(stream.read(), np.uint8, offset=16).reshape(-1, 28, 28)


@pytest.mark.parametrize("validation_size", [-1, 1.5, True, "5", None, N_TRAIN, N_TRAIN + 1])
def test_bad_validation_size(tmp_path, offline, monkeypatch, validation_size):
    use_checksums(monkeypatch, make_fake_fashion(tmp_path, 1))
    with pytest.raises(ValueError, match="validation_size") as caught:
        load_fashion_mnist(tmp_path, validation_size=validation_size)
    assert not isinstance(caught.value, DatasetError)
    assert repr(validation_size) in str(caught.value) or str(validation_size) in str(caught.value)


@pytest.mark.parametrize("data_dir", ["", 3, b"/tmp"])
def test_bad_data_dir(offline, data_dir):
    with pytest.raises(ValueError, match="data_dir"):
        load_fashion_mnist(data_dir)
