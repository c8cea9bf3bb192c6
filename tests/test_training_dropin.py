"""`Trainer(model)` as a drop-in for `model.fit` / `evaluate` / `predict` (issue 21).

Each test runs the same model (same initial weights) on the same data under Keras and
under the Trainer, with `jit_compile=False` (XLA's floats differ slightly from plain
ones), and compares histories, weights, results and outputs to 1e-5, or checks that
both refuse the same call. `shuffle=False` where Keras's own shuffle would draw another
order than the Trainer's `(seed, epoch)` one.
"""

import io
import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from data_source_helpers import (
    LOSS,
    TOLERANCE,
    ArrayPyDataset,
    assert_same_history,
    assert_same_logs,
    assert_same_weights,
    assert_trained,
    batch_generator,
    batches,
    data,
    twins,
)
from training_helpers import mlp

from customkeras.training import Trainer, callback_hooks, progress

CLASS_WEIGHT = {0: 1.0, 1: 4.0, 2: 0.25}
FIT = dict(epochs=2, shuffle=False, verbose=0)


def _compiled_twins(seed=1, loss=LOSS, metrics=("accuracy",), make=None):
    """`(keras_model, trainer)`: two equal models compiled alike, and a `Trainer(model)`."""
    make = make or (lambda: mlp(seed=seed))
    reference, model = make(), make()
    model.set_weights(reference.get_weights())
    for each in (reference, model):
        each.compile(keras.optimizers.Nadam(0.01), loss, metrics=list(metrics))
    return reference, Trainer(model, jit_compile=False)


def _assert_same_fit(trainer, reference, expected, history, name=""):
    assert_same_history(history, expected, name)
    assert_same_weights(trainer.model, reference, name)


def _assert_close(actual, expected, name=""):
    for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected)):
        np.testing.assert_allclose(a, e, rtol=0, atol=TOLERANCE, err_msg=name)


# ---- fit's arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("labels", ["sparse", "one-hot"])
def test_class_weight_on_arrays(labels):
    x, y, _ = data(100)
    loss = LOSS
    if labels == "one-hot":
        y, loss = keras.utils.to_categorical(y, 3), "categorical_crossentropy"
    reference, trainer = _compiled_twins(loss=loss)
    options = dict(FIT, batch_size=16, class_weight=CLASS_WEIGHT)
    expected = reference.fit(x, y, **options)
    _assert_same_fit(trainer, reference, expected, trainer.fit(x, y, **options), labels)
    unweighted = _compiled_twins(loss=loss)[1].fit(x, y, **dict(options, class_weight=None))
    assert unweighted.history["loss"] != expected.history["loss"]  # the weights mattered


@pytest.mark.parametrize("kind", ["tf.data", "PyDataset"])
def test_class_weight_on_streamed_data(kind):
    x, y, _ = data(100)

    def make():
        return batches(x, y, batch_size=16) if kind == "tf.data" else ArrayPyDataset(
            x, y, batch_size=16)

    reference, trainer = _compiled_twins()
    expected = reference.fit(make(), class_weight=CLASS_WEIGHT, **FIT)
    history = trainer.fit(make(), class_weight=CLASS_WEIGHT, **FIT)
    _assert_same_fit(trainer, reference, expected, history, kind)


def test_class_weight_refused_where_keras_refuses_it():
    x, y, w = data(64)
    reference, trainer = _compiled_twins()
    before = trainer.model.get_weights()
    for fit in (reference.fit, trainer.fit):  # a generator: Keras's own message
        with pytest.raises(ValueError, match="`class_weight` is not supported for Python "
                                             "generator"):
            fit(batch_generator(x, y, cycles=1), class_weight=CLASS_WEIGHT, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        reference.fit(x, y, sample_weight=w, class_weight=CLASS_WEIGHT, verbose=0)
    with pytest.raises(ValueError, match="`class_weight` and `sample_weight` cannot be "
                                         "given together"):
        trainer.fit(x, y, sample_weight=w, class_weight=CLASS_WEIGHT, verbose=0)
    with pytest.raises(TypeError, match=r"`class_weight` must be a dict .*received "
                                        r"class_weight=\[1, 2\]"):
        trainer.fit(x, y, class_weight=[1, 2], verbose=0)
    with pytest.raises(TypeError, match=r"`class_weight` keys must be class indices .*with "
                                        r"the key 'a'"):
        trainer.fit(x, y, class_weight={0: 1.0, "a": 2.0}, verbose=0)
    with pytest.raises(ValueError, match=r"`class_weight\[1\]` must be a finite number >= 0; "
                                         r"received class_weight\[1\]=-2.0"):
        trainer.fit(x, y, class_weight={1: -2.0}, verbose=0)
    assert_same_weights(trainer.model, before)


class WeightedStepModel(keras.Model):
    """The Keras guide's `train_step` with sample weights: `data` is `(x, y, w)`."""

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        assert sample_weight is not None, "class_weight must reach the step as sample_weight"
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables),
                             self.trainable_variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}


