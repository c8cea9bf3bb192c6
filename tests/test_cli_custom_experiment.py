"""`customkeras train MODULE:FUNCTION` / `FILE.py[:FUNCTION]`: a user's own experiment gets
the run directory, --resume (exact), plots, TensorBoard and --strategy; bad references and
wrong return values are one-line errors. No dataset needed: the function makes its data."""

import json
import textwrap

import keras
import numpy as np
import pytest

from customkeras.cli import main

EXPERIMENT = textwrap.dedent('''\
    import keras
    import numpy as np
    import tensorflow as tf

    def _data():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(200, 4)).astype("float32")
        y = (x @ np.array([[1.0], [-1.0], [0.5], [2.0]], dtype="float32")).astype("float32")
        return x, y

    def experiment():
        x, y = _data()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer=keras.optimizers.Adam(1e-2), metrics=["mae"])
        return {"model": model, "train": (x[:150], y[:150]),
                "validation": (x[150:175], y[150:175]), "test": (x[175:], y[175:])}

    class OwnStep(keras.Model):
        """A model with the Keras guide's own train_step."""

        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.tracker = keras.metrics.Mean(name="loss")

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self(x, training=True) - y))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.tracker.update_state(loss)
            return {"loss": self.tracker.result()}

        @property
        def metrics(self):
            return [self.tracker]

    def own_step():
        x, y = _data()
        model = OwnStep()
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        return model, (x, y)

    def streamed():
        x, y = _data()
        model = experiment()["model"]
        return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(32)

    def not_a_model():
        return 42
    ''')


@pytest.fixture
def experiment_file(tmp_path):
    path = tmp_path / "my_experiment.py"
    path.write_text(EXPERIMENT)
    return path


def _json(path):
    return json.loads(path.read_text())


def _train(*argv):
    return main(["train", *argv, "--verbose", "0"])


def _weights(run_dir):
    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def test_a_file_experiment_trains_resumes_exactly_and_plots(experiment_file, tmp_path, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(f"{experiment_file}:experiment", "--epochs", "3", "--output-dir",
                  str(straight)) == 0
    assert "Test results after 3 epoch(s): loss" in capsys.readouterr().out
    for name in ("model.keras", "metrics.json", "history.csv", "history.json",
                 "learning_curves.png", "config.json", "manifest.json", "logs", "checkpoints"):
        assert (straight / name).exists(), name
    assert (straight / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert set(_json(straight / "metrics.json")) == {"test_loss", "test_mae"}
    assert _json(straight / "history.json").keys() == {"epoch", "loss", "mae", "val_loss",
                                                       "val_mae"}
    settings = _json(straight / "config.json")["config"]
    assert settings["experiment"] == f"{experiment_file.resolve()}:experiment"
    assert settings["dataset"] is None and settings["epochs"] == 3

    # FILE.py alone means its `experiment` function; 1 epoch, then resumed to 3.
    assert _train(str(experiment_file), "--epochs", "1", "--output-dir", str(resumed)) == 0
    assert _train("--resume", str(resumed), "--epochs", "3") == 0
    assert "Resuming" in capsys.readouterr().out
    assert _json(resumed / "history.json") == _json(straight / "history.json")
    for ours, theirs in zip(_weights(resumed), _weights(straight), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert _train("--resume", str(resumed), "--batch-size", "64") == 2
    assert "--batch-size 32 -> 64" in capsys.readouterr().err
    # evaluate/predict use the built-in datasets: they say where this run's results are.
    assert main(["evaluate", str(straight)]) == 1
    assert "its test results are in metrics.json" in capsys.readouterr().err


def test_a_module_experiment_under_a_strategy_and_a_custom_train_step(
        experiment_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(experiment_file.parent)  # MODULE is found from the working directory
    monkeypatch.syspath_prepend(str(experiment_file.parent))
    default, mirrored = tmp_path / "default", tmp_path / "mirrored"
    assert _train("my_experiment:experiment", "--epochs", "2", "--output-dir", str(default)) == 0
    assert _train("my_experiment:experiment", "--epochs", "2", "--strategy", "mirrored",
                  "--output-dir", str(mirrored)) == 0
    ours, theirs = _json(mirrored / "history.json"), _json(default / "history.json")
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    own = tmp_path / "own"
    assert _train("my_experiment:own_step", "--epochs", "2", "--output-dir", str(own)) == 0
    out = capsys.readouterr().out
    assert "no test data" in out
    assert len(_json(own / "history.json")["loss"]) == 2


@pytest.mark.parametrize("reference, status, message", [
    ("{dir}/absent.py:experiment", 2, "absent.py does not exist"),
    ("{file}:nothing_here", 2, "has no function 'nothing_here'"),
    ("no_such_module_xyz:experiment", 2, "Cannot import no_such_module_xyz"),
    ("{file}:not_a_model", 1, "returned int 42; expected a dict with 'model' and 'train'"),
])
def test_bad_references_and_return_values_are_one_line(experiment_file, tmp_path, capsys,
                                                       reference, status, message):
    reference = reference.format(dir=tmp_path, file=experiment_file)
    run_dir = tmp_path / "run"
    assert _train(reference, "--output-dir", str(run_dir)) == status
    err = capsys.readouterr().err
    assert err.startswith("customkeras train: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_options_of_the_built_in_experiments_are_refused(experiment_file, capsys):
    assert _train(str(experiment_file), "--lr", "0.1") == 2
    assert "lr cannot be given with an experiment function" in capsys.readouterr().err
    assert _train(f"{experiment_file}:streamed", "--max-train-samples", "10") == 2
    assert "--max-train-samples applies to array data only" in capsys.readouterr().err


BROKEN = textwrap.dedent('''\
    import keras
    import numpy as np

    def _model(compile=True):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        if compile:
            model.compile(loss="mse", optimizer="adam")
        return model

    def _x(features=4):
        return np.ones((64, features), "float32")

    def raises():
        raise RuntimeError("the data server is down")

    def uncompiled():
        return _model(False), (_x(), np.ones((64, 1), "float32"))

    def wrong_features():
        return _model(), (_x(3), np.ones((64, 1), "float32"))

    def wrong_lengths():
        return _model(), (_x(), np.ones((60, 1), "float32"))

    def needs(n):
        return _model(), (_x(), np.ones((64, 1), "float32"))
    ''')


@pytest.mark.parametrize("function, message", [
    ("raises", "raised RuntimeError: the data server is down. Fix it"),
    ("uncompiled", "The experiment's model is not compiled: call model.compile("),
    ("wrong_features", "failed: ValueError: `x` must have shape ('n', 4) to match the model "
                       "input"),
    ("wrong_lengths", "`x` and `y` must have the same number of samples; received 64 and 60"),
    ("needs", "must take no arguments (missing a required argument: 'n')"),
])
def test_a_failing_experiment_is_one_line_and_leaves_nothing_blocking_the_rerun(
        tmp_path, capsys, function, message):
    # Issue 25.4: these were tracebacks, and a directory holding config.json that refused
    # the corrected command ("already holds a run").
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    run_dir = tmp_path / "run"
    argv = (f"{path}:{function}", "--epochs", "1", "--output-dir", str(run_dir))
    assert _train(*argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("customkeras train: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not run_dir.exists()
    if function == "wrong_features":  # fixed, the same command runs
        path.write_text(BROKEN.replace("_x(3)", "_x(4)"))
        assert _train(*argv) == 0
