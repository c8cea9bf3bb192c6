"""Streamed data under tf.distribute: MirroredStrategy on two logical CPUs equals one
device; two workers on loopback, each reading its own TFRecord shard, agree.

Logical devices and multi-worker clusters must be set up before TensorFlow
initialises, so the distributed runs happen in subprocesses that print (or write) JSON.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from data_source_helpers import (
    assert_same_history,
    assert_same_logs,
    assert_same_weights,
    data,
    read_records,
    trainer_for,
    write_shards,
)
from distributed_helpers import Workers
from training_helpers import mlp

TESTS = pathlib.Path(__file__).resolve().parent

MIRRORED = r"""
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from data_source_helpers import ArrayPyDataset, batch_generator, batches, data, trainer_for
from training_helpers import mlp

# 128 samples, global batch 32: every batch splits evenly, 16 per replica.
x, y, w = data(128)
xv, yv, _ = data(64, seed=5)
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

PIPELINES = {
    "weighted dataset, validation": (
        lambda: batches(x, y, w), {"validation_data": lambda: batches(xv, yv)}),
    "repeated, steps_per_epoch": (
        lambda: batches(x, y).shuffle(128, seed=3).repeat(), {"steps_per_epoch": 3}),
    "generator": (lambda: batch_generator(x, y), {"steps_per_epoch": 4}),
    "PyDataset": (lambda: ArrayPyDataset(x, y), {}),
}


def run(strategy, make, options):
    with (strategy or tf.distribute.get_strategy()).scope():
        model = mlp(seed=1)
        trainer = trainer_for(model, strategy=strategy)
    options = {k: v() if callable(v) else v for k, v in options.items()}
    history = trainer.fit(make(), epochs=2, shuffle=False, verbose=0, **options)
    return {"weights": [v.tolist() for v in model.get_weights()],
            "history": history.history,
            "evaluation": trainer.evaluate(batches(xv, yv), verbose=0, return_dict=True),
            "predictions": trainer.predict(batches(xv)).tolist()}


results = {"replicas": mirrored.num_replicas_in_sync}
for name, (make, options) in PIPELINES.items():
    results[name] = {"single": run(None, make, options), "mirrored": run(mirrored, make, options)}
print(json.dumps(results))
"""


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))


def test_mirrored_with_streamed_data_matches_one_device(python_executable):
    done = subprocess.run([python_executable, "-c", MIRRORED], capture_output=True, text=True,
                          env=_env(), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results.pop("replicas") == 2
    assert len(results) == 4
    for name, run in results.items():
        single, mirrored = run["single"], run["mirrored"]
        assert_same_weights([np.array(w) for w in mirrored["weights"]],
                            [np.array(w) for w in single["weights"]], name)
        assert_same_history(mirrored["history"], single["history"], name)
        assert_same_logs(mirrored["evaluation"], single["evaluation"], f"{name}: evaluate")
        np.testing.assert_allclose(mirrored["predictions"], single["predictions"], atol=1e-5,
                                   err_msg=f"{name}: predict")
        assert len(single["history"]["loss"]) == 2, name
    assert "val_loss" in results["weighted dataset, validation"]["single"]["history"]


WORKER = r"""
import json
import sys

from customkeras.training import create_strategy

strategy = create_strategy("multi-worker", timeout_seconds=60)  # before any other TF op

from data_source_helpers import read_records, trainer_for
from training_helpers import mlp

# Every worker builds the same pipeline over all the shards, batched by the global
# batch; auto-sharding by file gives each worker its own shard, and each replica 16
# records of it per step.
shards = sys.argv[2:]
with strategy.scope():
    model = mlp(seed=1)
    trainer = trainer_for(model, strategy=strategy)
history = trainer.fit(read_records(shards).batch(32), epochs=2, shuffle=False, verbose=0,
                      validation_data=read_records(shards).batch(32))
results = {"weights": [v.tolist() for v in model.get_weights()], "history": history.history,
           "iterations": int(model.optimizer.iterations.numpy()),
           "evaluation": trainer.evaluate(read_records(shards).batch(32), verbose=0, return_dict=True)}
with open(sys.argv[1], "w") as stream:
    json.dump(results, stream)
"""


@pytest.mark.slow
def test_two_workers_with_per_worker_tfrecord_shards_agree(python_executable, tmp_path):
    x, y, _ = data(128)
    shards = write_shards(tmp_path, x, y, 2)  # 64 records each: 4 steps of 2 x 16
    outputs = [tmp_path / f"worker{index}.json" for index in range(2)]

    def command(index):
        return [python_executable, "-c", WORKER, str(outputs[index]), *shards]

    with Workers(command, 2, _env(), tmp_path) as workers:
        statuses = workers.wait_all(timeout=240)
        assert statuses == [0, 0], [workers.output(i)[1][-3000:] for i in range(2)]
    chief, other = (json.loads(path.read_text()) for path in outputs)
    assert chief["iterations"] == other["iterations"] == 2 * 4
    assert_same_weights([np.array(w) for w in other["weights"]],
                        [np.array(w) for w in chief["weights"]], "worker 1 vs chief")
    assert_same_history(other["history"], chief["history"], "worker 1 vs chief")
    assert_same_logs(other["evaluation"], chief["evaluation"], "evaluate")

    # One device, each global batch made of 16 records of each shard, equals them.
    halves = [read_records([path]).batch(16) for path in shards]
    joined = tf.data.Dataset.zip(tuple(halves)).map(
        lambda a, b: (tf.concat([a[0], b[0]], 0), tf.concat([a[1], b[1]], 0)))
    # Validation and evaluation: means over all 128 records, however they are grouped.
    model = mlp(seed=1)
    trainer = trainer_for(model)
    history = trainer.fit(joined, epochs=2, shuffle=False, verbose=0,
                          validation_data=read_records(shards).batch(32))
    assert_same_weights([np.array(w) for w in chief["weights"]], model.get_weights(),
                        "workers vs one device")
    assert_same_history(chief["history"], history, "workers vs one device")
    assert "val_loss" in history.history
    assert_same_logs(chief["evaluation"], trainer.evaluate(read_records(shards).batch(32), verbose=0, return_dict=True),
                     "evaluate: workers vs one device")
    assert max(np.abs(a - b).max() for a, b in zip(model.get_weights(),
                                                   mlp(seed=1).get_weights())) > 1e-3
