"""`customkeras train fashion-mnist --input stream`, in fresh processes: a run killed with
SIGKILL in the middle of an epoch and resumed with `--resume` ends with the history, test
metrics and weights of the uninterrupted run, bit for bit (issue 24.5).

Each epoch's shuffle order is a function of `(seed, epoch)` (`stream_fashion_mnist(...,
epoch=)`), so the resumed epochs see the uninterrupted run's orders whatever the resumed
process did before them.
"""

import json
import signal
import time

import pytest
from test_cli_reproducibility import _assert_same_bits, _finish, _start

pytestmark = [pytest.mark.data, pytest.mark.slow]

EPOCHS = "4"
# 3,000 records, 94 steps of 32 per epoch: long enough for a kill to land mid-epoch.
OPTIONS = ("--input", "stream", "--max-train-samples", "3000", "--seed", "7")


def _kill_during_epoch(process, run_dir, completed):
    """SIGKILLs `process` once epoch `completed` is saved and the next one has started."""
    deadline = time.monotonic() + 600
    checkpoint = run_dir / "checkpoints" / f"ckpt-{completed}.index"
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"epoch {completed} never ended"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_a_stream_run_killed_and_resumed_gives_the_bits_of_one_run(python_executable,
                                                                   data_dir, tmp_path):
    reference = tmp_path / "uninterrupted"
    run_dir = tmp_path / "killed"
    uninterrupted = _start(python_executable, data_dir, "train", "fashion-mnist", *OPTIONS,
                           "--epochs", EPOCHS, "--output-dir", str(reference))
    _finish(uninterrupted)
    killed = _start(python_executable, data_dir, "train", "fashion-mnist", *OPTIONS,
                    "--epochs", EPOCHS, "--output-dir", str(run_dir))
    _kill_during_epoch(killed, run_dir, completed=2)
    out = _finish(_start(python_executable, data_dir, "train", "--resume", str(run_dir)))
    # Usually killed in epoch 3; on a busy machine epoch 3 may have been saved first.
    assert "after epoch 2 of 4" in out or "after epoch 3 of 4" in out, out
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["input"] == "stream" and config["max_train_samples"] == 3000
    assert json.loads((reference / "history.json").read_text())["epoch"] == [1, 2, 3, 4]
    _assert_same_bits(run_dir, reference)
