"""`ModelStep`: the model's own `train_step` / `test_step` / `predict_step`.

A model written as the Keras guide teaches ("Customizing what happens in fit() with
TensorFlow") overrides `train_step(data)`: it opens a `GradientTape`, calls
`self.compute_loss(...)` or its own losses, applies gradients with `self.optimizer`
(or with optimizers of its own, set in an overridden `compile`, as in the guide's
GAN), updates `self.metrics` and returns a dict of scalars. The Trainer calls that
method in its in-graph loop exactly where Keras `fit` would call it; `data` is what
Keras passes: `x`, `(x, y)` or `(x, y, sample_weight)`.
"""

import keras


def overrides(model, method):
    """Whether `model`'s class overrides the `keras.Model` method `method`."""
    return getattr(type(model), method) is not getattr(keras.Model, method)


class ModelStep:
    """Delegates the steps to the model's own methods.

    Args:
        model: a `keras.Model` subclass instance.
    """

    reports_logs = True  # Keras reports the dict the step returns, as it stands

    def __init__(self, model):
        self.model = model

    def train(self, batch, totals):
        """Runs `model.train_step(batch)`; returns its logs."""
        del totals  # the model's step computes its own loss on this replica's share
        return self.model.train_step(batch)

    def test(self, batch, totals):
        """Runs `model.test_step(batch)`; returns its logs."""
        del totals
        return self.model.test_step(batch)

    def predict(self, batch):
        """Runs `model.predict_step(batch)`; returns its outputs."""
        return self.model.predict_step(batch)
