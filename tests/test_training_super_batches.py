"""Training on a tf.data pipeline of small batches reads super-batches.

`DatasetSource.use_super_batches` makes the training iterator yield `k` of the user's
batches per `get_next`, and `Loops.train_super_batches` runs them (`k` equal batches in
one XLA call, any other super-batch one step at a time). Each test checks that this
path ran (the per-step iterator loop is made to fail) and that it changed nothing a
user sees: history and weights equal Keras `fit` on the same reshuffling pipeline,
batch callbacks where `steps_per_execution` puts them, divergence reported at the
same step as the per-step loop, and exact mid-epoch resume.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from data_source_helpers import (
    assert_same_history,
    assert_same_weights,
    assert_trained,
    data,
    trainer_for,
    twins,
)
from test_training_data_resume import CrashAt, Crash
from training_helpers import mlp

from customkeras.training import TrainingDivergedError
from customkeras.training.sources import DatasetSource
from customkeras.training.sources.super_batches import fixed_batch_size, super_batched

BATCH = 8
X, Y, W = data(597)  # 74 batches of 8 and one of 5: two full super-batches of 32, a ragged one
XV, YV, _ = data(40, seed=5)


def reshuffled(x=X, y=Y, w=W, seed=7):
    return tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(
        len(x), seed=seed, reshuffle_each_iteration=True).batch(BATCH)


def validation():
    return tf.data.Dataset.from_tensor_slices((XV, YV)).batch(16)


def assert_read_super_batches(trainer, kind="train"):
    """That every `kind` execution read super-batches, none one batch per `get_next`."""
    feeds = {feed for (k, feed, _) in trainer.execution_counts if k == kind}
    assert feeds == {"super-batches"}, trainer.execution_counts


def _source(dataset, steps=None):
    return DatasetSource(dataset, None, None, steps=steps, shuffle=False,
                         names=("x", "y", "sample_weight"))


def test_which_pipelines_get_super_batches():
    small = tf.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH)
    assert _source(small).super_batch_size() == 32
    assert _source(small).super_batch_size(12) == 12
    # A divisor of a fixed steps_per_execution; none worth having for 2 or 7.
    assert _source(small).super_batch_size(steps_per_execution=100) == 25
    assert _source(small).super_batch_size(steps_per_execution=24) == 24
    assert _source(small).super_batch_size(steps_per_execution=2) is None
    assert _source(small).super_batch_size(steps_per_execution=7) is None
    # An epoch of `steps_per_epoch` steps could end inside a super-batch.
    assert _source(small.repeat(), steps=10).super_batch_size() is None
    # Padding would change batches whose other dimensions vary.
    ragged = tf.data.Dataset.from_generator(
        lambda: iter([(np.zeros((2, 3), "float32"), Y[:2])]),
        output_signature=(tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int64)))
    assert _source(ragged).super_batch_size() is None
    # A 512x512 float image is 1 MiB: a step costs far more than its `get_next`.
    images = tf.data.Dataset.from_tensor_slices(np.zeros((2, 512, 512), "float32")).batch(1)
    assert _source(images).super_batch_size() is None
    source = _source(small)
    source.use_super_batches(4)
    batches, lengths = next(iter(source.begin_epoch(tf.distribute.get_strategy())))
    np.testing.assert_array_equal(lengths.numpy(), [BATCH] * 4)
    np.testing.assert_array_equal(batches[0].numpy().reshape(-1, 8), X[:32])


def _elements(dataset):
    return [tf.nest.map_structure(np.asarray, element) for element in dataset]


def test_super_batches_of_fixed_size_batches_are_rebatched_without_a_per_batch_map():
    ordered = tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(BATCH)
    assert fixed_batch_size(ordered.prefetch(2).take(70).cache()) == BATCH
    assert fixed_batch_size(ordered.map(lambda *batch: batch)) is None  # may resize them
    assert fixed_batch_size(ordered.repeat(2)) is None  # a short batch mid-stream
    exact = tf.data.Dataset.from_tensor_slices(X).batch(5, drop_remainder=True)
    assert fixed_batch_size(exact.map(lambda x: 2 * x)) == 5  # a static batch dimension
    # Both ways give the same super-batches, the last (10 batches of 8, one of 5) too.
    rebatched = _elements(super_batched(ordered.prefetch(2), 32, ordered.element_spec))
    general = _elements(super_batched(ordered.map(lambda *batch: batch), 32,
                                      ordered.element_spec))
    assert [len(lengths) for _, lengths in rebatched] == [32, 32, 11]
    np.testing.assert_array_equal(rebatched[-1][1], [BATCH] * 10 + [5])
    for (batches, lengths), (batches_general, lengths_general) in zip(rebatched, general):
        np.testing.assert_array_equal(lengths, lengths_general)
        for tensor, tensor_general in zip(batches, batches_general):
            np.testing.assert_array_equal(tensor, tensor_general)
    np.testing.assert_array_equal(rebatched[2][0][0][10][:5], X[-5:])
    # A dict of inputs, nested in the element, is split the same way.
    nested = tf.data.Dataset.from_tensor_slices(({"a": X, "b": W}, Y)).batch(BATCH)
    assert fixed_batch_size(nested) == BATCH
    (inputs, labels), lengths = _elements(super_batched(nested, 32, nested.element_spec))[-1]
    np.testing.assert_array_equal(lengths, [BATCH] * 10 + [5])
    np.testing.assert_array_equal(inputs["a"][10][:5], X[-5:])
    np.testing.assert_array_equal(inputs["b"].reshape(-1)[:85], W[-85:])
    np.testing.assert_array_equal(labels.reshape(-1)[:85], Y[-85:])


PIPELINES = {
    "batches of one size (rebatched)": reshuffled,
    "a map of batches (padded_batch)": lambda: reshuffled().map(lambda *batch: batch),
    "a short batch mid-stream": lambda: reshuffled().repeat(2),
}


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_super_batches_match_keras_fit(pipeline, jit_compile):
    reference, model = twins()
    make = PIPELINES[pipeline]
    expected = reference.fit(make(), epochs=3, validation_data=validation(), verbose=0)
    trainer = trainer_for(model, jit_compile=jit_compile)
    history = trainer.fit(make(), epochs=3, validation_data=validation(), verbose=0,
                          shuffle=False)
    label = f"{pipeline}, jit_compile={jit_compile}"
    assert_same_history(history, expected, label)
    assert_same_weights(model, reference, label)
    assert_trained(model)
    steps = 3 * 75 * (2 if "mid-stream" in pipeline else 1)
    assert int(trainer.optimizer.iterations.numpy()) == steps
    assert_read_super_batches(trainer)


class BatchEnds(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def test_batch_callbacks_come_every_steps_per_execution():
    ends = BatchEnds()
    trainer = trainer_for(mlp(seed=1), steps_per_execution=24)
    trainer.fit(reshuffled(), epochs=1, verbose=0, shuffle=False, callbacks=[ends])
    assert ends.batches == [23, 47, 71, 74]  # 75 steps, as Keras fit(steps_per_execution=24)
    assert_read_super_batches(trainer)


def _diverging():
    x = X.copy()
    x[8 * 45 + 3] = np.inf  # a sample of batch 46 (1-based) of the unshuffled pipeline
    return tf.data.Dataset.from_tensor_slices((x, Y, W)).batch(BATCH)


def test_divergence_inside_a_super_batch_stops_at_its_step():
    reference, model = twins()
    trainer = trainer_for(model, steps_per_execution=32, jit_compile=True)
    with pytest.raises(TrainingDivergedError) as caught:
        trainer.fit(_diverging(), epochs=1, verbose=0, shuffle=False)
    assert_read_super_batches(trainer)
    error = caught.value
    assert (error.epoch, error.step, error.restored_step) == (1, 46, 32), str(error)
    # The weights of the last finite execution: those of the first 32 batches.
    reference.fit(_diverging().take(32), epochs=1, verbose=0)
    assert_same_weights(model, reference, "weights restored after divergence")


def test_crash_mid_epoch_resumes_exactly_with_super_batches(tmp_path):
    def fit(callbacks):
        model = mlp(seed=1)
        trainer = trainer_for(model, steps_per_execution=8)
        return model, trainer, trainer.fit(reshuffled(), epochs=3, verbose=0, shuffle=False,
                                           validation_data=validation(), callbacks=callbacks)

    reference, reference_trainer, expected = fit([])
    with pytest.raises(Crash):
        fit([keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=1), CrashAt(1, 39)])
    model, trainer, history = fit([keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=1)])
    tail = {key: values[1:] for key, values in expected.history.items()}
    assert_same_history(history, tail, "epochs run after resuming")
    assert_same_weights(model, reference, "after resuming")
    assert (int(trainer.optimizer.iterations.numpy())
            == int(reference_trainer.optimizer.iterations.numpy()) == 3 * 75)
    assert_read_super_batches(trainer)


def test_evaluation_passes_read_super_batches():
    reference, model = twins()
    reference.fit(reshuffled(), epochs=1, verbose=0)
    model.set_weights(reference.get_weights())
    trainer = trainer_for(model)
    ordered = tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(BATCH)
    for name, dataset, steps in (("one pass", ordered, None),
                                 ("40 steps of a repeated pipeline", ordered.repeat(), 40)):
        expected = reference.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
        logs = trainer.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
        assert sorted(logs) == sorted(expected), name
        for key, value in expected.items():
            np.testing.assert_allclose(logs[key], value, rtol=0, atol=1e-5, err_msg=name)
    assert_read_super_batches(trainer, "test")
