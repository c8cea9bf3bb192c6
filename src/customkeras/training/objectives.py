"""Turning the loss and metrics given to the `Trainer` into Keras objects.

Names and conventions follow `model.compile`, so a history from the `Trainer` has
the keys a history from `model.fit` would have (`"accuracy"` stays `"accuracy"`,
`"mae"` stays `"mae"`, a metric object keeps its `name`).
"""

import keras

# Keras wraps loss *functions* in this class inside `compile`; using it gives the same
# rank alignment of `y_true` / `y_pred` (e.g. labels (n,) vs predictions (n, 1)).
# It is not exported publicly, hence the private import.
from keras.src.losses.losses import LossFunctionWrapper

_SPARSE_LOSS_NAMES = ("sparse_categorical_crossentropy", "sparsecategoricalcrossentropy")


def _from_registry(get, identifier):
    """`get(identifier)` for a name (None if unknown); any other value unchanged."""
    if not isinstance(identifier, str):
        return identifier
    try:
        return get(identifier)
    except ValueError:
        return None


def resolve_loss(loss):
    """Returns a `keras.losses.Loss` for a loss object, function or name.

    Args:
        loss: a `keras.losses.Loss`, a function `f(y_true, y_pred)` returning
            per-sample losses, or a name known to `keras.losses.get`, e.g.
            `"sparse_categorical_crossentropy"` or `"mse"`.

    Returns:
        A loss object whose call `loss(y_true, y_pred, sample_weight)` returns the
        sample-weighted mean over the batch, as Keras `fit` computes it.
    """
    function = _from_registry(keras.losses.get, loss)
    if isinstance(function, keras.losses.Loss):
        return function
    if not callable(function):
        raise ValueError(
            "`loss` must be a keras.losses.Loss, a function f(y_true, y_pred) or a "
            f"Keras loss name such as 'sparse_categorical_crossentropy'; received {loss!r}"
        )
    name = loss if isinstance(loss, str) else getattr(function, "__name__", None)
    return LossFunctionWrapper(function, name=name)


def check_loss(loss):
    """Raises `ValueError` unless `loss` (or each loss of a list / dict) is a loss."""
    if isinstance(loss, dict):
        for value in loss.values():
            check_loss(value)
    elif isinstance(loss, (list, tuple)):
        for value in loss:
            check_loss(value)
    elif loss is not None:
        resolve_loss(loss)


def is_sparse_categorical(loss):
    """Whether `loss` expects integer class labels (sparse categorical crossentropy)."""
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return True
    function = getattr(loss, "fn", None)
    name = getattr(function, "__name__", "") or getattr(loss, "name", "")
    return name.replace("_", "").lower() in {n.replace("_", "") for n in _SPARSE_LOSS_NAMES}


def resolve_metrics(metrics, label_shape, output_shape):
    """Returns metric objects named as `model.compile` would name them.

    `"accuracy"` / `"acc"` become binary, sparse categorical or categorical accuracy
    depending on the shapes, as in Keras.

    Args:
        metrics: a list or tuple of metric objects, functions or names.
        label_shape: the shape of one batch of labels (only the rank and last
            dimension matter).
        output_shape: the shape of one batch of model outputs.

    Returns:
        A list of `keras.metrics.Metric` objects with unique names.
    """
    if isinstance(metrics, (str, keras.metrics.Metric)) or callable(metrics):
        metrics = [metrics]
    resolved = []
    for identifier in metrics:
        resolved.append(_resolve_metric(identifier, label_shape, output_shape))
    names = [m.name for m in resolved]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or "loss" in names:
        raise ValueError(
            f"`metrics` names must be unique and differ from 'loss'; received names {names}"
        )
    return resolved


def _resolve_metric(identifier, label_shape, output_shape):
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        is_binary = output_shape[-1] == 1
        is_sparse = len(label_shape) < len(output_shape) or (
            label_shape[-1] == 1 and output_shape[-1] > 1
        )
        if is_binary:
            return keras.metrics.BinaryAccuracy(name=identifier)
        if is_sparse:
            return keras.metrics.SparseCategoricalAccuracy(name=identifier)
        return keras.metrics.CategoricalAccuracy(name=identifier)
    metric = _from_registry(keras.metrics.get, identifier)
    if not isinstance(metric, keras.metrics.Metric):
        if not callable(metric):
            raise ValueError(
                "each entry of `metrics` must be a keras.metrics.Metric, a function "
                f"f(y_true, y_pred) or a Keras metric name; received {identifier!r}"
            )
        metric = keras.metrics.MeanMetricWrapper(
            metric, name=getattr(metric, "__name__", None)
        )
    if isinstance(identifier, str):
        metric.name = identifier
    return metric
