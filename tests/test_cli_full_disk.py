"""Out of space while training: one line naming the file and the cause, exit 1, the last
good checkpoint kept, and `--resume` working once there is space again (issue 15).

A real full disk where a small tmpfs can be mounted (root, as in CI), and simulated
`ENOSPC` (TensorFlow's `ResourceExhaustedError` from a checkpoint save, `OSError` from
`model.save`) everywhere.
"""

import errno
import os
import signal
import subprocess
import time

import keras
import pytest
import tensorflow as tf

from test_cli_run_directory import TRAIN, _assert_same_run, _json

from customkeras.cli import main

pytestmark = pytest.mark.data


def _train(run_dir, data_dir, epochs):
    return main([*TRAIN, "--epochs", str(epochs), "--output-dir", str(run_dir),
                 "--data-dir", str(data_dir)])


def _one_error_line(err):
    lines = [line for line in err.strip().splitlines() if line]
    assert "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith("customkeras train: error: "), err[-3000:]
    return lines[-1]


def _no_leftovers(run_dir):
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []
    assert list((run_dir / "checkpoints").glob("*_temp")) == []


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert _train(run_dir, data_dir, 3) == 0
    return run_dir


def test_no_space_for_a_checkpoint(data_dir, tmp_path, reference, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    write, calls = tf.train.Checkpoint.write, []

    def full_disk(self, prefix, *args, **kwargs):
        calls.append(prefix)
        if len(calls) == 3:  # ckpt-0 and ckpt-1 fit, ckpt-2 does not
            os.makedirs(f"{prefix}_temp")  # as SaveV2 leaves it
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{prefix}_temp/part-00000-of-00001.data-00000-of-00001."
                "tempstate123; No space left on device [Op:SaveV2]")
        return write(self, prefix, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.Checkpoint, "write", full_disk)
        assert _train(run_dir, data_dir, 3) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"Cannot write the checkpoint {run_dir / 'checkpoints' / 'ckpt-2'}" in line
    assert "No space left on device" in line
    assert "The last good checkpoint (" in line and "ckpt-1) is kept" in line
    assert f"customkeras train --resume {run_dir}" in line
    _no_leftovers(run_dir)
    assert len(_json(run_dir / "history.json")["epoch"]) == 1
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    _assert_same_run(run_dir, reference)


def test_no_space_for_the_model(data_dir, tmp_path, reference, monkeypatch, capsys):
    run_dir = tmp_path / "run"

    def full_disk(self, path, *args, **kwargs):
        with open(path, "wb") as stream:
            stream.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", full_disk)
        assert _train(run_dir, data_dir, 3) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"Cannot write {run_dir / 'model.keras'}: No space left on device" in line
    assert "ckpt-3) is kept" in line
    assert not (run_dir / "model.keras").exists() and not (run_dir / "manifest.json").exists()
    _no_leftovers(run_dir)
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    assert "writing its results again" in capsys.readouterr().out
    _assert_same_run(run_dir, reference)


def _mount_tmpfs(path, size):
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if done.returncode == 0 else done.stderr.strip() or "mount failed"


def _fill(directory):
    """Writes a file until the file system is full, to the last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        chunk = 1 << 20
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError:
                chunk //= 2
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_really_full_disk(python_executable, data_dir, tmp_path, capsys):
    disk = tmp_path / "disk"
    problem = _mount_tmpfs(disk, "8m")
    if problem is not None:
        pytest.skip(f"cannot mount a tmpfs here ({problem}); the simulated cases cover it")
    try:
        run_dir = disk / "run"
        process = subprocess.Popen(
            [python_executable, "-m", "customkeras.cli", *TRAIN, "--epochs", "100000",
             "--output-dir", str(run_dir)],
            env={**os.environ, "CUSTOMKERAS_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 180
            while not (run_dir / "checkpoints" / "ckpt-2.index").exists():
                assert process.poll() is None and time.monotonic() < deadline, \
                    process.communicate()
                time.sleep(0.05)
            _fill(disk)
            _, err = process.communicate(timeout=120)
        finally:
            process.send_signal(signal.SIGKILL)
        assert process.returncode == 1, err[-3000:]
        line = _one_error_line(err)
        assert "No space left on device" in line and "is kept" in line
        assert f"customkeras train --resume {run_dir}" in line
        (disk / "filler").unlink()  # space is back
        completed = len(_json(run_dir / "history.json")["epoch"])
        assert completed >= 2
        epochs = completed + 1
        assert main(["train", "--resume", str(run_dir), "--epochs", str(epochs),
                     "--verbose", "0"]) == 0
        reference = tmp_path / "reference"
        assert _train(reference, data_dir, epochs) == 0
        _assert_same_run(run_dir, reference)
        _no_leftovers(run_dir)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)
