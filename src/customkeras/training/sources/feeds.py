"""Feeds: one pass of batches, in the one form the loop builder reads.

In the style of Keras's `EpochIterator` (`keras/src/trainers/epoch_iterator.py`): the
source (`ArraySource`, `DatasetSource`) owns the data and its epochs; a feed, made by
the source for one pass (`Source.feed`), owns where that pass's batches come from and
how many there are. The controller asks a feed for its sizes and the arguments of each
execution; the loop (`loops.Loops`) calls `next` and `steps` in-graph. Nothing outside
this room knows whether the batches are gathered from resident arrays or read from an
iterator.

Host side:
    `element_spec`, `sliced` (each replica slices a global batch, resident arrays),
    `total` (steps in the pass, None: until the data ends), `multiple` (executions
    but a pass's last run a multiple of it), `mode(xla, step)` and `boundary(xla)`
    (where the XLA mode changes: executions never cross it), `key(mode)` (which
    traced loop serves it), `signature`, `arguments(first_step)`.
Graph side:
    `next(arguments, step, mode)` returns `(has_value, element)`, `has_value` a
    Python `True` when the batch always exists; `steps(element, step, num_steps,
    mode, run_steps, carry)` runs the steps of one element through
    `run_steps(data, batch_at, count, carry, index, group_xla, step_xla)`: `count`
    steps on `batch_at(data, j)`, the group compiled whole with `group_xla`, each
    step alone with `step_xla`; it returns `(steps, finite, carry)`.
"""

import tensorflow as tf

from customkeras.training.xla_choice import XlaMode

INDEX_SPEC = tf.TensorSpec([], tf.int32)


