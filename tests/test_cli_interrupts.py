"""Ctrl-C that leaves a resumable run always prints the `--resume` command, and the progress
display shows an epoch cut short as cut short (in agreement with "after N complete epochs")."""

import io
import json

import pytest

from customkeras.cli import main, run
from customkeras.training import progress

pytestmark = pytest.mark.data


def _train(run_dir, data_dir, *options):
    return main(["train", "housing", "--max-train-samples", "64", "--batch-size", "32",
                 "--output-dir", str(run_dir), "--data-dir", str(data_dir), "--verbose", "0",
                 *options])


def test_ctrl_c_after_the_last_epoch_prints_the_resume_command(data_dir, tmp_path, capsys,
                                                               monkeypatch):
    finish = run._finish
    calls = []

    def interrupted_finish(*args):
        calls.append(1)
        if len(calls) == 1:  # Ctrl-C while the results are written, after the last epoch
            raise KeyboardInterrupt
        return finish(*args)

    monkeypatch.setattr(run, "_finish", interrupted_finish)
    run_dir = tmp_path / "run"
    assert _train(run_dir, data_dir, "--epochs", "2") == 130
    err = capsys.readouterr().err
    assert "aborted" not in err
    assert "Interrupted. Checkpoint: " in err and "ckpt-2" in err
    assert err.rstrip().endswith(f"Resume with:\n  customkeras train --resume {run_dir}")
    assert not (run_dir / "manifest.json").exists()
    # The command it printed finishes the run without training again.
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "has all 2 epochs but it has no manifest.json" in out
    assert (run_dir / "manifest.json").is_file()


def test_ctrl_c_while_loading_a_new_run_prints_the_resume_command(data_dir, tmp_path, capsys,
                                                                  monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_build", interrupted)
    run_dir = tmp_path / "run"
    # Before config.json is written there is nothing to resume: a plain abort, no directory.
    assert _train(run_dir, data_dir) == 130
    assert "aborted" in capsys.readouterr().err
    assert not run_dir.exists()


def _run_display(display, steps_done, steps_per_epoch=10):
    """One epoch (the second of 3) of `steps_done` steps through the display's hooks."""
    display.set_params({"epochs": 3, "steps": steps_per_epoch, "verbose": 0})
    display.on_train_begin()
    display.on_epoch_begin(1)
    display.on_train_batch_end(steps_done - 1, {"loss": 0.5})
    display.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.25})


def _line_progress(steps_done, steps_per_epoch=10):
    stream = io.StringIO()
    display = progress.make_progress(2, stream=stream)
    _run_display(display, steps_done, steps_per_epoch)
    display.on_train_end()
    return stream.getvalue()


def test_a_cut_short_epoch_shows_as_cut_short_without_validation_numbers():
    line = _line_progress(4)
    assert line.startswith("Epoch 2/3 - 4/10 - ")
    assert "cut short (not a complete epoch" in line and "val_loss" not in line
    assert "loss: 0.5000" in line
    whole = _line_progress(10)
    assert "cut short" not in whole and "val_loss: 0.2500" in whole


def test_the_bars_do_not_count_a_cut_short_epoch(capsys):
    display = progress.BarProgress()
    _run_display(display, 4)
    assert display._all.n == 1  # still 1 of 3 complete epochs: the cut-short one not added
    display.on_train_end()
    err = capsys.readouterr().err
    assert "cut short" in err and "val_loss" not in err
