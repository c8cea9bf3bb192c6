"""`jit_compile="auto"`'s decisions travel with the run (`xla_choice`): a run resumed on a
machine that would decide otherwise keeps the run's decision, and its bits.

The device is played through the policy's device fact (`XlaChoice.accelerator`, set by
`xla_record_run.PlayDevice`); the model has a convolution (plain on a CPU, XLA on a
GPU) and `Dropout`, so that the two decisions give other bits.
"""

import json
import os
import pathlib
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from xla_record_run import StopAt, X, Y, model, run

from customkeras.training import Trainer, XlaDecisionWarning
from customkeras.training.run import RunCheckpoint
from customkeras.training.run.callbacks import MID_EPOCH_DIR
from customkeras.training.xla_choice import XlaChoice

TESTS = pathlib.Path(__file__).resolve().parent


def _resume_in_a_fresh_process(directory, tmp_path, device, jit_compile="auto", epochs=2):
    """Runs `xla_record_run.py` in a new process; returns `(weights, its JSON report)`."""
    output = tmp_path / "weights.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(TESTS / "xla_record_run.py"), str(directory), str(epochs),
         device, jit_compile, "0", str(output)],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(output) as saved:
        weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    return weights, json.loads(done.stdout.strip().splitlines()[-1])


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _recorded(prefix):
    """The XLA decisions a checkpoint holds, read from its files."""
    value = tf.train.load_checkpoint(os.fspath(prefix)).get_tensor(
        "xla_decisions/.ATTRIBUTES/VARIABLE_VALUE")
    return json.loads(value.decode("utf-8"))


def test_a_run_started_on_a_gpu_and_resumed_on_a_cpu_keeps_xla_and_its_bits(tmp_path):
    uninterrupted, trainer, _ = run(None, 2, "gpu")
    assert trainer.xla_decisions["train"] == (True, "auto: a GPU or TPU")
    on_a_cpu, trainer, _ = run(None, 2, "cpu")
    assert not trainer.xla_decisions["train"][0]
    assert not _same(uninterrupted, on_a_cpu), "the decisions must give other bits"

    run(tmp_path / "ckpt", 1, "gpu")  # one epoch on the GPU machine
    assert _recorded(tmp_path / "ckpt" / "ckpt-1") == {"train": True}
    assert _recorded(tmp_path / "ckpt" / "ckpt-0") == {}  # saved before any step
    resumed, report = _resume_in_a_fresh_process(tmp_path / "ckpt", tmp_path, "cpu")
    assert _same(resumed, uninterrupted)
    xla, reason = report["decisions"]["train"]
    assert xla and reason == "auto: recorded by the resumed run (here: convolutions on a " \
                             "CPU (Conv2D))", reason
    [message] = report["warnings"]
    assert ("recorded XLA for its train steps" in message
            and "this machine would use no XLA (convolutions on a CPU" in message), message
    assert _recorded(tmp_path / "ckpt" / "ckpt-2") == {"train": True}  # and again


def test_a_run_stopped_mid_epoch_on_a_cpu_resumed_on_a_gpu_keeps_its_bits(tmp_path):
    uninterrupted, _, _ = run(None, 2, "cpu")
    stop = StopAt(3)
    _, trainer, _ = run(tmp_path, 2, "cpu", callbacks=[stop])
    assert trainer.xla_decisions["train"][0] is False
    [position] = [p for p in (tmp_path / MID_EPOCH_DIR).glob("ckpt-*.index")]
    assert _recorded(str(position)[:-len(".index")]) == {"train": False}

    resumed, report = _resume_in_a_fresh_process(tmp_path, tmp_path, "gpu")
    assert _same(resumed, uninterrupted)
    expected = "auto: recorded by the resumed run (here: a GPU or TPU)"
    assert report["decisions"]["train"] == [False, expected]
    [message] = report["warnings"]
    assert "recorded no XLA for its train steps" in message and \
        "this machine would use XLA (a GPU or TPU)" in message, message


