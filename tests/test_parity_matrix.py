"""The parity matrix (issue 20): every cell of the `Trainer` against Keras.

Cells: `fit` / `evaluate` / `predict` x data {NumPy arrays, `tf.data.Dataset`, Python
generator, `keras.utils.PyDataset`} x `jit_compile` {False, True, "auto"} x step {the
default step of a compiled model, a model's own `train_step` / `test_step` /
`predict_step` (the Keras guide's)} x strategy {none, `MirroredStrategy` over two
logical CPUs}: 144 cells, plus a Dropout row (the default step's `fit` on arrays and
tf.data, `jit_compile` False and True). Each cell runs a new model with the same
initial weights through Keras (`jit_compile=False`) and through a new `Trainer`, on
the same data (8 features -> Dense(16) -> Dense(3), 100 training samples in batches
of 32, so a smaller last batch, two epochs; evaluate and predict on 60 other samples),
and compares histories and weights, evaluation logs or predictions
(tests/parity_matrix_cells.py runs them).

* `jit_compile=False` must equal Keras to `PLAIN` (1e-5).
* XLA cells (True, and "auto" when it picks XLA) compute other floats than plain steps:
  they assert the keys and shapes, agreement to `XLA` (measured: see below), and that
  the cell run twice gives the same bits (fit: two new Trainers; evaluate / predict:
  twice through one Trainer, where a choice made from the steps run so far or from a
  clock would show).
* Under `MirroredStrategy` the Trainer runs without XLA whatever `jit_compile` says
  (XLA cannot wrap `strategy.run`), so every such cell must equal Keras (itself under
  the strategy) to `PLAIN`. All of them run in one subprocess
  (tests/parity_matrix_mirrored.py), started when this module's first test starts and
  shared by pytest-xdist workers; every cell is still a test of its own. A fit cell
  must also equal Keras on one device (the same global batches), and is an xfail when
  Keras's own run under the strategy disagrees with that (seen now and then for a
  generator, on a loaded machine): then the reference, not the Trainer, is off.
* Dropout: with `jit_compile=False` the Trainer's draws are Keras `fit`'s (same seed by
  `keras.utils.set_random_seed`): equal to `PLAIN`. Under XLA, TensorFlow's seeded
  random ops draw other numbers on CPU, so the cell asserts only that it is
  reproducible (equal bits twice) and finite.
"""

import fcntl
import functools
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from parity_matrix_cells import (
    DATA_KINDS,
    DROPOUT_DATA_KINDS,
    DROPOUT_JIT_MODES,
    ENTRIES,
    EPOCHS,
    JIT_MODES,
    STEP_KINDS,
    build,
    keras_cell,
    trainer_cell,
)

TESTS = pathlib.Path(__file__).resolve().parent

PLAIN = 1e-5
# Measured on these cells (TF 2.21, an AVX-512 x86-64 CPU), jit_compile=True and "auto"
# (XLA on a CPU since the deterministic policy): the largest difference from Keras was
# 3.0e-08 in fit (history and weights), 2.4e-07 in evaluate's logs and 2.4e-07 in
# predict's outputs (with Nadam instead of SGD, fit: 1.2e-07). Before XLA ran a ragged
# last super-batch step by step, fit on tf.data / PyDataset (4 batches an epoch) and
# evaluate differed by 0. The bounds allow a few float32 ulps of values ~1 (1.2e-07
# each), ~4x the largest measured: far below what a wrong batch, step or weight gives
# (> 1e-3 here).
XLA = {"fit": 1e-6, "evaluate": 1e-6, "predict": 1e-6}

pytestmark = pytest.mark.filterwarnings(
    # Keras says so when a finite generator ends an evaluate / predict pass.
    "ignore:Your input ran out of data")


def _jit_id(jit):
    return f"jit-{jit}"


# ---- comparisons --------------------------------------------------------------------------


def _assert_close(actual, expected, atol, name):
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{name}: not finite"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=name)


def _assert_same_structure(actual, expected, name):
    assert type(actual) is type(expected), name
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), name


@functools.cache
def _initial_weights(step_kind):
    return [np.asarray(w) for w in build(step_kind).get_weights()]


