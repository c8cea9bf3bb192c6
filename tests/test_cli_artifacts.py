"""Run-directory files: atomic writes, history, learning curves, manifest, output dir checks."""

import json
import os

import matplotlib.image
import numpy as np
import pytest

from customkeras.cli import artifacts, rundir
from customkeras.cli.curves import plot_learning_curves
from customkeras.cli.errors import CommandError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = {"accuracy": [0.5, 0.625], "loss": [1.25, 0.75],
           "val_accuracy": [0.6, 0.7], "val_loss": [1.0, 0.875]}


def _leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "history.csv"
    target.write_text("old complete file")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("killed while writing")
    assert target.read_text() == "old complete file"
    assert _leftovers(tmp_path) == []
    artifacts.atomic_write_text(target, "new complete file")
    assert target.read_text() == "new complete file"
    assert _leftovers(tmp_path) == []


def test_atomic_path_keeps_the_suffix_and_honours_umask(tmp_path):
    with artifacts.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path
        tmp.write_bytes(b"zip")
    mode = (tmp_path / "model.keras").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_invalid_json_never_reaches_the_file(tmp_path):
    with pytest.raises(ValueError):
        artifacts.atomic_write_json(tmp_path / "metrics.json", {"test_loss": float("nan")})
    assert not (tmp_path / "metrics.json").exists() and _leftovers(tmp_path) == []


def test_history_files_have_one_row_per_epoch_in_keras_order(tmp_path):
    artifacts.write_history(tmp_path, HISTORY)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert len(lines) == 1 + 2
    assert [float(v) for v in lines[2].split(",")] == [2, 0.75, 0.625, 0.875, 0.7]
    document = json.loads((tmp_path / "history.json").read_text())
    assert document.pop("epoch") == [1, 2]
    assert document == HISTORY


def test_non_finite_history_values_stay_valid_json(tmp_path):
    artifacts.write_history(tmp_path, {"loss": [1.0, float("nan")]})
    assert json.loads((tmp_path / "history.json").read_text())["loss"] == [1.0, "nan"]


def test_test_metrics_are_prefixed():
    assert artifacts.as_test_metrics({"loss": 0.5, "accuracy": 0.75}) == {
        "test_loss": 0.5, "test_accuracy": 0.75}


def test_learning_curves_are_a_real_png(tmp_path):
    path = tmp_path / "learning_curves.png"
    plot_learning_curves(HISTORY, path, title="test")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # two panels side by side
    # Not a blank canvas: the curves put several colours on it.
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10


def test_manifest_detects_a_changed_file(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"weights")
    artifacts.write_manifest(tmp_path, ["model.keras", "absent.json"])
    artifacts.verify_manifest(tmp_path / "model.keras")  # intact: no error
    (tmp_path / "model.keras").write_bytes(b"weighty")
    with pytest.raises(CommandError, match="is damaged"):
        artifacts.verify_manifest(tmp_path / "model.keras")


def test_a_new_run_refuses_a_directory_holding_a_run(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CommandError, match="--resume"):
        with rundir.new_run(tmp_path):
            pass
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # lock released and deleted


def test_a_new_run_fails_on_an_unwritable_place(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CommandError, match="not writable"):
        with rundir.new_run(blocker / "run"):
            pass


def test_a_new_run_that_fails_keeps_its_directory_only_after_a_complete_epoch(tmp_path):
    with pytest.raises(RuntimeError):
        with rundir.new_run(tmp_path / "run") as run_dir:
            assert (run_dir / "run.lock").is_file()
            raise RuntimeError("bad data")
    assert not (tmp_path / "run").exists()
    # Before its first complete epoch (only the initial ckpt-0): nothing worth resuming,
    # and config.json would block the corrected command ("already holds a run").
    with pytest.raises(RuntimeError):
        with rundir.new_run(tmp_path / "early") as run_dir:
            (run_dir / "config.json").write_text("{}")
            (run_dir / "checkpoints").mkdir()
            (run_dir / "checkpoints" / "ckpt-0.index").write_text("")
            raise RuntimeError("data that does not fit the model")
    assert not (tmp_path / "early").exists()
    # A directory the user made keeps what was in it before.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        with rundir.new_run(tmp_path / "mine") as run_dir:
            (run_dir / "config.json").write_text("{}")
            raise RuntimeError("bad data")
    assert sorted(os.listdir(tmp_path / "mine")) == ["notes.txt"]
    # After a complete epoch: kept, for --resume.
    with pytest.raises(RuntimeError):
        with rundir.new_run(tmp_path / "kept") as run_dir:
            (run_dir / "config.json").write_text("{}")
            (run_dir / "checkpoints").mkdir()
            (run_dir / "checkpoints" / "ckpt-1.index").write_text("")
            raise RuntimeError("killed later")
    assert sorted(os.listdir(tmp_path / "kept")) == ["checkpoints", "config.json"]


def test_stale_temporary_files_are_recognised_by_their_name(tmp_path):
    (tmp_path / ".history.json.0123456789ab.tmp.json").write_text("half")
    (tmp_path / ".model.keras.a1b2c3d4e5f6.tmp.keras").write_text("half")
    (tmp_path / ".hidden-but-mine").write_text("keep")
    (tmp_path / "history.json").write_text("{}")
    removed = artifacts.remove_stale_files(tmp_path)
    assert sorted(p.name for p in removed) == [".history.json.0123456789ab.tmp.json",
                                               ".model.keras.a1b2c3d4e5f6.tmp.keras"]
    assert sorted(os.listdir(tmp_path)) == [".hidden-but-mine", "history.json"]


def test_an_oserror_while_writing_names_the_final_file(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as caught:
        with artifacts.atomic_path(target) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert caught.value.filename == str(target) and caught.value.errno == 28
    assert _leftovers(tmp_path) == []


def test_default_run_dirs_never_collide(tmp_path):
    first = artifacts.default_run_dir("housing", root=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("housing-")
    first.mkdir()
    second = artifacts.default_run_dir("housing", root=tmp_path)
    assert second != first


def test_learning_curves_show_every_named_validation_set():
    from customkeras.cli.curves import validation_curves
    history = {"loss": [1.0, 0.5], "sparse_categorical_accuracy": [0.5, 0.6],
               "accuracy": [0.5, 0.6], "val_loss": [1.1, 0.6],
               "val_clean_loss": [1.0, 0.7], "val_noisy_loss": [1.2, 0.9],
               "val_clean_accuracy": [0.4, 0.5],
               "val_clean_sparse_categorical_accuracy": [0.4, 0.5]}
    names = ["loss", "sparse_categorical_accuracy", "accuracy"]
    assert validation_curves(history, "loss", names) == [
        ("val_loss", "validation loss"), ("val_clean_loss", "validation (clean) loss"),
        ("val_noisy_loss", "validation (noisy) loss")]
    assert validation_curves(history, "accuracy", names) == [
        ("val_clean_accuracy", "validation (clean) accuracy")]
    assert validation_curves(history, "sparse_categorical_accuracy", names) == [
        ("val_clean_sparse_categorical_accuracy",
         "validation (clean) sparse_categorical_accuracy")]
