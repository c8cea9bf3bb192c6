"""The Trainer under tf.distribute.MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TensorFlow initialises, so the runs happen
in a subprocess; it prints JSON that the test checks.
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

from customkeras.training import Trainer

# 101 samples, batch 32: the last batch of 5 splits unevenly (2 + 3) over the
# replicas, and so does the last validation batch of 9 (4 + 5).
x, y = classification_data(101)
weights = np.random.default_rng(0).uniform(0, 2, 101).astype("float32")
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def run(strategy, groups, sample_weight):
    with (strategy or tf.distribute.get_strategy()).scope():
        model = mlp(seed=1, kernel_regularizer=keras.regularizers.l2(0.01))
        if groups:
            optimizer = {model.layers[0]: keras.optimizers.SGD(0.1),
                         model.layers[1]: keras.optimizers.Nadam(0.01)}
        else:
            optimizer = keras.optimizers.Nadam(0.01)
    trainer = Trainer(model, "sparse_categorical_crossentropy", optimizer,
                      metrics=["accuracy"], strategy=strategy)
    history = trainer.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
                          sample_weight=sample_weight, validation_data=(x[:41], y[:41]))
    return [w.tolist() for w in model.get_weights()], history.history


results = {"replicas": mirrored.num_replicas_in_sync, "runs": []}
for groups, sample_weight in [(False, None), (False, weights), (True, None)]:
    single = run(None, groups, sample_weight)
    distributed = run(mirrored, groups, sample_weight)
    results["runs"].append({"single": single, "mirrored": distributed})

outside = mlp(seed=1)  # created outside the strategy's scope
try:
    Trainer(outside, "sparse_categorical_crossentropy", "sgd", strategy=mirrored).fit(
        x, y, verbose=0)
    results["outside_scope_error"] = None
except ValueError as error:
    results["outside_scope_error"] = str(error)
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
    for run in results["runs"]:
        single_weights, single_history = run["single"]
        mirrored_weights, mirrored_history = run["mirrored"]
        for a, b in zip(single_weights, mirrored_weights):
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=0, atol=1e-5)
        assert mirrored_history.keys() == single_history.keys()
        for key, values in single_history.items():
            np.testing.assert_allclose(mirrored_history[key], values, atol=1e-5, err_msg=key)
    assert "inside `with strategy.scope():`" in results["outside_scope_error"]
