"""`DefaultStep`: Keras's default train/test/predict step, exact under tf.distribute.

It does what `keras.Model.train_step` does on the TensorFlow backend, through the
same public pieces, so that a compiled model trains as under `fit`: the forward pass,
`model.compute_loss` (the compiled losses with `loss_weights`, plus `model.losses`, and
any `compute_loss` override), the optimizer's loss scaling (`LossScaleOptimizer` under
`mixed_float16`), `optimizer.apply_gradients` (clipping, gradient accumulation, EMA,
variable constraints), then `model.compute_metrics` (the compiled metrics and
`weighted_metrics`, and any override).

Under a strategy with R replicas, Keras divides each replica's mean loss by R, which
is exact only when every replica holds an equal share of the batch. Here each
replica's loss is instead weighted by its share of the global batch (by sample count,
or by sample weight for a `mean_with_sample_weight` loss), so the summed gradient is
the gradient of the global batch's mean loss even for an uneven last batch.
"""

import keras
import tensorflow as tf

from customkeras.training import compat

_WEIGHTED_MEAN = "mean_with_sample_weight"


def _forward(model, x, training):
    # Keras passes `training` only to models whose `call` takes it.
    if compat.call_has_training_arg(model):
        return model(x, training=training)
    return model(x)


class DefaultStep:
    """The default steps of a compiled model.

    Args:
        model: a compiled Keras model.
        strategy: the `tf.distribute.Strategy` the steps run under.
    """

    reports_logs = False  # the loss and metrics are read from `model.metrics`

    def __init__(self, model, strategy):
        self.model = model
        self.strategy = strategy

    # Each step takes `totals = (global_size, global_weight)`: the number of samples
    # of the whole (global) batch and the sum of its sample weights (None without).

    def train(self, batch, totals):
        """One training step on this replica's share of a batch; returns its logs."""
        model = self.model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as tape:
            y_pred = _forward(model, x, training=True)
            loss = compat.compute_loss(model, x, y, y_pred, sample_weight, training=True)
            loss = self._exact_share(loss, y_pred, sample_weight, totals)
            self._track_loss(loss, totals)
            scaled = model.optimizer.scale_loss(loss)
        variables = model.trainable_weights
        gradients = tape.gradient(scaled, variables)
        model.optimizer.apply_gradients(zip(gradients, variables))
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return {"loss": loss}

    def test(self, batch, totals):
        """One evaluation step; updates the loss tracker and the metrics."""
        model = self.model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = _forward(model, x, training=False)
        loss = compat.compute_loss(model, x, y, y_pred, sample_weight, training=False)
        loss = self._exact_share(loss, y_pred, sample_weight, totals)
        self._track_loss(loss, totals)
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return {"loss": loss}

    def predict(self, batch):
        """The model's outputs for the inputs of a batch (targets are ignored)."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        return _forward(self.model, x, training=False)

    # ---- distribution ----------------------------------------------------------------

    def _exact_share(self, loss, y_pred, sample_weight, totals):
        """This replica's loss, weighted by its share of the global batch.

        Keras has already divided it by the number of replicas R; multiplying by
        R * share gives `share * replica loss`, whose sum over replicas is the loss of
        the global batch.
        """
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            return loss
        global_size, global_weight = totals
        reductions = compat.compiled_loss_reductions(self.model)
        if sample_weight is not None and reductions == {_WEIGHTED_MEAN}:
            local = tf.cast(tf.reduce_sum(sample_weight), loss.dtype)
            return tf.math.divide_no_nan(loss * local * replicas,
                                         tf.cast(global_weight, loss.dtype))
        local = tf.cast(tf.shape(tf.nest.flatten(y_pred)[0])[0], loss.dtype)
        return loss * local * replicas / tf.cast(global_size, loss.dtype)

    def _track_loss(self, loss, totals):
        # The tracker sums value * weight, and the weights, over replicas: with
        # (share * R, global size / R) from each replica it adds the global batch's
        # loss weighted by the global batch size, as on one device, even for a
        # replica whose share of a small last batch is empty.
        tracker = compat.loss_tracker(self.model)
        if tracker is None:
            return
        replicas = self.strategy.num_replicas_in_sync
        global_size, _ = totals
        tracker.update_state(
            tf.cast(loss, "float32") * replicas,
            sample_weight=tf.cast(global_size, "float32") / replicas,
        )
