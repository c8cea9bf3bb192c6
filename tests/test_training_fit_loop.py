"""The fit loop beyond `fit`: step-interval validation, named validation sets, a time
budget and step checkpoints (`fit_loop.FitLoop`, `EpochCheckpoint(save_freq=N)`).

References: Keras `evaluate` on the weights the run had at each validation step, the
same run without the feature (bit for bit: the features decide where executions end,
never what a step computes), and an uninterrupted run for resumes.
"""

import glob
import io
import os
import re
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from training_helpers import classification_data, mlp

from customkeras.training import Trainer, progress
from customkeras.training.run import EpochCheckpoint

X, Y = classification_data(600, seed=1)   # 19 steps of 32 per epoch (the last of 24)
XV, YV = classification_data(100, seed=2)
XN, YN = classification_data(80, seed=3)


def trainer(seed=0, **kwargs):
    model = mlp(seed=seed)
    model.add(keras.layers.Dropout(0.1))  # a seeded random op: its draws must not shift
    return Trainer(model, "sparse_categorical_crossentropy", keras.optimizers.Adam(1e-2),
                   metrics=["accuracy"], **kwargs)


def weights_of(trainer):
    return [w.copy() for w in trainer.model.get_weights()]


def assert_same_bits(a, b):
    assert len(a) == len(b)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)


class WeightsAt(keras.callbacks.Callback):
    """Records the weights after every `n`-th step of an epoch (a per-execution hook:
    the executions end there)."""

    batch_hooks_per_execution = True

    def __init__(self, n):
        super().__init__()
        self.n, self.weights, self.test_ends = n, [], []

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.n == 0:
            self.weights.append([w.copy() for w in self.model.get_weights()])

    def on_test_end(self, logs=None):
        self.test_ends.append(dict(logs))


@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_validation_every_n_steps_matches_keras_evaluate_and_changes_no_bit(jit_compile):
    plain = trainer(jit_compile=jit_compile)
    expected = plain.fit(X, Y, epochs=3, validation_data=(XV, YV), seed=5, verbose=0)
    run = trainer(jit_compile=jit_compile)
    recorder = WeightsAt(5)
    history = run.fit(X, Y, epochs=3, validation_data=(XV, YV), seed=5, verbose=0,
                      validation_interval=5, callbacks=[recorder])
    assert history.history == expected.history
    assert_same_bits(weights_of(run), weights_of(plain))
    # Steps 5, 10, 15 of each 19-step epoch, numbered from the run's start.
    assert [r["step"] for r in history.steps] == [5, 10, 15, 24, 29, 34, 43, 48, 53]
    assert [r["epoch"] for r in history.steps] == [0] * 3 + [1] * 3 + [2] * 3
    reference = mlp(seed=9)
    reference.add(keras.layers.Dropout(0.1))
    reference.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert len(recorder.weights) == len(history.steps)
    for record, weights in zip(history.steps, recorder.weights):
        reference.set_weights(weights)
        loss, accuracy = reference.evaluate(XV, YV, verbose=0)
        np.testing.assert_allclose(record["val_loss"], loss, rtol=0, atol=1e-6)
        np.testing.assert_allclose(record["val_accuracy"], accuracy, rtol=0, atol=1e-6)
    # The callbacks' test hooks saw every validation: 9 by steps, 3 at epochs' ends.
    assert len(recorder.test_ends) == 12


def test_validation_interval_writes_tensorboard_against_the_global_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator
    run = trainer()
    run.fit(X, Y, epochs=2, validation_data=(XV, YV), seed=5, verbose=0,
            validation_interval=10,
            callbacks=[keras.callbacks.TensorBoard(str(tmp_path))])
    events = event_accumulator.EventAccumulator(str(tmp_path / "validation"))
    events.Reload()
    steps = [event.step for event in events.Tensors("evaluation_loss_vs_iterations")]
    # The optimizer's iterations at each validation: 10 and the epoch's end (19), 29, 38.
    assert steps == [10, 19, 29, 38]


def test_named_validation_sets_get_their_own_history_keys_and_match_keras():
    run = trainer()
    history = run.fit(X, Y, epochs=2, seed=5, verbose=0, validation_interval=10,
                      validation_data={"clean": (XV, YV),
                                       "noisy": tf.data.Dataset.from_tensor_slices(
                                           (XN, YN)).batch(16)})
    assert sorted(history.history) == [
        "accuracy", "loss", "val_clean_accuracy", "val_clean_loss", "val_noisy_accuracy",
        "val_noisy_loss"]
    assert sorted(history.steps[0]) == [
        "epoch", "step", "val_clean_accuracy", "val_clean_loss", "val_noisy_accuracy",
        "val_noisy_loss"]
    # The last epoch's validation ran on the final weights: Keras's evaluate agrees.
    reference = run.model
    for name, x, y in (("clean", XV, YV), ("noisy", XN, YN)):
        loss, accuracy = reference.evaluate(x, y, verbose=0)
        np.testing.assert_allclose(history.history[f"val_{name}_loss"][-1], loss, atol=1e-6)
        np.testing.assert_allclose(history.history[f"val_{name}_accuracy"][-1], accuracy,
                                   atol=1e-6)
    single = trainer().fit(X, Y, epochs=2, seed=5, verbose=0, validation_data=(XV, YV))
    assert history.history["val_clean_loss"] == single.history["val_loss"]
    assert history.history["loss"] == single.history["loss"]