def _weighted_step_model(seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return WeightedStepModel(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def test_class_weight_reaches_a_models_own_train_step_as_sample_weight():
    x, y, _ = data(96)
    reference, trainer = _compiled_twins(make=_weighted_step_model)
    options = dict(FIT, batch_size=16, class_weight=CLASS_WEIGHT)
    expected = reference.fit(x, y, **options)
    _assert_same_fit(trainer, reference, expected, trainer.fit(x, y, **options))
    expected = reference.fit(batches(x, y, batch_size=16), **dict(options, batch_size=None))
    history = trainer.fit(batches(x, y, batch_size=16), **dict(options, batch_size=None))
    _assert_same_fit(trainer, reference, expected, history, "tf.data")


def test_validation_split_matches_keras():
    x, y, w = data(100)
    reference, trainer = _compiled_twins()
    options = dict(FIT, batch_size=16, validation_split=0.25, sample_weight=w)
    expected = reference.fit(x, y, **options)
    history = trainer.fit(x, y, **options)
    _assert_same_fit(trainer, reference, expected, history)
    assert "val_loss" in history.history


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y, _ = data(100)
    split = Trainer(mlp(seed=2), LOSS, "adam", jit_compile=False).fit(
        x, y, epochs=2, batch_size=16, validation_split=0.2, seed=7, verbose=0)
    explicit = Trainer(mlp(seed=2), LOSS, "adam", jit_compile=False).fit(
        x[:80], y[:80], epochs=2, batch_size=16, validation_data=(x[80:], y[80:]), seed=7,
        verbose=0)
    assert_same_history(split, explicit)


def test_validation_split_refused_for_datasets_and_bad_values():
    x, y, _ = data(64)
    reference, trainer = _compiled_twins()
    for fit in (reference.fit, trainer.fit):
        with pytest.raises(ValueError, match="validation_split"):
            fit(batches(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_split` must be a finite number >= 0 "
                                         r"and < 1; received validation_split=1.5"):
        trainer.fit(x, y, validation_split=1.5, verbose=0)
    # Ignored, as in Keras, when validation_data is given.
    history = trainer.fit(x, y, validation_split=0.5, validation_data=(x[:8], y[:8]),
                          verbose=0)
    assert len(trainer.model.get_weights()) and "val_loss" in history.history


def test_validation_batch_size_matches_keras():
    x, y, _ = data(100)
    xv, yv, _ = data(30, seed=4)
    reference, trainer = _compiled_twins()
    options = dict(FIT, batch_size=16, validation_data=(xv, yv), validation_batch_size=7)
    expected = reference.fit(x, y, **options)
    _assert_same_fit(trainer, reference, expected, trainer.fit(x, y, **options))


def test_positional_arguments_in_keras_order():
    x, y, _ = data(64)
    reference, trainer = _compiled_twins()
    # x, y, batch_size, epochs, verbose, callbacks, validation_split
    expected = reference.fit(x, y, 16, 2, 0, None, 0.25, None, False)
    _assert_same_fit(trainer, reference, expected,
                     trainer.fit(x, y, 16, 2, 0, None, 0.25, None, False))
    _assert_close(trainer.evaluate(x, y, 16, 0), reference.evaluate(x, y, 16, 0))
    _assert_close(trainer.predict(x, 16, 0), reference.predict(x, 16, 0))


@pytest.mark.parametrize("kind", ["tf.data", "generator", "PyDataset"])
def test_batch_size_is_ignored_for_streamed_data(kind):
    x, y, _ = data(100)

    def make():
        if kind == "tf.data":
            return batches(x, y, batch_size=20)
        if kind == "generator":
            return batch_generator(x, y, batch_size=20)
        return ArrayPyDataset(x, y, batch_size=20)

    reference, trainer = _compiled_twins()
    steps = dict(steps_per_epoch=5) if kind == "generator" else {}
    expected = reference.fit(make(), batch_size=64, **FIT, **steps)
    history = trainer.fit(make(), batch_size=64, **FIT, **steps)
    _assert_same_fit(trainer, reference, expected, history, kind)


# ---- evaluate and predict -------------------------------------------------------------------

def test_evaluate_returns_what_keras_returns():
    x, y, _ = data(100)
    reference, trainer = _compiled_twins()
    trainer.fit(x, y, **FIT)
    reference.fit(x, y, **FIT)
    expected = reference.evaluate(x, y, verbose=0)
    result = trainer.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    _assert_close(result, expected)
    assert_same_logs(trainer.evaluate(x, y, verbose=0, return_dict=True),
                     reference.evaluate(x, y, verbose=0, return_dict=True))
    # Only a loss: a float, as Keras returns.
    reference, trainer = _compiled_twins(metrics=())
    loss = trainer.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, reference.evaluate(x, y, verbose=0), atol=TOLERANCE)
    # batch_size is ignored for a dataset.
    np.testing.assert_allclose(trainer.evaluate(batches(x, y), batch_size=64, verbose=0),
                               reference.evaluate(batches(x, y), batch_size=64, verbose=0),
                               atol=TOLERANCE)


def test_evaluate_and_predict_verbose():
    x, y, _ = data(64)
    _, trainer = _compiled_twins()
    for verbose in (0, 1, 2, "auto"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            trainer.evaluate(x, y, verbose=verbose)
            trainer.predict(x, verbose=verbose)
        if verbose == 0:
            assert out.getvalue() == ""
        else:
            assert "loss" in out.getvalue() and "step" in out.getvalue(), verbose
    with pytest.raises(ValueError, match=r"`verbose` must be one of .*received verbose=3"):
        trainer.evaluate(x, y, verbose=3)


def test_uncompiled_model_predicts_and_refuses_fit_and_evaluate_at_the_call():
    x, y, _ = data(40)
    encoder = mlp(seed=3)
    trainer = Trainer(encoder, jit_compile=False)  # any keras.Model is accepted
    _assert_close(trainer.predict(x, verbose=0), encoder.predict(x, verbose=0))
    before = encoder.get_weights()
    for method in ("fit", "evaluate"):
        with pytest.raises(ValueError, match="must call `compile\\(\\)`") as keras_error:
            getattr(encoder, method)(x, y, verbose=0)
        with pytest.raises(ValueError, match=r"You must call `compile\(\)` before using the "
                                             r"model.*pass a loss and an optimizer to "
                                             r"Trainer") as error:
            getattr(trainer, method)(x, y, verbose=0)
        assert str(keras_error.value).rstrip(".") in str(error.value)
    assert_same_weights(encoder, before)


def test_predict_on_an_unbuilt_uncompiled_model():
    x, _, _ = data(40)
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    outputs = Trainer(model, jit_compile=False).predict(x, verbose=0)
    _assert_close(outputs, model.predict(x, verbose=0))


# ---- data structures ------------------------------------------------------------------------

def _three_inputs(seed=1, as_dict=False):
    """The functional API guide's ticket model, small: inputs named title/body/tags."""
    keras.utils.set_random_seed(seed)
    title = keras.Input((12,), name="title")
    body = keras.Input((10,), name="body")
    tags = keras.Input((4,), name="tags")
    merged = keras.layers.concatenate([keras.layers.Dense(8, activation="relu")(t)
                                       for t in (title, body, tags)])
    priority = keras.layers.Dense(1, name="priority")(merged)
    department = keras.layers.Dense(3, activation="softmax", name="department")(merged)
    inputs = {"title": title, "body": body, "tags": tags} if as_dict else [title, body, tags]
    return keras.Model(inputs, {"priority": priority, "department": department})


def _ticket_data(n=96):
    rng = np.random.default_rng(3)
    x = {"title": rng.normal(size=(n, 12)), "body": rng.normal(size=(n, 10)),
         "tags": rng.integers(0, 2, (n, 4)).astype("float32")}
    y = {"priority": rng.uniform(size=(n, 1)), "department": rng.integers(0, 3, n)}
    return tf.nest.map_structure(lambda a: a.astype("float32"), x), y


@pytest.mark.parametrize("as_dict", [False, True], ids=["list-inputs", "dict-inputs"])
def test_dict_inputs_are_matched_by_name(as_dict):
    x, y = _ticket_data()
    reference, model = _three_inputs(as_dict=as_dict), _three_inputs(as_dict=as_dict)
    model.set_weights(reference.get_weights())
    for each in (reference, model):
        each.compile(keras.optimizers.Adam(0.01),
                     loss={"priority": "mse", "department": LOSS},
                     loss_weights={"priority": 1.0, "department": 0.2})
    trainer = Trainer(model, jit_compile=False)
    # One weight array for two outputs: Keras uses it for each.
    weights = np.random.default_rng(2).uniform(0, 2, len(y["priority"])).astype("float32")
    options = dict(FIT, batch_size=16, validation_split=0.25, sample_weight=weights)
    expected = reference.fit(x, y, **options)
    _assert_same_fit(trainer, reference, expected, trainer.fit(x, y, **options))
    _assert_close(trainer.predict(x, verbose=0), reference.predict(x, verbose=0))
    _assert_close(trainer.evaluate(x, y, verbose=0), reference.evaluate(x, y, verbose=0))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    expected = reference.fit(dataset, **FIT)
    _assert_same_fit(trainer, reference, expected, trainer.fit(dataset, **FIT), "tf.data")
    if not as_dict:  # a list by position
        listed = [x["title"], x["body"], x["tags"]]
        _assert_close(trainer.predict(listed, verbose=0), reference.predict(listed, verbose=0))


def test_dict_inputs_errors_name_the_key():
    x, y = _ticket_data(32)
    trainer = Trainer(_three_inputs(), {"priority": "mse", "department": LOSS}, "adam")
    wrong = dict(x, body=x["body"][:, :7])
    with pytest.raises(ValueError, match=r"`x\['body'\]` must have shape \('n', 10\) to match "
                                         r"the model input 'body'; received shape \(32, 7\)"):
        trainer.fit(wrong, y, verbose=0)
    missing = {k: v for k, v in x.items() if k != "tags"}
    with pytest.raises(ValueError, match=r"a key for each of the model's inputs .*without "
                                         r"\['tags'\]"):
        trainer.predict(missing, verbose=0)


def test_nested_input_structures():
    def make():
        keras.utils.set_random_seed(4)
        a, b, c = (keras.Input((size,), name=name) for size, name in ((3, "a"), (2, "b"),
                                                                       (5, "c")))
        output = keras.layers.Dense(1)(keras.layers.concatenate([a, b, c]))
        return keras.Model({"a": a, "pair": (b, c)}, output)

    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(64, 3)).astype("float32"),
         "pair": (rng.normal(size=(64, 2)).astype("float32"),
                  rng.normal(size=(64, 5)).astype("float32"))}
    y = rng.normal(size=(64, 1)).astype("float32")
    reference, trainer = _compiled_twins(loss="mse", metrics=("mae",), make=make)
    options = dict(FIT, batch_size=16)
    _assert_same_fit(trainer, reference, reference.fit(x, y, **options),
                     trainer.fit(x, y, **options))
    _assert_close(trainer.predict(x, verbose=0), reference.predict(x, verbose=0))


def _sequence_model(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 4)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def _streams(arrays, batch_size=16):
    """`{kind: (make, fit options)}` for the streamed kinds of data."""
    steps = -(-len(arrays[0]) // batch_size)
    return {
        "tf.data": (lambda: batches(*arrays, batch_size=batch_size), {}),
        # A generator is read once: it repeats, and `steps_per_epoch` makes the epochs.
        "generator": (lambda: batch_generator(*arrays, batch_size=batch_size),
                      dict(steps_per_epoch=steps)),
        "PyDataset": (lambda: ArrayPyDataset(*arrays, batch_size=batch_size), {}),
    }


@pytest.mark.parametrize("shape", ["(n,)", "(n, 1)", "(n, t)"])
def test_sample_weight_shapes_for_every_data_kind(shape):
    rng = np.random.default_rng(1)
    n = 64
    if shape == "(n, t)":  # one weight per timestep of a sequence output
        x = rng.normal(size=(n, 6, 4)).astype("float32")
        y = rng.integers(0, 3, (n, 6))
        w = rng.uniform(0, 2, (n, 6)).astype("float32")
        make = _sequence_model
    else:
        x, y, w = data(n)
        w = w if shape == "(n,)" else w[:, None]
        make = None
    reference, trainer = _compiled_twins(make=make)
    options = dict(FIT, batch_size=16)
    expected = reference.fit(x, y, sample_weight=w, **options)
    _assert_same_fit(trainer, reference, expected,
                     trainer.fit(x, y, sample_weight=w, **options), "arrays")
    assert_same_logs(trainer.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True),
                     reference.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True))
    for kind, (stream, steps) in _streams((x, y, w)).items():
        expected = reference.fit(stream(), **FIT, **steps)
        history = trainer.fit(stream(), **FIT, **steps)
        _assert_same_fit(trainer, reference, expected, history, kind)


# ---- callbacks --------------------------------------------------------------------------------

class BatchRecorder(keras.callbacks.Callback):
    """Records every batch hook call with its logs, as the callbacks guide's printer."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, hook, batch, logs):
        self.calls.append((hook, batch, dict(logs or {})))

    def on_train_batch_begin(self, batch, logs=None):
        self._record("train_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._record("train_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._record("test_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._record("test_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._record("predict_begin", batch, None)

    def on_predict_batch_end(self, batch, logs=None):
        self._record("predict_end", batch, {"rows": len(logs["outputs"])})

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch_end", epoch, logs)


def _assert_same_calls(actual, expected):
    assert [c[:2] for c in actual] == [c[:2] for c in expected]
    for (hook, batch, logs), (_, _, wanted) in zip(actual, expected):
        assert_same_logs(logs, wanted, f"{hook} {batch}")


@pytest.mark.parametrize("kind", ["arrays", "tf.data"])
def test_batch_hooks_see_every_batch_with_its_logs(kind):
    x, y, _ = data(100)
    xv, yv, _ = data(40, seed=4)
    reference, trainer = _compiled_twins()

    def arguments():
        if kind == "arrays":
            return (x, y), dict(batch_size=16, validation_data=(xv, yv))
        return (batches(x, y, batch_size=16),), dict(
            validation_data=batches(xv, yv, batch_size=16))

    recorders = BatchRecorder(), BatchRecorder()
    args, options = arguments()
    expected = reference.fit(*args, **options, **FIT, callbacks=recorders[0])
    args, options = arguments()
    history = trainer.fit(*args, **options, **FIT, callbacks=recorders[1])  # one object
    _assert_same_fit(trainer, reference, expected, history)
    calls = recorders[0].calls
    assert sum(hook == "train_end" for hook, _, _ in calls) == 2 * 7  # every batch
    assert sum(hook == "test_end" for hook, _, _ in calls) == 2 * 3
    _assert_same_calls(recorders[1].calls, calls)
    # evaluate and predict: every batch too.
    for recorder, model in zip(recorders, (reference, trainer)):
        recorder.calls = []
        model.evaluate(x, y, batch_size=16, callbacks=[recorder], verbose=0)
        model.predict(x, batch_size=16, callbacks=[recorder], verbose=0)
    _assert_same_calls(recorders[1].calls, recorders[0].calls)
    assert len(recorders[1].calls) == 4 * 7


def test_on_batch_end_and_lambda_callbacks_are_per_batch():
    x, y, _ = data(64)
    counts = {"keras": [], "trainer": []}

    class OldStyle(keras.callbacks.Callback):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_batch_end(self, batch, logs=None):
            counts[self.name].append(("old", batch, round(logs["loss"], 5)))

    reference, trainer = _compiled_twins()
    for name, fit in (("keras", reference.fit), ("trainer", trainer.fit)):
        lam = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs, name=name: counts[name].append(
                ("lambda", batch)))
        fit(x, y, batch_size=8, callbacks=[OldStyle(name), lam], **FIT)
    assert counts["trainer"] == counts["keras"] and len(counts["keras"]) == 2 * 2 * 8


def test_fixed_steps_per_execution_calls_batch_hooks_once_per_execution():
    x, y, _ = data(80)
    reference, model = twins()
    reference.compile(keras.optimizers.Nadam(0.01), LOSS, metrics=["accuracy"],
                      steps_per_execution=4)
    model.compile(keras.optimizers.Nadam(0.01), LOSS, metrics=["accuracy"])
    trainer = Trainer(model, steps_per_execution=4, jit_compile=False)
    recorders = BatchRecorder(), BatchRecorder()
    expected = reference.fit(x, y, batch_size=8, callbacks=[recorders[0]], **FIT)
    history = trainer.fit(x, y, batch_size=8, callbacks=[recorders[1]], **FIT)
    _assert_same_fit(trainer, reference, expected, history)
    ends = [b for h, b, _ in recorders[1].calls if h == "train_end"]
    assert ends == [3, 7, 9] * 2
    # Keras names the last batch of a short last execution as if it were full (11 of
    # 0..9, `step + steps_per_execution - 1`); the Trainer names the batch that ran.
    keras_calls = [(h, 9 if (h, b) == ("train_end", 11) else b, logs)
                   for h, b, logs in recorders[0].calls]
    _assert_same_calls(recorders[1].calls, keras_calls)


def _train_executions(trainer):
    """How many training executions (graph calls) the trainer has run so far."""
    return sum(n for (kind, _, _), n in trainer.execution_counts.items() if kind == "train")


def test_epoch_level_callbacks_keep_the_fast_path(tmp_path):
    pytest.importorskip("tensorboard")
    x, y, _ = data(200)
    _, trainer = _compiled_twins()
    trainer.fit(x, y, batch_size=8, verbose=0)  # builds the loops
    before = _train_executions(trainer)
    epoch_level = [
        keras.callbacks.EarlyStopping(monitor="loss", patience=5),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.ReduceLROnPlateau(monitor="loss"),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq="epoch"),
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr),
    ]
    trainer.fit(x, y, batch_size=8, callbacks=epoch_level, **FIT)
    # 25 steps per epoch, in a few executions
    assert 1 <= _train_executions(trainer) - before <= 2 * 3
    before = _train_executions(trainer)
    trainer.fit(x, y, batch_size=8, callbacks=[BatchRecorder()], **FIT)
    assert _train_executions(trainer) - before == 2 * 25


@pytest.mark.parametrize("callback, kinds", [
    (keras.callbacks.EarlyStopping(), ()),
    (keras.callbacks.ModelCheckpoint("m.keras"), ()),
    (keras.callbacks.ModelCheckpoint("m.keras", save_freq=5), ("train",)),
    (keras.callbacks.BackupAndRestore("backup", save_freq=5), ("train",)),
    (keras.callbacks.TerminateOnNaN(), ()),  # the divergence guard stops first
    (keras.callbacks.ProgbarLogger(), ()),
    (progress.LineProgress(), ()),  # the display needs an execution's end only
    (progress.BarProgress(), ()),
    (keras.callbacks.History(), ()),
    (keras.callbacks.LambdaCallback(on_epoch_end=print), ()),
    (keras.callbacks.LambdaCallback(on_train_batch_begin=print), ("train",)),
    (BatchRecorder(), ("train", "test", "predict")),
])
def test_which_callbacks_need_every_batch(callback, kinds):
    for kind in ("train", "test", "predict"):
        assert callback_hooks.needs_every_batch(callback, kind) == (kind in kinds), kind


def test_tensorboard_needs_every_batch_only_when_it_writes_per_batch(tmp_path):
    pytest.importorskip("tensorboard")
    per_epoch = keras.callbacks.TensorBoard(str(tmp_path), update_freq="epoch")
    per_batch = keras.callbacks.TensorBoard(str(tmp_path), update_freq=10)
    assert not any(callback_hooks.needs_every_batch(per_epoch, k) for k in ("train", "test"))
    assert callback_hooks.needs_every_batch(per_batch, "train")


def test_callbacks_argument_checks():
    x, y, _ = data(32)
    _, trainer = _compiled_twins()
    with pytest.raises(TypeError, match=r"`callbacks` must hold keras.callbacks.Callback "
                                        r"objects; received an element 'nope'"):
        trainer.fit(x, y, callbacks=[keras.callbacks.History(), "nope"], verbose=0)
    history = trainer.fit(x, y, callbacks=None, verbose=0)
    assert_trained(trainer.model)
    assert "loss" in history.history


def test_stop_training_in_a_batch_hook_stops_at_that_batch_as_keras():
    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                self.model.stop_training = True

    x, y, _ = data(100)
    reference, trainer = _compiled_twins()
    expected = reference.fit(x, y, batch_size=8, callbacks=StopAt(), **FIT)
    history = trainer.fit(x, y, batch_size=8, callbacks=StopAt(), **FIT)
    _assert_same_fit(trainer, reference, expected, history)
    assert int(trainer.model.optimizer.iterations) == int(reference.optimizer.iterations) == 4
