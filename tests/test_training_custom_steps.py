"""`Trainer(model)` runs a model's own `train_step` / `test_step` / `predict_step` (issue 10).

Every run is compared with Keras `model.fit` / `evaluate` / `predict` on a twin model
(same initial weights, same data order): history and weights to 1e-5.
"""

import json
import os
import pathlib
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from custom_step_helpers import (
    GuideModel,
    GuidePredictModel,
    assert_same_logs,
    assert_same_predictions,
    assert_same_run,
    assert_same_weights,
    autoencoder,
    gan,
    guide_model,
    images,
    low_level_model,
    regression_data,
)

from customkeras.training import Trainer, TrainingDivergedError

TESTS = pathlib.Path(__file__).resolve().parent
FIT = dict(batch_size=16, shuffle=False, verbose=0)


# ---- item 1: the model's own step, as Keras fit runs it -------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["x-y", "x-y-sample_weight"])
def test_guide_step_matches_fit_evaluate_predict(weighted):
    # 100 samples, batch 16: a smaller last batch; validation runs the model's test_step.
    x, y = regression_data(100)
    sample_weight = np.random.default_rng(1).uniform(0, 2, 100) if weighted else None
    reference, model = guide_model(seed=1), guide_model(seed=1)
    initial = model.get_weights()
    options = dict(FIT, epochs=3, sample_weight=sample_weight, validation_data=(x[:40], y[:40]))
    expected = reference.fit(x, y, **options)
    trainer = Trainer(model)
    history = trainer.fit(x, y, **options)

    assert sorted(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert_same_run(history, expected, model, reference, initial)
    assert_same_logs(trainer.evaluate(x, y, sample_weight=sample_weight, verbose=0, return_dict=True),
                     reference.evaluate(x, y, sample_weight=sample_weight, verbose=0,
                                        return_dict=True))
    assert_same_predictions(trainer.predict(x), reference.predict(x, verbose=0))


def test_step_receives_the_data_structure_keras_passes():
    class Recording(GuideModel):
        seen = None

        def train_step(self, data):
            # Runs at trace time: records the structure, not values.
            type(self).seen.add(repr(tf.nest.map_structure(lambda _: "T", data)))
            return super().train_step(data if isinstance(data, tuple) else (data, data[:, :1]))

    x, _ = regression_data(48)
    y, weights = x[:, :1].copy(), np.ones(48, "float32")
    structures = {}
    for name, fit in (("keras", lambda m, *a, **k: m.fit(*a, **k)),
                      ("trainer", lambda m, *a, **k: Trainer(m).fit(*a, **k))):
        Recording.seen = set()
        for arguments, extra in (((x,), {}), ((x, y), {}), ((x, y), {"sample_weight": weights})):
            model = guide_model(seed=2, cls=Recording, metrics=[])
            fit(model, *arguments, **FIT, **extra)
        structures[name] = Recording.seen
    assert structures["keras"] == {"'T'", "('T', 'T')", "('T', 'T', 'T')"}
    assert structures["trainer"] == structures["keras"]


def test_fit_without_targets():
    x, _ = regression_data(80, seed=3)
    reference, model = autoencoder(seed=3), autoencoder(seed=3)
    initial = model.get_weights()
    expected = reference.fit(x, **FIT, epochs=2)
    history = Trainer(model).fit(x, **FIT, epochs=2)
    assert sorted(history.history) == ["reconstruction"]
    assert_same_run(history, expected, model, reference, initial)


def test_lower_level_step_with_its_own_metrics_and_no_compiled_loss():
    x, y = regression_data(96, seed=4)
    reference, model = low_level_model(seed=4), low_level_model(seed=4)
    initial = model.get_weights()
    expected = reference.fit(x, y, **FIT, epochs=3)
    history = Trainer(model).fit(x, y, **FIT, epochs=3)
    assert sorted(history.history) == ["loss", "mae"]
    assert_same_run(history, expected, model, reference, initial)


def test_gan_with_two_optimizers_set_in_compile_matches_fit():
    real = images(64, seed=5)
    reference, model = gan(seed=5), gan(seed=5)
    initial = model.get_weights()
    expected = reference.fit(real, batch_size=16, epochs=2, shuffle=False, verbose=0)
    # Plain steps: the generator's noise (`keras.random` with a SeedGenerator) draws
    # other numbers under XLA on a CPU.
    history = Trainer(model, jit_compile=False).fit(real, batch_size=16, epochs=2,
                                                    shuffle=False, verbose=0)
    assert sorted(history.history) == ["d_loss", "g_loss"]
    assert_same_run(history, expected, model, reference, initial)
    # Alternating updates: each optimizer took one step per batch, 4 batches x 2 epochs.
    assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 8
    for side in ("discriminator", "generator"):
        assert_same_weights(getattr(model, side), getattr(reference, side))


def test_predict_step_of_the_model_and_batch_sizes():
    x, _ = regression_data(70, seed=6)
    model = guide_model(seed=6, cls=GuidePredictModel)
    trainer = Trainer(model)
    for batch_size in (None, 16, 70):
        expected = model.predict(x, batch_size=batch_size, verbose=0)
        assert sorted(expected) == ["double", "prediction"]
        assert_same_predictions(trainer.predict(x, batch_size=batch_size), expected)


# ---- item 3: what the Trainer has holds for custom steps ------------------------------------


def test_steps_per_execution_gives_the_same_run_without_retracing():
    x, y = regression_data(100, seed=7)
    reference = guide_model(seed=7)
    expected = reference.fit(x, y, **FIT, epochs=2)
    runs = {}
    for steps_per_execution in (1, 3, "auto"):
        model = guide_model(seed=7)
        trainer = Trainer(model, steps_per_execution=steps_per_execution, jit_compile=False)
        history = trainer.fit(x, y, **FIT, epochs=2)
        assert_same_run(history, expected, model, reference)
        trainer.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        traces = model.python_steps
        counts = trainer.trace_counts
        # More epochs, another number of samples, another execution size: no retrace
        # (the step's Python body, which runs only while tracing, never runs again).
        trainer.fit(x[:70], y[:70], **FIT, epochs=3)
        trainer.fit(x, y, **FIT)
        trainer.evaluate(x[:33], y[:33], batch_size=16, verbose=0, return_dict=True)
        runs[steps_per_execution] = counts["train_step"]
        assert model.python_steps == traces, steps_per_execution
        assert trainer.trace_counts == counts, steps_per_execution
    # One trace of the loop's step (two at most: a full batch and the smaller last batch).
    assert all(1 <= traces <= 2 for traces in runs.values()), runs


def test_jit_compiled_custom_step_matches_fit():
    x, y = regression_data(96, seed=8)
    reference, model = guide_model(seed=8), guide_model(seed=8)
    expected = reference.fit(x, y, **FIT, epochs=2, validation_data=(x[:32], y[:32]))
    trainer = Trainer(model, jit_compile=True)
    history = trainer.fit(x, y, **FIT, epochs=2, validation_data=(x[:32], y[:32]))
    assert_same_run(history, expected, model, reference, initial=guide_model(seed=8).get_weights())


class HostStepModel(GuideModel):
    """Its step sends the inputs through NumPy (`tf.numpy_function`): no XLA kernel."""

    def train_step(self, data):
        x, y = data
        host_x = tf.numpy_function(lambda a: a, [x], tf.float32, stateful=False)
        host_x.set_shape(x.shape)
        return super().train_step((host_x, y))


def test_auto_xla_falls_back_when_the_custom_step_cannot_compile():
    x, y = regression_data(64, seed=14)
    reference = guide_model(seed=14, cls=HostStepModel)
    model = guide_model(seed=14, cls=HostStepModel)
    expected = reference.fit(x, y, **FIT, epochs=2)
    with pytest.warns(UserWarning, match="XLA could not compile"):
        history = Trainer(model).fit(x, y, **FIT, epochs=2)
    assert_same_run(history, expected, model, reference, guide_model(seed=14).get_weights())


class _Recorder(keras.callbacks.Callback):
    """Records every hook with its batch/epoch index and the keys of its logs."""

    def __init__(self):
        super().__init__()
        self.events, self.epoch_logs = [], []

    def _record(self, hook, index=None, logs=None):
        self.events.append((hook, index, tuple(sorted(logs or ()))))

    def on_train_begin(self, logs=None):
        self._record("train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._record("train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch_end", epoch, logs)
        self.epoch_logs.append(dict(logs))
        if epoch == 1:  # stop early: a custom step honours model.stop_training
            self.model.stop_training = True

    def on_train_batch_begin(self, batch, logs=None):
        self._record("train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._record("train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._record("test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._record("test_end", logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._record("test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._record("test_batch_end", batch, logs)


def test_keras_callbacks_fire_as_in_fit():
    x, y = regression_data(64, seed=9)
    recorders = {}
    for name in ("keras", "trainer"):
        model, recorders[name] = guide_model(seed=9), _Recorder()
        options = dict(FIT, epochs=5, callbacks=[recorders[name]],
                       validation_data=(x[:32], y[:32]))
        if name == "keras":
            model.fit(x, y, **options)
        else:
            Trainer(model, steps_per_execution=1).fit(x, y, **options)
    assert recorders["trainer"].events == recorders["keras"].events
    assert len(recorders["keras"].epoch_logs) == 2  # stopped after epoch 2 of 5
    for logs, expected in zip(recorders["trainer"].epoch_logs, recorders["keras"].epoch_logs):
        assert_same_logs(logs, expected)


def test_divergence_raises_and_restores_the_last_finite_weights():
    x, y = regression_data(80, seed=10)
    # A NaN target makes the squared error NaN on any CPU (NaN - p is NaN by IEEE 754);
    # a NaN input need not: some CPUs' max (ReLU) turns it into a number.
    y[50] = np.nan  # sample 50 is in step 7 (batch 8, no shuffling)
    model = guide_model(seed=10, optimizer=keras.optimizers.SGD(0.01))
    trainer = Trainer(model, steps_per_execution=4)
    with pytest.raises(TrainingDivergedError) as caught:
        trainer.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert (caught.value.epoch, caught.value.step, caught.value.restored_step) == (1, 7, 4)
    # Steps 5-8 were one execution: the model holds the weights after step 4.
    reference = guide_model(seed=10, optimizer=keras.optimizers.SGD(0.01))
    reference.fit(x[:32], y[:32], batch_size=8, shuffle=False, verbose=0)
    assert_same_weights(model, reference, atol=1e-6)


@pytest.mark.parametrize("where", ["Trainer", "compile"])
def test_run_eagerly_runs_the_python_step_at_every_step(where):
    x, y = regression_data(40, seed=11)
    reference = guide_model(seed=11, run_eagerly=True)
    expected = reference.fit(x, y, **FIT, epochs=2)
    assert reference.python_steps == 2 * 3  # Keras: 2 epochs of 3 steps (16 + 16 + 8)
    if where == "compile":
        model = guide_model(seed=11, run_eagerly=True)
        trainer = Trainer(model)
    else:
        model = guide_model(seed=11)
        trainer = Trainer(model, run_eagerly=True)
    history = trainer.fit(x, y, **FIT, epochs=2)
    assert model.python_steps == reference.python_steps
    assert_same_run(history, expected, model, reference)


MIRRORED_SCRIPT = r"""
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
from custom_step_helpers import guide_model, low_level_model, regression_data
from customkeras.training import Trainer

x, y = regression_data(96)  # global batch 16: 8 samples per replica, 6 steps per epoch
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
fit_options = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
results = {"replicas": mirrored.num_replicas_in_sync}
for name, build in (("guide", guide_model), ("lower-level", low_level_model)):
    results[name] = {}
    for label, strategy in (("single", None), ("mirrored", mirrored)):
        with (strategy or tf.distribute.get_strategy()).scope():
            model = build(seed=3)
        options = dict(fit_options)
        if name == "guide":  # the lower-level model has no test step of its own
            options["validation_data"] = (x[:32], y[:32])
        history = Trainer(model, strategy=strategy).fit(x, y, **options)
        results[name][label] = {
            "history": history.history, "weights": [w.tolist() for w in model.get_weights()]}
print(json.dumps(results))
"""


def test_custom_step_under_mirrored_strategy_matches_one_device(python_executable):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([python_executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["replicas"] == 2
    for name in ("guide", "lower-level"):
        single, mirrored = results[name]["single"], results[name]["mirrored"]
        for a, b in zip(single["weights"], mirrored["weights"], strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5, err_msg=name)
        assert sorted(mirrored["history"]) == sorted(single["history"])
        for key, values in single["history"].items():
            if name == "guide" and key in ("loss", "val_loss"):
                # The guide's step logs what `compute_loss` returns, and Keras losses
                # divide it by the number of replicas under a strategy (the optimizer
                # sums the replicas' gradients; keras/src/losses/loss.py,
                # scale_loss_for_distribution): Keras fit logs half the loss on two
                # replicas, and so must a Trainer that runs the same step.
                values = np.array(values) / results["replicas"]
            np.testing.assert_allclose(mirrored["history"][key], values, rtol=0, atol=1e-5,
                                       err_msg=f"{name}: {key}")
    assert sorted(results["guide"]["single"]["history"]) == [
        "loss", "mae", "val_loss", "val_mae"]


# ---- item 5: bad input is refused before anything changes -----------------------------------


def test_model_without_step_loss_or_optimizer_is_refused():
    keras.utils.set_random_seed(12)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x, y = regression_data(16, seed=12)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"(?s)(?=.*\bloss\b)(?=.*\boptimizer\b)"):
        Trainer(model).fit(x, y, verbose=0)
    assert_same_weights(model, _Frozen(before), atol=0)


class _Frozen:
    def __init__(self, weights):
        self.weights = weights

    def get_weights(self):
        return self.weights


class BadLogsModel(GuideModel):
    """Returns whatever `returned(loss, y_pred)` builds as the step's logs."""

    returned = None

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables),
                             self.trainable_variables)
        return type(self).returned(loss, y_pred)


@pytest.mark.parametrize("returned, message", [
    (lambda loss, y_pred: {"loss": loss, "per_sample": y_pred[:, 0]}, r"per_sample"),
    (lambda loss, y_pred: {"loss": loss, "nested": {"errors": y_pred}}, r"errors"),
    (lambda loss, y_pred: loss, r"dict"),
], ids=["vector", "nested-matrix", "not-a-dict"])
def test_step_returning_non_scalar_logs_is_refused_before_training(returned, message):
    x, y = regression_data(32, seed=13)
    BadLogsModel.returned = staticmethod(returned)
    model = guide_model(seed=13, cls=BadLogsModel)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        Trainer(model).fit(x, y, **FIT)
    assert_same_weights(model, _Frozen(before), atol=0)
    assert int(model.optimizer.iterations) == 0
