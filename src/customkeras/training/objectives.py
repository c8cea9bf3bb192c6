"""Checking the loss given to the `Trainer`, and knowing what labels it expects.

The Trainer compiles the model with the loss and metrics (so names and conventions
are `model.compile`'s); this module only checks a loss up front, with a message that
names it, and tells a sparse loss apart for the label checks of `sources.model_fit`.
"""

import keras

from customkeras.training import compat


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
    return compat.loss_function_wrapper(function, name=name)


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
