"""California housing (StatLib, Pace & Barry 1997), split and scaled as in the chapter."""

import hashlib
import io
import pathlib
import tarfile
import zlib

import numpy as np
import sklearn.datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from customkeras.datasets.alignment import aligned_copy
from customkeras.datasets.errors import DatasetError
from customkeras.datasets.locations import explicit_data_dir, layout_hint, missing_files_error

CALIFORNIA_HOUSING_FEATURES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)

CALIFORNIA_HOUSING_SUBDIR = "california-housing"
CALIFORNIA_HOUSING_ARCHIVE = "cal_housing.tgz"
CALIFORNIA_HOUSING_RAW = "cal_housing.data"

# SHA-256 of the parsed raw values (float64, little-endian, row-major, shape 20640 x 9):
# any changed number fails it, while CRLF/LF or other formatting differences do not.
CALIFORNIA_HOUSING_VALUES_SHA256 = (
    "a2f4f55ff91c67e60391318ea4d61d247d09f8fef119ec6f44a1eb727d7f1f7b"
)

_RAW_SHAPE = (20640, 9)
_FILES = [f"{CALIFORNIA_HOUSING_ARCHIVE} (scikit-learn's archive) or {CALIFORNIA_HOUSING_RAW}"]
_FIX = layout_hint(CALIFORNIA_HOUSING_SUBDIR, _FILES)
_SKLEARN_CACHE = "cal_housing_py3.pkz"  # where fetch_california_housing caches the data


def _read_archive_member(archive):
    """Return the bytes of `.../cal_housing.data` inside `archive`, read in memory."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and
                       pathlib.PurePosixPath(m.name).name == CALIFORNIA_HOUSING_RAW]
            if len(members) != 1:
                raise DatasetError(
                    f"{archive}: expected one member named {CALIFORNIA_HOUSING_RAW} "
                    f"(CaliforniaHousing/{CALIFORNIA_HOUSING_RAW} in scikit-learn's archive), "
                    f"found {len(members)}: {tar.getnames()[:10]}. {_FIX}"
                )
            return tar.extractfile(members[0]).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        message = f"{archive}: cannot read it as a .tgz archive: {error}. {_FIX}"
        raise DatasetError(message) from error


def parse_california_housing(content, source="cal_housing.data"):
    """Parse and verify the raw StatLib file: 20,640 rows of 9 comma-separated numbers.

    Columns: longitude, latitude, housingMedianAge, totalRooms, totalBedrooms,
    population, households, medianIncome, medianHouseValue.

    Args:
        content: Bytes of the file (CRLF or LF line endings).
        source: Name of the file, for error messages. Defaults to "cal_housing.data".

    Returns:
        Float64 array of shape (20640, 9).

    Raises:
        DatasetError: if it is malformed, of the wrong shape, not finite, or its values'
            SHA-256 differs from `CALIFORNIA_HOUSING_VALUES_SHA256`.
    """
    try:
        values = np.loadtxt(io.BytesIO(content), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise DatasetError(
            f"{source}: expected lines of 9 comma-separated numbers; {error}. {_FIX}"
        ) from error
    if values.shape != _RAW_SHAPE:
        raise DatasetError(f"{source}: expected shape {_RAW_SHAPE}, found {values.shape}. {_FIX}")
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        raise DatasetError(
            f"{source}: expected finite numbers, found NaN/inf in {bad_rows.size} rows "
            f"(first: line {bad_rows[0] + 1}). {_FIX}"
        )
    digest = hashlib.sha256(np.ascontiguousarray(values, dtype="<f8")).hexdigest()
    if digest != CALIFORNIA_HOUSING_VALUES_SHA256:
        raise DatasetError(
            f"{source}: SHA-256 of the parsed values differs: expected "
            f"{CALIFORNIA_HOUSING_VALUES_SHA256}, found {digest}; some numbers were changed. "
            f"{_FIX}"
        )
    return values


def california_housing_features(values):
    """Derive scikit-learn's 8 features and the target from the 9 raw columns.

    As `sklearn.datasets.fetch_california_housing`: MedInc = medianIncome, HouseAge =
    housingMedianAge, AveRooms = totalRooms / households, AveBedrms = totalBedrooms /
    households, Population, AveOccup = population / households, Latitude, Longitude;
    target = medianHouseValue / 100,000.

    Args:
        values: Float64 array of shape (n, 9), the raw columns in StatLib's order.

    Returns:
        `(features, target)`: float64 arrays of shapes (n, 8) and (n,).
    """
    (longitude, latitude, age, rooms, bedrooms,
     population, households, income, value) = values.T
    features = np.column_stack([
        income, age, rooms / households, bedrooms / households,
        population, population / households, latitude, longitude,
    ])
    return features, value / 100000.0


def _features_from_directory(directory):
    folder = directory.path / CALIFORNIA_HOUSING_SUBDIR
    archive, raw = folder / CALIFORNIA_HOUSING_ARCHIVE, folder / CALIFORNIA_HOUSING_RAW
    if archive.is_file():
        values = parse_california_housing(_read_archive_member(archive), f"{archive}")
    elif raw.is_file():
        values = parse_california_housing(raw.read_bytes(), str(raw))
    else:
        missing = [f"{archive.name} or {raw.name}"]
        raise missing_files_error(directory, CALIFORNIA_HOUSING_SUBDIR, missing, _FILES)
    features, target = california_housing_features(values)
    _check_features(features, target, archive if archive.is_file() else raw, _FIX)
    return features, target


def _check_features(features, target, source, fix):
    """The 8 derived features and the target must be 20,640 rows of finite numbers."""
    if features.shape != (_RAW_SHAPE[0], 8) or target.shape != _RAW_SHAPE[:1]:
        raise DatasetError(
            f"{source}: expected {_RAW_SHAPE[0]} rows of 8 features and a target, found "
            f"features {features.shape} and target {target.shape}. {fix}"
        )
    if not (np.isfinite(features).all() and np.isfinite(target).all()):
        raise DatasetError(f"{source}: expected finite features and target, found NaN/inf. {fix}")


def _features_from_sklearn():
    """scikit-learn's cached copy (its data home), downloading it there if missing."""
    data_home = pathlib.Path(sklearn.datasets.get_data_home())
    cache = data_home / _SKLEARN_CACHE
    cached = cache.is_file()
    try:
        features, target = sklearn.datasets.fetch_california_housing(
            data_home=data_home, download_if_missing=True, return_X_y=True
        )
    # A damaged cache fails with anything from zlib.error to KeyError, a failed download
    # with URLError deep inside urllib: all become one error that says what to do.
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        if cached:
            problem = f"{cache}: scikit-learn's cached copy is unreadable ({failure})"
            advice = "Delete it so that scikit-learn downloads it again, or: "
        else:
            problem = (
                f"{data_home}: scikit-learn's cached copy ({_SKLEARN_CACHE}) is missing, and "
                f"the download failed ({failure})"
            )
            advice = ""
        raise DatasetError(f"{problem}. {advice}{_FIX}") from error
    advice = f"Delete it so that scikit-learn downloads it again, or: {_FIX}"
    _check_features(features, target, cache, advice)
    return features, target


