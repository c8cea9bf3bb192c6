"""The TFRecord shard cache: where it lives, written once and reused, damaged shards and
manifests refused (naming the file) before anything is read, repaired on request, atomic
against a concurrent writer, and bad arguments refused before anything is written."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from customkeras.datasets import (
    CACHE_DIR_ENV,
    DatasetError,
    load_california_housing,
    stream_california_housing,
    stream_fashion_mnist,
    write_tfrecord_shards,
)
from customkeras.datasets import streams, tfrecords


@pytest.fixture(scope="module")
def pristine_entry(tmp_path_factory, data_dir):
    """A California housing cache entry, written once; tests damage copies of it."""
    cache = tmp_path_factory.mktemp("pristine")
    return write_tfrecord_shards("california-housing", data_dir=data_dir, cache_dir=cache)


@pytest.fixture
def cache(tmp_path, pristine_entry):
    """A private cache holding an intact copy of the entry."""
    root = tmp_path / "cache"
    shutil.copytree(pristine_entry, root / pristine_entry.name)
    return root


def snapshot(root):
    """Every file under root with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def first_valid_features(dataset):
    return next(iter(dataset))[0].numpy()


def test_first_use_writes_every_split_as_several_shards_with_a_manifest(tmp_path, data_dir):
    root = tmp_path / "cache"
    stream_california_housing("test", data_dir=data_dir, cache_dir=root)
    (entry,) = [p for p in root.iterdir()]
    assert entry.name.startswith("california-housing-")
    manifest = json.loads((entry / "manifest.json").read_text())
    counts = {split: info["examples"] for split, info in manifest["splits"].items()}
    assert counts == {"train": 11610, "valid": 3870, "test": 5160}
    for split, info in manifest["splits"].items():
        assert [s["file"] for s in info["shards"]] == [
            f"{split}-{i:05d}-of-00006.tfrecord" for i in range(6)]
        assert {s["examples"] for s in info["shards"]} == {counts[split] // 6}
        for shard in info["shards"]:
            assert tfrecords.file_sha256(entry / shard["file"]) == shard["sha256"]
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        ["manifest.json"] + [s["file"] for i in manifest["splits"].values() for s in i["shards"]])


def test_second_use_writes_nothing(cache, monkeypatch):
    before = snapshot(cache)

    def must_not_write(*args, **kwargs):
        raise AssertionError("the cache was written again")

    monkeypatch.setattr(streams, "_make_splits", must_not_write)
    monkeypatch.setattr(tfrecords, "_write_shard", must_not_write)
    for split in ("train", "valid", "test"):
        stream_california_housing(split, cache_dir=cache, data_dir="/no/source/needed")
    assert write_tfrecord_shards("california-housing", cache_dir=cache).parent == cache
    assert snapshot(cache) == before


def test_cache_dir_then_environment_variable_then_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    assert tfrecords.cache_root() == tmp_path / "keras" / "datasets" / "customkeras-tfrecords"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env"))
    assert tfrecords.cache_root() == tmp_path / "env"
    assert tfrecords.cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_environment_variable_cache_is_used(cache, monkeypatch, data_dir):
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    monkeypatch.setattr(streams, "_make_splits", None)  # would fail if it had to write
    (_, _), (X_valid, _), _ = load_california_housing(data_dir)
    np.testing.assert_array_equal(first_valid_features(stream_california_housing("valid")),
                                  X_valid[:32])


def only_entry(cache):
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return entry


def flip_a_byte(path):
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-10])


@pytest.mark.parametrize("damage, message", [
    (flip_a_byte, "SHA-256 differs"),
    (truncate, r"expected \d+ bytes, found \d+ \(truncated"),
    (os.remove, "missing shard"),
])
def test_damaged_shard_is_refused_naming_it(cache, damage, message):
    shard = only_entry(cache) / "valid-00003-of-00006.tfrecord"
    damage(shard)
    with pytest.raises(DatasetError, match=message) as caught:
        stream_california_housing("valid", cache_dir=cache)
    text = str(caught.value)
    assert text.startswith(f"{shard}: ")
    assert "write_tfrecord_shards('california-housing', overwrite=True" in text
    assert f"delete {only_entry(cache)}" in text
    # Refused when the dataset is made, before anything is read; splits whose shards are
    # intact still open.
    stream_california_housing("train", cache_dir=cache)


def test_overwrite_repairs_a_damaged_entry(cache, data_dir):
    entry = only_entry(cache)
    flip_a_byte(entry / "valid-00003-of-00006.tfrecord")
    (entry / "test-00000-of-00006.tfrecord").unlink()
    write_tfrecord_shards("california-housing", data_dir=data_dir, cache_dir=cache,
                          overwrite=True)
    assert [p.name for p in cache.iterdir()] == [entry.name]  # nothing left over
    manifest = json.loads((entry / "manifest.json").read_text())
    for split in ("valid", "test"):
        for shard in manifest["splits"][split]["shards"]:
            assert tfrecords.file_sha256(entry / shard["file"]) == shard["sha256"]
        stream_california_housing(split, cache_dir=cache)


