"""Does the data fit the model? Checks made before any step runs.

They compare the data's structure (`TensorSpec`s of one batch) with the model's
inputs and outputs, symbolically (`keras.KerasTensor`s, no eager model call), and,
for in-memory labels, their values against a sparse loss. Each error names the
argument (or the dataset's element spec) and what was expected.
"""

import keras
import numpy as np
import tensorflow as tf

from customkeras.training import compat
from customkeras.training import objectives
from customkeras.training.sources.arrays import ArraySource
from customkeras.training.steps.model_step import overrides


def _shape(spec):
    shape = tuple(spec.shape)
    return shape if shape[:1] != (None,) else ("n",) + shape[1:]


def _keyed(label, key):
    """`x` and key `'title'` -> "`x['title']`" (or the label, then the key)."""
    if label.startswith("`") and label.endswith("`"):
        return f"{label[:-1]}{key}`"
    return f"{label} {key}"


def paired_inputs(model, x_spec, label):
    """`[(label, model input, spec)]`: the data's inputs paired with `model.inputs` as
    Keras pairs them, or `[]` where that cannot be known (a subclassed model).

    A dict is matched by key to a model built on a dict of inputs, and otherwise by
    the names of `model.inputs` (`keras.Input(name=...)`), as Keras's functional
    models do; anything else is matched by position (flattened).

    Raises:
        ValueError: a dict lacks one of the model's inputs.
    """
    inputs = getattr(model, "inputs", None) if model.built else None
    if not inputs:
        return []
    struct = compat.inputs_struct(model)
    if isinstance(x_spec, dict):
        if isinstance(struct, dict):
            wanted = {key: struct[key] for key in struct}
        else:
            wanted = {tensor.name: tensor for tensor in inputs}
        missing = [key for key in wanted if key not in x_spec]
        if missing:
            raise ValueError(
                f"{label} must be a dict with a key for each of the model's inputs "
                f"{sorted(wanted)} (matched by name, as Keras matches them); received "
                f"the keys {sorted(x_spec)}, without {sorted(missing)}")
        return [(_keyed(label, f"[{key!r}]"), tensor, x_spec[key])
                for key, tensor in wanted.items()
                if not tf.nest.is_nested(tensor) and not tf.nest.is_nested(x_spec[key])]
    try:
        flat = tf.nest.flatten(x_spec)
    except TypeError:
        return []
    if len(inputs) != len(flat):
        return []
    if len(flat) == 1:
        return [(label, inputs[0], flat[0])]
    return [(_keyed(label, f"[{index}]"), tensor, spec)
            for index, (tensor, spec) in enumerate(zip(inputs, flat))]


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
    for name, tensor, spec in paired_inputs(model, x_spec, label):
        expected = tuple(tensor.shape)
        actual = tuple(spec.shape)
        if len(expected) != len(actual) or any(
                e is not None and a is not None and e != a
                for e, a in zip(expected[1:], actual[1:])):
            raise ValueError(
                f"{name} must have shape {('n',) + expected[1:]} to match the model "
                f"input {tensor.name!r}; received shape {_shape(spec)}")


def check_sample_weights(weights, output_shape, label):
    """Checks in-memory sample weights against a single output's shape.

    Keras weighs the loss of each sample, or of each timestep: weights of shape
    `(n,)`, `(n, 1)`, or the output's shape without its last axis (`(n, t)` for
    outputs `(n, t, classes)`), with or without a trailing 1.
    """
    per_sample = tuple(output_shape[1:-1])
    shape = tuple(weights.shape[1:])
    allowed = {(), (1,), per_sample, per_sample + (1,)}
    if shape not in allowed:
        wanted = " or ".join(str(("n",) + s) for s in sorted(allowed, key=len))
        raise ValueError(f"{label} must have shape {wanted} (one weight per sample, or per "
                         f"timestep) for outputs of shape {('n',) + tuple(output_shape[1:])}; "
                         f"received shape {weights.shape}")


def output_spec(model, x_spec):
    """The model's output structure for inputs `x_spec`, computed symbolically."""
    return compat.output_spec(model, x_spec)


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


def check_source(model, source, purpose):
    """Checks that a source's structure (and in-memory labels) fit `model`'s
    `purpose` step ("train", "test" or "predict"), before any step runs."""
    spec = source.element_spec
    in_memory = isinstance(source, ArraySource)
    x_spec, y_spec, _ = keras.utils.unpack_x_y_sample_weight(spec)
    if in_memory:
        x_label, y_label = (f"`{name}`" for name in source.names[:2])
        shapes = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype),
                                       source.x_arrays)
    else:
        x_label = f"the inputs of `{source.name}` (element spec {spec})"
        shapes = x_spec
    if overrides(model, f"{purpose}_step"):
        return  # the model's own step decides what its data is (a GAN's is not x)
    check_inputs(model, shapes, x_label)
    if purpose == "predict" or not compat.has_compiled_loss(model):
        return
    if y_spec is None:
        what = f"{y_label} must be given" if in_memory else (
            f"`{source.name}` must yield (x, y) or (x, y, sample_weight) batches; its "
            f"element spec is {spec}")
        raise ValueError(f"{what}: the model's compiled loss compares predictions "
                         "with targets")
    loss = getattr(model, "loss", None)
    if tf.nest.is_nested(y_spec) or loss is None or isinstance(loss, (list, tuple, dict)):
        return  # several outputs: Keras's compiled loss checks them
    outputs = output_spec(model, x_spec)
    if tf.nest.is_nested(outputs):
        return
    loss = objectives.resolve_loss(loss)
    if in_memory:
        check_labels(loss, source.y_arrays, tuple(outputs.shape), y_label)
        weights = source.sample_weight_arrays
        if weights is not None and not tf.nest.is_nested(weights):
            check_sample_weights(weights, tuple(outputs.shape),
                                           f"`{source.names[2]}`")
    else:
        check_label_spec(
            loss, y_spec, tuple(outputs.shape),
            f"`{source.name}` (element spec {spec})")
