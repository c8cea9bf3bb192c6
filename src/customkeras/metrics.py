"""The chapter's streaming `HuberMetric`: the (weighted) mean Huber loss over an epoch.

```
result = sum(w * huber(y_true, y_pred)) / sum(w)
```

over every element seen since the last `reset_state()` (`w = 1` without sample weights).
"""

import keras
from keras import ops

from customkeras._checks import positive_float
from customkeras.losses import huber

__all__ = ["HuberMetric"]


@keras.saving.register_keras_serializable(package="customkeras")
class HuberMetric(keras.metrics.Metric):
    """Streaming weighted mean of the element-wise Huber loss.

    Keeps two state variables, `total` (sum of weighted losses) and `count` (sum of
    weights), so the result over several batches is the mean over all their elements,
    not the mean of batch means.

    Args:
        threshold: Positive float, where the loss turns from quadratic to linear.
            Defaults to `1.0`.
        name: Metric name. Defaults to `"huber_metric"`.
        dtype: Dtype of the state and result. Defaults to `None` (float32).

    Example:

    >>> m = HuberMetric(2.0)
    >>> m.update_state([[2.0]], [[10.0]])          # total 14, count 1
    >>> m.update_state([[0.0], [5.0]], [[1.0], [9.25]])  # total 21, count 3
    >>> float(m.result())
    7.0
    """

    def __init__(self, threshold=1.0, name="huber_metric", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = positive_float("threshold", threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, self.dtype)
        losses = huber(ops.cast(y_true, self.dtype), y_pred, self.threshold)
        if sample_weight is None:
            weights = ops.ones_like(losses)
        else:
            weights = ops.cast(sample_weight, self.dtype)
            # Per-sample weights (batch,) apply to every element of that sample.
            while len(weights.shape) < len(losses.shape):
                weights = ops.expand_dims(weights, axis=-1)
            weights = ops.broadcast_to(weights, ops.shape(losses))
        self.total.assign_add(ops.sum(weights * losses))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        # Not ops.zeros_like(variable): JAX cannot convert a Keras Variable there.
        for variable in (self.total, self.count):
            variable.assign(ops.zeros(variable.shape, variable.dtype))

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
