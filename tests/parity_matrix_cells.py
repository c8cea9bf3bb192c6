"""The runs behind tests/test_parity_matrix.py: Keras and the `Trainer` on the same data.

A cell is one entry (`fit` for two epochs, or `evaluate` / `predict` of the initial
weights on other data) of a model built anew, run by Keras (`keras_cell`, the
reference, `jit_compile=False`) or by a new `Trainer` (`trainer_cell`); one reference
serves the three `jit_compile` modes of an (entry, data kind, step kind, strategy).
Results are JSON-able (lists of float32 values, which become Python floats exactly), so
the MirroredStrategy cells can come from a subprocess (tests/parity_matrix_mirrored.py)
and bit-for-bit comparisons stay exact.
"""

import keras
import numpy as np
import tensorflow as tf
from custom_step_helpers import GuidePredictModel
from data_source_helpers import ArrayPyDataset, batch_generator, batches, data

from customkeras.training import Trainer

ENTRIES = ("fit", "evaluate", "predict")
DATA_KINDS = ("arrays", "tf.data", "generator", "PyDataset")
JIT_MODES = (False, True, "auto")
STEP_KINDS = ("default", "own")
# The Dropout row: the default step, fit, without a strategy.
DROPOUT_DATA_KINDS = ("arrays", "tf.data")
DROPOUT_JIT_MODES = (False, True)

BATCH_SIZE = 32
EPOCHS = 2
# 100 training samples: 4 steps an epoch, the last of 4 samples; 60 evaluation
# samples: 32 + 28. Under two replicas every batch splits evenly.
TRAIN = data(100, seed=0)
EVALUATION = data(60, seed=5)
STEPS_PER_EPOCH = -(-len(TRAIN[0]) // BATCH_SIZE)


def build(step_kind, dropout=False, seed=1):
    """8 features -> Dense(16, relu) [-> Dropout(0.3)] -> Dense(3, softmax), compiled.

    `step_kind` "default": a `keras.Model` (Keras's default steps); "own": a
    `GuidePredictModel`, whose `train_step` / `test_step` / `predict_step` follow the
    Keras guide "Customizing what happens in fit()" (its `predict_step` returns a dict).
    Equal arguments give equal initial weights and random seeds.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    if dropout:
        hidden = keras.layers.Dropout(0.3)(hidden)
    outputs = keras.layers.Dense(3, activation="softmax")(hidden)
    model = (keras.Model if step_kind == "default" else GuidePredictModel)(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return model


def fit_data(kind):
    """`(args, kwargs)` of `fit` for `kind`, built anew (a generator runs once)."""
    x, y, w = TRAIN
    if kind == "arrays":
        return (x, y), {"sample_weight": w, "batch_size": BATCH_SIZE}
    if kind == "tf.data":
        return (batches(x, y, w, batch_size=BATCH_SIZE),), {}
    if kind == "generator":  # endless: the same generator carries on across epochs
        return (batch_generator(x, y, w, batch_size=BATCH_SIZE),), {
            "steps_per_epoch": STEPS_PER_EPOCH}
    return (ArrayPyDataset(x, y, w, batch_size=BATCH_SIZE),), {}


def evaluate_data(kind):
    """`(args, kwargs)` of `evaluate` for `kind`: one pass over `EVALUATION`."""
    x, y, w = EVALUATION
    if kind == "arrays":
        return (x, y), {"sample_weight": w, "batch_size": BATCH_SIZE}
    if kind == "tf.data":
        return (batches(x, y, w, batch_size=BATCH_SIZE),), {}
    if kind == "generator":
        return (batch_generator(x, y, w, batch_size=BATCH_SIZE, cycles=1),), {}
    return (ArrayPyDataset(x, y, w, batch_size=BATCH_SIZE),), {}


def predict_data(kind):
    """`(args, kwargs)` of `predict` for `kind`: the inputs of `EVALUATION`."""
    x = EVALUATION[0]
    if kind == "arrays":
        return (x,), {"batch_size": BATCH_SIZE}
    if kind == "tf.data":
        return (batches(x, batch_size=BATCH_SIZE),), {}
    if kind == "generator":
        return (batch_generator(x, batch_size=BATCH_SIZE, cycles=1),), {}
    return (ArrayPyDataset(x, batch_size=BATCH_SIZE),), {}


# The caller's arrays as they were: a run must not change them (`_run` checks, and
# restores them so that one cell's fault cannot spread to the next).
_PRISTINE = [a.copy() for a in TRAIN + EVALUATION]


def _inputs_unchanged():
    unchanged = True
    for array, pristine in zip(TRAIN + EVALUATION, _PRISTINE):
        if not np.array_equal(array, pristine):
            unchanged = False
            np.copyto(array, pristine)
    return unchanged


def _lists(structure):
    return tf.nest.map_structure(lambda a: np.asarray(a).tolist(), structure)


def _run(model, run_entry, entry, data_kind, twice):
    """`entry` of `model` through `run_entry(kind, *args, **kwargs)`, as JSON-able data;
    `twice`: evaluate and predict run a second time (`again`), for reproducibility."""
    if entry == "fit":
        args, kwargs = fit_data(data_kind)
        history = run_entry("fit", *args, epochs=EPOCHS, shuffle=False, **kwargs)
        result = {"history": history.history, "weights": _lists(model.get_weights())}
    else:
        make = evaluate_data if entry == "evaluate" else predict_data
        key = "logs" if entry == "evaluate" else "outputs"
        result = {}
        for name in (key, "again") if twice else (key,):
            args, kwargs = make(data_kind)
            result[name] = _lists(run_entry(entry, *args, **kwargs))
    result["inputs_unchanged"] = _inputs_unchanged()
    return result


def keras_cell(entry, data_kind, step_kind, strategy=None, dropout=False):
    """The reference of a cell: Keras `fit` (two epochs), `evaluate` or `predict` (of
    the initial weights), with `jit_compile=False`."""
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build(step_kind, dropout)

    def run_entry(kind, *args, **kwargs):
        if kind == "evaluate":
            kwargs["return_dict"] = True
        return getattr(model, kind)(*args, verbose=0, **kwargs)

    return _run(model, run_entry, entry, data_kind, twice=False)


def trainer_cell(entry, data_kind, step_kind, jit_compile, strategy=None, dropout=False,
                 twice=False):
    """The same as `keras_cell` through a new `Trainer`."""
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build(step_kind, dropout)
        trainer = Trainer(model, jit_compile=jit_compile, strategy=strategy)

    def run_entry(kind, *args, **kwargs):
        if kind == "fit":
            kwargs["verbose"] = 0
        if kind == "evaluate":
            kwargs["return_dict"] = True
        return getattr(trainer, kind)(*args, **kwargs)

    return _run(model, run_entry, entry, data_kind, twice)


def strategy_cells(strategy):
    """Every cell under `strategy`: `{"<entry>|<data>|<step>": {"keras": reference,
    "False" / "True" / "auto": the Trainer's}}` (evaluate and predict twice)."""
    cells = {}
    for entry in ENTRIES:
        for data_kind in DATA_KINDS:
            for step_kind in STEP_KINDS:
                runs = {"keras": keras_cell(entry, data_kind, step_kind, strategy)}
                for jit in JIT_MODES:
                    runs[str(jit)] = trainer_cell(entry, data_kind, step_kind, jit, strategy,
                                                  twice=True)
                cells[f"{entry}|{data_kind}|{step_kind}"] = runs
    return cells
