"""`Trainer` fed by tf.data datasets, generators and PyDataset, against Keras on the same pipeline.

Each test builds the same pipeline twice (a generator can be consumed only once), runs
Keras `fit` / `evaluate` / `predict` on one model and `Trainer` on its twin (equal
initial weights) and compares histories, weights and results to 1e-5. Keras's
semantics are the reference: an epoch is one pass over a finite pipeline or
`steps_per_epoch` steps, and with `steps_per_epoch` the next epoch continues the same
iterator; a validation dataset or PyDataset restarts at each evaluation.
"""

import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from data_source_helpers import (
    TOLERANCE,
    ArrayPyDataset,
    assert_same_history,
    assert_same_logs,
    assert_same_weights,
    assert_trained,
    batch_generator,
    batches,
    compiled_mlp,
    data,
    trainer_for,
    twins,
)
from training_helpers import max_abs_difference


def _fit_both(make_train, epochs=2, make_validation=None, **fit_kwargs):
    """Keras `fit` and `Trainer.fit` on fresh copies of one pipeline; returns both runs."""
    reference, model = twins()
    keras_kwargs = dict(fit_kwargs)
    trainer_kwargs = dict(fit_kwargs)
    if make_validation is not None:
        keras_kwargs["validation_data"] = make_validation()
        trainer_kwargs["validation_data"] = make_validation()
    expected = reference.fit(make_train(), epochs=epochs, shuffle=False, verbose=0,
                             **keras_kwargs)
    history = trainer_for(model).fit(make_train(), epochs=epochs, shuffle=False, verbose=0,
                                     **trainer_kwargs)
    return (reference, expected), (model, history)


def _assert_same_run(keras_run, trainer_run, name=""):
    (reference, expected), (model, history) = keras_run, trainer_run
    assert_same_history(history, expected, name)
    assert_same_weights(model, reference, name)
    assert_trained(model)


# ---- item 1: what a dataset may yield -------------------------------------------------------

def test_dataset_of_batches_matches_keras_fit():
    x, y, w = data(100)  # batches of 32, 32, 32 and 4, as Keras slices arrays
    losses = {}
    for name, arrays in {"(x, y)": (x, y), "(x, y, sample_weight)": (x, y, w)}.items():
        keras_run, trainer_run = _fit_both(lambda: batches(*arrays), epochs=2)
        _assert_same_run(keras_run, trainer_run, name)
        assert sorted(trainer_run[1].history) == ["accuracy", "loss"], name
        losses[name] = keras_run[1].history["loss"][0]
    # Not vacuous: the weights change Keras's loss, so a Trainer that ignored the
    # dataset's third element would fail the weighted comparison.
    assert abs(losses["(x, y)"] - losses["(x, y, sample_weight)"]) > 1e-4


