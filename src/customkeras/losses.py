"""The Huber loss: the chapter's custom loss as a function, a factory and a `Loss` class.

The Huber loss is quadratic for small errors and linear for large ones, so it is less
sensitive to outliers than the mean squared error:

```
loss = 0.5 * e ** 2                          if |e| <= threshold
loss = threshold * |e| - 0.5 * threshold ** 2 otherwise,    with e = y_true - y_pred
```

Use `HuberLoss` when the model must be saved: it keeps its threshold in its config
(Keras 3.15.1's own `keras.losses.Huber` drops `delta`, so it reloads with delta=1).
"""

import keras
from keras import ops

from customkeras._checks import positive_float

__all__ = ["HuberLoss", "create_huber", "huber", "huber_fn"]


def huber(y_true, y_pred, threshold=1.0):
    """Computes the element-wise Huber loss.

    Formula (with `e = y_true - y_pred`):

    ```
    0.5 * e ** 2                            if |e| <= threshold
    threshold * |e| - 0.5 * threshold ** 2  otherwise
    ```

    Unlike `keras.losses.huber`, this does not average over the last axis: it returns
    one loss per element, as the chapter's `huber_fn` does.

    Args:
        y_true: Tensor of targets.
        y_pred: Tensor of predictions, same shape as `y_true`.
        threshold: Positive float, where the loss turns from quadratic to linear.
            Defaults to `1.0`.

    Returns:
        Tensor of the same shape as `y_pred`.

    Example:

    >>> huber([[0.0, 0.0]], [[0.5, 3.0]], threshold=1.0)  # [[0.125, 2.5]]
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if not keras.backend.is_float_dtype(y_pred.dtype):
        y_pred = ops.cast(y_pred, keras.backend.floatx())
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    threshold = ops.cast(threshold, y_pred.dtype)
    abs_error = ops.abs(y_true - y_pred)
    squared_loss = 0.5 * ops.square(abs_error)
    linear_loss = threshold * abs_error - 0.5 * ops.square(threshold)
    return ops.where(abs_error <= threshold, squared_loss, linear_loss)


@keras.saving.register_keras_serializable(package="customkeras")
def huber_fn(y_true, y_pred):
    """Computes the element-wise Huber loss with threshold 1 (the chapter's `huber_fn`).

    Registered, so a model compiled with `loss=huber_fn` reloads in safe mode.

    Args:
        y_true: Tensor of targets.
        y_pred: Tensor of predictions.

    Returns:
        Tensor of the same shape as `y_pred`.

    Example:

    >>> model.compile(loss=huber_fn, optimizer="nadam")
    """
    return huber(y_true, y_pred, 1.0)


def create_huber(threshold=1.0):
    """Returns a Huber loss function `fn(y_true, y_pred)` with the given threshold.

    The returned closure is fine for training and as a metric; to save a model with a
    threshold other than 1, use `HuberLoss(threshold)` instead, whose config keeps it
    (a closure cannot be rebuilt from a saved file, and loading then fails loudly).

    Args:
        threshold: Positive float, where the loss turns from quadratic to linear.
            Defaults to `1.0`.

    Returns:
        A function `(y_true, y_pred) -> element-wise losses`.

    Example:

    >>> model.compile(loss="mse", optimizer="nadam", metrics=[create_huber(2.0)])
    """
    threshold = positive_float("threshold", threshold)

    def huber_with_threshold(y_true, y_pred):
        return huber(y_true, y_pred, threshold)

    # The name shows up in training logs; it says which threshold this is.
    huber_with_threshold.__name__ = f"huber_{threshold:g}"
    huber_with_threshold.__qualname__ = huber_with_threshold.__name__
    return huber_with_threshold


@keras.saving.register_keras_serializable(package="customkeras")
class HuberLoss(keras.losses.Loss):
    """Huber loss that keeps its threshold when saved.

    Computes `huber(y_true, y_pred, threshold)` per element and averages it over the
    last axis (one loss per sample, so per-sample weights apply), then applies the Loss
    reduction (by default the mean over the batch), as `keras.losses.Huber` does.

    Args:
        threshold: Positive float, where the loss turns from quadratic to linear.
            Defaults to `1.0`.
        **kwargs: Base `keras.losses.Loss` arguments (`name`, `reduction`, `dtype`).

    Example:

    >>> model.compile(loss=HuberLoss(2.0), optimizer="nadam")
    """

    def __init__(self, threshold=1.0, name="huber_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = positive_float("threshold", threshold)

    def call(self, y_true, y_pred):
        return ops.mean(huber(y_true, y_pred, self.threshold), axis=-1)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