def data_spec(data):
    """The `TensorSpec` structure of resident data, batch dimension left unknown."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None] + t.shape[1:], t.dtype), data)


def whole(batch, _):
    """`batch_at` of an element that is one batch."""
    return batch


def stacked(batches, j):
    """`batch_at` of a super-batch of equal batches: the `j`-th."""
    return tf.nest.map_structure(lambda t: t[j], batches)


def trimmed(element, j):
    """`batch_at` of a super-batch `(batches, lengths)`: the `j`-th, unpadded."""
    batches, lengths = element
    return tf.nest.map_structure(lambda t: t[j][:lengths[j]], batches)


def spec_key(spec):
    """A hashable key of a `TensorSpec` structure."""
    return (str(tf.nest.map_structure(lambda _: 0, spec)), tuple(tf.nest.flatten(spec)))


class ArrayFeed:
    """A pass over resident tensors, in `order` (training) or as they are.

    Under XLA the full batches run in a loop compiled whole (one static batch size,
    gathered with a range so that the start need not be a compile-time constant); the
    smaller last batch, if any, runs plain: XLA compiles one batch shape. Prediction
    collects outputs in a `TensorArray`, which an XLA-compiled `while` returns empty:
    its full batches compile the step alone.

    Args:
        data: the tensors, as a step takes them.
        order: the epoch's sample order (an int32 tensor), or None.
        batch_size: samples per step.
        num_samples: samples in the pass.
        total: steps in the pass.
        carries_logs: False for a kind that collects outputs (prediction).
    """

    sliced = True
    multiple = 1

    def __init__(self, data, order, batch_size, num_samples, total, carries_logs=True):
        self.data = data
        self.order = order
        self.batch_size = batch_size
        self.total = total
        self._full = num_samples // batch_size
        self._whole_loop = carries_logs
        self.element_spec = data_spec(data)

    def mode(self, xla, step):
        if not xla or step >= self._full:
            return XlaMode.NONE
        return XlaMode.WHOLE_LOOP if self._whole_loop else XlaMode.PER_STEP

    def boundary(self, xla):
        return self._full if xla and self._full < self.total else None

    def key(self, mode):
        return ("arrays", self.order is not None, mode, spec_key(self.element_spec))

    @property
    def signature(self):
        order = [] if self.order is None else [tf.TensorSpec([None], tf.int32)]
        return [self.element_spec, *order, INDEX_SPEC, INDEX_SPEC]

    def arguments(self, first_step):
        order = () if self.order is None else (self.order,)
        return (self.data, *order, tf.constant(first_step), tf.constant(self.batch_size))

    def next(self, arguments, step, mode):
        data, *order, first_step, batch_size = arguments
        start = (first_step + step) * batch_size
        if mode is XlaMode.WHOLE_LOOP:
            indices = start + tf.range(batch_size)  # a static length
            if order:
                indices = tf.gather(order[0], indices)
            return True, tf.nest.map_structure(lambda t: tf.gather(t, indices), data)
        if order:
            indices = order[0][start:tf.minimum(start + batch_size, tf.shape(order[0])[0])]
            return True, tf.nest.map_structure(lambda t: tf.gather(t, indices), data)
        return True, tf.nest.map_structure(
            lambda t: t[start:tf.minimum(start + batch_size, tf.shape(t)[0])], data)

    def steps(self, element, step, num_steps, mode, run_steps, carry):
        return run_steps(element, whole, 1, carry, step, False, mode is XlaMode.PER_STEP)


class IteratorFeed:
    """A pass over an iterator's batches (tf.data, a generator, a PyDataset), one
    `get_next_as_optional` per step; under a strategy, a distributed iterator hands
    each replica its share. Iterator ops cannot be XLA-compiled: XLA compiles the
    step alone.

    Args:
        iterator: the (distributed) iterator.
        element_spec: the structure of its batches.
        total: steps in the pass, or None (until the data ends).
    """

    sliced = False
    multiple = 1

    def __init__(self, iterator, element_spec, total):
        self.iterator = iterator
        self.element_spec = element_spec
        self.total = total

    def mode(self, xla, step):
        return XlaMode.PER_STEP if xla else XlaMode.NONE

    def boundary(self, xla):
        return None

    def key(self, mode):
        return ("iterator", mode, spec_key(self.element_spec))

    signature = None

    def arguments(self, first_step):
        return (self.iterator,)

    def next(self, arguments, step, mode):
        optional = arguments[0].get_next_as_optional()
        return optional.has_value(), optional

    def steps(self, element, step, num_steps, mode, run_steps, carry):
        return run_steps(element.get_value(), whole, 1, carry, step, False,
                         mode is XlaMode.PER_STEP)


class SuperBatchFeed(IteratorFeed):
    """A pass over an iterator of super-batches `(batches, lengths)`: `size` of the
    user's batches per `get_next` (`super_batches.py`; one device only).

    A full super-batch of equal batches runs its `size` steps in one call, compiled as
    one with XLA for one shape; any other (a pass's last, with its smaller batch) runs
    one step at a time, each compiled alone as on `IteratorFeed`: a step computes the
    same bits whichever feed reads its batch, so `steps_per_execution` or a per-batch
    callback (which turn super-batches off) never change a run's numbers. Executions
    end on super-batch boundaries (`multiple`).
    """

    def __init__(self, iterator, element_spec, total, size):
        super().__init__(iterator, element_spec, total)
        self.multiple = size

    def key(self, mode):
        return ("super-batches", self.multiple, mode, spec_key(self.element_spec))

    def steps(self, element, step, num_steps, mode, run_steps, carry):
        batches, lengths = element.get_value()
        size, xla = self.multiple, mode is not XlaMode.NONE
        count = tf.minimum(tf.shape(lengths)[0], num_steps - step)
        regular = tf.logical_and(tf.equal(count, size),
                                 tf.reduce_all(tf.equal(lengths, lengths[0])))
        return tf.cond(
            regular,
            lambda: run_steps(batches, stacked, size, carry, step, xla, False),
            lambda: run_steps((batches, lengths), trimmed, count, carry, step, False, xla))