def assert_agree(entry, actual, expected, atol, step_kind):
    """A Trainer cell's result against Keras's, to `atol`."""
    assert actual["inputs_unchanged"], "the run changed the caller's arrays"
    if entry == "fit":
        assert sorted(actual["history"]) == sorted(expected["history"])
        for key, values in expected["history"].items():
            assert len(actual["history"][key]) == len(values) == EPOCHS, key
            _assert_close(actual["history"][key], values, atol, f"history {key}")
        assert len(actual["weights"]) == len(expected["weights"])
        for index, (a, e) in enumerate(zip(actual["weights"], expected["weights"])):
            _assert_close(a, e, atol, f"weight {index}")
        moved = max(np.max(np.abs(np.asarray(a) - b))
                    for a, b in zip(actual["weights"], _initial_weights(step_kind)))
        assert moved > 1e-3, "the weights did not train: the comparison would be vacuous"
    elif entry == "evaluate":
        _assert_same_structure(actual["logs"], expected["logs"], "logs")
        assert "loss" in expected["logs"] and "accuracy" in expected["logs"]
        for key, value in expected["logs"].items():
            _assert_close(actual["logs"][key], value, atol, f"logs {key}")
    else:
        actual, expected = actual["outputs"], expected["outputs"]
        _assert_same_structure(actual, expected, "outputs")
        if isinstance(expected, dict):  # the model's own predict_step returns a dict
            for key, value in expected.items():
                _assert_close(actual[key], value, atol, f"outputs {key}")
        else:
            _assert_close(actual, expected, atol, "outputs")


def assert_reproduced(entry, run, again=None):
    """The same cell gave the same bits twice (evaluate / predict: the run's `again`)."""
    if entry == "fit":
        assert run == again  # JSON-able floats: == compares the float32 bits exactly
    else:
        key = "logs" if entry == "evaluate" else "outputs"
        assert run[key] == run["again"]


# ---- cells without a strategy -------------------------------------------------------------


@functools.cache
def _keras(entry, data_kind, step_kind, dropout=False):
    return keras_cell(entry, data_kind, step_kind, dropout=dropout)


@functools.cache
def _trainer(entry, data_kind, step_kind, jit, dropout=False, repeat=0):
    return trainer_cell(entry, data_kind, step_kind, jit, dropout=dropout, twice=True)


@pytest.mark.parametrize("step_kind", STEP_KINDS)
@pytest.mark.parametrize("jit", JIT_MODES, ids=_jit_id)
@pytest.mark.parametrize("data_kind", DATA_KINDS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_cell(entry, data_kind, jit, step_kind):
    expected = _keras(entry, data_kind, step_kind)
    run = _trainer(entry, data_kind, step_kind, jit)
    assert_agree(entry, run, expected, PLAIN if jit is False else XLA[entry], step_kind)
    if jit is not False:
        again = _trainer(entry, data_kind, step_kind, jit, repeat=1) if entry == "fit" else None
        assert_reproduced(entry, run, again)


@pytest.mark.parametrize("jit", DROPOUT_JIT_MODES, ids=_jit_id)
@pytest.mark.parametrize("data_kind", DROPOUT_DATA_KINDS)
def test_dropout_cell(data_kind, jit):
    run = _trainer("fit", data_kind, "default", jit, dropout=True)
    if jit is False:
        assert_agree("fit", run, _keras("fit", data_kind, "default", dropout=True), PLAIN,
                     "default")
    else:
        again = _trainer("fit", data_kind, "default", jit, dropout=True, repeat=1)
        assert_reproduced("fit", run, again)
        assert run["inputs_unchanged"]
        values = [run["history"][key] for key in run["history"]] + run["weights"]
        assert all(np.all(np.isfinite(np.asarray(v))) for v in values)
        assert sorted(run["history"]) == ["accuracy", "loss"]


# ---- MirroredStrategy cells, from one subprocess --------------------------------------------


class MirroredRun:
    """The subprocess that runs every MirroredStrategy cell, started once per session.

    Under pytest-xdist the workers share a directory (their base temporary directory's
    parent, one per session): the first to start the run launches it, and every worker
    reads its result file. A thread of the launching worker records the exit code, so a
    run that dies without a result fails the tests at once rather than at a timeout.
    """

    def __init__(self, directory):
        self.result = directory / "parity_matrix_mirrored.json"
        self.log = directory / "parity_matrix_mirrored.log"
        self.exit = directory / "parity_matrix_mirrored.exit"
        self.started = directory / "parity_matrix_mirrored.started"
        self.lock = directory / "parity_matrix_mirrored.lock"
        self.process = None
        self._results = None

    def start(self, python):
        with open(self.lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.started.exists():
                return
            self.started.touch()
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
                [str(TESTS), os.environ.get("PYTHONPATH", "")]))
            with open(self.log, "w") as log:
                self.process = subprocess.Popen(
                    [python, str(TESTS / "parity_matrix_mirrored.py"), str(self.result)],
                    stdout=log, stderr=subprocess.STDOUT, env=env)
            threading.Thread(target=self._record_exit, daemon=True).start()

    def _record_exit(self):
        self.exit.write_text(str(self.process.wait()))

    def results(self, timeout=550):
        """The subprocess's results (waits for them)."""
        if self._results is None:
            deadline = time.monotonic() + timeout
            while not self.result.exists():
                if self.exit.exists() and not self.result.exists():
                    pytest.fail(f"the MirroredStrategy run exited with {self.exit.read_text()} "
                                f"and no result:\n{self.log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no MirroredStrategy result after {timeout} s")
                time.sleep(0.2)
            self._results = json.loads(self.result.read_text())
        if "error" in self._results:
            pytest.fail(f"the MirroredStrategy run failed:\n{self._results['error']}")
        return self._results

    def close(self):
        if self.process is not None:
            self.process.wait(timeout=600)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    directory = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        directory = directory.parent  # shared by this session's workers
    run = MirroredRun(directory)
    yield run
    run.close()


