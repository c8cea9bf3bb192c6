"""The Trainer under MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1.

Both workers run SCRIPT (each with its own TF_CONFIG, free ports chosen here); each
writes its results as JSON. Their weights, histories and evaluations must be equal to
each other and to the same run in this process on one device.
"""

import json
import os
import pathlib

import keras
import numpy as np
import pytest
from distributed_helpers import Workers
from training_helpers import classification_data, mlp

from customkeras.training import Trainer

pytestmark = pytest.mark.slow
TESTS = pathlib.Path(__file__).resolve().parent

SCRIPT = r"""
import json
import sys

from customkeras.training import create_strategy

strategy = create_strategy("multi-worker", timeout_seconds=60)  # before any other TF op

import keras
import numpy as np
from training_helpers import classification_data, mlp

from customkeras.training import Trainer

worker = strategy.cluster_resolver.task_id
x, y = classification_data(4000)
sample_weight = np.random.default_rng(0).uniform(0, 2, 4000).astype("float32")
results = {"workers": strategy.num_replicas_in_sync}


def build(groups):
    with strategy.scope():
        model = mlp(seed=1, kernel_regularizer=keras.regularizers.l2(0.01))
        if groups:
            return model, {model.layers[0]: keras.optimizers.SGD(0.1),
                           model.layers[1]: keras.optimizers.Nadam(0.01)}
        return model, keras.optimizers.Nadam(0.01)


def report(name, trainer, model, history):
    results[name] = {"weights": [w.tolist() for w in model.get_weights()],
                     "history": history.history,
                     "iterations": int(trainer.optimizer.iterations.numpy())}


# Shuffled without a seed: the workers' NumPy generators differ, so only the chief's
# draw, shared with the other worker, gives them the same batches. 250 steps per
# epoch with steps_per_execution="auto": the planned executions change as they are
# timed (each worker times its own), and must stay the same on both.
model, optimizer = build(groups=False)
np.random.seed(100 + worker)
trainer = Trainer(model, "sparse_categorical_crossentropy", optimizer,
                  metrics=["accuracy"], strategy=strategy)
history = trainer.fit(x, y, batch_size=16, epochs=2, sample_weight=sample_weight,
                      validation_data=(x[:301], y[:301]), verbose=0)
report("auto", trainer, model, history)
results["auto"]["evaluation"] = trainer.evaluate(x[:333], y[:333], batch_size=50, verbose=0, return_dict=True)

model, optimizer = build(groups=True)
trainer = Trainer(model, "sparse_categorical_crossentropy", optimizer, metrics=["accuracy"],
                  steps_per_execution=10, strategy=strategy)
report("groups", trainer, model, trainer.fit(x[:1000], y[:1000], batch_size=32, epochs=2,
                                             seed=7, verbose=0))


class StopOnOneWorker(keras.callbacks.Callback):
    # Like a Ctrl-C, which reaches one process: both workers must stop at one step.
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if worker == 1 and self.epoch == 1:
            self.model.stop_training = True


model, optimizer = build(groups=False)
trainer = Trainer(model, "sparse_categorical_crossentropy", optimizer, metrics=["accuracy"],
                  steps_per_execution=10, strategy=strategy)
report("stopped", trainer, model, trainer.fit(x[:1000], y[:1000], batch_size=32, epochs=3,
                                              seed=7, verbose=0, callbacks=[StopOnOneWorker()]))

try:  # the workers disagree: a clear error on both, not a hang
    trainer.fit(x[:1000], y[:1000], batch_size=32 if worker == 0 else 16, seed=7, verbose=0)
    results["mismatch_error"] = None
except ValueError as error:
    results["mismatch_error"] = str(error)

with open(sys.argv[1], "w") as stream:
    json.dump(results, stream)
"""


def _single_process_reference():
    x, y = classification_data(4000)
    sample_weight = np.random.default_rng(0).uniform(0, 2, 4000).astype("float32")
    model = mlp(seed=1, kernel_regularizer=keras.regularizers.l2(0.01))
    np.random.seed(100)  # the chief's generator
    trainer = Trainer(model, "sparse_categorical_crossentropy", keras.optimizers.Nadam(0.01),
                      metrics=["accuracy"])
    history = trainer.fit(x, y, batch_size=16, epochs=2, sample_weight=sample_weight,
                          validation_data=(x[:301], y[:301]), verbose=0)
    auto = {"weights": model.get_weights(), "history": history.history,
            "evaluation": trainer.evaluate(x[:333], y[:333], batch_size=50, verbose=0, return_dict=True)}
    model = mlp(seed=1, kernel_regularizer=keras.regularizers.l2(0.01))
    trainer = Trainer(model, "sparse_categorical_crossentropy",
                      {model.layers[0]: keras.optimizers.SGD(0.1),
                       model.layers[1]: keras.optimizers.Nadam(0.01)}, metrics=["accuracy"])
    history = trainer.fit(x[:1000], y[:1000], batch_size=32, epochs=2, seed=7, verbose=0)
    return {"auto": auto, "groups": {"weights": model.get_weights(), "history": history.history}}


def _assert_same_run(actual, expected, name):
    for a, b in zip(actual["weights"], expected["weights"], strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=0, atol=1e-5, err_msg=name)
    assert actual["history"].keys() == expected["history"].keys(), name
    for key, values in expected["history"].items():
        np.testing.assert_allclose(actual["history"][key], values, atol=1e-5,
                                   err_msg=f"{name}: {key}")


def test_two_workers_match_each_other_and_one_process(python_executable, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    outputs = [tmp_path / f"worker{index}.json" for index in range(2)]
    command = lambda index: [python_executable, "-c", SCRIPT, str(outputs[index])]  # noqa: E731
    with Workers(command, 2, env, tmp_path) as workers:
        statuses = workers.wait_all(timeout=240)
        assert statuses == [0, 0], [workers.output(i)[1][-3000:] for i in range(2)]
    chief, other = (json.loads(path.read_text()) for path in outputs)
    assert chief["workers"] == other["workers"] == 2

    reference = _single_process_reference()
    for name in ("auto", "groups"):
        _assert_same_run(chief[name], reference[name], f"chief, {name}")
        _assert_same_run(other[name], reference[name], f"worker 1, {name}")
    for key, value in reference["auto"]["evaluation"].items():
        assert chief["auto"]["evaluation"][key] == other["auto"]["evaluation"][key]
        np.testing.assert_allclose(chief["auto"]["evaluation"][key], value, atol=1e-5)

    # Stopped by worker 1 alone, during the second epoch: both stopped after the same
    # step, with equal weights and histories.
    _assert_same_run(other["stopped"], chief["stopped"], "stopped")
    assert chief["stopped"]["iterations"] == other["stopped"]["iterations"]
    assert 32 <= chief["stopped"]["iterations"] < 2 * 32
    assert len(chief["stopped"]["history"]["loss"]) == 2

    for error in (chief["mismatch_error"], other["mismatch_error"]):
        assert "same data with the same settings" in error
        assert "batch_size: [16.0, 32.0]" in error
