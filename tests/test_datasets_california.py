"""load_california_housing against scikit-learn's own code path on the real file, where the
data is looked for, and the errors for missing or damaged files."""

import io
import shutil
import tarfile
import urllib.error

import numpy as np
import pytest
import sklearn.datasets
import sklearn.datasets._california_housing as sklearn_california
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from customkeras.datasets import (
    CALIFORNIA_HOUSING_FEATURES,
    DatasetError,
    load_california_housing,
)

MEMBER = "CaliforniaHousing/cal_housing.data"
# Column means of the transformed data, from ../shared/datasets/README.md.
README_MEANS = {
    "MedInc": 3.870671,
    "HouseAge": 28.639486,
    "AveRooms": 5.429000,
    "AveBedrms": 1.096675,
    "Population": 1425.476744,
    "AveOccup": 3.070655,
    "Latitude": 35.631861,
    "Longitude": -119.569704,
}
README_TARGET_MEAN = 2.068558


def write_archive(path, content, member=MEMBER):
    """A .tgz laid out like scikit-learn's cal_housing.tgz, holding `content`."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(member)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return path


class FetchRemote:
    """Stands in for scikit-learn's downloader: serves a local archive, or fails offline."""

    def __init__(self, archive=None):
        self.archive = archive
        self.calls = 0

    def __call__(self, remote, dirname=None, n_retries=3, delay=1.0):
        self.calls += 1
        if self.archive is None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        target = f"{dirname}/{remote.filename}"
        shutil.copyfile(self.archive, target)
        return target


@pytest.fixture(scope="module")
def raw_content(data_dir):
    return (data_dir / "california-housing" / "cal_housing.data").read_bytes()


@pytest.fixture(scope="module")
def sklearn_reference(raw_content, tmp_path_factory):
    """scikit-learn's fetch_california_housing on the real file, its download replaced by
    an archive built here. Leaves scikit-learn's own cache (cal_housing.pkz) in `home`."""
    home = tmp_path_factory.mktemp("scikit_learn_data")
    archive = write_archive(tmp_path_factory.mktemp("server") / "cal_housing.tgz", raw_content)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sklearn_california, "_fetch_remote", FetchRemote(archive))
        X, y = sklearn.datasets.fetch_california_housing(data_home=home, return_X_y=True)
    assert [p.name for p in home.iterdir()] == ["cal_housing_py3.pkz"]
    return home, X, y


def chapter_splits(X, y, scale):
    """The chapter's code, verbatim in spirit, cast to float32 at the end."""
    X_train_full, X_test, y_train_full, y_test = train_test_split(
        X, y.reshape(-1, 1), random_state=42
    )
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_train_full, y_train_full, random_state=42
    )
    if scale:
        scaler = StandardScaler()
        X_train = scaler.fit_transform(X_train)
        X_valid = scaler.transform(X_valid)
        X_test = scaler.transform(X_test)
    splits = ((X_train, y_train), (X_valid, y_valid), (X_test, y_test))
    return [(X.astype(np.float32), y.astype(np.float32)) for X, y in splits]


def assert_splits_equal(actual, expected):
    assert len(actual) == len(expected) == 3
    for (X, y), (X_ref, y_ref) in zip(actual, expected):
        assert X.dtype == X_ref.dtype and y.dtype == y_ref.dtype
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)