@pytest.fixture(scope="module", autouse=True)
def _start_mirrored_run(request, mirrored_run):
    # Started with the module's first test, the subprocess runs beside the other cells.
    if any(item.originalname == "test_mirrored_cell" for item in request.session.items):
        mirrored_run.start(sys.executable)


@pytest.mark.parametrize("step_kind", STEP_KINDS)
@pytest.mark.parametrize("jit", JIT_MODES, ids=_jit_id)
@pytest.mark.parametrize("data_kind", DATA_KINDS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_mirrored_cell(mirrored_run, entry, data_kind, jit, step_kind):
    results = mirrored_run.results()
    assert results["replicas"] == 2
    runs = results["cells"][f"{entry}|{data_kind}|{step_kind}"]
    run, expected = runs[str(jit)], runs["keras"]
    if entry == "fit":
        # Two replicas train as one device on the same global batches: Keras on one
        # device is a reference too, and checks Keras's own run under the strategy.
        single = _keras("fit", data_kind, step_kind)
        if step_kind == "own":
            # The guide's step logs what `compute_loss` returns, which Keras divides by
            # the number of replicas under a strategy (keras/src/losses/loss.py,
            # scale_loss_for_distribution): Keras fit logs half the loss on two.
            history = dict(single["history"])
            history["loss"] = [v / results["replicas"] for v in history["loss"]]
            single = dict(single, history=history)
        assert_agree(entry, run, single, PLAIN, step_kind)
        if not _agree(expected, single):
            pytest.xfail(
                "Keras fit under MirroredStrategy disagrees with Keras fit on one device "
                f"(history {expected['history']} vs {single['history']}), and with the "
                "Trainer, which equals the one-device run. Seen for a generator's fit in "
                "the subprocess after the other fit cells (accuracy 0.3046875 = 39/128: "
                "its first epoch had four batches of 32, as if an iterator made before "
                "training had prefetched batches 3 and 4 from the generator); timing-"
                "dependent: not seen with a batch callback, nor alone in a new process")
    # No XLA under a strategy, whatever `jit_compile` says: every cell is plain.
    assert_agree(entry, run, expected, PLAIN, step_kind)
    if entry != "fit":
        assert_reproduced(entry, run)


def _agree(run, expected):
    return all(np.allclose(run[key][name], values, rtol=0, atol=PLAIN)
               for key in ("history",) for name, values in expected[key].items()) and all(
        np.allclose(a, b, rtol=0, atol=PLAIN)
        for a, b in zip(run["weights"], expected["weights"]))