class SelfSupervised(keras.Model):
    """A Keras-guide `train_step` over `x` alone: reconstruct the input (no labels)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(8)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=x, y_pred=y_pred)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(x, y_pred)
        return {metric.name: metric.result() for metric in self.metrics}


def _self_supervised(seed=3):
    keras.utils.set_random_seed(seed)
    model = SelfSupervised()
    model(np.zeros((1, 8), "float32"))
    model.compile(keras.optimizers.Adam(0.01), "mse", metrics=["mae"])
    return model


def test_dataset_of_x_alone_trains_a_model_with_its_own_step():
    from customkeras.training import Trainer

    x, _, _ = data(100)
    reference, model = _self_supervised(), _self_supervised()
    expected = reference.fit(batches(x), epochs=2, shuffle=False, verbose=0)
    history = Trainer(model).fit(batches(x), epochs=2, shuffle=False, verbose=0)
    assert_same_history(history, expected)
    assert_same_weights(model, reference)
    assert max_abs_difference(model.get_weights(), _self_supervised().get_weights()) > 1e-3


# ---- item 1: repeated datasets, generators, PyDataset ---------------------------------------

def test_repeated_dataset_with_steps_per_epoch_continues_the_iterator():
    # 4 batches per pass (32, 32, 32, 4), 3 steps per epoch: the epochs take batches
    # 0 1 2 | 3 0 1 | 2 3 0, as Keras does, not 0 1 2 three times.
    x, y, _ = data(100)
    keras_run, trainer_run = _fit_both(lambda: batches(x, y).repeat(), epochs=3,
                                       steps_per_epoch=3)
    _assert_same_run(keras_run, trainer_run)
    restarted = compiled_mlp()  # Keras restarting each epoch would end elsewhere
    restarted.fit(batches(x, y).take(3), epochs=3, shuffle=False, verbose=0)
    assert max_abs_difference(restarted.get_weights(), keras_run[0].get_weights()) > 1e-4


def test_generator_with_steps_per_epoch_matches_keras_fit():
    # 100 samples in batches of 32: the generator's sequence crosses its cycle boundary.
    x, y, w = data(100)
    keras_run, trainer_run = _fit_both(lambda: batch_generator(x, y, w), epochs=3,
                                       steps_per_epoch=3)
    _assert_same_run(keras_run, trainer_run)


@pytest.mark.parametrize("workers", [1, 2])
def test_pydataset_matches_keras_fit(workers):
    x, y, _ = data(100)
    keras_run, trainer_run = _fit_both(
        lambda: ArrayPyDataset(x, y, workers=workers, use_multiprocessing=False), epochs=2)
    _assert_same_run(keras_run, trainer_run)


def test_reshuffling_dataset_matches_keras_fit_epoch_by_epoch():
    # `shuffle(seed=..., reshuffle_each_iteration=True)`: each new iterator draws a new
    # order. Keras's EpochIterator creates a spare iterator at the end of each epoch and
    # another at the next epoch's start, so epoch k reads the dataset's pass 2k (passes
    # 0, 2, 4, ...); equal histories need the same passes.
    x, y, w = data(100)

    def make():
        return tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(
            100, seed=7, reshuffle_each_iteration=True).batch(16)

    keras_run, trainer_run = _fit_both(make, epochs=3)
    _assert_same_run(keras_run, trainer_run)


def test_one_epoch_calls_on_one_reshuffling_dataset_match_keras_fit():
    # `fit(dataset, epochs=e + 1, initial_epoch=e)` again and again on one pipeline:
    # each call reads the pipeline's next passes, as under Keras (a resumed run in a new
    # process, whose pipeline has made no iterator yet, fast-forwards instead).
    x, y, w = data(100)

    def make():
        return tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(
            100, seed=7, reshuffle_each_iteration=True).batch(16)

    reference, model = twins()
    trainer = trainer_for(model)
    keras_data, trainer_data = make(), make()
    for epoch in range(3):
        expected = reference.fit(keras_data, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        history = trainer.fit(trainer_data, epochs=epoch + 1, initial_epoch=epoch,
                              shuffle=False, verbose=0)
        assert_same_history(history, expected, f"call {epoch + 1}")
        assert_same_weights(model, reference, f"after call {epoch + 1}")


# ---- item 1: validation data of every kind ----------------------------------------------------

def test_validation_dataset_full_pass_and_with_validation_steps():
    x, y, _ = data(100)
    xv, yv, wv = data(70, seed=5)  # 3 validation batches: 32, 32, 6
    run = _fit_both(lambda: batches(x, y), make_validation=lambda: batches(xv, yv, wv))
    _assert_same_run(*run, name="full pass")
    assert sorted(run[1][1].history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    # Two of the three batches, each epoch (Keras restarts a validation dataset).
    steps = _fit_both(lambda: batches(x, y), make_validation=lambda: batches(xv, yv, wv),
                      validation_steps=2)
    _assert_same_run(*steps, name="validation_steps=2")
    assert steps[0][1].history["val_loss"] != run[0][1].history["val_loss"]


def test_repeated_validation_dataset_with_validation_steps():
    x, y, _ = data(100)
    xv, yv, _ = data(70, seed=5)
    run = _fit_both(lambda: batches(x, y), epochs=3,
                    make_validation=lambda: batches(xv, yv).repeat(), validation_steps=2)
    _assert_same_run(*run)


def test_validation_generator_with_validation_steps():
    # The same validation batch forever: what Keras reads from a generator does not
    # depend on how far tf.data prefetches it.
    x, y, _ = data(100)
    xv, yv, _ = data(24, seed=5)
    run = _fit_both(lambda: batches(x, y),
                    make_validation=lambda: batch_generator(xv, yv, batch_size=24),
                    validation_steps=2)
    _assert_same_run(*run)
    assert "val_loss" in run[1][1].history


def test_validation_pydataset_with_validation_steps():
    x, y, _ = data(100)
    xv, yv, wv = data(70, seed=5)
    run = _fit_both(lambda: ArrayPyDataset(x, y), epochs=2,
                    make_validation=lambda: ArrayPyDataset(xv, yv, wv), validation_steps=2)
    _assert_same_run(*run)
    assert "val_accuracy" in run[1][1].history


# ---- item 1: evaluate and predict ---------------------------------------------------------------

def test_evaluate_on_datasets_matches_keras_evaluate():
    x, y, w = data(100)
    reference, model = twins()
    trainer = trainer_for(model)
    for name, make, steps in [
        ("x, y", lambda: batches(x, y), None),
        ("x, y, sample_weight", lambda: batches(x, y, w), None),
        ("repeated, steps=5", lambda: batches(x, y).repeat(), 5),
        ("generator, steps=3", lambda: batch_generator(x, y), 3),
        ("PyDataset", lambda: ArrayPyDataset(x, y, w), None),
    ]:
        expected = reference.evaluate(make(), steps=steps, verbose=0, return_dict=True)
        assert_same_logs(trainer.evaluate(make(), steps=steps, verbose=0, return_dict=True), expected, name)
    assert_same_weights(model, reference)  # evaluating trains nothing


def test_predict_on_datasets_matches_keras_predict():
    x, y, _ = data(100)
    reference, model = twins()
    trainer = trainer_for(model)
    expected = reference.predict(x, verbose=0)
    for name, make, steps in [
        ("x", lambda: batches(x), None),
        ("x, y (targets ignored)", lambda: batches(x, y), None),
        ("repeated, steps=4", lambda: batches(x).repeat(), 4),
        ("generator, steps=4", lambda: batch_generator(x, batch_size=32), 4),
        ("PyDataset", lambda: ArrayPyDataset(x, y), None),
    ]:
        keras_predictions = reference.predict(make(), steps=steps, verbose=0)
        np.testing.assert_allclose(keras_predictions, expected, atol=1e-6, err_msg=name)
        predictions = trainer.predict(make(), steps=steps)
        assert predictions.shape == (100, 3), name
        np.testing.assert_allclose(predictions, keras_predictions, rtol=0, atol=1e-5,
                                   err_msg=name)


# ---- item 1: arguments that do not apply to a dataset -------------------------------------------

def test_shuffle_true_with_a_dataset_warns_and_is_ignored():
    x, y, _ = data(100)
    _, model = twins()
    with pytest.warns(UserWarning, match="shuffle"):
        shuffled = trainer_for(model).fit(batches(x, y), epochs=2, shuffle=True, verbose=0)
    _, twin = twins()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # shuffle=False: nothing to warn about
        ordered = trainer_for(twin).fit(batches(x, y), epochs=2, shuffle=False, verbose=0)
    assert_same_history(shuffled, ordered)
    assert_same_weights(model, twin)


def test_batch_size_with_a_dataset_is_ignored_as_keras_ignores_it():
    x, y, _ = data(100)
    reference, model = twins()
    expected = reference.fit(batches(x, y), batch_size=16, epochs=2, verbose=0)
    trainer = trainer_for(model, jit_compile=False)
    history = trainer.fit(batches(x, y), batch_size=16, epochs=2, verbose=0)
    assert_same_history(history, expected)
    assert_same_weights(model, reference)
    assert_same_logs(trainer.evaluate(batches(x, y), batch_size=16, verbose=0, return_dict=True),
                     reference.evaluate(batches(x, y), batch_size=16, verbose=0,
                                        return_dict=True))
    np.testing.assert_allclose(trainer.predict(batches(x), batch_size=16, verbose=0),
                               reference.predict(batches(x), batch_size=16, verbose=0),
                               rtol=0, atol=TOLERANCE)


def test_y_or_sample_weight_beside_a_dataset_is_an_error():
    # Keras refuses them (the dataset yields its own targets): so does the Trainer.
    x, y, w = data(100)
    _, model = twins()
    trainer = trainer_for(model)
    with pytest.raises(ValueError, match="`y`"):
        trainer.fit(batches(x, y), y, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="sample_weight"):
        trainer.fit(batches(x, y), sample_weight=w, shuffle=False, verbose=0)


def test_arrays_keep_working_beside_datasets():
    # The resident-array path is kept: same trainer, arrays then a dataset, as two Keras fits.
    x, y, _ = data(100)
    reference, model = twins()
    reference.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    expected = reference.fit(batches(x, y), epochs=1, shuffle=False, verbose=0)
    trainer = trainer_for(model)
    trainer.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    history = trainer.fit(batches(x, y), epochs=1, shuffle=False, verbose=0)
    assert_same_history(history, expected)
    assert_same_weights(model, reference)


# ---- item 6: pipelines that do not fit, refused before training -------------------------------

def _refused(call, match):
    """Runs `call(trainer)` on a fresh twin, expects a ValueError; checks nothing changed."""
    _, model = twins()
    initial = model.get_weights()
    trainer = trainer_for(model)
    with pytest.raises(ValueError, match=match or None) as error:
        call(trainer)
    assert_same_weights(model, initial, "weights changed by a refused call")
    if trainer.optimizer is not None and trainer.optimizer.built:
        assert int(trainer.optimizer.iterations.numpy()) == 0
    return str(error.value)


X, Y, _ = data(64)
# What the model expects, as `(None, 8)` (Keras's shapes) or `('n', 8)` (the engine's).
EXPECTED_INPUT = r"\((None|'n'|n), 8\)"


@pytest.mark.parametrize("name, make, expected", [
    # Each message names the element spec received and what the model expects.
    ("rank", lambda: batches(X[:, :, None], Y), [r"\(None, 8, 1\)", EXPECTED_INPUT]),
    ("dtype", lambda: batches(X.astype(str), Y), ["string", "float|numeric"]),
    ("labels", lambda: batches(X, Y[:, None] * np.ones((1, 4), "int64")), [r"\(None, 4\)"]),
])
def test_elements_that_do_not_fit_the_model(name, make, expected):
    for call in ("fit", "evaluate"):
        if call == "fit":
            message = _refused(lambda t: t.fit(make(), epochs=2, shuffle=False, verbose=0), "")
        else:
            message = _refused(lambda t: t.evaluate(make(), verbose=0, return_dict=True), "")
        assert "element spec" in message.lower() or "element_spec" in message, message
        for pattern in expected:
            assert re.search(pattern, message), f"{name}, {call}: {pattern!r} not in {message!r}"


def test_dataset_without_labels_for_a_loss_that_needs_them():
    message = _refused(lambda t: t.fit(batches(X), shuffle=False, verbose=0),
                       r"(?i)label|target|`y`")
    assert "(None, 8)" in message and "spec" in message.lower(), message
    _refused(lambda t: t.evaluate(batches(X), verbose=0, return_dict=True), r"(?i)label|target|`y`")


def test_validation_data_that_does_not_fit_is_refused_before_the_first_epoch():
    message = _refused(lambda t: t.fit(batches(X, Y), validation_data=batches(X[:, :4], Y),
                                       epochs=2, shuffle=False, verbose=0), "validation_data")
    assert "(None, 4)" in message and re.search(EXPECTED_INPUT, message), message


def test_generator_elements_that_do_not_fit_the_model():
    _refused(lambda t: t.fit(batch_generator(X[:, :, None], Y), steps_per_epoch=2,
                             shuffle=False, verbose=0), EXPECTED_INPUT)


@pytest.mark.timeout(120)  # a loop that never ends would otherwise hang the suite
def test_infinite_dataset_without_steps_is_an_error():
    _refused(lambda t: t.fit(batches(X, Y).repeat(), shuffle=False, verbose=0),
             "steps_per_epoch")
    _refused(lambda t: t.fit(batches(X, Y), validation_data=batches(X, Y).repeat(),
                             shuffle=False, verbose=0), "validation_steps")
    _refused(lambda t: t.evaluate(batches(X, Y).repeat(), verbose=0, return_dict=True), "steps")
    _refused(lambda t: t.predict(batches(X).repeat()), "steps")


@pytest.mark.timeout(120)
def test_empty_pipelines_are_an_error():
    empty = r"(?i)empty|no (batch|element)|at least one"
    _refused(lambda t: t.fit(batches(X, Y).take(0), shuffle=False, verbose=0), empty)
    # Cardinality unknown until read: found empty when the first epoch reads nothing.
    _refused(lambda t: t.fit(batches(X, Y).filter(lambda x, y: False), shuffle=False,
                             verbose=0), empty)
    _refused(lambda t: t.fit(batch_generator(X, Y, cycles=0), steps_per_epoch=2,
                             shuffle=False, verbose=0), empty)
    _refused(lambda t: t.fit(batches(X, Y), validation_data=batches(X, Y).take(0),
                             shuffle=False, verbose=0), empty)
    _refused(lambda t: t.evaluate(batches(X, Y).take(0), verbose=0, return_dict=True), empty)
    _refused(lambda t: t.predict(batches(X).take(0)), empty)
