"""Checking and preparing the arrays given to `Trainer.fit` / `Trainer.evaluate`.

Every check runs before training starts, so bad input fails fast with a `ValueError`
that names the argument, the value received and what was expected, instead of an
obscure error from inside a traced graph several minutes into a run.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf

from customkeras.training import objectives


def check_positive_int(value, name, minimum=1):
    """Returns `value` if it is an integer >= `minimum`, else raises `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {value!r}")
    return int(value)


def as_arrays(value, name):
    """Converts an array-like (or a tuple/list/dict of them) to NumPy arrays."""
    if value is None:
        raise ValueError(f"`{name}` must be an array; received None")
    if isinstance(value, tf.data.Dataset):
        raise ValueError(
            f"`{name}` must be in-memory arrays (NumPy or tensors); received a "
            "tf.data.Dataset"
        )
    try:
        arrays = tf.nest.map_structure(np.asarray, value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must be array-like; received {value!r} ({error})") from None
    for array in tf.nest.flatten(arrays):
        if array.ndim == 0:
            raise ValueError(
                f"`{name}` must have a first (sample) dimension; received a scalar "
                f"{array!r}"
            )
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise ValueError(
                f"`{name}` must be numeric; received an array of dtype {array.dtype}"
            )
    return arrays


def num_samples(arrays, name):
    """Returns the shared first dimension of `arrays`, or raises `ValueError`."""
    lengths = {a.shape[0] for a in tf.nest.flatten(arrays)}
    if len(lengths) != 1:
        raise ValueError(f"all arrays in `{name}` must have the same length; got {sorted(lengths)}")
    (length,) = lengths
    if length == 0:
        raise ValueError(f"`{name}` must contain at least one sample; received 0")
    return length


def check_data(model, loss, x, y, sample_weight, names=("x", "y", "sample_weight")):
    """Checks one data set against the model and the loss.

    Args:
        model: the built model.
        loss: the resolved `keras.losses.Loss`.
        x, y: NumPy inputs and targets (from `as_arrays`).
        sample_weight: a NumPy vector or None.
        names: the argument names to use in messages.

    Returns:
        The model's output on the first two samples (its shape drives the choice of
        the accuracy metric).
    """
    x_name, y_name, w_name = names
    n = num_samples(x, x_name)
    if len(y) != n:
        raise ValueError(
            f"`{x_name}` and `{y_name}` must have the same number of samples; received "
            f"{n} and {len(y)}"
        )
    if sample_weight is not None:
        if sample_weight.shape != (n,):
            raise ValueError(
                f"`{w_name}` must be a vector of shape ({n},), one weight per sample; "
                f"received shape {sample_weight.shape}"
            )
        if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
            raise ValueError(f"`{w_name}` must be finite and >= 0")
    _check_input_ranks(model, x, x_name)
    sample = tf.nest.map_structure(lambda a: a[:2].astype(_float_or_same(a.dtype)), x)
    try:
        output = model(sample, training=False)
    except Exception as error:  # noqa: BLE001 - any failure means x does not fit the model
        shapes = tf.nest.map_structure(lambda a: a.shape, x)
        raise ValueError(
            f"`{x_name}` of shape {shapes} does not fit the model: {error}"
        ) from error
    if not isinstance(output, (tf.Tensor, keras.KerasTensor)) and tf.nest.is_nested(output):
        raise ValueError("the Trainer supports single-output models; the model returned a structure")
    _check_labels(loss, y, tuple(output.shape), y_name)
    return output


def _check_input_ranks(model, x, name):
    inputs = getattr(model, "inputs", None) if model.built else None
    if not inputs or len(inputs) != len(tf.nest.flatten(x)):
        return
    for tensor, array in zip(inputs, tf.nest.flatten(x)):
        expected = tuple(tensor.shape)
        if len(expected) != array.ndim or any(
            e is not None and e != a for e, a in zip(expected[1:], array.shape[1:])
        ):
            raise ValueError(
                f"`{name}` must have shape {('n',) + expected[1:]} to match the model "
                f"input; received shape {array.shape}"
            )


def _check_labels(loss, y, output_shape, name):
    label_shape = y.shape
    if objectives.is_sparse_categorical(loss):
        n_classes = output_shape[-1]
        if label_shape[1:] not in (output_shape[1:-1], output_shape[1:-1] + (1,)):
            raise ValueError(
                f"`{name}` must hold one class index per sample, shape (n,) for "
                f"outputs of shape {('n',) + output_shape[1:]}; received shape {label_shape}"
            )
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"`{name}` must hold integer class indices for a sparse loss")
        low, high = y.min(), y.max()
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"`{name}` labels must be in [0, {n_classes - 1}] for a model with "
                f"{n_classes} outputs; received labels from {low} to {high}"
            )
        return
    matches = label_shape[1:] == output_shape[1:] or (
        output_shape[-1] == 1 and label_shape[1:] == output_shape[1:-1]
    )
    if not matches:
        raise ValueError(
            f"`{name}` must have shape {('n',) + output_shape[1:]} to match the model "
            f"output; received shape {label_shape}"
        )


def _float_or_same(dtype):
    return keras.backend.floatx() if np.issubdtype(dtype, np.floating) else dtype


def to_tensors(arrays):
    """Copies NumPy arrays into device-resident tensors (floats as `floatx`)."""
    # `tf.constant` copies: zero-copy import of unaligned NumPy slices can abort the
    # process (see PITFALLS), and the copy is made once per `fit`, not per batch.
    return tf.nest.map_structure(
        lambda a: tf.constant(np.ascontiguousarray(a, dtype=_float_or_same(a.dtype))), arrays
    )


VALIDATION_NAMES = ("validation_data[0]", "validation_data[1]", "validation_data[2]")


def split_validation(validation_data):
    """Returns `(x, y, sample_weight or None)` from `fit`'s `validation_data`."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
            f"sample_weight_val); received {type(validation_data).__name__}"
        )
    x, y, *rest = validation_data
    return x, y, (rest[0] if rest else None)


def epoch_order(num_samples, seed, epoch, shuffle):
    """The sample order of one epoch: a function of `(seed, epoch)` only.

    Because it does not depend on RNG state advanced by earlier epochs, resuming
    at `initial_epoch=k` replays exactly the order an uninterrupted run would use.
    """
    if not shuffle:
        return np.arange(num_samples, dtype=np.int32)
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(num_samples).astype(np.int32)