def load_california_housing(data_dir=None, scale=True):
    """Load California housing split into train, validation and test sets, as in the chapter.

    Features are scikit-learn's 8 (`CALIFORNIA_HOUSING_FEATURES`), the target the median
    house value in units of $100,000, shaped (n, 1). The data is split with
    `train_test_split(random_state=42)` into full-train / test, and full-train into train /
    valid the same way: 11,610 / 3,870 / 5,160 rows, exactly scikit-learn's rows. With
    `scale=True`, a `StandardScaler` fitted on the training features alone is applied to
    all three. Computed in float64, returned as float32 (what Keras computes in); every
    array is its own 64-byte aligned, C-contiguous, writeable allocation.

    Where the data comes from, in order: `data_dir`; `$CUSTOMKERAS_DATA_DIR`;
    scikit-learn's data home (`~/scikit_learn_data/cal_housing_py3.pkz`); scikit-learn's
    download into it. A data directory holds `california-housing/` with `cal_housing.tgz`
    (scikit-learn's archive, read in memory, never extracted to disk) or the raw
    `cal_housing.data`.

    Args:
        data_dir: Str or path-like, a directory holding `california-housing/`.
            Defaults to None.
        scale: Bool, whether to standardize the features with training statistics.
            Defaults to True.

    Returns:
        `((X_train, y_train), (X_valid, y_valid), (X_test, y_test))`.

    Raises:
        DatasetError: if the data is missing (from an explicit directory), damaged, or
            cannot be downloaded.

    Example:

    >>> (X_train, y_train), (X_valid, y_valid), (X_test, y_test) = load_california_housing()
    >>> X_train.shape, y_train.shape  # doctest: +SKIP
    ((11610, 8), (11610, 1))
    """
    if not isinstance(scale, bool):
        raise ValueError(f"scale must be True or False; received scale={scale!r}")
    directory = explicit_data_dir(data_dir)
    if directory is not None:
        features, target = _features_from_directory(directory)
    else:
        features, target = _features_from_sklearn()
    X_train_full, X_test, y_train_full, y_test = train_test_split(
        features, target.reshape(-1, 1), random_state=42
    )
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_train_full, y_train_full, random_state=42
    )
    if scale:
        scaler = StandardScaler().fit(X_train)
        X_train, X_valid, X_test = (scaler.transform(X) for X in (X_train, X_valid, X_test))
    return tuple(
        (aligned_copy(X, np.float32), aligned_copy(y, np.float32))
        for X, y in ((X_train, y_train), (X_valid, y_valid), (X_test, y_test))
    )
