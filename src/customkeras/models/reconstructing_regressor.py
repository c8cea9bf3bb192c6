"""`ReconstructingRegressor`: a regressor with an auxiliary reconstruction loss
(the chapter's "Losses Based on Model Internals")."""

import keras
from keras import ops

from customkeras._checks import non_negative_float, positive_int

_N_HIDDEN = 5
_UNITS = 30


@keras.saving.register_keras_serializable(package="customkeras")
class ReconstructingRegressor(keras.Model):
    """Regressor that also learns to reconstruct its inputs from its last hidden layer.

    Five `Dense(30, relu)` layers feed both the output `Dense(output_dim)` and a
    reconstruction `Dense(n_inputs)`. Each call adds

    ```
    reconstruction_weight * mean((reconstruction - inputs) ** 2)
    ```

    to the model's losses (`add_loss`), so any training loop that adds `model.losses`
    (Keras `fit`, the chapter's custom loop) trains on it. The unweighted
    reconstruction error is reported as the metric `"reconstruction_loss"` (in
    `model.metrics` and the logs of `fit` / `evaluate`; the mean over samples, as
    Keras's `"loss"`): `compute_loss` updates it, on every backend, for Keras `fit`
    and any trainer that calls `model.compute_loss`.

    Args:
        output_dim: Integer >= 1, the number of outputs.
        reconstruction_weight: Float >= 0, the weight of the reconstruction loss.
            Defaults to `0.05`.
        **kwargs: Base `keras.Model` arguments.

    Example:

    >>> model = ReconstructingRegressor(1)
    >>> model.compile(loss="mse", optimizer="nadam")
    >>> model.fit(X_train, y_train, epochs=2).history["reconstruction_loss"]
    """

    def __init__(self, output_dim, reconstruction_weight=0.05, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = positive_int("output_dim", output_dim)
        self.reconstruction_weight = non_negative_float(
            "reconstruction_weight", reconstruction_weight
        )
        self.hidden = [
            keras.layers.Dense(_UNITS, activation="relu", kernel_initializer="he_normal")
            for _ in range(_N_HIDDEN)
        ]
        self.out = keras.layers.Dense(self.output_dim)
        # A Metric attribute is tracked by the model: it shows up in model.metrics,
        # is reset at each epoch, and its result() is logged by fit / evaluate.
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        # (inputs, unweighted reconstruction error) of the last call, for compute_loss.
        self._last_reconstruction = (None, None)

    def build(self, input_shape):
        # The reconstruction layer's width is the number of inputs, known only now.
        self.reconstruct = keras.layers.Dense(input_shape[-1])
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.reconstruct.build(shape)
        self.out.build(shape)

    def call(self, inputs):
        hidden = self._hidden(inputs)
        reconstruction_loss = self._reconstruction_error(inputs, hidden)
        self.add_loss(self.reconstruction_weight * reconstruction_loss)
        # Not tracker.update_state() here: JAX's stateless train step cannot update a
        # metric inside call(). compute_loss, called right after this forward pass,
        # updates it; Keras hands a call's add_loss terms to compute_loss the same way.
        self._last_reconstruction = (inputs, reconstruction_loss)
        return self.out(hidden)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        """The compiled loss plus `model.losses`; also updates `"reconstruction_loss"`.

        Keras's train and test steps (and the customkeras `Trainer`) call it right after
        the forward pass, in a scope where metrics can be updated on every backend, as
        Keras updates its own loss tracker.
        """
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        last_inputs, error = self._last_reconstruction
        self._last_reconstruction = (None, None)
        if x is None:
            return loss
        if last_inputs is not x:
            # The last call was on other inputs (or none): measure on these.
            x = ops.cast(ops.convert_to_tensor(x), self.compute_dtype)
            error = self._reconstruction_error(x, self._hidden(x))
        # Weighted by the batch size, as Keras weights its loss tracker: the epoch's
        # value is the mean over samples, also when the last batch (or a replica's
        # share of a batch) is smaller; an empty share adds nothing (its mean is NaN).
        batch_size = ops.cast(ops.shape(x)[0], error.dtype)
        error = ops.where(batch_size > 0, error, ops.zeros_like(error))
        self.reconstruction_tracker.update_state(error, sample_weight=batch_size)
        return loss

    def _hidden(self, inputs):
        hidden = inputs
        for layer in self.hidden:
            hidden = layer(hidden)
        return hidden

    def _reconstruction_error(self, inputs, hidden):
        return ops.mean(ops.square(self.reconstruct(hidden) - inputs))

    def get_config(self):
        return {
            **super().get_config(),
            "output_dim": self.output_dim,
            "reconstruction_weight": self.reconstruction_weight,
        }
