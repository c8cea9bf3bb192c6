"""Shared test fixtures, and which test modules run on which Keras backend.

Real-data tests use the ``data_dir`` fixture. Locally, without a data directory, they
skip; in CI (``CI`` set) a missing data directory is a failure, so a real-data test can
never pass by silently skipping.

The component tests run on every Keras backend: ``make test`` runs the whole suite on
TensorFlow, then ``KERAS_BACKEND=jax pytest`` again, which collects only the modules in
``EVERY_BACKEND`` (the others test TensorFlow-only parts and are not collected there).
"""

import functools
import os
import pathlib
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Test modules of the backend-independent components, run on each backend.
EVERY_BACKEND = frozenset({
    "test_activations.py",
    "test_initializers_regularizers_constraints.py",
    "test_layers.py",
    "test_losses.py",
    "test_metrics.py",
    "test_models.py",
    "test_optimizers.py",
    "test_serialization.py",
})


@functools.cache
def _keras_backend() -> str:
    # Keras picks its backend once, at import (KERAS_BACKEND, else ~/.keras/keras.json).
    import customkeras  # noqa: F401  (imports Keras with TensorFlow's start-up lines hidden)
    import keras

    return keras.backend.backend()


class _OtherBackendModule(pytest.File):
    """A test module of a TensorFlow-only part, on another backend: nothing to collect."""

    def collect(self):
        return []


def pytest_pycollect_makemodule(module_path, parent):
    """On a backend other than TensorFlow, collects the component tests only.

    Also for modules named on the command line (which `pytest_ignore_collect` cannot
    skip): they collect no test, without importing the TensorFlow-only parts.
    """
    if _keras_backend() != "tensorflow" and module_path.name not in EVERY_BACKEND:
        return _OtherBackendModule.from_parent(parent, path=module_path)
    return None


def pytest_report_header(config):
    # From the environment only: importing Keras here would cost xdist's controller a
    # TensorFlow import.
    return f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '(unset: Keras default)')}"


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
