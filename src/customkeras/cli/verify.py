"""`customkeras verify`: the chapter's own checks, run against the installed components.

Each check compares a customkeras component with a reference (a Keras built-in, NumPy
in float64, or the chapter's hand-computed figures) and the command prints one row per
check; any failure makes the exit status 1.

Exercise 12c compares the layer normalizations on the California-housing training set,
as the chapter does. When that data cannot be loaded, verify says so and makes the same
comparison on a stand-in of the same shape (log-normal features with the housing set's
wide range of scales), so the install can still be verified offline: the data's absence
is reported, not counted as a failure of the components.

`--backend jax` (or `torch`, `tensorflow`) runs the checks on that Keras backend. Keras
picks its backend once per process, so verify runs them in a child Python process with
`KERAS_BACKEND` set and prints its results. The autodiff checks are TensorFlow-only
(`customkeras.autodiff`) and run on TensorFlow only; on another backend the table says so.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable

import keras
import numpy as np

from customkeras import _backend, activations, datasets, layers, losses, metrics, optimizers

if _backend.backend() == "tensorflow":  # autodiff is TensorFlow-only (see run_checks)
    from customkeras import autodiff

EXIT_FAILED = 1
# A child running the checks on another backend: imports, traces and runs ~10 checks.
CHILD_TIMEOUT_SECONDS = 900
# The child runs this file's code, not `customkeras.cli` (whose `train` command imports
# the TensorFlow-only customkeras.training).
_CHILD_CODE = ("import runpy, sys; path = sys.argv[1]; sys.argv = sys.argv[1:]; "
               "runpy.run_path(path, run_name='__main__')")


@dataclasses.dataclass
class Check:
    """One verified behaviour: what was measured, what was expected, and whether it held."""

    name: str
    measured: str
    expected: str
    passed: bool
    note: str = ""


def _numpy(x) -> np.ndarray:
    # convert_to_numpy also reads tensors that PyTorch keeps for autograd.
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(_numpy(a) - _numpy(b))))


def _tolerance_check(name: str, difference: float, tolerance: float, note: str = "") -> Check:
    return Check(name, f"max |diff| {difference:.2e}", f"<= {tolerance:.0e}",
                 bool(difference <= tolerance), note)


def _housing_training_set(data_dir: str | None) -> tuple[np.ndarray, str]:
    try:
        (x_train, _), _, _ = datasets.load_california_housing(data_dir, scale=False)
        return x_train.astype(np.float32), (f"12c input: the housing training set "
                                            f"({x_train.shape[0]} x {x_train.shape[1]}, "
                                            "unscaled, as in the chapter)")
    except datasets.DatasetError as error:
        first_line = str(error).splitlines()[0]
        rng = np.random.default_rng(42)
        scales = np.array([3.9, 28.6, 5.4, 1.1, 1425.5, 3.1, 35.6, 119.6], dtype=np.float32)
        stand_in = rng.lognormal(0.0, 0.5, size=(11610, 8)).astype(np.float32) * scales
        return stand_in, (f"housing data unavailable ({first_line}); used a stand-in of the "
                          "same shape; set CUSTOMKERAS_DATA_DIR or --data-dir to use the data")


def check_layer_normalization(x: np.ndarray, note: str) -> list[Check]:
    """Exercise 12c: custom vs Keras LayerNormalization, default then random alpha/beta."""
    custom = layers.LayerNormalization()
    reference = keras.layers.LayerNormalization()
    rows = [_tolerance_check("12c LayerNormalization vs Keras (alpha=1, beta=0)",
                             _max_abs(custom(x), reference(x)), 1e-5, note)]
    rng = np.random.default_rng(42)
    alpha, beta = rng.random(x.shape[-1]), rng.random(x.shape[-1])
    custom.set_weights([alpha, beta])
    reference.set_weights([alpha, beta])
    rows.append(_tolerance_check("12c LayerNormalization vs Keras (random alpha, beta)",
                                 _max_abs(custom(x), reference(x)), 1e-5, note))
    return rows


def check_huber() -> list[Check]:
    """HuberLoss, create_huber and huber_fn vs keras.losses.Huber; HuberMetric's 14 then 7."""
    rng = np.random.default_rng(0)
    y_true = rng.normal(0, 3, (256, 4)).astype(np.float32)
    y_pred = rng.normal(0, 3, (256, 4)).astype(np.float32)
    worst = 0.0
    for threshold in (0.5, 1.0, 2.0):
        expected = keras.losses.Huber(delta=threshold)(y_true, y_pred)
        worst = max(worst, _max_abs(losses.HuberLoss(threshold)(y_true, y_pred), expected),
                    _max_abs(keras.ops.mean(losses.create_huber(threshold)(y_true, y_pred)),
                             expected))
    worst = max(worst, _max_abs(keras.ops.mean(losses.huber_fn(y_true, y_pred)),
                                keras.losses.Huber(delta=1.0)(y_true, y_pred)))
    rows = [_tolerance_check("Huber loss vs keras.losses.Huber (thresholds 0.5, 1, 2)",
                             worst, 1e-5)]
    metric = metrics.HuberMetric(2.0)
    metric.update_state([[2.0]], [[10.0]])
    first = float(metric.result())
    metric.update_state([[0.0], [5.0]], [[1.0], [9.25]])
    second = float(metric.result())
    rows.append(Check("HuberMetric streaming mean (chapter: 14, then 7)",
                      f"{first:g}, then {second:g}", "14, then 7",
                      abs(first - 14) < 1e-5 and abs(second - 7) < 1e-5))
    return rows


