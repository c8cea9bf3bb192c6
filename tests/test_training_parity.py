"""Trainer vs Keras `fit`: same weights, same history; constraints; trace counts."""

import keras
import numpy as np
import pytest
from training_helpers import classification_data, max_abs_difference, mlp

from customkeras.training import Trainer


def _keras_fit(model, x, y, optimizer, epochs=1, **fit_kwargs):
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0, **fit_kwargs)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_one_epoch_matches_keras_fit(jit_compile):
    # 100 samples, batch 32: three full batches and a last batch of 4, as in Keras.
    x, y = classification_data(100)
    reference = mlp(seed=1)
    expected = _keras_fit(reference, x, y, keras.optimizers.Nadam(0.01))
    model = mlp(seed=1)
    trainer = Trainer(
        model, "sparse_categorical_crossentropy", keras.optimizers.Nadam(0.01),
        metrics=["accuracy"], jit_compile=jit_compile,
    )
    history = trainer.fit(x, y, batch_size=32, shuffle=False, verbose=0)

    assert max_abs_difference(model.get_weights(), reference.get_weights()) < 1e-5
    assert max_abs_difference(mlp(seed=1).get_weights(), model.get_weights()) > 1e-3
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history.history[key], expected.history[key], atol=1e-5)
    # With XLA, the full batches run in the compiled loop and the last batch of 4 in
    # the plain one: one trace each.
    assert trainer.trace_counts["train_step"] == (2 if jit_compile else 1)


def test_constraints_hold_after_every_step():
    x, y = classification_data(64, seed=3)

    class MinWeight(keras.callbacks.Callback):
        minimums = []

        def on_train_batch_end(self, batch, logs=None):
            self.minimums.append(float(np.min(self.model.layers[0].kernel.numpy())))

    def train(constraint):
        model = mlp(seed=2, kernel_constraint=constraint)
        trainer = Trainer(model, "sparse_categorical_crossentropy", keras.optimizers.SGD(0.5),
                          steps_per_execution=1, jit_compile=False)
        MinWeight.minimums = []
        trainer.fit(x, y, batch_size=16, shuffle=False, verbose=0, callbacks=[MinWeight()])
        return list(MinWeight.minimums)

    constrained = train(keras.constraints.NonNeg())
    assert len(constrained) == 4  # one execution per step
    assert min(constrained) >= 0.0
    assert min(train(None)) < 0.0  # without the constraint the kernel goes negative


def test_constraint_applied_exactly_once_per_step():
    class Halve(keras.constraints.Constraint):
        """Not idempotent: applying it twice would quarter the weights."""

        def __call__(self, w):
            return w * 0.5

    x, y = classification_data(8, seed=4)
    model = mlp(seed=3, kernel_constraint=Halve())
    initial = model.layers[0].kernel.numpy()
    trainer = Trainer(model, "sparse_categorical_crossentropy",
                      keras.optimizers.SGD(learning_rate=0.0), steps_per_execution=1)
    trainer.fit(x, y, batch_size=8, epochs=2, verbose=0)  # two steps
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), initial * 0.25, rtol=1e-6)


def test_train_step_traced_once_across_epochs_fits_and_sizes():
    model = mlp(seed=4)
    # Plain loops (XLA's split of full and last batches traces twice: the next test).
    trainer = Trainer(model, "sparse_categorical_crossentropy", "nadam", metrics=["accuracy"],
                      jit_compile=False)
    x, y = classification_data(100, seed=5)
    # Epochs with a smaller last batch, validation, new sizes, a new batch size.
    trainer.fit(x, y, epochs=3, batch_size=32, validation_data=(x[:40], y[:40]), verbose=0)
    trainer.fit(x[:70], y[:70], epochs=2, batch_size=16, verbose=0)
    trainer.evaluate(x[:33], y[:33], batch_size=8, verbose=0, return_dict=True)
    assert trainer.trace_counts == {"train_step": 1, "test_step": 1, "predict_step": 0}
    # Sample weights change the data's structure: one more trace, then no more.
    weights = np.ones(100, "float32")
    trainer.fit(x, y, sample_weight=weights, verbose=0)
    trainer.fit(x[:50], y[:50], sample_weight=weights[:50], epochs=2, verbose=0)
    assert trainer.trace_counts == {"train_step": 2, "test_step": 1, "predict_step": 0}


def test_xla_loop_traced_once_per_variant():
    x, y = classification_data(100, seed=6)
    trainer = Trainer(mlp(seed=6), "sparse_categorical_crossentropy", "nadam", jit_compile=True)
    trainer.fit(x, y, epochs=2, batch_size=32, verbose=0)  # XLA loop + plain last batch
    trainer.fit(x[:64], y[:64], epochs=2, batch_size=16, verbose=0)  # recompiles, no retrace
    trainer.fit(x[:90], y[:90], batch_size=16, verbose=0)
    assert trainer.trace_counts["train_step"] == 2
