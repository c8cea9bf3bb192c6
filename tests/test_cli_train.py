"""`customkeras train`, `evaluate` and `predict` on the real data, called in-process.

One short Fashion-MNIST run (2 epochs on the first 4,000 images) is the reference the
other runs are compared with: resuming, Ctrl-C then resuming, and `--config` must all
reproduce it exactly. Subprocess behaviour (fresh-process reload, real signals) is in
test_cli_subprocess.py.
"""

import functools
import json
import os
import shutil
import signal

import keras
import numpy as np
import pytest

import customkeras
from customkeras import datasets
from customkeras.cli import config, main, run
from customkeras.training.run import GracefulInterrupt

pytestmark = pytest.mark.data

SAMPLES = "4000"  # 125 steps of 32 per epoch
ARTIFACTS = ("model.keras", "history.csv", "history.json", "learning_curves.png",
             "metrics.json", "config.json", "manifest.json")


def _train(output_dir, data_dir, *options, dataset="fashion-mnist"):
    argv = ["train", dataset, "--output-dir", str(output_dir), "--data-dir", str(data_dir),
            "--verbose", "0", *options]
    return main(argv)


def _json(path):
    return json.loads(path.read_text())


def _weights(run_dir):
    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def _assert_same_run(run_dir, reference):
    assert _json(run_dir / "history.json") == _json(reference / "history.json")
    assert _json(run_dir / "metrics.json") == _json(reference / "metrics.json")
    for ours, theirs in zip(_weights(run_dir), _weights(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted 2-epoch Fashion-MNIST run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert _train(run_dir, data_dir, "--epochs", "2", "--max-train-samples", SAMPLES) == 0
    return run_dir


def test_a_run_writes_every_artifact(reference):
    for name in ARTIFACTS:
        assert (reference / name).is_file(), name
    assert (reference / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (reference / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(rows) == 1 + 2
    history = _json(reference / "history.json")
    assert history["epoch"] == [1, 2] and len(history["val_accuracy"]) == 2
    metrics = _json(reference / "metrics.json")
    assert set(metrics) == {"test_loss", "test_accuracy"}
    assert 0.6 < metrics["test_accuracy"] <= 1.0  # learned: chance is 0.1
    settings = _json(reference / "config.json")["config"]
    assert (settings["epochs"], settings["optimizer"], settings["lr"]) == (2, "nadam", 0.01)
    logs = [name for _, _, files in os.walk(reference / "logs") for name in files]
    assert any("tfevents" in name for name in logs)
    assert (reference / "checkpoints" / "ckpt-2.index").is_file()


def test_evaluate_reproduces_metrics_json(reference, capsys):
    assert main(["evaluate", str(reference), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == _json(reference / "metrics.json")


def test_predict_names_the_classes(reference, data_dir, capsys):
    assert main(["predict", str(reference / "model.keras"), "--dataset", "fashion-mnist",
                 "--data-dir", str(data_dir), "--n", "6", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    _, _, (_, y_test) = datasets.load_fashion_mnist(data_dir)
    assert [row["true"] for row in rows] == [datasets.FASHION_MNIST_CLASSES[i] for i in y_test[:6]]
    assert all(row["predicted"] in datasets.FASHION_MNIST_CLASSES for row in rows)
    assert all(0.1 <= row["probability"] <= 1.0 for row in rows)


def test_one_epoch_then_resume_to_two_equals_two_epochs(reference, data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(run_dir, data_dir, "--epochs", "1", "--max-train-samples", SAMPLES) == 0
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--verbose", "0"]) == 0
    assert "Resuming" in capsys.readouterr().out
    _assert_same_run(run_dir, reference)
    assert _json(run_dir / "config.json")["config"]["epochs"] == 2


class _CtrlCMidEpoch(GracefulInterrupt):
    """Presses Ctrl-C (a real SIGINT) after the first execution of the second epoch."""

    epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and not self.requested:
            assert batch + 1 < self.params["steps"], "no mid-epoch execution boundary"
            os.kill(os.getpid(), signal.SIGINT)
        super().on_train_batch_end(batch, logs)


def test_ctrl_c_mid_epoch_then_resume_equals_uninterrupted(reference, data_dir, tmp_path,
                                                           monkeypatch, capsys):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(run, "GracefulInterrupt", _CtrlCMidEpoch)
        # Fixed executions of 25 steps: with "auto" a fast machine may run a whole
        # epoch in one execution, leaving no mid-epoch boundary to interrupt at.
        patch.setattr(run.training, "Trainer",
                      functools.partial(run.training.Trainer, steps_per_execution=25))
        code = _train(run_dir, data_dir, "--epochs", "2", "--max-train-samples", SAMPLES)
    assert code == 130
    err = capsys.readouterr().err
    assert "after 1 complete epoch(s) of 2" in err
    assert f"customkeras train --resume {run_dir.resolve()}" in err
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 1
    assert (run_dir / "checkpoints" / "ckpt-1.index").is_file()
    assert not (run_dir / "model.keras").exists()
    # The half-done second epoch is replayed from its start: same result as no interrupt.
    assert main(["train", "--resume", str(run_dir), "--verbose", "0"]) == 0
    _assert_same_run(run_dir, reference)


def test_config_json_repeats_the_run(reference, tmp_path):
    repeat = tmp_path / "repeat"
    assert main(["train", "--config", str(reference / "config.json"), "--output-dir",
                 str(repeat), "--verbose", "0"]) == 0
    _assert_same_run(repeat, reference)


def test_resume_of_a_finished_run_does_nothing(reference, capsys):
    before = (reference / "model.keras").stat().st_mtime_ns
    assert main(["train", "--resume", str(reference), "--verbose", "0"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert (reference / "model.keras").stat().st_mtime_ns == before


@pytest.mark.parametrize("option, change", [
    (["--lr", "0.1"], "--lr 0.01 -> 0.1"),
    (["--max-train-samples", "10"], "--max-train-samples 4000 -> 10"),
    (["--jit-compile", "false"], "--jit-compile 'auto' -> 'false'"),  # XLA changes floats
    (["--seed", "7", "--batch-size", "64"], "--batch-size 32 -> 64; --seed 42 -> 7"),
    (["--config", "{config}"], "--optimizer 'nadam' -> 'adam'"),
])
def test_resume_refuses_options_that_change_the_run_naming_old_and_new(reference, tmp_path,
                                                                       capsys, option, change):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"dataset": "fashion-mnist", "optimizer": "adam"}))
    option = [part.format(config=other) for part in option]
    assert main(["train", "--resume", str(reference), *option]) == 2
    err = capsys.readouterr().err
    assert "these options would change it" in err and change in err


def test_resume_refuses_another_output_dir(reference, capsys):
    assert main(["train", "--resume", str(reference), "--output-dir", "elsewhere"]) == 2
    assert "--output-dir elsewhere would change where it is" in capsys.readouterr().err


def test_resume_accepts_the_original_command_line_repeated(reference, data_dir, capsys):
    # The command that made the run, with --resume added: every value equals the run's.
    assert main(["train", "fashion-mnist", "--output-dir", str(reference), "--data-dir",
                 str(data_dir), "--epochs", "2", "--max-train-samples", SAMPLES, "--seed", "42",
                 "--lr", "1e-2", "--optimizer", "nadam", "--verbose", "0",
                 "--resume", str(reference)]) == 0
    assert "already complete" in capsys.readouterr().out


def test_exercise_13b_trains_each_group_with_its_own_optimizer(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    # A vanishing lower learning rate: only the upper layer may move.
    assert _train(run_dir, data_dir, "--epochs", "1", "--max-train-samples", "2000",
                  "--lower-lr", "1e-12", "--upper-optimizer", "adam", "--upper-lr", "1e-2") == 0
    settings = _json(run_dir / "config.json")["config"]
    assert (settings["lower_optimizer"], settings["upper_optimizer"]) == ("sgd", "adam")
    model = keras.saving.load_model(run_dir / "model.keras")
    _, start = run.build_trainer(config.resolve(settings))  # the same seeded initial state
    lower, upper = model.get_layer("lower_layers"), model.get_layer("upper_layers")
    for trained, fresh in zip(lower.get_weights(), start.get_layer("lower_layers").get_weights()):
        np.testing.assert_allclose(trained, fresh, atol=1e-6)
    moved = [np.abs(t - f).max() for t, f in
             zip(upper.get_weights(), start.get_layer("upper_layers").get_weights())]
    assert min(moved) > 1e-3


@pytest.mark.parametrize("model, options, metrics", [
    ("reconstructing", ["--loss", "huber", "--threshold", "2", "--metrics", "huber,mae"],
     {"test_loss", "test_huber", "test_mae", "test_reconstruction_loss"}),
    ("exponential", [], {"test_loss", "test_mae"}),
])
def test_housing_runs_save_models_that_reload_and_reproduce(data_dir, tmp_path, capsys,
                                                            model, options, metrics):
    run_dir = tmp_path / "run"
    assert _train(run_dir, data_dir, "--model", model, "--epochs", "1", "--batch-size", "64",
                  "--max-train-samples", "2000", *options, dataset="housing") == 0
    recorded = _json(run_dir / "metrics.json")
    assert set(recorded) == metrics
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == recorded


def test_missing_data_says_what_to_set_and_leaves_no_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(run_dir, tmp_path / "no-data-here") == 1
    err = capsys.readouterr().err
    assert "Cannot load the fashion-mnist data" in err and "CUSTOMKERAS_DATA_DIR" in err
    assert str(tmp_path / "no-data-here") in err
    assert not run_dir.exists()


def test_an_unwritable_output_dir_fails_before_loading_data(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    # The data dir is bogus too: the output dir's error must come first.
    assert _train(blocker / "run", tmp_path / "no-data-here") == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "data" not in err.split("not writable")[0].lower()


def test_unsafe_models_are_refused_unless_asked(data_dir, tmp_path, capsys):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Lambda(lambda x: x * 2.0),
                              keras.layers.Dense(1)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    argv = ["evaluate", str(path), "--dataset", "housing", "--data-dir", str(data_dir), "--json"]
    assert main(argv) == 1
    assert "--unsafe" in capsys.readouterr().err
    assert main([*argv, "--unsafe"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"test_loss", "test_mae"}


def test_a_damaged_model_is_detected_before_loading(reference, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    data = bytearray((copy / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.keras").write_bytes(bytes(data))
    assert main(["evaluate", str(copy)]) == 1
    assert "is damaged" in capsys.readouterr().err


def test_evaluate_explains_an_unfinished_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "housing"}))
    assert main(["evaluate", str(tmp_path)]) == 1
    assert f"customkeras train --resume {tmp_path}" in capsys.readouterr().err


def test_every_housing_model_builds_and_predicts():
    x = np.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)
    for name in customkeras.experiments.HOUSING_MODELS:
        keras.utils.set_random_seed(0)
        model = customkeras.experiments.build_housing_model(name)
        prediction = np.asarray(model(x))
        assert prediction.shape == (2, 1) and np.all(np.isfinite(prediction)), name
        if name == "exponential":
            assert np.all(prediction > 0)


def test_housing_trains_from_the_tfrecord_stream(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(run_dir, data_dir, "--input", "stream", "--epochs", "2", "--batch-size",
                  "256", dataset="housing") == 0
    assert _json(run_dir / "config.json")["config"]["input"] == "stream"
    assert _json(run_dir / "history.json")["epoch"] == [1, 2]
    recorded = _json(run_dir / "metrics.json")
    capsys.readouterr()
    # The stream's test split is the loader's, in the same order: evaluate (arrays) agrees.
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([evaluated[k] for k in recorded], list(recorded.values()),
                               rtol=1e-5)
    # Resumed, a stream run continues with the shuffle orders of an uninterrupted one (each
    # epoch's order is drawn from (seed, epoch)): the README says so (issues 25.7, 24.5).
    part = tmp_path / "part"
    assert _train(part, data_dir, "--input", "stream", "--epochs", "1", "--batch-size",
                  "256", dataset="housing") == 0
    assert main(["train", "--resume", str(part), "--epochs", "2", "--verbose", "0"]) == 0
    assert _json(part / "history.json") == _json(run_dir / "history.json")
    # A quick streamed run: the first 10 records only (3 steps of 4), as with arrays.
    capsys.readouterr()
    assert _train(tmp_path / "quick", data_dir, "--input", "stream", "--max-train-samples",
                  "10", "--batch-size", "4", "--epochs", "1", "--verbose", "2",
                  dataset="housing") == 0
    assert "Epoch 1/1 - 3/3 - " in capsys.readouterr().out
    assert _json(tmp_path / "quick" / "config.json")["config"]["max_train_samples"] == 10


def test_a_shard_damaged_during_a_stream_run_is_one_line(data_dir, tmp_path, capsys,
                                                         monkeypatch):
    # Issue 25.3: a TFRecord shard damaged while `--input stream` trains was a raw
    # DataLossError traceback. Here the training stream reads a damaged file.
    import tensorflow as tf

    damaged = tmp_path / "train-00000.tfrecord"
    damaged.write_bytes(b"\x00" * 64 + b"not a record")

    def streams(dataset, batch_size, seed, data_dir=None, max_train_samples=None,
                epoch=None):
        train = tf.data.TFRecordDataset([str(damaged)]).map(
            lambda record: (tf.zeros((8,)), tf.zeros((1,)))).batch(batch_size)
        return train, None, None

    monkeypatch.setattr(run.loading, "load_streams", streams)
    run_dir = tmp_path / "run"
    assert _train(run_dir, data_dir, "--input", "stream", "--epochs", "1",
                  dataset="housing") == 1
    err = capsys.readouterr().err
    assert err.startswith("customkeras train: error: The training data stream cannot be read: "
                          "a TFRecord shard of the housing cache was damaged during the run")
    # In its first epoch: nothing worth resuming, nothing left to block the same command.
    assert "Run the same command again (no epoch was complete)" in err
    assert len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def _crafted(tmp_path, name, replace):
    """A .keras file whose config.json was edited by `replace(config)`."""
    import zipfile

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="relu")])
    model.save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as archive:
        files = {member: archive.read(member) for member in archive.namelist()}
    document = json.loads(files["config.json"])
    replace(document["config"]["layers"])
    files["config.json"] = json.dumps(document).encode()
    with zipfile.ZipFile(tmp_path / name, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return tmp_path / name


@pytest.mark.parametrize("kind, replace, named", [
    ("function", lambda layers: layers[-1]["config"].update(activation={
        "module": "os", "class_name": "function", "config": "system",
        "registered_name": "function"}), "the function os.system"),
    ("class", lambda layers: layers.__setitem__(-1, {
        "module": "subprocess", "class_name": "Popen", "config": {"args": ["true"]},
        "registered_name": None}), "the class subprocess.Popen"),
])
def test_a_crafted_model_config_is_refused_naming_the_blocked_object(data_dir, tmp_path,
                                                                     capsys, kind, replace,
                                                                     named):
    # Issue 25.6: Keras's generic "could not be deserialized properly" and a multi-kB dump.
    path = _crafted(tmp_path, f"{kind}.keras", replace)
    assert main(["predict", str(path), "--dataset", "housing", "--data-dir",
                 str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"customkeras predict: error: Refusing to load {path}: its "
                          f"configuration names {named}, which is not a Keras or registered "
                          "customkeras object, so it was blocked")
    assert len(err.strip().splitlines()) == 1 and len(err) < 600