@pytest.mark.parametrize("content, message", [
    (None, "missing"),
    ("{not json", "unreadable"),
    (json.dumps({"format": "something else", "splits": {}}), "expected a manifest"),
    (json.dumps({"format": tfrecords.FORMAT, **streams._description("california-housing"),
                 "splits": {}}), "no valid entry for split 'test'"),
])
def test_damaged_manifest_is_refused_naming_it(cache, content, message):
    manifest = only_entry(cache) / "manifest.json"
    if content is None:
        manifest.unlink()
    else:
        manifest.write_text(content)
    with pytest.raises(DatasetError, match=message) as caught:
        stream_california_housing("test", cache_dir=cache)
    assert str(caught.value).startswith(f"{manifest}: ")


def test_deleting_the_entry_as_the_error_says_rewrites_it(cache, data_dir):
    (only_entry(cache) / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        stream_california_housing("test", cache_dir=cache)
    shutil.rmtree(only_entry(cache))
    stream_california_housing("test", data_dir=data_dir, cache_dir=cache)
    json.loads((only_entry(cache) / "manifest.json").read_text())


def test_shards_are_verified_at_every_use(cache):
    stream_california_housing("valid", cache_dir=cache)
    flip_a_byte(only_entry(cache) / "valid-00000-of-00006.tfrecord")
    with pytest.raises(DatasetError, match="valid-00000-of-00006.tfrecord: SHA-256 differs"):
        stream_california_housing("valid", cache_dir=cache)


def test_a_concurrent_writer_that_finishes_first_wins(tmp_path, data_dir, monkeypatch):
    # Another process completes the same entry while this one is writing: this one's rename
    # fails, and it uses the other's complete copy and removes its own temporary directory.
    root = tmp_path / "cache"
    build = tfrecords._build
    calls = []

    def racing_build(directory, description, splits):
        calls.append(directory)
        if len(calls) == 1:
            entry, written = tfrecords.build_entry(root, "california-housing", description,
                                                   lambda: streams._make_splits(
                                                       "california-housing", data_dir))
            assert written
        build(directory, description, splits)

    monkeypatch.setattr(tfrecords, "_build", racing_build)
    entry = write_tfrecord_shards("california-housing", data_dir=data_dir, cache_dir=root)
    assert len(calls) == 2
    assert [p.name for p in root.iterdir()] == [entry.name]
    stream_california_housing("train", cache_dir=root)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    root = tmp_path / "cache"
    empty = tmp_path / "empty-data-dir"
    empty.mkdir()
    with pytest.raises(DatasetError, match="missing"):
        stream_california_housing("train", data_dir=empty, cache_dir=root)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("kwargs, error, message", [
    ({"split": 1}, TypeError, "`split` must be a str; received split=1"),
    ({"split": "validation"}, ValueError,
     r"`split` must be one of \('train', 'valid', 'test'\); received split='validation'"),
    ({"batch_size": 0}, ValueError, "`batch_size` must be an integer >= 1; received batch_size=0"),
    ({"batch_size": "32"}, TypeError, "`batch_size` must be an integer"),
    ({"batch_size": True}, TypeError, "received batch_size=True"),
    ({"shuffle": "yes"}, TypeError, "`shuffle` must be True or False; received shuffle='yes'"),
    ({"seed": -1}, ValueError, "`seed` must be an integer >= 0"),
    ({"seed": 1.5}, TypeError, "received seed=1.5"),
    ({"data_dir": 3}, TypeError, "`data_dir` must be a path"),
    ({"cache_dir": ""}, ValueError, "`cache_dir` must be a non-empty path or None"),
])
@pytest.mark.parametrize("stream", [stream_fashion_mnist, stream_california_housing])
def test_bad_arguments_are_refused_before_anything_is_written(stream, kwargs, error, message,
                                                              tmp_path):
    arguments = {"split": "train", "cache_dir": tmp_path / "cache", **kwargs}
    with pytest.raises(error, match=message):
        stream(arguments.pop("split"), **arguments)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("mnist",), {}, ValueError, "`dataset` must be one of"),
    ((None,), {}, TypeError, "`dataset` must be a str"),
    (("fashion-mnist",), {"overwrite": 1}, TypeError, "`overwrite` must be True or False"),
    (("fashion-mnist",), {"cache_dir": 5}, TypeError, "`cache_dir` must be a path"),
])
def test_write_tfrecord_shards_bad_arguments(args, kwargs, error, message, tmp_path):
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    with pytest.raises(error, match=message):
        write_tfrecord_shards(*args, **kwargs)
    assert not pathlib.Path(tmp_path / "cache").exists()


def test_a_killed_writers_leftovers_are_removed_by_the_next_write(tmp_path, data_dir):
    root = tmp_path / "cache"
    key = tfrecords.entry_key(streams._description("california-housing"))
    entry_name = f"california-housing-{key}"
    stale, fresh = root / f".{entry_name}.stale.tmp", root / f".{entry_name}.fresh.tmp"
    for leftover in (stale, fresh):
        leftover.mkdir(parents=True)
        (leftover / "train-00000-of-00006.tfrecord").write_bytes(b"half")
    old = stale.stat().st_mtime - tfrecords._STALE_SECONDS - 1
    os.utime(stale, (old, old))
    write_tfrecord_shards("california-housing", data_dir=data_dir, cache_dir=root)
    # A recent one may belong to a writer still at work: it stays.
    assert sorted(p.name for p in root.iterdir()) == sorted([entry_name, fresh.name])