def test_an_explicit_jit_compile_decides_alone_and_records_nothing(tmp_path):
    run(tmp_path / "auto", 1, "gpu")
    _, trainer, messages = run(tmp_path / "auto", 2, "cpu", jit_compile=False)
    assert trainer.xla_decisions["train"] == (False, "jit_compile=False")
    assert not messages
    _, trainer, messages = run(tmp_path / "explicit", 1, "gpu", jit_compile=False)
    assert _recorded(tmp_path / "explicit" / "ckpt-1") == {}
    # Nothing recorded: "auto" decides on this machine, silently.
    _, trainer, messages = run(tmp_path / "explicit", 2, "cpu")
    assert trainer.xla_decisions["train"] == (False, "auto: convolutions on a CPU (Conv2D)")
    assert not messages


class CrashAt(keras.callbacks.Callback):
    """Raises after `step` steps of epoch `epoch`, as a killed process stops (no
    `on_train_end`, which would delete `BackupAndRestore`'s backup)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.crash_epoch, self.step, self.epoch = epoch, step, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.crash_epoch and batch + 1 >= self.step:
            raise RuntimeError("crash")


def test_backup_and_restore_records_the_decision_and_a_rerun_adopts_it(tmp_path):
    uninterrupted, _, _ = run(None, 2, "gpu")
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=2)
    with pytest.raises(RuntimeError, match="crash"):
        run(None, 2, "gpu", callbacks=[backup, CrashAt(1, 3)])
    with open(tmp_path / "customkeras_position.json") as f:
        position = json.load(f)
    assert position["xla"] == {"train": True} and (position["epoch"], position["step"]) == (1, 2)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=2)
    resumed, trainer, messages = run(None, 2, "cpu", callbacks=[backup])
    assert trainer.xla_decisions["train"][0] is True
    assert len(messages) == 1 and "recorded XLA for its train steps" in messages[0]
    assert _same(resumed, uninterrupted)


def test_a_checkpoint_written_before_the_record_still_restores(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint = RunCheckpoint(tmp_path, model)
    checkpoint._checkpoint_without_xla.write(os.fspath(tmp_path / "ckpt-1"))
    restored = RunCheckpoint(tmp_path, model).restore()
    assert restored.completed_epochs == 0 and restored.xla == {}


def test_the_policy_adopts_a_recorded_decision_and_says_where_it_cannot():
    choice = XlaChoice("auto", allowed=True, accelerator=False)
    choice.adopt({"train": True, "test": False})
    assert choice.recorded() == {"train": True, "test": False}  # before any pass
    with pytest.warns(XlaDecisionWarning, match="recorded XLA for its train steps") as caught:
        assert choice.for_pass("train", lambda: ["Conv2D"]) is True
    [warning] = [w.message for w in caught]
    assert (warning.kind, warning.recorded, warning.used, warning.reason) == (
        "train", True, False, "convolutions on a CPU (Conv2D)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same decision as here: no warning
        assert choice.for_pass("test", lambda: ["Conv2D"]) is False
    # XLA cannot run here (a strategy): the recorded True cannot be kept.
    choice = XlaChoice("auto", allowed=False, accelerator=True)
    choice.adopt({"train": True})
    with pytest.warns(XlaDecisionWarning, match="they run without XLA"):
        assert choice.for_pass("train", list) is False
    assert choice.recorded() == {"train": False}
    # An explicit value ignores a record; a step XLA could not compile records False.
    choice = XlaChoice(True, allowed=True, accelerator=False)
    choice.adopt({"train": False})
    assert choice.for_pass("train", list) is True and choice.recorded() == {}
    choice = XlaChoice("auto", allowed=True, accelerator=True)
    assert choice.for_pass("train", list) is True
    choice.compile_failed("train")
    assert choice.recorded() == {"train": False}
    with pytest.raises(TypeError, match="train='yes'"):
        choice.adopt({"train": "yes"})


def test_a_trainer_evaluating_a_restored_run_adopts_its_decisions():
    trainer = Trainer(model(), "sparse_categorical_crossentropy", "adam")
    trainer.adopt_xla({"test": True})  # before the engine exists, as the CLI does
    with pytest.warns(XlaDecisionWarning, match="recorded XLA for its test steps"):
        trainer.evaluate(X, Y, batch_size=32, verbose=0)
    assert trainer.xla_decisions["test"][0] is True
