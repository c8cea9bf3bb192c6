"""`customkeras verify`: passes on this install, fails when a component is wrong."""

import json

import keras
import pytest

from customkeras.cli import main, verify


def _checks(capsys):
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


@pytest.mark.data
def test_verify_passes_on_the_housing_training_set(data_dir, capsys):
    assert main(["verify", "--data-dir", str(data_dir)]) == 0
    table = capsys.readouterr().out
    assert "10 passed, 0 failed" in table and "FAIL" not in table
    assert "the housing training set (11610 x 8" in table
    for figure in ("[36.0, 10.0]", "[[6.0, 2.0], [2.0, 0.0]]", "14, then 7"):
        assert figure in table


def test_without_housing_data_12c_uses_a_stand_in_and_says_so(tmp_path, capsys):
    checks = verify.run_checks(str(tmp_path / "nothing-here"))
    layer_norm = [c for c in checks if c.name.startswith("12c")]
    assert len(layer_norm) == 2 and all(c.passed for c in layer_norm)
    assert "housing data unavailable" in layer_norm[0].note
    assert "CUSTOMKERAS_DATA_DIR" in layer_norm[0].note


def test_a_wrong_component_fails_verify(tmp_path, monkeypatch, capsys):
    # A Huber loss that is really the MSE, and an optimizer that ignores momentum.
    monkeypatch.setattr(verify.losses, "HuberLoss",
                        lambda threshold: keras.losses.MeanSquaredError())
    monkeypatch.setattr(verify.optimizers, "MomentumSGD",
                        lambda lr, momentum, nesterov: keras.optimizers.SGD(lr))
    assert main(["verify", "--data-dir", str(tmp_path), "--json"]) == 1
    checks = _checks(capsys)
    failed = sorted(name for name, row in checks.items() if not row["passed"])
    assert failed == [
        "Huber loss vs keras.losses.Huber (thresholds 0.5, 1, 2)",
        "MomentumSGD vs SGD(momentum=0.9, nesterov=False), 10 steps",
        "MomentumSGD vs SGD(momentum=0.9, nesterov=True), 10 steps",
    ]


def test_a_crashing_component_is_a_failed_row_not_a_crash(tmp_path, monkeypatch, capsys):
    def broken(f, variables):
        raise RuntimeError("autodiff is broken")

    monkeypatch.setattr(verify.autodiff, "hessians", broken)
    assert main(["verify", "--data-dir", str(tmp_path)]) == 1
    table = capsys.readouterr().out
    assert "raised RuntimeError: autodiff is broken" in table and "1 failed" in table


# ---- --backend: the same checks on another Keras backend, in a child process ---------

TF_ONLY_CHECKS = {"autodiff gradients of 3w1^2 + 2w1w2 at (5, 3)", "autodiff Hessian at (5, 3)",
                  "finite-difference gradients at (5, 3)"}


@pytest.mark.slow
def test_verify_on_the_jax_backend(tmp_path, capsys):
    assert keras.backend.backend() == "tensorflow"  # so the jax checks ran in a child
    assert main(["verify", "--backend", "jax", "--data-dir", str(tmp_path), "--json"]) == 0
    on_jax = _checks(capsys)
    on_tensorflow = {c.name for c in verify.run_checks(str(tmp_path))}
    # Every check but the TensorFlow-only autodiff ones, all passed.
    assert set(on_jax) == on_tensorflow - TF_ONLY_CHECKS and len(on_jax) == 7
    assert all(row["passed"] for row in on_jax.values())
    table = verify.format_table([verify.Check(**row) for row in on_jax.values()], "jax")
    assert table.startswith("Keras backend: jax") and "TensorFlow-only" in table


def test_a_backend_that_is_not_installed_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(verify.importlib.util, "find_spec", lambda name: None)
    assert main(["verify", "--backend", "jax"]) == 1
    assert "needs the `jax` package" in capsys.readouterr().err


def test_a_child_that_fails_is_an_error_with_its_messages(monkeypatch, capsys):
    monkeypatch.setattr(verify, "_CHILD_CODE", "import sys; sys.exit('jax went wrong')")
    assert main(["verify", "--backend", "jax"]) == 1
    err = capsys.readouterr().err
    assert "failed to run (exit status 1)" in err and "jax went wrong" in err


def test_the_current_backend_runs_here(monkeypatch, tmp_path, capsys):
    # --backend tensorflow on TensorFlow: no child process, the autodiff checks included.
    monkeypatch.setattr(verify.subprocess, "run", None)
    assert main(["verify", "--backend", "tensorflow", "--data-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("Keras backend: tensorflow") and "10 passed, 0 failed" in table
