"""Data-directory resolution: argument, then CUSTOMKERAS_DATA_DIR, then the caches."""

import re

import pytest

from customkeras.datasets import DATA_DIR_ENV, DatasetError
from customkeras.datasets.locations import (
    explicit_data_dir,
    keras_home,
    layout_hint,
    missing_files_error,
)


@pytest.fixture
def environment(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_variable_name():
    assert DATA_DIR_ENV == "CUSTOMKERAS_DATA_DIR"


def test_nothing_explicit(environment):
    assert explicit_data_dir() is None
    environment.setenv(DATA_DIR_ENV, "")  # an empty variable counts as unset
    assert explicit_data_dir() is None


def test_argument_wins_over_variable(tmp_path, environment):
    environment.setenv(DATA_DIR_ENV, str(tmp_path / "variable"))
    chosen = explicit_data_dir(tmp_path / "argument")
    assert chosen.path == tmp_path / "argument"
    assert chosen.origin == f"data_dir={str(tmp_path / 'argument')!r}"
    chosen = explicit_data_dir()
    assert chosen.path == tmp_path / "variable"
    assert chosen.origin == f"CUSTOMKERAS_DATA_DIR={str(tmp_path / 'variable')!r}"


def test_home_is_expanded_at_call_time(tmp_path, environment):
    assert explicit_data_dir("~/data").path == tmp_path / "home" / "data"
    environment.setenv(DATA_DIR_ENV, "~/other")
    assert explicit_data_dir().path == tmp_path / "home" / "other"
    assert keras_home() == tmp_path / "home" / ".keras"
    environment.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_home() == tmp_path / "kh"


@pytest.mark.parametrize("data_dir", ["", 0, ["/data"]])
def test_bad_argument(environment, data_dir):
    with pytest.raises(ValueError, match=re.escape(f"received data_dir={data_dir!r}")):
        explicit_data_dir(data_dir)


def test_missing_files_error_lists_what_is_there(tmp_path, environment):
    (tmp_path / "fashion-mnist").mkdir()
    (tmp_path / "fashion-mnist" / "README").write_text("")
    directory = explicit_data_dir(tmp_path)
    error = missing_files_error(directory, "fashion-mnist", ["a.gz"], ["a.gz", "b.gz"])
    assert isinstance(error, DatasetError) and isinstance(error, ValueError)
    message = str(error)
    assert message.startswith(f"{tmp_path / 'fashion-mnist'}: missing a.gz")
    assert "it holds ['README']" in message
    assert layout_hint("fashion-mnist", ["a.gz", "b.gz"]) in message
    assert "put a.gz, b.gz in <dir>/fashion-mnist/" in message

