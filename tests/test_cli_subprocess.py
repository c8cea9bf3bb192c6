"""The `customkeras` console script in real processes: output, fresh-process reload,
Ctrl-C (SIGINT) and SIGKILL. Kept few: each process pays TensorFlow's import."""

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from customkeras.cli import main

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _command(python_executable):
    script = pathlib.Path(python_executable).parent / "customkeras"
    return [str(script)] if script.is_file() else [python_executable, "-m", "customkeras.cli"]


def _environment(data_dir):
    return {**os.environ, "CUSTOMKERAS_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}


def _wait_for(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _long_run(python_executable, data_dir, run_dir):
    return subprocess.Popen(
        [*_command(python_executable), "train", "fashion-mnist", "--epochs", "1000",
         "--max-train-samples", "2000", "--output-dir", str(run_dir), "--verbose", "2"],
        env=_environment(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_train_prints_its_files_and_a_fresh_process_reproduces_the_metrics(
        python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    trained = subprocess.run(
        [*_command(python_executable), "train", "fashion-mnist", "--epochs", "1",
         "--max-train-samples", "2000", "--output-dir", str(run_dir)],
        env=_environment(data_dir), capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    out = trained.stdout
    assert "Epoch 1/1" in out  # one line per epoch without a terminal
    assert f"Run directory: {run_dir}" in out and "Test results after 1 epoch(s): loss" in out
    for name in ("model.keras", "metrics.json", "history.csv", "learning_curves.png",
                 "config.json", "tensorboard --logdir"):
        assert name in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"accuracy {metrics['test_accuracy']:.4f}" in out

    evaluated = subprocess.run(
        [*_command(python_executable), "evaluate", str(run_dir), "--json"],
        env=_environment(data_dir), capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == metrics


def test_ctrl_c_checkpoints_and_exits_130(python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = _long_run(python_executable, data_dir, run_dir)
    try:
        _wait_for(run_dir / "checkpoints" / "ckpt-1.index", process)  # one epoch done
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Interrupted: finishing the current step" in err
    assert f"Resume with:\n  customkeras train --resume {run_dir}" in err
    completed = len(json.loads((run_dir / "history.json").read_text())["epoch"])
    assert (run_dir / "checkpoints" / f"ckpt-{completed}.index").is_file()
    # The display agrees with the message: as many whole epochs shown as it says; an epoch
    # cut short (if the Ctrl-C landed inside one) is shown as such, without val_ numbers.
    assert f"after {completed} complete epoch(s)" in err
    epochs = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert len([line for line in epochs if "cut short" not in line]) == completed
    assert all("val_" not in line for line in epochs if "cut short" in line)
    assert (run_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run_dir / "model.keras").exists()


def test_sigkill_mid_run_loses_at_most_the_current_epoch(python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = _long_run(python_executable, data_dir, run_dir)
    try:
        _wait_for(run_dir / "checkpoints" / "ckpt-2.index", process)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert (run_dir / "run.lock").is_file()  # left by the dead owner; it does not block
    checkpoints = sorted(int(p.name[5:-6]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
    completed = checkpoints[-1]
    before = json.loads((run_dir / "history.json").read_text())  # complete, parseable JSON
    assert completed - 1 <= len(before["epoch"]) <= completed

    # Resume in this process for one more epoch: the killed epoch is redone, nothing else.
    assert main(["train", "--resume", str(run_dir), "--epochs", str(completed + 1),
                 "--data-dir", str(data_dir), "--verbose", "0"]) == 0
    after = json.loads((run_dir / "history.json").read_text())
    assert after["epoch"] == list(range(1, completed + 2))
    assert after["loss"][: len(before["loss"])] == before["loss"]
    # Whatever the kill left half-written was removed; the lock was released.
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []
    assert not (run_dir / "run.lock").exists()
