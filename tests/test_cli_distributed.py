"""`customkeras train --strategy ...`: the option, multi-worker runs of the real command.

The multi-worker runs start two `customkeras train --strategy multi-worker` processes on
127.0.0.1 (free ports, a TF_CONFIG each, a time limit, always killed at the end) and
compare them with the same run in this process on one device.
"""

import json
import os
import pathlib
import subprocess

import keras
import numpy as np
import pytest
from distributed_helpers import Workers, free_ports, tf_config

from customkeras.cli import main

pytestmark = pytest.mark.data

RUN_FILES = {"model.keras", "metrics.json", "history.csv", "history.json",
             "learning_curves.png", "config.json", "manifest.json", "logs", "checkpoints"}
HOUSING = ["train", "housing", "--max-train-samples", "1000"]


def _json(path):
    return json.loads(pathlib.Path(path).read_text())


def _assert_same_model(run_dir, reference):
    ours = keras.saving.load_model(run_dir / "model.keras").get_weights()
    theirs = keras.saving.load_model(reference / "model.keras").get_weights()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def _assert_same_history(run_dir, reference):
    ours, theirs = _json(run_dir / "history.json"), _json(reference / "history.json")
    assert ours.keys() == theirs.keys()
    for key, values in theirs.items():
        # float32 rounding: val_loss is ~70 here (a few outliers in 1,000 samples); sums
        # over replicas in another order differ by ~1.5e-6 relative.
        np.testing.assert_allclose(ours[key], values, rtol=1e-5, atol=1e-5, err_msg=key)


def _command(python_executable):
    script = pathlib.Path(python_executable).parent / "customkeras"
    return [str(script)] if script.is_file() else [python_executable, "-m", "customkeras.cli"]


