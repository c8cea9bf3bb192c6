"""`ArraySource`: in-memory arrays, resident on the device for the whole call.

Every check runs before training starts, so bad input fails fast with an error that
names the argument, the value received and what was expected, instead of an obscure
error from inside a traced graph minutes into a run.

The arrays are copied to the device once: the Trainer's `ArrayCache` hands back the
same tensors when the same (unchanged) array objects come back, so a loop of
one-epoch `fit` calls copies nothing.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from customkeras.training import compat
from customkeras import _checks
from customkeras.training.sources.feeds import ArrayFeed


def as_arrays(value, name):
    """Converts an array-like (or a tuple/list/dict of them) to NumPy arrays."""
    try:
        arrays = tf.nest.map_structure(
            lambda a: a if isinstance(a, np.ndarray) else np.asarray(a), value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be array-like; received {name}={value!r} "
                        f"({error})") from None
    for array in tf.nest.flatten(arrays):
        if array.ndim == 0:
            raise ValueError(
                f"`{name}` must have a first (sample) dimension; received a scalar "
                f"{name}={array!r}")
        if array.dtype == object or not (
                np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"`{name}` must be numeric; received an array of dtype "
                             f"{array.dtype}")
    return arrays


def _float_or_same(dtype):
    return keras.backend.floatx() if np.issubdtype(dtype, np.floating) else dtype


def epoch_order(num_samples, seed, epoch, shuffle):
    """The sample order of one epoch: a function of `(seed, epoch)` only.

    Because it does not depend on RNG state advanced by earlier epochs, resuming at
    `initial_epoch=k` replays exactly the order an uninterrupted run would use.
    """
    if not shuffle:
        return np.arange(num_samples, dtype=np.int32)
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(num_samples).astype(np.int32)


class ArrayCache:
    """Device copies of arrays, reused while the same array objects come back.

    An entry is keyed by the array object (held by a weak reference) and its data
    pointer, shape and dtype; change an array in place between calls and pass a copy,
    or call `clear()`.
    """

    def __init__(self, size=8):
        self._size = size
        self._entries = []  # [(weakref, key, tensor)], newest last

    def clear(self):
        """Forgets every device copy."""
        self._entries = []

    def tensor(self, array):
        """The device tensor for a NumPy `array` (floats as `floatx`)."""
        key = (array.__array_interface__["data"][0], array.shape, array.dtype.str,
               array.strides)
        for ref, entry_key, tensor in self._entries:
            if ref() is array and entry_key == key:
                return tensor
        # `tf.constant` copies: zero-copy import of unaligned NumPy slices can abort
        # the process (see PITFALLS).
        tensor = tf.constant(np.ascontiguousarray(array, dtype=_float_or_same(array.dtype)))
        try:
            ref = weakref.ref(array)
        except TypeError:
            return tensor
        self._entries = [e for e in self._entries if e[0]() is not None][-(self._size - 1):]
        self._entries.append((ref, key, tensor))
        return tensor


def _class_weights(y, sample_weight, class_weight, names):
    """`fit`'s `class_weight` as one weight per sample, by Keras's rules."""
    _, y_name, w_name = names
    if sample_weight is not None:
        raise ValueError(f"`class_weight` and `{w_name}` cannot be given together (Keras "
                         "refuses them together); received both: weight the samples by "
                         "class in `sample_weight` instead")
    if y is None:
        raise ValueError(f"`class_weight` needs the targets `{y_name}`; received "
                         f"{y_name}=None")
    if tf.nest.is_nested(y):
        raise ValueError("`class_weight` is only supported for models with a single "
                         f"output (as in Keras); received `{y_name}` with "
                         f"{len(tf.nest.flatten(y))} arrays: pass `sample_weight` per output")
    return compat.class_weight_to_sample_weights(y, class_weight).astype("float32")


def _per_output(y, sample_weight, name):
    """One sample-weight array for several outputs is used for each (Keras's rule)."""
    if sample_weight is None or not tf.nest.is_nested(y) or tf.nest.is_nested(sample_weight):
        return sample_weight
    if sample_weight.ndim > 2 or (sample_weight.ndim == 2 and sample_weight.shape[1] != 1):
        raise ValueError(
            f"`{name}` must hold one weight per sample, shape (n,) or (n, 1), when it is "
            "one array for a model with several outputs (Keras's rule); received shape "
            f"{sample_weight.shape}: pass one array per output for other shapes")
    return tf.nest.map_structure(lambda _: sample_weight, y)


class ArraySource:
    """In-memory arrays as the data of one `fit` / `evaluate` / `predict` call.

    Args:
        x: inputs: an array-like, or a tuple / list / dict of them.
        y: targets (same structures), or None (for models whose own step needs none,
            and for `predict`).
        sample_weight: weights of shape `(n,)`, `(n, 1)` or `(n, t)` (per timestep),
            or a structure of them per output; one array for several outputs is
            used for each (Keras's rule). Defaults to None.
        batch_size: samples per step, or None: 32, or with `steps` the samples
            divided among them (Keras's rule).
        steps: at most this many steps per pass, or None for all.
        names: the argument names for messages.
        cache: the `ArrayCache` that keeps device copies.
        purpose: `"fit"`, `"evaluate"` or `"predict"`.
        class_weight: `{class: weight}` (checked), turned into sample weights from
            `y`, as Keras does, or None. Defaults to None.

    Attributes:
        data: the tensors in the structure Keras passes to a step: `x`, `(x, y)` or
            `(x, y, sample_weight)`.
        num_samples, batch_size, steps_per_epoch: the pass's sizes.
    """

    sliced = True  # each replica takes its slice of a global batch, in-graph
    checkpointable = True  # an epoch's order is a function of (seed, epoch)
    persistent_input = False  # no iterator carries on across epochs
    iterator = None

    def __init__(self, x, y, sample_weight, *, batch_size, steps, names, cache, purpose,
                 class_weight=None):
        x_name, y_name, w_name = names
        self.names = names
        if x is None:
            raise ValueError(f"`{x_name}` must be given; received {x_name}=None")
        x = as_arrays(x, x_name)
        y = None if y is None else as_arrays(y, y_name)
        if sample_weight is not None:
            sample_weight = tf.nest.map_structure(
                lambda w: w.astype("float32"), as_arrays(sample_weight, w_name))
        if class_weight is not None:
            sample_weight = _class_weights(y, sample_weight, class_weight, names)
        sample_weight = _per_output(y, sample_weight, w_name)
        self.num_samples = self._check_lengths(x, y, sample_weight, names)
        if batch_size is None:
            batch_size = -(-self.num_samples // steps) if steps else 32
        self.batch_size = _checks.integer("batch_size", batch_size, 1)
        self.x_arrays, self.y_arrays, self._weights = x, y, sample_weight
        passes = -(-self.num_samples // self.batch_size)
        self.steps_per_epoch = passes if steps is None else min(
            passes, _checks.integer("steps", steps, 1))
        self.num_samples = min(self.num_samples, self.steps_per_epoch * self.batch_size)
        x_t, y_t, w_t = (None if part is None else tf.nest.map_structure(cache.tensor, part)
                         for part in (x, y, sample_weight))
        # Keras's packing: `x` alone, `(x,)` for a list or tuple of inputs (so that a
        # step does not take its inputs for `(x, y)`), `(x, y)` or `(x, y, w)`.
        self.data = keras.utils.pack_x_y_sample_weight(x_t, y_t, w_t)
        self.purpose = purpose
        self.name = x_name

    @staticmethod
    def _check_lengths(x, y, sample_weight, names):
        x_name, y_name, w_name = names
        lengths = {a.shape[0] for a in tf.nest.flatten(x)}
        if len(lengths) != 1:
            raise ValueError(f"all arrays in `{x_name}` must have the same length; "
                             f"received lengths {sorted(lengths)}")
        (n,) = lengths
        if n == 0:
            raise ValueError(f"`{x_name}` must contain at least one sample; received 0")
        for value, name in ((y, y_name), (sample_weight, w_name)):
            if value is None:
                continue
            other = sorted({a.shape[0] for a in tf.nest.flatten(value)})
            if other != [n]:
                raise ValueError(
                    f"`{x_name}` and `{name}` must have the same number of samples; "
                    f"received {n} and {other[0] if len(other) == 1 else other}")
        if sample_weight is not None:
            for weights in tf.nest.flatten(sample_weight):
                if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                    raise ValueError(f"`{w_name}` must be finite and >= 0")
        return n

    @property
    def sample_weight_arrays(self):
        """The sample weights as NumPy arrays (a structure per output), or None."""
        return self._weights

    @property
    def element_spec(self):
        """The `TensorSpec` structure of one batch (batch dimension unknown)."""
        return tf.nest.map_structure(
            lambda t: tf.TensorSpec([None] + t.shape[1:], t.dtype), self.data)

    @property
    def fingerprint(self):
        """What the workers of a multi-worker run compare: the resident data."""
        return self.data

    def order(self, seed, epoch, shuffle):
        """The epoch's sample order as an int32 tensor (only the pass's samples)."""
        order = epoch_order(len(tf.nest.flatten(self.data)[0]), seed, epoch, shuffle)
        return tf.constant(order[:self.num_samples])

    # ---- feeds (`feeds`): the source protocol the controller uses ----------------------

    def prepare_fit(self, start_epoch, strategy, super_batches, steps_per_execution):
        """Nothing to prepare: an epoch's order needs no earlier epoch."""

    def epoch_feed(self, epoch, seed, shuffle, strategy):
        """The feed of training epoch `epoch`: its order depends on `(seed, epoch)`."""
        return ArrayFeed(self.data, self.order(seed, epoch, shuffle), self.batch_size,
                         self.num_samples, self.steps_per_epoch)

    def finish_epoch(self, feed, steps_run, ran_out, stopped, strategy):
        """Returns whether the epoch ended short of `steps_per_epoch`: never."""
        return False

    def pass_feed(self, kind, strategy, super_batches=False, steps_per_execution=None):
        """The feed of one evaluation or prediction pass, in the arrays' order."""
        return ArrayFeed(self.data, None, self.batch_size, self.num_samples,
                         self.steps_per_epoch, carries_logs=kind.carries_logs)

    def finish_pass(self, feed):
        """Nothing to let go of."""