def test_the_display_shows_step_validations_and_the_logs_in_the_run_order(capsys):
    """The display (`verbose=2`) is a callback: it shows `history.steps`' validations
    and the logs in the order the run made them (Keras's `CallbackList` sorts them); a
    display among the callbacks is the only one."""
    def fit(**kwargs):
        return trainer().fit(X, Y, epochs=2, seed=5, validation_interval=10,
                             validation_data={"noisy": (XN, YN), "clean": (XV, YV)},
                             **kwargs)

    history = fit(verbose=2)
    keys = ["val_noisy_loss", "val_noisy_accuracy", "val_clean_loss", "val_clean_accuracy"]
    steps = [f"  step {record['step']} - "
             + " - ".join(f"{key}: {record[key]:.4f}" for key in keys)
             for record in history.steps]
    epochs = [rf"Epoch {epoch + 1}/2 - 19/19 - \d+s - [\d.]+ms/step - "
              + " - ".join(f"{key}: {history.history[key][epoch]:.4f}"
                           for key in ["loss", "accuracy", *keys])
              for epoch in range(2)]
    lines = capsys.readouterr().out.splitlines()
    assert [record["step"] for record in history.steps] == [10, 29]
    assert [lines[0], lines[2]] == steps
    for line, pattern in zip([lines[1], lines[3]], epochs):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert len(lines) == 4

    stream = io.StringIO()
    fit(verbose=2, callbacks=[progress.LineProgress(stream)])
    assert capsys.readouterr().out == ""
    assert len(stream.getvalue().splitlines()) == 4


class SlowExecutions(keras.callbacks.Callback):
    """Sleeps after every execution, so that a time budget runs out mid-epoch."""

    batch_hooks_per_execution = True

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.05)


def test_max_time_stops_cleanly_and_a_step_checkpoint_resumes_to_the_same_bits(tmp_path,
                                                                                capsys):
    uninterrupted = trainer(steps_per_execution=4)
    expected = uninterrupted.fit(X, Y, epochs=4, seed=5, verbose=0)
    stopped = trainer(steps_per_execution=4)
    checkpoint = EpochCheckpoint(str(tmp_path), save_freq=4)
    history = stopped.fit(X, Y, epochs=4, seed=5, max_time=0.6,
                          callbacks=[checkpoint, SlowExecutions()], verbose=2)
    assert history.stopped_by_max_time
    steps = int(stopped.optimizer.iterations.numpy())
    assert 0 < steps < 4 * 19
    assert "Stopped: max_time=0.6 s reached" in capsys.readouterr().out
    resumed = trainer(steps_per_execution=4)
    checkpoint = EpochCheckpoint(str(tmp_path), save_freq=4)
    history = resumed.fit(X, Y, epochs=4, seed=5, verbose=0, callbacks=[checkpoint])
    assert not history.stopped_by_max_time
    assert checkpoint.history == expected.history
    assert_same_bits(weights_of(resumed), weights_of(uninterrupted))
    assert int(resumed.optimizer.iterations.numpy()) == 4 * 19


def test_step_checkpoints_keep_only_the_newest_mid_epoch_save(tmp_path):
    run = trainer()
    run.fit(X, Y, epochs=2, seed=5, verbose=0,
            callbacks=[EpochCheckpoint(str(tmp_path), save_freq=7)])
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "mid-epoch" / "*")))
    # Steps 7 and 14 of each epoch were saved; the newest is step 14 of epoch 2.
    assert [n for n in names if n.endswith(".index")] == [
        "ckpt-1000000014.index", "position-1000000014.index"]


@pytest.mark.parametrize("arguments, message", [
    ({"validation_interval": 0}, "validation_interval"),
    ({"validation_interval": 2.5}, "validation_interval"),
    ({"max_time": -1}, "max_time"),
    ({"max_time": "10m"}, "max_time"),
    ({"validation_data": {}}, "validation_data"),
    ({"validation_data": {"not a name": (XV, YV)}}, "not a name"),
    ({"validation_data": {"clean": XV}}, "validation_data['clean']"),
])
def test_bad_arguments_are_refused_before_any_step(arguments, message):
    run = trainer()
    with pytest.raises((TypeError, ValueError), match=message.replace("[", r"\[")):
        run.fit(X, Y, epochs=1, verbose=0, **arguments)
    assert run.execution_counts == {}


def test_bad_save_freq_is_refused():
    with pytest.raises((TypeError, ValueError), match="save_freq"):
        EpochCheckpoint("somewhere", save_freq=0)


def test_an_injected_execution_policy_with_an_erratic_clock_changes_no_bit():
    # The planner is a policy passed in (Orbit's `steps_per_loop`): with a clock that
    # jumps at random, executions take every size, and the run computes the same bits.
    from customkeras.training.executions import ExecutionPlanner
    rng = np.random.default_rng(0)
    now = [0.0]

    def erratic_clock():
        now[0] += float(rng.exponential(0.5))
        return now[0]

    x, y = classification_data(6003, seed=4)  # 751 steps of 8 per epoch
    steady = trainer(steps_per_execution=751)
    expected = steady.fit(x, y, batch_size=8, epochs=2, validation_data=(XV, YV), seed=5,
                          verbose=0)
    erratic = trainer(steps_per_execution=ExecutionPlanner("auto", clock=erratic_clock))
    history = erratic.fit(x, y, batch_size=8, epochs=2, validation_data=(XV, YV), seed=5,
                          verbose=0)
    assert history.history == expected.history
    assert_same_bits(weights_of(erratic), weights_of(steady))
    counts = erratic.execution_counts
    assert sum(n for (kind, _, _), n in counts.items() if kind == "train") > 10
