"""A run directory survives concurrent runs, late kills, damaged and edited files (issue 15).

Small housing runs (256 samples, 8 steps per epoch). Processes are killed for real
(SIGKILL, at a moment chosen by a patch in the killed process itself); each case checks
the promise and that no data is lost: the resumed run equals an uninterrupted one.
The full-disk cases are in test_cli_full_disk.py.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import textwrap
import time

import keras
import numpy as np
import pytest

from customkeras.cli import main

pytestmark = pytest.mark.data

TRAIN = ["train", "housing", "--max-train-samples", "256", "--verbose", "0"]

# Runs the command in a fresh process after applying PATCH (which may SIGKILL it).
LAUNCHER = textwrap.dedent("""\
    import os, signal, sys
    from customkeras import cli
    from customkeras.cli import artifacts
    {patch}
    sys.exit(cli.main(sys.argv[1:]))
    """)
KILL = "os.kill(os.getpid(), signal.SIGKILL)"


def _start(python_executable, data_dir, argv, patch="pass"):
    return subprocess.Popen(
        [python_executable, "-c", LAUNCHER.format(patch=textwrap.dedent(patch)), *argv],
        env={**os.environ, "CUSTOMKERAS_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(python_executable, data_dir, argv, patch="pass", timeout=300):
    process = _start(python_executable, data_dir, argv, patch)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, out, err


def _wait_for(path, process, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _json(path):
    return json.loads(path.read_text())


def _assert_same_run(run_dir, reference):
    # To float rounding: the engine sizes its executions by timing, which varies by process.
    ours, theirs = _json(run_dir / "history.json"), _json(reference / "history.json")
    assert ours.keys() == theirs.keys() and ours["epoch"] == theirs["epoch"]
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    ours, theirs = _json(run_dir / "metrics.json"), _json(reference / "metrics.json")
    assert ours.keys() == theirs.keys()
    np.testing.assert_allclose(list(ours.values()), list(theirs.values()), rtol=1e-5)
    weights = zip(keras.saving.load_model(run_dir / "model.keras").get_weights(),
                  keras.saving.load_model(reference / "model.keras").get_weights(), strict=True)
    for a, b in weights:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _assert_finished_and_intact(run_dir):
    manifest = _json(run_dir / "manifest.json")["sha256"]
    assert {"config.json", "model.keras", "metrics.json", "history.json"} <= set(manifest)
    from customkeras.cli import artifacts
    assert artifacts.changed_files(run_dir, manifest) == []
    assert not (run_dir / "run.lock").exists()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def _train(run_dir, data_dir, epochs, *options):
    return main([*TRAIN, "--epochs", str(epochs), "--output-dir", str(run_dir),
                 "--data-dir", str(data_dir), *options])


@pytest.fixture(scope="module")
def references(tmp_path_factory, data_dir):
    """Uninterrupted runs of 1 to 3 epochs, by number of epochs."""
    runs = {}
    for epochs in (1, 2, 3):
        runs[epochs] = tmp_path_factory.mktemp("reference") / "run"
        assert _train(runs[epochs], data_dir, epochs) == 0
    return runs


def _copy(run, tmp_path, name="run"):
    return shutil.copytree(run, tmp_path / name)


# 1. One owner per run directory.

@pytest.mark.slow
def test_a_second_process_on_a_run_in_use_is_refused_and_a_dead_owner_does_not_block(
        python_executable, data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    owner = _start(python_executable, data_dir, [*TRAIN, "--epochs", "100000",
                                                  "--output-dir", str(run_dir)])
    try:
        _wait_for(run_dir / "checkpoints" / "ckpt-1.index", owner)
        in_use = f"{run_dir} is in use by process {owner.pid}"
        # A new run into it, and a resume of it, both while the owner trains.
        assert _train(run_dir, data_dir, 2) == 1
        assert in_use in capsys.readouterr().err
        assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 1
        assert in_use in capsys.readouterr().err
        # Readers do not take the lock: evaluate answers at once (the run is unfinished).
        assert main(["evaluate", str(run_dir)]) == 1
        assert "did not finish" in capsys.readouterr().err
        owner.send_signal(signal.SIGKILL)
        owner.communicate(timeout=60)
    finally:
        owner.kill()
    assert (run_dir / "run.lock").read_text().strip() == str(owner.pid)  # stale, not blocking
    before = _json(run_dir / "history.json")
    saved = max(int(p.name[5:-6]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
    # One epoch more than the newest checkpoint: nothing trained before the kill is lost.
    assert main(["train", "--resume", str(run_dir), "--epochs", str(saved + 1),
                 "--verbose", "0"]) == 0
    after = _json(run_dir / "history.json")
    assert after["epoch"] == list(range(1, saved + 2))
    assert after["loss"][: len(before["loss"])] == before["loss"]
    _assert_finished_and_intact(run_dir)


@pytest.mark.slow
def test_two_runs_started_together_on_one_directory_do_not_mix(python_executable, data_dir,
                                                              tmp_path, references):
    run_dir = tmp_path / "run"
    argv = [*TRAIN, "--epochs", "2", "--output-dir", str(run_dir)]
    processes = [_start(python_executable, data_dir, argv) for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    codes = [process.returncode for process in processes]
    assert sorted(codes) in ([0, 1], [0, 2]), [err[-2000:] for _, err in outputs]
    loser = codes.index(max(codes))
    err = outputs[loser][1]
    if codes[loser] == 1:  # it came while the other trained
        assert f"is in use by process {processes[1 - loser].pid}" in err
    else:  # it came after the other had finished
        assert "already holds a run" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    _assert_same_run(run_dir, references[2])
    _assert_finished_and_intact(run_dir)


# 2. A run is finished only when its manifest is written.

def _zero_the_kernel(path):
    model = keras.saving.load_model(path)
    kernel = model.layers[0].kernel
    kernel.assign(np.zeros(kernel.shape, dtype="float32"))
    model.save(path)  # a valid .keras zip, silently wrong


@pytest.mark.slow
def test_a_kill_before_the_manifest_leaves_a_run_that_resume_finishes(
        python_executable, data_dir, tmp_path, references, capsys):
    run_dir = tmp_path / "run"
    code, _, err = _run(python_executable, data_dir,
                        [*TRAIN, "--epochs", "2", "--output-dir", str(run_dir)],
                        patch=f"artifacts.write_manifest = lambda *a, **k: {KILL}")
    assert code == -signal.SIGKILL, err[-2000:]
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "manifest.json").exists()
    _zero_the_kernel(run_dir / "model.keras")  # tampered while nothing could tell
    assert main(["evaluate", str(run_dir)]) == 1
    assert "did not finish" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "has all 2 epochs but it has no manifest.json" in out and "nothing to do" not in out
    _assert_same_run(run_dir, references[2])  # rewritten from the checkpoint, not the file
    _assert_finished_and_intact(run_dir)
    # Finished: damage is detected from now on, by evaluate and by --resume.
    _zero_the_kernel(run_dir / "model.keras")
    assert main(["evaluate", str(run_dir)]) == 1
    assert "model.keras is damaged" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    assert "model.keras no longer matches its manifest.json" in capsys.readouterr().out
    _assert_same_run(run_dir, references[2])


# 5, 6. The checkpoint state file is not trusted alone; fallbacks are said.

@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_a_missing_or_damaged_state_file_still_resumes_from_the_newest_checkpoint(
        data_dir, tmp_path, references, capsys, damage):
    run_dir = _copy(references[1], tmp_path)
    state = run_dir / "checkpoints" / "checkpoint"
    if damage == "delete":
        state.unlink()
    else:
        state.write_bytes(b"\x00garbage{{")
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "after epoch 1 of 2" in out and "from the start" not in out
    _assert_same_run(run_dir, references[2])
    assert 'model_checkpoint_path: "ckpt-2"' in state.read_text()


def test_a_damaged_latest_checkpoint_falls_back_and_says_so_in_one_line(
        data_dir, tmp_path, references, capsys):
    run_dir = _copy(references[2], tmp_path)
    data = next((run_dir / "checkpoints").glob("ckpt-2.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--verbose", "0"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "ckpt-2" in line]
    assert len(lines) == 1 and lines[0].startswith("Skipped checkpoint ckpt-2: it cannot be "
                                                   "read (damaged or truncated")
    assert lines[0].endswith("resuming from ckpt-1.")
    assert "after epoch 1 of 3" in captured.out
    _assert_same_run(run_dir, references[3])


@pytest.mark.parametrize("damage", ["empty", "short", "no index"])
def test_an_empty_short_or_index_less_newest_checkpoint_falls_back_with_a_skipped_line(
        data_dir, tmp_path, references, capsys, damage):
    # Issue 25.1 / 25.6: no checkpoint file is fsynced, so a crash can leave an empty data
    # file (`: > ckpt-2.data-...`); `--resume` used to die in a traceback (IndexError
    # "Read less bytes than requested"), and a lost .index fell back without a word.
    run_dir = _copy(references[2], tmp_path)
    checkpoints = run_dir / "checkpoints"
    data = next(checkpoints.glob("ckpt-2.data-*"))
    if damage == "empty":
        data.write_bytes(b"")
    elif damage == "short":
        data.write_bytes(data.read_bytes()[:7])
    else:
        (checkpoints / "ckpt-2.index").unlink()
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--verbose", "0"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if "ckpt-2" in line]
    assert len(lines) == 1 and lines[0].startswith("Skipped checkpoint ckpt-2: ")
    assert lines[0].endswith("resuming from ckpt-1.")
    if damage == "no index":
        assert "ckpt-2.index file is missing" in lines[0]
    assert "after epoch 1 of 3" in captured.out
    _assert_same_run(run_dir, references[3])
    # The damaged checkpoint was replaced, not left beside the new ones.
    assert sorted(p.name for p in checkpoints.glob("ckpt-*.index")) == ["ckpt-2.index",
                                                                       "ckpt-3.index"]


def test_data_left_by_a_kill_between_the_deletions_of_an_old_checkpoint_is_removed(
        data_dir, tmp_path, references, capsys):
    # Issue 25.5: killed after deleting ckpt-0.index but before its data (1 MB, forever).
    run_dir = _copy(references[2], tmp_path)
    checkpoints = run_dir / "checkpoints"
    leftover = checkpoints / "ckpt-0.data-00000-of-00001"
    shutil.copy(next(checkpoints.glob("ckpt-1.data-*")), leftover)
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--verbose", "0"]) == 0
    assert "ckpt-0.data-00000-of-00001" in capsys.readouterr().err  # said, once
    assert not leftover.exists()
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("ckpt-0")) == []


def test_the_sweep_deletes_an_old_checkpoints_index_before_its_data(tmp_path, monkeypatch):
    # So that a kill between the two deletions leaves data without an index (no checkpoint,
    # removed by the next owner) rather than an index without data.
    import keras

    from customkeras.training.run import RunCheckpoint

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint = RunCheckpoint(tmp_path, model, max_to_keep=1)
    checkpoint.save(1, {"loss": [1.0]})
    order = []
    unlink = type(tmp_path).unlink
    monkeypatch.setattr(type(tmp_path), "unlink",
                        lambda self, *a, **k: (order.append(self.name), unlink(self, *a, **k)))
    checkpoint.save(2, {"loss": [1.0, 0.5]})
    first = [name for name in order if name.startswith("ckpt-1.")]
    assert first[0] == "ckpt-1.index" and len(first) == 2


def test_a_damaged_manifest_is_not_a_dead_end(data_dir, tmp_path, references, capsys):
    # Issue 25.2: `truncate -s 50 manifest.json`: evaluate said "resume the run to write it
    # again" and --resume refused with the same message.
    run_dir = _copy(references[2], tmp_path)
    manifest = run_dir / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:50])
    assert main(["evaluate", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert f"{manifest} is damaged" in err and f"customkeras train --resume {run_dir}" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "has all 2 epochs but its manifest.json is damaged" in out
    _assert_finished_and_intact(run_dir)
    _assert_same_run(run_dir, references[2])
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    # An edited config.json is still refused when the manifest is damaged: the
    # checkpoints say what the run was trained with.
    manifest.write_bytes(b"{")
    document = _json(run_dir / "config.json")
    document["config"]["seed"] = 7
    (run_dir / "config.json").write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 1
    assert "does not match the run's checkpoint ckpt-2" in capsys.readouterr().err


# 7. An edited config.json is refused.

def test_an_edited_config_json_is_refused_by_resume_evaluate_and_predict(
        data_dir, tmp_path, references, capsys):
    run_dir = _copy(references[1], tmp_path)
    config_file = run_dir / "config.json"
    document = _json(config_file)
    document["config"]["batch_size"] = 64
    config_file.write_text(json.dumps(document))
    for argv in (["train", "--resume", str(run_dir), "--epochs", "2", "--verbose", "0"],
                 ["evaluate", str(run_dir)], ["predict", str(run_dir)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert f"{config_file} was changed after the run finished" in err
        assert "--config" in err and "--output-dir NEW_DIR" in err
    # Without a manifest (as if killed before it), the checkpoints still tell.
    (run_dir / "manifest.json").unlink()
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--verbose", "0"]) == 1
    err = capsys.readouterr().err
    assert f"{config_file} does not match the run's checkpoint ckpt-1" in err
    assert "batch_size is 64 in the file but the run was trained with 32" in err
    assert _json(run_dir / "history.json") == _json(references[1] / "history.json")


# 8. Damaged files say "damaged"/"truncated", with exit status 1.

def test_a_truncated_model_without_manifest_is_called_truncated(data_dir, references,
                                                                 tmp_path, capsys):
    lone = tmp_path / "lone.keras"
    data = (references[1] / "model.keras").read_bytes()
    lone.write_bytes(data[: len(data) // 2])
    assert main(["evaluate", str(lone), "--dataset", "housing",
                 "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "is damaged or truncated" in err and "not found" not in err.lower()


@pytest.mark.parametrize("text", ["{not json", '{"format": "customkeras-run-config"}',
                                  '{"dataset": "housing", "epochs": Infinity}'])
def test_a_damaged_run_config_exits_1_everywhere(references, tmp_path, capsys, text):
    run_dir = _copy(references[1], tmp_path)
    (run_dir / "config.json").write_text(text)
    for argv in (["train", "--resume", str(run_dir)], ["evaluate", str(run_dir)],
                 ["predict", str(run_dir)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert f"{run_dir / 'config.json'} is damaged" in err, err


# 9. What a killed process left half-written is removed by the next owner.

@pytest.mark.slow
def test_temporary_files_of_a_killed_process_are_removed_on_resume(
        python_executable, data_dir, tmp_path, references, capsys):
    run_dir = tmp_path / "run"
    # Killed in epoch 2's history write, after its temporary file was complete.
    patch = f"""
        _replace, _seen = os.replace, []
        def replace(source, target, *rest, **kw):
            if str(target).endswith("history.json"):
                _seen.append(target)
                if len(_seen) == 2:
                    {KILL}
            return _replace(source, target, *rest, **kw)
        os.replace = replace
        """
    code, _, err = _run(python_executable, data_dir,
                        [*TRAIN, "--epochs", "3", "--output-dir", str(run_dir)], patch=patch)
    assert code == -signal.SIGKILL, err[-2000:]
    left = [p.name for p in run_dir.iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and left[0].startswith(".history.json.") and left[0].endswith(".tmp.json")
    # What a kill inside TensorFlow's SaveV2 leaves (its own temporary directory).
    (run_dir / "checkpoints" / "ckpt-3_temp").mkdir()
    (run_dir / "checkpoints" / "ckpt-3_temp" / "part-00000-of-00001.index").write_bytes(b"x")
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    err = capsys.readouterr().err
    assert "Removed what an interrupted process left half-written: " in err
    assert left[0] in err and "checkpoints/ckpt-3_temp" in err
    assert not (run_dir / "checkpoints" / "ckpt-3_temp").exists()
    _assert_same_run(run_dir, references[3])
    _assert_finished_and_intact(run_dir)



def test_resume_with_another_dataset_names_the_run_and_the_fix(references, capsys):
    # Issue 25.6: `--resume RUN fashion-mnist` on a housing run complained about `loss`.
    run_dir = references[1]
    assert main(["train", "--resume", str(run_dir), "fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"customkeras train: error: {run_dir} is a housing run, not "
                          "fashion-mnist: continue it with 'customkeras train --resume")
    assert "loss" not in err and len(err.strip().splitlines()) == 1


def test_keras_save_stages_in_the_run_and_a_killed_saves_scratch_is_removed(
        data_dir, tmp_path, references, capsys):
    # Issue 25.5: a kill inside Keras's model.save left an empty directory in the system's
    # temporary directory; it now stages inside the run, where the next owner cleans up.
    import tempfile

    from customkeras.cli import artifacts

    with artifacts.scratch_directory(tmp_path) as scratch:
        assert pathlib.Path(tempfile.mkdtemp()).parent == scratch
    assert not scratch.exists() and tempfile.gettempdir() != str(scratch)
    run_dir = _copy(references[1], tmp_path)
    left = run_dir / ".scratch.0123456789ab.tmp"
    (left / "tmpabc").mkdir(parents=True)
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--verbose", "0"]) == 0
    assert ".scratch.0123456789ab.tmp" in capsys.readouterr().err
    _assert_finished_and_intact(run_dir)
