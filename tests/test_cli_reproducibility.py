"""The README's main command, `customkeras train fashion-mnist` (5 epochs of 1,719 steps,
`--jit-compile auto`: XLA), in fresh processes: run twice at once it gives the same bits,
and a run made of a 2-epoch run, an extension to 5 epochs killed with SIGKILL mid-way,
and a `--resume`, ends with the bits of the uninterrupted run.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import time

import keras
import numpy as np
import pytest

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _command(python_executable, *arguments):
    script = pathlib.Path(python_executable).parent / "customkeras"
    head = [str(script)] if script.is_file() else [python_executable, "-m", "customkeras.cli"]
    return [*head, *arguments, "--verbose", "0"]


def _start(python_executable, data_dir, *arguments):
    environment = {**os.environ, "CUSTOMKERAS_DATA_DIR": str(data_dir),
                   "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(_command(python_executable, *arguments), env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=900):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


def _kill_when(process, ready, never, timeout=600):
    """SIGKILLs `process` as soon as `ready()` holds (a crash at that point)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, never
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _results(run_dir):
    weights = keras.saving.load_model(run_dir / "model.keras").get_weights()
    return (json.loads((run_dir / "history.json").read_text()),
            json.loads((run_dir / "metrics.json").read_text()), weights)


def _assert_same_bits(run_dir, reference):
    history, metrics, weights = _results(run_dir)
    expected_history, expected_metrics, expected_weights = _results(reference)
    assert history == expected_history
    assert metrics == expected_metrics
    for ours, theirs in zip(weights, expected_weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.fixture(scope="module")
def readme_runs(python_executable, data_dir, tmp_path_factory):
    """The README's command run twice, at the same time (each beside a busy process)."""
    root = tmp_path_factory.mktemp("readme")
    processes = [_start(python_executable, data_dir, "train", "fashion-mnist",
                        "--output-dir", str(root / name)) for name in ("first", "second")]
    for process in processes:
        _finish(process)
    return root / "first", root / "second"


def test_the_readme_command_twice_gives_the_same_bits(readme_runs):
    first, second = readme_runs
    config = json.loads((first / "config.json").read_text())["config"]
    assert config["jit_compile"] == "auto" and config["epochs"] == 5
    _assert_same_bits(second, first)


def test_the_readme_shows_what_its_command_prints(readme_runs):
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = re.findall(r"^Epoch (\d)/5 - 1719/1719 - .*? - loss: ([\d.]+) - accuracy: ([\d.]+) - "
                       r"val_loss: ([\d.]+) - val_accuracy: ([\d.]+)$", readme, re.MULTILINE)
    assert [int(row[0]) for row in shown] == [1, 2, 3, 4, 5]
    history, metrics, _ = _results(readme_runs[0])
    for epoch, *values in shown:
        for key, value in zip(("loss", "accuracy", "val_loss", "val_accuracy"), values):
            assert f"{history[key][int(epoch) - 1]:.4f}" == value, (epoch, key)
    test = re.search(r"Test results after 5 epoch\(s\): loss ([\d.]+)  accuracy ([\d.]+)", readme)
    assert (f"{metrics['test_loss']:.4f}", f"{metrics['test_accuracy']:.4f}") == test.groups()


def test_two_epochs_extended_killed_and_resumed_give_the_bits_of_one_run(
        readme_runs, python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    _finish(_start(python_executable, data_dir, "train", "fashion-mnist", "--epochs", "2",
                   "--output-dir", str(run_dir)))
    extension = _start(python_executable, data_dir, "train", "--resume", str(run_dir),
                       "--epochs", "5")
    _kill_when(extension, lambda: (run_dir / "checkpoints" / "ckpt-3.index").exists(),
               "epoch 3 never ended")
    out = _finish(_start(python_executable, data_dir, "train", "--resume", str(run_dir),
                         "--epochs", "5"))
    assert "Resuming" in out
    _assert_same_bits(run_dir, readme_runs[0])


def _mid_epoch_saves(run_dir):
    """The numbers (epoch * 10**9 + step) of the run's mid-epoch checkpoints."""
    return [int(path.name[len("ckpt-"):-len(".index")])
            for path in (run_dir / "checkpoints" / "mid-epoch").glob("ckpt-*.index")]


def test_a_time_budget_and_a_kill_after_a_step_checkpoint_resume_to_the_same_bits(
        readme_runs, python_executable, data_dir, tmp_path):
    # --checkpoint-every and --validate-every end executions at their multiples and
    # --max-time stops at the next boundary: none changes a number.
    run_dir = tmp_path / "run"
    process = _start(python_executable, data_dir, "train", "fashion-mnist",
                     "--checkpoint-every", "500", "--validate-every", "800",
                     "--max-time", "4", "--output-dir", str(run_dir))
    _, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    assert "Time budget (--max-time 4 s) reached" in err
    assert f"customkeras train --resume {run_dir}" in err
    assert _mid_epoch_saves(run_dir), "no mid-epoch checkpoint before the budget ran out"
    resumed = _start(python_executable, data_dir, "train", "--resume", str(run_dir))
    _kill_when(resumed, lambda: any(n >= 2 * 10**9 for n in _mid_epoch_saves(run_dir)),
               "epoch 3 never reached a step checkpoint")
    _finish(_start(python_executable, data_dir, "train", "--resume", str(run_dir)))
    _assert_same_bits(run_dir, readme_runs[0])
