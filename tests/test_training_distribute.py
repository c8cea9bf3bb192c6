"""The Trainer under tf.distribute.MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TensorFlow initialises, so the runs happen
in a subprocess; it prints JSON that the test checks. Every run is compared with the
same run on one device (same global batch): weights, history (so the metrics and the
validation are aggregated over both replicas) and `evaluate`.
"""

import json
import os
import pathlib
import subprocess

import numpy as np

TESTS = pathlib.Path(__file__).resolve().parent

SCRIPT = r"""
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np
from training_helpers import classification_data, mlp

from customkeras import models
from customkeras.training import Trainer

# 101 samples, batch 32: the last batch of 5 splits unevenly (2 + 3) over the
# replicas, and so does the last validation batch of 9 (4 + 5). Batch 50 leaves a
# last batch of 1: one replica gets no sample at all.
x, y = classification_data(101)
weights = np.random.default_rng(0).uniform(0, 2, 101).astype("float32")
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def build(kind):
    if kind == "reconstructing":  # an add_loss term computed from each replica's share
        keras.utils.set_random_seed(1)
        model = models.ReconstructingRegressor(1, reconstruction_weight=0.5)
        model(x[:1])
        return model, "mse", keras.optimizers.Nadam(0.01)
    model = mlp(seed=1, kernel_regularizer=keras.regularizers.l2(0.01))
    if kind == "groups":
        optimizer = {model.layers[0]: keras.optimizers.SGD(0.1),
                     model.layers[1]: keras.optimizers.Nadam(0.01)}
    else:
        optimizer = keras.optimizers.Nadam(0.01)
    if kind == "weighted mean":  # divides by the sum of the weights, not the batch size
        loss = keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
    else:
        loss = "sparse_categorical_crossentropy"
    return model, loss, optimizer


def run(strategy, kind, sample_weight=None, batch_size=32):
    with (strategy or tf.distribute.get_strategy()).scope():
        model, loss, optimizer = build(kind)
    targets = x[:, :1] * 2.0 if kind == "reconstructing" else y
    metrics = ["mae"] if kind == "reconstructing" else ["accuracy"]
    trainer = Trainer(model, loss, optimizer, metrics=metrics, strategy=strategy)
    history = trainer.fit(x, targets, batch_size=batch_size, epochs=2, shuffle=False,
                          verbose=0, sample_weight=sample_weight,
                          validation_data=(x[:41], targets[:41]))
    evaluation = trainer.evaluate(x, targets, batch_size=batch_size, verbose=0, return_dict=True)
    return {"weights": [w.tolist() for w in model.get_weights()],
            "history": history.history, "evaluation": evaluation}


results = {"replicas": mirrored.num_replicas_in_sync, "runs": {}}
for name, arguments in {
    "plain": dict(kind="plain"),
    "sample weights": dict(kind="plain", sample_weight=weights),
    "weighted mean": dict(kind="weighted mean", sample_weight=weights),
    "group optimizers": dict(kind="groups"),
    "empty replica share": dict(kind="plain", batch_size=50),
    # A batch-mean add_loss term, here with an uneven last batch (5 = 2 + 3).
    "add_loss": dict(kind="reconstructing"),
}.items():
    results["runs"][name] = {"single": run(None, **arguments),
                             "mirrored": run(mirrored, **arguments)}

outside = mlp(seed=1)  # created outside the strategy's scope
try:
    Trainer(outside, "sparse_categorical_crossentropy", "sgd", strategy=mirrored).fit(
        x, y, verbose=0)
    results["outside_scope_error"] = None
except ValueError as error:
    results["outside_scope_error"] = str(error)
with mirrored.scope():
    inside = mlp(seed=1)
metric = keras.metrics.SparseCategoricalAccuracy()  # also outside: would count one share
try:
    Trainer(inside, "sparse_categorical_crossentropy", "sgd", metrics=[metric],
            strategy=mirrored).fit(x, y, verbose=0)
    results["outside_scope_metric_error"] = None
except ValueError as error:
    results["outside_scope_metric_error"] = str(error)
print(json.dumps(results))
"""


def test_mirrored_two_devices_matches_single_device(python_executable):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([python_executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["replicas"] == 2
    assert len(results["runs"]) == 6
    for name, run in results["runs"].items():
        single, mirrored = run["single"], run["mirrored"]
        for a, b in zip(single["weights"], mirrored["weights"], strict=True):
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=0, atol=1e-5, err_msg=name)
        assert mirrored["history"].keys() == single["history"].keys(), name
        # The reconstructing model also logs its own metric (and val_), reconstruction_loss.
        keys = 6 if name == "add_loss" else 4
        assert "val_loss" in single["history"] and len(single["history"]) == keys, name
        for key, values in single["history"].items():
            np.testing.assert_allclose(mirrored["history"][key], values, atol=1e-5,
                                       err_msg=f"{name}: {key}")
        assert mirrored["evaluation"].keys() == single["evaluation"].keys()
        for key, value in single["evaluation"].items():
            np.testing.assert_allclose(mirrored["evaluation"][key], value, atol=1e-5,
                                       err_msg=f"{name}: evaluate {key}")
    # Not a vacuous comparison: the weighted-mean loss differs from the plain mean.
    assert (results["runs"]["weighted mean"]["single"]["history"]["loss"]
            != results["runs"]["sample weights"]["single"]["history"]["loss"])
    assert "inside `with strategy.scope():`" in results["outside_scope_error"]
    assert "metric objects" in results["outside_scope_metric_error"]
    assert "sparse_categorical_accuracy" in results["outside_scope_metric_error"]
