"""`customkeras verify`: the chapter's own checks, run against the installed components.

Each check compares a customkeras component with a reference (a Keras built-in, NumPy
in float64, or the chapter's hand-computed figures) and the command prints one row per
check; any failure makes the exit status 1.

Exercise 12c compares the layer normalizations on the California-housing training set,
as the chapter does. When that data cannot be loaded, verify says so and makes the same
comparison on a stand-in of the same shape (log-normal features with the housing set's
wide range of scales), so the install can still be verified offline: the data's absence
is reported, not counted as a failure of the components.
"""

import argparse
import dataclasses
import json
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from customkeras import activations, autodiff, datasets, layers, losses, metrics, optimizers

EXIT_FAILED = 1


@dataclasses.dataclass
class Check:
    """One verified behaviour: what was measured, what was expected, and whether it held."""

    name: str
    measured: str
    expected: str
    passed: bool
    note: str = ""


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


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
                    _max_abs(np.mean(losses.create_huber(threshold)(y_true, y_pred)), expected))
    worst = max(worst, _max_abs(np.mean(losses.huber_fn(y_true, y_pred)),
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
            gradient = np.random.default_rng(step).normal(size=(5, 3)).astype(np.float32)
            custom.apply_gradients([(gradient, ours)])
            reference.apply_gradients([(gradient, theirs)])
            worst = max(worst, _max_abs(ours, theirs))
        rows.append(_tolerance_check(
            f"MomentumSGD vs SGD(momentum=0.9, nesterov={nesterov}), 10 steps", worst, 1e-6))
    return rows


def check_softplus() -> list[Check]:
    """softplus and its gradient: finite at +-1e3, +-1e30, equal to a float64 reference."""
    points = np.array([-1e30, -1e3, -20.0, -1.0, 0.0, 1.0, 20.0, 1e3, 1e30], dtype=np.float32)
    x = tf.Variable(points)
    with tf.GradientTape() as tape:
        value = activations.softplus(x)
    gradient = tape.gradient(value, x).numpy()
    value = np.asarray(value)
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
    """Runs every check; a check that raises is reported as failed, not as a crash."""
    x, note = _housing_training_set(data_dir)
    groups: list[tuple[str, Callable[[], list[Check]]]] = [
        ("12c LayerNormalization", lambda: check_layer_normalization(x, note)),
        ("Huber loss and metric", check_huber),
        ("MomentumSGD", check_momentum_sgd),
        ("softplus", check_softplus),
        ("autodiff", check_autodiff),
    ]
    results = []
    for name, check in groups:
        try:
            results.extend(check())
        except Exception as error:  # noqa: BLE001 - report every broken component, go on
            results.append(Check(name, f"raised {type(error).__name__}: {error}", "no error",
                                 False))
    return results


def format_table(checks: list[Check]) -> str:
    """A plain-text table: check, measured, expected, PASS/FAIL, then notes."""
    headers = ("check", "measured", "expected", "result")
    rows = [(c.name, c.measured, c.expected, "PASS" if c.passed else "FAIL") for c in checks]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(4)]
    lines = ["  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip()
             for row in [headers, tuple("-" * w for w in widths), *rows]]
    notes = sorted({c.note for c in checks if c.note})
    lines.extend(f"note: {note}" for note in notes)
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    """Adds `verify` to the top-level parser."""
    parser = subparsers.add_parser(
        "verify", help="run the chapter's checks against this install",
        description="Compare customkeras's components with references, as the chapter does: "
                    "exercise 12c (LayerNormalization vs Keras on the housing training set), "
                    "Huber loss vs keras.losses.Huber, HuberMetric's streaming figures, "
                    "MomentumSGD vs SGD, softplus stability, and the autodiff figures (gradients "
                    "36 and 10, Hessian [[6, 2], [2, 0]]). Exit status 1 if any check fails. "
                    "Without the housing data, 12c runs on a stand-in input and says so.")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory holding california-housing/ (default: "
                             "$CUSTOMKERAS_DATA_DIR, then scikit-learn's cache and download)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs `customkeras verify`; returns 0 if every check passed, 1 otherwise."""
    checks = run_checks(args.data_dir)
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        print(format_table(checks))
    return 0 if all(c.passed for c in checks) else EXIT_FAILED