def check_momentum_sgd() -> list[Check]:
    """MomentumSGD vs keras.optimizers.SGD, step by step, with and without Nesterov."""
    rows = []
    for nesterov in (False, True):
        start = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
        ours, theirs = keras.Variable(start), keras.Variable(start)
        custom = optimizers.MomentumSGD(0.05, momentum=0.9, nesterov=nesterov)
        reference = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=nesterov)
        worst = 0.0
        for step in range(10):
            gradient = keras.ops.convert_to_tensor(
                np.random.default_rng(step).normal(size=(5, 3)).astype(np.float32))
            custom.apply_gradients([(gradient, ours)])
            reference.apply_gradients([(gradient, theirs)])
            worst = max(worst, _max_abs(ours, theirs))
        rows.append(_tolerance_check(
            f"MomentumSGD vs SGD(momentum=0.9, nesterov={nesterov}), 10 steps", worst, 1e-6))
    return rows


def check_softplus() -> list[Check]:
    """softplus and its gradient: finite at +-1e3, +-1e30, equal to a float64 reference."""
    points = np.array([-1e30, -1e3, -20.0, -1.0, 0.0, 1.0, 20.0, 1e3, 1e30], dtype=np.float32)
    # The backend's own autodiff (tf.GradientTape, jax.grad, torch.autograd).
    value, gradient = _backend.gradient_of_sum(activations.softplus, points)
    exact = np.logaddexp(0.0, points.astype(np.float64))
    exact_gradient = 0.5 * (1 + np.tanh(points.astype(np.float64) / 2))  # sigmoid, no overflow
    finite = bool(np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)))
    relative = float(np.max(np.abs(value - exact) / np.maximum(np.abs(exact), 1e-30)))
    gradient_error = _max_abs(gradient, exact_gradient)
    return [Check("softplus stable at +-1e3, +-1e30 (value, gradient vs float64)",
                  f"finite={finite}, rel. err {relative:.1e}, grad err {gradient_error:.1e}",
                  "finite, <= 1e-6, <= 1e-6",
                  finite and relative <= 1e-6 and gradient_error <= 1e-6)]


def check_autodiff() -> list[Check]:
    """The chapter's figures for f(w1, w2) = 3 w1^2 + 2 w1 w2 at (5, 3)."""
    def f(w1, w2):
        return 3 * w1 ** 2 + 2 * w1 * w2

    import tensorflow as tf

    at = [tf.Variable(5.0), tf.Variable(3.0)]
    grads = [float(g) for g in autodiff.gradients(f, at)]
    hessian = np.array([[float(h) for h in row] for row in autodiff.hessians(f, at)])
    numerical = [float(g) for g in autodiff.numerical_gradients(f, [5.0, 3.0])]
    return [
        Check("autodiff gradients of 3w1^2 + 2w1w2 at (5, 3)", f"{grads}", "[36.0, 10.0]",
              _max_abs(grads, [36, 10]) <= 1e-5),
        Check("autodiff Hessian at (5, 3)", f"{hessian.tolist()}", "[[6, 2], [2, 0]]",
              _max_abs(hessian, [[6, 2], [2, 0]]) <= 1e-5),
        Check("finite-difference gradients at (5, 3)", f"[{numerical[0]:.5f}, {numerical[1]:.5f}]",
              "[36, 10] +- 1e-4", _max_abs(numerical, [36, 10]) <= 1e-4),
    ]


