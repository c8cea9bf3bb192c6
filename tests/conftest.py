"""Shared test fixtures.

Real-data tests use the ``data_dir`` fixture. Locally, without a data directory, they
skip; in CI (``CI`` set) a missing data directory is a failure, so a real-data test can
never pass by silently skipping.
"""

import os
import pathlib
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The real data directory (``CUSTOMKERAS_DATA_DIR``) holding both data sets."""
    value = os.environ.get("CUSTOMKERAS_DATA_DIR")
    candidates = [value] if value else []
    candidates.append(str(REPO_ROOT.parent / "shared" / "datasets"))
    for candidate in candidates:
        path = pathlib.Path(candidate)
        if (path / "fashion-mnist").is_dir() and (path / "california-housing").is_dir():
            return path.resolve()
    message = (
        "real-data test needs CUSTOMKERAS_DATA_DIR pointing at a directory with "
        f"fashion-mnist/ and california-housing/ (got {value!r})"
    )
    if _ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def python_executable() -> str:
    """The interpreter running the tests: subprocess tests use the same environment."""
    return sys.executable