@pytest.fixture(scope="module")
def housing(data_dir):
    return {scale: load_california_housing(data_dir, scale=scale) for scale in (False, True)}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No CUSTOMKERAS_DATA_DIR, an empty scikit-learn data home, and no network."""
    monkeypatch.delenv("CUSTOMKERAS_DATA_DIR", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "empty_sklearn_home"))
    fetch_remote = FetchRemote()
    monkeypatch.setattr(sklearn_california, "_fetch_remote", fetch_remote)
    return fetch_remote


# ------------------------------------------------------------------------ real data


@pytest.mark.parametrize("scale", [False, True])
def test_splits_equal_scikit_learns_own_path(housing, sklearn_reference, scale):
    _, X, y = sklearn_reference
    assert_splits_equal(housing[scale], chapter_splits(X, y, scale))


def test_shapes_types_and_memory_layout(housing):
    for splits in housing.values():
        sizes = [len(X) for X, _ in splits]
        assert sizes == [11_610, 3_870, 5_160]
        arrays = [array for split in splits for array in split]
        for (X, y), n in zip(splits, sizes):
            assert X.shape == (n, 8) and y.shape == (n, 1)
        for array in arrays:
            assert array.dtype == np.float32 and np.isfinite(array).all()
            assert array.ctypes.data % 64 == 0
            assert array.flags.c_contiguous and array.flags.writeable
        for i, first in enumerate(arrays):
            assert not any(np.shares_memory(first, second) for second in arrays[i + 1 :])


def test_column_means_match_the_readme(housing):
    X = np.concatenate([X for X, _ in housing[False]]).astype(np.float64)
    y = np.concatenate([y for _, y in housing[False]]).astype(np.float64)
    assert X.shape == (20_640, 8)
    means = dict(zip(CALIFORNIA_HOUSING_FEATURES, X.mean(axis=0)))
    for name, expected in README_MEANS.items():
        assert means[name] == pytest.approx(expected, rel=1e-6, abs=1e-6), name
    assert y.mean() == pytest.approx(README_TARGET_MEAN, abs=1e-6)
    assert y.min() == pytest.approx(0.14999, abs=1e-6)
    assert y.max() == pytest.approx(5.00001, abs=1e-6)


def test_scaling_uses_training_statistics_only(housing):
    raw, scaled = housing[False], housing[True]
    X_train = raw[0][0].astype(np.float64)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    np.testing.assert_allclose(scaled[0][0].mean(axis=0, dtype=np.float64), 0, atol=1e-6)
    np.testing.assert_allclose(scaled[0][0].std(axis=0, dtype=np.float64), 1, atol=1e-5)
    for (X_raw, y_raw), (X_scaled, y_scaled) in zip(raw, scaled):
        np.testing.assert_allclose(X_scaled, (X_raw - mean) / std, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y_scaled, y_raw)
    # The validation and test sets are not centred on their own statistics.
    assert np.abs(scaled[1][0].mean(axis=0)).max() > 1e-3


def test_feature_names():
    assert CALIFORNIA_HOUSING_FEATURES == tuple(README_MEANS)


# -------------------------------------------------------------------- lookup order


def test_archive_is_read_in_memory_and_equals_the_raw_file(
    housing, raw_content, tmp_path, isolated
):
    folder = tmp_path / "california-housing"
    folder.mkdir()
    write_archive(folder / "cal_housing.tgz", raw_content)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert_splits_equal(load_california_housing(tmp_path, scale=False), housing[False])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert isolated.calls == 0


def test_variable_is_used_and_argument_wins(housing, data_dir, tmp_path, isolated, monkeypatch):
    monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(data_dir))
    assert_splits_equal(load_california_housing(), housing[True])
    with pytest.raises(DatasetError, match="data directory from data_dir="):
        load_california_housing(tmp_path)
    monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(tmp_path))
    assert_splits_equal(load_california_housing(data_dir, scale=False), housing[False])
    assert isolated.calls == 0


def test_scikit_learn_cache_is_used_without_downloading(
    housing, sklearn_reference, isolated, monkeypatch
):
    home, _, _ = sklearn_reference
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(home))
    assert_splits_equal(load_california_housing(), housing[True])
    assert isolated.calls == 0


def test_offline_without_data_is_a_clear_error(tmp_path, isolated):
    with pytest.raises(DatasetError) as caught:
        load_california_housing()
    message = str(caught.value)
    assert "URLError" in message and "Temporary failure in name resolution" in message
    assert f"{tmp_path / 'empty_sklearn_home'}: scikit-learn's cached copy" in message
    assert "CUSTOMKERAS_DATA_DIR" in message and "california-housing/" in message
    assert isolated.calls == 1


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_explicit_directory_without_files_never_falls_through(tmp_path, isolated, monkeypatch, how):
    (tmp_path / "california-housing").mkdir()
    (tmp_path / "california-housing" / "cal_housing.domain").write_text("columns\n")
    if how == "variable":
        monkeypatch.setenv("CUSTOMKERAS_DATA_DIR", str(tmp_path))
    fetch_calls = []
    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", fetch_calls.append)
    with pytest.raises(DatasetError) as caught:
        load_california_housing(tmp_path if how == "argument" else None)
    message = str(caught.value)
    assert "missing cal_housing.tgz or cal_housing.data" in message
    assert "cal_housing.domain" in message  # what was found
    assert fetch_calls == [] and isolated.calls == 0


# ------------------------------------------------------------------ damaged files


def write_raw(tmp_path, content):
    folder = tmp_path / "california-housing"
    folder.mkdir(exist_ok=True)
    (folder / "cal_housing.data").write_bytes(content)
    return folder / "cal_housing.data"


def test_line_endings_do_not_matter(housing, raw_content, tmp_path, isolated):
    write_raw(tmp_path, raw_content.replace(b"\r\n", b"\n") + b"\n")
    assert_splits_equal(load_california_housing(tmp_path, scale=False), housing[False])


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda c: c.replace(b"8.325200", b"8.325300", 1), "SHA-256 of the parsed values differs"),
        (lambda c: c.replace(b"8.325200", b"nan", 1), r"NaN/inf in 1 rows \(first: line 1\)"),
        (lambda c: c.rsplit(b"\r\n", 1)[0], r"expected shape \(20640, 9\), found \(20639, 9\)"),
        (lambda c: c.replace(b"-122.230000,", b"", 1), "expected lines of 9 comma-separated"),
        (lambda c: c.replace(b"8.325200", b"eight", 1), "expected lines of 9 comma-separated"),
    ],
    ids=["changed-number", "nan", "missing-row", "missing-column", "text"],
)
def test_damaged_raw_file(raw_content, tmp_path, isolated, damage, expected):
    path = write_raw(tmp_path, damage(raw_content))
    with pytest.raises(DatasetError, match=expected) as caught:
        load_california_housing(tmp_path)
    assert str(path) in str(caught.value) and "CUSTOMKERAS_DATA_DIR" in str(caught.value)


def test_archive_that_is_not_a_tgz(raw_content, tmp_path, isolated):
    folder = tmp_path / "california-housing"
    folder.mkdir()
    (folder / "cal_housing.tgz").write_bytes(raw_content[:5000])
    with pytest.raises(DatasetError, match="cannot read it as a .tgz archive"):
        load_california_housing(tmp_path)


def test_archive_without_the_data_member(raw_content, tmp_path, isolated):
    folder = tmp_path / "california-housing"
    folder.mkdir()
    write_archive(folder / "cal_housing.tgz", raw_content, member="CaliforniaHousing/other.data")
    with pytest.raises(DatasetError, match="expected one member named cal_housing.data"):
        load_california_housing(tmp_path)


@pytest.mark.parametrize("scale", [1, "yes", None])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        load_california_housing("/nonexistent", scale=scale)


@pytest.mark.parametrize("content", ["garbage", "wrong-shape"])
def test_damaged_scikit_learn_cache(tmp_path, isolated, monkeypatch, content):
    home = tmp_path / "sklearn_home"
    home.mkdir()
    cache = home / "cal_housing_py3.pkz"
    if content == "garbage":
        cache.write_bytes(b"x\x9c not a joblib file")
    else:
        import joblib

        joblib.dump(np.ones((5, 9)), cache, compress=3)
    before = cache.read_bytes()
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(home))
    with pytest.raises(DatasetError) as caught:
        load_california_housing()
    message = str(caught.value)
    assert str(cache) in message and "Delete it so that scikit-learn downloads it again" in message
    assert cache.read_bytes() == before and isolated.calls == 0