def run_checks(data_dir: str | None = None) -> list[Check]:
    """Runs every check on this process's Keras backend.

    A check that raises is reported as failed, not as a crash. The autodiff checks run
    on TensorFlow only (`customkeras.autodiff` is TensorFlow-only).
    """
    x, note = _housing_training_set(data_dir)
    groups: list[tuple[str, Callable[[], list[Check]]]] = [
        ("12c LayerNormalization", lambda: check_layer_normalization(x, note)),
        ("Huber loss and metric", check_huber),
        ("MomentumSGD", check_momentum_sgd),
        ("softplus", check_softplus),
    ]
    if _backend.backend() == "tensorflow":
        groups.append(("autodiff", check_autodiff))
    results = []
    for name, check in groups:
        try:
            results.extend(check())
        except Exception as error:  # noqa: BLE001 - report every broken component, go on
            results.append(Check(name, f"raised {type(error).__name__}: {error}", "no error",
                                 False))
    return results


def run_checks_on(backend: str, data_dir: str | None = None) -> list[Check]:
    """Runs the checks on a Keras `backend`: here if it is this process's, else in a child.

    Raises:
        CommandError: the backend's package is not installed, or the child failed
            without reporting its checks.
    """
    # Here, not at the top: the child runs this file without the customkeras.cli package.
    from customkeras.cli.errors import CommandError

    if backend == _backend.backend():
        return run_checks(data_dir)
    package = _backend.BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        raise CommandError(f"the {backend} backend needs the `{package}` package, which is "
                           f"not installed here: pip install {package}", EXIT_FAILED)
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = [sys.executable, "-c", _CHILD_CODE, os.path.abspath(__file__), data_dir or ""]
    try:
        child = subprocess.run(command, capture_output=True, text=True, env=env,
                               timeout=CHILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise CommandError(f"the checks on the {backend} backend did not finish within "
                           f"{CHILD_TIMEOUT_SECONDS} s", EXIT_FAILED) from error
    try:
        rows = json.loads(child.stdout.strip().splitlines()[-1])
        return [Check(**row) for row in rows]
    except (IndexError, ValueError, TypeError) as error:
        stderr = "\n".join(child.stderr.strip().splitlines()[-8:])
        raise CommandError(f"the checks on the {backend} backend failed to run (exit status "
                           f"{child.returncode}):\n{stderr}", EXIT_FAILED) from error


def format_table(checks: list[Check], backend: str | None = None) -> str:
    """A plain-text table: check, measured, expected, PASS/FAIL, then notes."""
    backend = backend or _backend.backend()
    headers = ("check", "measured", "expected", "result")
    rows = [(c.name, c.measured, c.expected, "PASS" if c.passed else "FAIL") for c in checks]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(4)]
    lines = [f"Keras backend: {backend}"]
    lines.extend("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip()
                 for row in [headers, tuple("-" * w for w in widths), *rows])
    notes = sorted({c.note for c in checks if c.note})
    if backend != "tensorflow":
        notes.append("the autodiff checks (customkeras.autodiff) are TensorFlow-only: "
                     "run `customkeras verify --backend tensorflow` for them")
    lines.extend(f"note: {note}" for note in notes)
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    """Runs `customkeras verify`; returns 0 if every check passed, 1 otherwise.

    Its options are defined in `customkeras.cli.verify_command`, which imports this
    module only to run it (this one imports Keras).
    """
    backend = args.backend or _backend.backend()
    checks = run_checks_on(backend, args.data_dir)
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        print(format_table(checks, backend))
    return 0 if all(c.passed for c in checks) else EXIT_FAILED


if __name__ == "__main__":
    # The child of `verify --backend B` (see run_checks_on): argv[1] is the data dir.
    print(json.dumps([dataclasses.asdict(c) for c in run_checks(sys.argv[1] or None)]))