def _environment(data_dir):
    return dict(os.environ, CUSTOMKERAS_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")


def _workers(python_executable, data_dir, log_dir, *arguments):
    log_dir.mkdir(exist_ok=True)
    command = [*_command(python_executable), *arguments, "--strategy", "multi-worker",
               "--worker-timeout", "60"]
    return Workers(lambda index: command, 2, _environment(data_dir), log_dir)


def _run_to_the_end(python_executable, data_dir, log_dir, *arguments):
    """Runs both workers until they exit; returns their `(stdout, stderr)`."""
    with _workers(python_executable, data_dir, log_dir, *arguments) as workers:
        statuses = workers.wait_all(timeout=240)
        outputs = [workers.output(index) for index in range(2)]
    assert statuses == [0, 0], [err[-3000:] for _, err in outputs]
    return outputs


def _assert_same_as_one_process(run_dir, data_dir, epochs):
    """Compares a run with the same run, uninterrupted, on one device in this process."""
    reference = run_dir.parent / "reference"
    assert main([*HOUSING, "--epochs", str(epochs), "--output-dir", str(reference),
                 "--data-dir", str(data_dir), "--verbose", "0"]) == 0
    _assert_same_history(run_dir, reference)
    _assert_same_model(run_dir, reference)
    return reference


def test_strategy_is_recorded_and_may_change_on_resume(tmp_path, data_dir, capsys):
    default, mirrored = tmp_path / "default", tmp_path / "mirrored"
    common = [*HOUSING, "--data-dir", str(data_dir), "--epochs", "2", "--verbose", "0"]
    assert main([*common, "--output-dir", str(default)]) == 0
    assert main([*common, "--output-dir", str(mirrored), "--strategy", "mirrored",
                 "--epochs", "1"]) == 0
    assert _json(default / "config.json")["config"]["strategy"] == "default"
    assert _json(mirrored / "config.json")["config"]["strategy"] == "mirrored"
    capsys.readouterr()
    # Same results whatever the strategy: resume the mirrored run without one. Its
    # `--jit-compile auto` decided no XLA (a strategy) and the resumed run keeps that,
    # although here it would use XLA: it says so in one line.
    assert main(["train", "--resume", str(mirrored), "--epochs", "2", "--strategy", "default",
                 "--verbose", "0"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "XLA" in line]
    note = ("Note: --resume keeps this run's XLA decision (--jit-compile auto: no XLA), "
            "although this machine would use XLA (a CPU, no convolutions), so that its "
            "numbers do not change.")
    assert notes == [note], notes  # the train and test steps' decisions: one line
    assert _json(mirrored / "config.json")["config"]["strategy"] == "default"
    _assert_same_history(mirrored, default)
    _assert_same_model(mirrored, default)


@pytest.mark.parametrize("tf_config, expected", [
    (None, "needs the TF_CONFIG environment variable"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
     "index must be an integer from 0 to 0"),
])
def test_multi_worker_without_a_valid_tf_config_fails_clearly(
        tmp_path, monkeypatch, capsys, tf_config, expected):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    argv = [*HOUSING, "--strategy", "multi-worker", "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "customkeras train: error: --strategy multi-worker: " in err and expected in err
    assert not (tmp_path / "run").exists()
    assert main(argv[:-2]) == 2  # and every worker must be told the same --output-dir
    assert "--strategy multi-worker needs --output-dir" in capsys.readouterr().err


@pytest.mark.slow
def test_a_worker_whose_cluster_never_forms_gives_up_after_the_timeout(
        python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(_environment(data_dir), TF_CONFIG=tf_config(free_ports(2), 0))  # no worker 1
    done = subprocess.run(
        [*_command(python_executable), *HOUSING, "--strategy", "multi-worker",
         "--output-dir", str(run_dir), "--worker-timeout", "2"],
        env=env, capture_output=True, text=True, timeout=120)  # SIGKILL after 120 s
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Worker 0 of 2 (worker 0, 127.0.0.1:" in done.stderr
    assert "waiting up to 2 s for every worker in TF_CONFIG to start." in done.stderr
    assert not run_dir.exists()


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_only_the_chief_writes(
        python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    (chief_out, chief_err), (worker_out, _) = _run_to_the_end(
        python_executable, data_dir, tmp_path / "logs",
        *HOUSING, "--epochs", "2", "--output-dir", str(run_dir))
    assert "Worker 0 of 2 (worker 0, 127.0.0.1:" in chief_err
    # Without a terminal the chief prints a line per epoch; the other worker is quiet.
    assert "Run directory:" in chief_out and "Epoch 2/2" in chief_out
    assert "Worker finished: test loss" in worker_out and "Epoch" not in worker_out
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES  # nothing from worker 1
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index",
        "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert _json(run_dir / "config.json")["config"]["strategy"] == "multi-worker"

    reference = _assert_same_as_one_process(run_dir, data_dir, epochs=2)
    ours, theirs = _json(run_dir / "metrics.json"), _json(reference / "metrics.json")
    np.testing.assert_allclose([ours[k] for k in theirs], list(theirs.values()), atol=1e-5)


@pytest.mark.slow
def test_ctrl_c_on_one_worker_or_a_dead_worker_stop_the_run_and_resume_continues_it(
        python_executable, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    long_run = [*HOUSING, "--epochs", "1000", "--output-dir", str(run_dir)]

    # Ctrl-C in worker 1's terminal: both workers stop after the same step, save, exit 130.
    with _workers(python_executable, data_dir, tmp_path / "logs-1", *long_run) as workers:
        workers.wait_for_file(checkpoints / "ckpt-2.index", timeout=180)
        workers.interrupt(1)
        statuses = workers.wait_all(timeout=60)
        outputs = [workers.output(index) for index in range(2)]
    assert statuses == [130, 130], [err[-3000:] for _, err in outputs]
    assert "Interrupted: finishing the current step" in outputs[1][1]
    assert f"Resume with:\n  customkeras train --resume {run_dir}" in outputs[0][1]
    interrupted = len(_json(run_dir / "history.json")["epoch"])
    assert interrupted >= 2

    # Resumed, then worker 1 dies: the chief stops with a clear error within seconds
    # (closed connection, or missed heartbeats), far below --worker-timeout's 60 s.
    with _workers(python_executable, data_dir, tmp_path / "logs-2",
                  "train", "--resume", str(run_dir)) as workers:
        workers.wait_for_file(checkpoints / f"ckpt-{interrupted + 1}.index", timeout=180)
        workers.kill(1)
        status = workers.wait(0, timeout=45)
        _, err = workers.output(0)
    assert status == 1, err[-3000:]
    assert "customkeras train: error: the multi-worker run stopped: " in err
    assert f"customkeras train --resume {run_dir} --strategy multi-worker" in err
    before = _json(run_dir / "history.json")
    completed = len(before["epoch"])
    assert completed > interrupted

    # Both started again: they continue from the chief's last checkpoint, and the whole
    # run equals an uninterrupted one.
    epochs = completed + 1
    (chief_out, _), _ = _run_to_the_end(python_executable, data_dir, tmp_path / "logs-3",
                                        "train", "--resume", str(run_dir), "--epochs", str(epochs))
    assert f"Resuming {run_dir} after epoch {completed} of {epochs}." in chief_out
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert not [p for p in checkpoints.iterdir() if "workertemp" in p.name]
    after = _json(run_dir / "history.json")
    assert after["epoch"] == list(range(1, epochs + 1))
    assert after["loss"][:completed] == before["loss"]
    _assert_same_as_one_process(run_dir, data_dir, epochs)
