"""Does the data fit the model? Checks made before any step runs.

They compare the data's structure (`TensorSpec`s of one batch) with the model's
inputs and outputs, symbolically (`keras.KerasTensor`s, no eager model call), and,
for in-memory labels, their values against a sparse loss. Each error names the
argument (or the dataset's element spec) and what was expected.
"""

import keras
import numpy as np
import tensorflow as tf

from customkeras.training import objectives


def _shape(spec):
    shape = tuple(spec.shape)
    return shape if shape[:1] != (None,) else ("n",) + shape[1:]


def check_inputs(model, x_spec, label):
    """Checks the rank, sizes and dtype of the inputs `x_spec` against `model.inputs`.

    Args:
        model: the model.
        x_spec: the `TensorSpec` structure of one batch's inputs.
        label: how messages name the inputs, e.g. "`x`".
    """
    for spec in tf.nest.flatten(x_spec):
        if not (spec.dtype.is_floating or spec.dtype.is_integer or spec.dtype.is_bool):
            raise ValueError(f"{label} must be numeric; received {spec}")
    inputs = getattr(model, "inputs", None) if model.built else None
    try:
        flat = tf.nest.flatten(x_spec)
    except TypeError:
        return
    if not inputs or len(inputs) != len(flat):
        return
    for tensor, spec in zip(inputs, flat):
        expected = tuple(tensor.shape)
        actual = tuple(spec.shape)
        if len(expected) != len(actual) or any(
                e is not None and a is not None and e != a
                for e, a in zip(expected[1:], actual[1:])):
            raise ValueError(
                f"{label} must have shape {('n',) + expected[1:]} to match the model "
                f"input; received shape {_shape(spec)}")


def output_spec(model, x_spec):
    """The model's output structure for inputs `x_spec`, computed symbolically."""
    symbolic = tf.nest.map_structure(
        lambda s: keras.KerasTensor(s.shape, s.dtype.name), x_spec)
    return keras.src.backend.compute_output_spec(model, symbolic, training=False)


def check_label_spec(loss, y_spec, output_shape, label):
    """Checks the structure of streamed labels against a single output and its loss."""
    labels = tuple(y_spec.shape)
    if objectives.is_sparse_categorical(loss):
        expected = ("n",) + tuple(output_shape[1:-1])
        fits = len(labels) in (len(output_shape) - 1, len(output_shape)) and (
            len(labels) == len(output_shape) - 1 or labels[-1] in (1, None))
        what = f"one class index per sample, shape {expected}"
    else:
        expected = ("n",) + tuple(output_shape[1:])
        fits = len(labels) == len(output_shape) and all(
            a is None or e is None or a == e for a, e in zip(labels[1:], output_shape[1:]))
        fits = fits or (output_shape[-1] == 1 and len(labels) == len(output_shape) - 1)
        what = f"shape {expected}"
    if not fits:
        raise ValueError(f"{label} must hold labels of {what} to match the model output "
                         f"and its loss; received labels of shape {_shape(y_spec)}")


def check_labels(loss, y, output_shape, label):
    """Checks in-memory labels `y` against a single output and its loss.

    `label` names them in messages, e.g. "`y`".
    """
    name = label.strip("`")
    label_shape = y.shape
    if objectives.is_sparse_categorical(loss):
        n_classes = output_shape[-1]
        if label_shape[1:] not in (output_shape[1:-1], output_shape[1:-1] + (1,)):
            raise ValueError(
                f"`{name}` must hold one class index per sample, shape (n,) for "
                f"outputs of shape {('n',) + output_shape[1:]}; received shape {label_shape}")
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"`{name}` must hold integer class indices for a sparse loss")
        low, high = y.min(), y.max()
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"`{name}` labels must be in [0, {n_classes - 1}] for a model with "
                f"{n_classes} outputs; received labels from {low} to {high}")
        return
    matches = label_shape[1:] == output_shape[1:] or (
        output_shape[-1] == 1 and label_shape[1:] == output_shape[1:-1])
    if not matches:
        raise ValueError(
            f"`{name}` must have shape {('n',) + output_shape[1:]} to match the model "
            f"output; received shape {label_shape}")
