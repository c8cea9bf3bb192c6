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
