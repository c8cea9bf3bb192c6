"""The invariant: the same data, seed and configuration give the same bits, whatever the
machine's load and however the run is cut (calls, processes, a SIGKILL and a resume).

Each run is a fresh process (tests/reproducible_run.py: 2,000 steps with Dropout, the
Trainer's defaults, so XLA under `jit_compile="auto"` and the adaptive, clock-driven
`steps_per_execution`), compared bit for bit with an uninterrupted run.
"""

import contextlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
pytestmark = pytest.mark.slow


def run(tmp_path, name, *options, expect_kill=False):
    out = tmp_path / f"{name}.json"
    process = subprocess.run(
        [sys.executable, str(TESTS / "reproducible_run.py"), str(out), *options],
        capture_output=True, text=True, timeout=600, cwd=TESTS,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if expect_kill:
        assert process.returncode == -9, process.stderr[-3000:]
        assert not out.exists()
        return None
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(out.read_text())


@contextlib.contextmanager
def busy_processes(count):
    """`count` processes that busy-loop (every core loaded) until the block ends."""
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                 for _ in range(count)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """`uninterrupted(data)`: an uninterrupted run on a quiet machine (made once)."""
    made = {}

    def result(data):
        if data not in made:
            made[data] = run(tmp_path_factory.mktemp(f"uninterrupted-{data}"), "quiet",
                             "--data", data)
            assert len(made[data]["history"]["loss"]) == 16
            assert made[data]["xla"] == {"train": True, "test": True}  # auto, on a CPU
        return made[data]

    return result


def test_the_same_run_beside_busy_processes_gives_the_same_bits(uninterrupted, tmp_path):
    expected = uninterrupted("arrays")
    with busy_processes(2):  # both cores
        busy = run(tmp_path, "busy")
    assert busy == expected


@pytest.mark.parametrize("data", ["arrays", "dataset"])
def test_a_run_killed_mid_epoch_and_resumed_in_a_new_process_gives_the_same_bits(
        uninterrupted, data, tmp_path):
    checkpoints = str(tmp_path / "checkpoints")
    run(tmp_path, "killed", "--data", data, "--checkpoint", checkpoints,
        "--kill-in-epoch", "5", expect_kill=True)
    resumed = run(tmp_path, "resumed", "--data", data, "--checkpoint", checkpoints)
    assert resumed == uninterrupted(data)


def test_a_short_run_extended_in_a_new_process_gives_the_bits_of_the_long_one(
        uninterrupted, tmp_path):
    checkpoints = str(tmp_path / "checkpoints")
    run(tmp_path, "short", "--checkpoint", checkpoints, "--epochs", "2")
    extended = run(tmp_path, "extended", "--checkpoint", checkpoints)
    assert extended == uninterrupted("arrays")


def test_backup_and_restore_after_a_kill_gives_the_same_weights(uninterrupted, tmp_path):
    expected = uninterrupted("arrays")
    backup = str(tmp_path / "backup")
    run(tmp_path, "killed", "--backup", backup, "--kill-in-epoch", "9", expect_kill=True)
    resumed = run(tmp_path, "resumed", "--backup", backup)
    # Keras's callback keeps no history: this process ran epochs 10 to 16.
    assert resumed["weights"] == expected["weights"]
    assert resumed["history"] == {key: values[9:]
                                  for key, values in expected["history"].items()}


@pytest.mark.parametrize("data", ["dataset"])  # arrays: tests/test_training_fit_loop.py
def test_a_run_killed_after_a_step_checkpoint_resumes_mid_epoch_with_the_same_bits(
        uninterrupted, data, tmp_path):
    # `save_freq=50` of 125-step epochs: executions end at steps 50 and 100 too. The
    # kill comes at the first step of epoch 6, so the newest checkpoint is that of step
    # 100 of epoch 5: the resumed run starts there, mid-epoch (its running metrics and,
    # for tf.data, the iterator restored), and must replay nothing it saved.
    checkpoints = str(tmp_path / "checkpoints")
    run(tmp_path, "killed", "--data", data, "--checkpoint", checkpoints, "--save-freq", "50",
        "--kill-in-epoch", "5", expect_kill=True)
    assert "ckpt-4000000100.index" in os.listdir(os.path.join(checkpoints, "mid-epoch"))
    resumed = run(tmp_path, "resumed", "--data", data, "--checkpoint", checkpoints,
                  "--save-freq", "50")
    assert resumed == uninterrupted(data)
