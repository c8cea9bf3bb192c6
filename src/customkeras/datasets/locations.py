"""Where the data sets are looked for, and the advice given when they are not there.

Lookup order, for every loader:

1. the `data_dir` argument;
2. the environment variable `CUSTOMKERAS_DATA_DIR`;
3. the usual caches: `$KERAS_HOME/datasets/fashion-mnist` (`~/.keras/...` by default) and
   scikit-learn's data home (`$SCIKIT_LEARN_DATA`, `~/scikit_learn_data` by default);
4. the usual downloads (`keras.utils.get_file`, `sklearn.datasets.fetch_california_housing`).

An explicit directory (1 or 2) is a promise that the data is there: when it is not, the
loader raises `DatasetError` instead of falling through to a download.
"""

import dataclasses
import os
import pathlib

from customkeras.datasets.errors import DatasetError

DATA_DIR_ENV = "CUSTOMKERAS_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class DataDirectory:
    """A data directory the user chose, and how they chose it (for error messages)."""

    path: pathlib.Path
    origin: str


def explicit_data_dir(data_dir=None):
    """Return the data directory given by argument or environment variable, else None.

    Args:
        data_dir: Str or path-like, a directory holding `fashion-mnist/` and/or
            `california-housing/`. Defaults to None: use `CUSTOMKERAS_DATA_DIR` if set
            and non-empty.

    Example:

    >>> explicit_data_dir("/data").path
    PosixPath('/data')
    """
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir):
            raise ValueError(
                "data_dir must be a non-empty path (str or os.PathLike) or None; "
                f"received data_dir={data_dir!r}"
            )
        return DataDirectory(pathlib.Path(data_dir).expanduser(), f"data_dir={str(data_dir)!r}")
    value = os.environ.get(DATA_DIR_ENV, "")
    if value:
        return DataDirectory(pathlib.Path(value).expanduser(), f"{DATA_DIR_ENV}={value!r}")
    return None


def keras_home():
    """Return Keras's cache directory: `$KERAS_HOME`, else `~/.keras` (read at call time)."""
    return pathlib.Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()


def layout_hint(subdir, files):
    """Return the sentence telling a user how to provide the files of one data set."""
    listing = ", ".join(files)
    return (
        f"To fix: put {listing} in <dir>/{subdir}/ and pass data_dir=<dir> (the CLI's "
        f"--data-dir) or set {DATA_DIR_ENV}=<dir>; a data directory holds fashion-mnist/ "
        "and california-housing/."
    )


def missing_files_error(directory, subdir, missing, accepted_files):
    """Return the `DatasetError` for an explicit data directory that lacks files.

    Args:
        directory: The `DataDirectory` the user chose.
        subdir: The data set's sub-directory name, e.g. "fashion-mnist".
        missing: Names of the files that were expected but not found.
        accepted_files: Names to list in the advice.
    """
    folder = directory.path / subdir
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None
    found_text = f"it holds {found}" if found is not None else "that directory does not exist"
    return DatasetError(
        f"{folder}: missing {', '.join(missing)} (data directory from {directory.origin}); "
        f"{found_text}. {layout_hint(subdir, accepted_files)}"
    )
