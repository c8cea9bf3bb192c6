"""The bodies of the traced loops: `tf.while_loop`s over steps (see `loops`).

Each body runs up to `num_steps` steps of one kind (train, test, predict) on batches
from resident arrays or from an iterator, and returns what the controller reads after
the execution. `LoopBodies` is mixed into `loops.Loops`, which owns the replica
functions, the divergence guard and the traced-function cache these bodies use.
"""

import tensorflow as tf


def _full_batch(start, batch_size):
    # A gather over a range keeps the batch length static under XLA without making
    # `start` a compile-time constant, as `tf.slice(order, [start], [size])` would.
    return start + tf.range(batch_size)


def _batch_in_order(data, start, batch_size, full_batches):
    """The batch of `data` (unshuffled) that starts at sample `start`."""
    def take(tensor):
        if full_batches:
            return tf.gather(tensor, _full_batch(start, batch_size))
        return tensor[start:tf.minimum(start + batch_size, tf.shape(tensor)[0])]

    return tf.nest.map_structure(take, data)


def all_finite(values):
    """Whether every floating-point tensor in `values` is finite."""
    values = [tf.cast(v, tf.float32) for v in tf.nest.flatten(values) if v.dtype.is_floating]
    if not values:
        return tf.constant(True)
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])


def _empty_like(spec):
    return tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)


def _tensor_arrays(spec):
    return tf.nest.map_structure(
        lambda s: tf.TensorArray(s.dtype, size=0, dynamic_size=True, infer_shape=False,
                                 element_shape=tf.TensorShape([None]).concatenate(s.shape[1:])),
        spec)


def _concat_or_empty(array):
    # `concat` of an empty TensorArray fails; an exhausted iterator gives one.
    return tf.cond(array.size() > 0, array.concat,
                   lambda: tf.zeros([0] + array.element_shape[1:].as_list(), array.dtype))


class LoopBodies:
    """The loop bodies of `loops.Loops` (a mixin)."""

    def _step(self, kind, batch, sliced, xla_step=False):
        """Runs one step on every replica; returns its per-replica outputs."""
        replica = self._replica(kind, sliced)
        if xla_step and not self.run_eagerly:
            replica = self._xla_replica(kind, replica, sliced)
        return self.strategy.run(replica, args=(batch,))

    def _xla_replica(self, kind, replica, sliced):
        # Keyed by `sliced` too: a resident-arrays step and an iterator step of one kind
        # are different functions (`_replica`), even where their specs match.
        key = ("xla-step", kind, sliced)
        if key not in self._functions:
            self._functions[key] = tf.function(replica, jit_compile=True, autograph=False)
        return self._functions[key]

    def _carry(self, kind, out, logs):
        """The logs to carry after a step: the model's own step logs, reduced."""
        step = getattr(self.steps, kind)
        if not step.reports_logs:
            return logs
        reduced = self._reduce_logs(out)
        return tf.nest.map_structure(lambda v, s: tf.cast(tf.reshape(v, s.shape), s.dtype),
                                     reduced, logs)

    def _train_arrays_loop(self, full_batches, logs_spec, data, order, first_step,
                           num_steps, batch_size):
        def batch_at(step):
            start = (first_step + step) * batch_size
            if full_batches:
                indices = tf.gather(order, _full_batch(start, batch_size))
            else:
                indices = order[start:tf.minimum(start + batch_size, tf.shape(order)[0])]
            return tf.nest.map_structure(lambda t: tf.gather(t, indices), data)

        def body(step, finite, logs):
            out = self._step("train", batch_at(step), sliced=True)
            logs = self._carry("train", out, logs)
            return step + 1, self._finite(out, logs, self.steps.train), logs

        logs = () if logs_spec is None else _empty_like(logs_spec)
        steps_run, finite, logs = tf.while_loop(
            lambda step, finite, _: tf.logical_and(step < num_steps, finite),
            body, (tf.constant(0), tf.constant(True), logs))
        return self._finish_train(steps_run, finite, logs, logs_spec)

    def _finish_train(self, steps_run, finite, logs, logs_spec):
        # An update can overflow the weights while its loss still looks finite.
        weights_finite = self.guard.weights_finite()
        if logs_spec is None:
            logs = self.model_logs()
            # The running loss covers a multi-worker loop, which checks the weights
            # after each step rather than the loss.
            if "loss" in logs:
                finite = tf.logical_and(finite, tf.math.is_finite(logs["loss"]))
        self.guard.refresh_if(tf.logical_and(finite, weights_finite))
        return steps_run, finite, weights_finite, logs

    def _over_iterator(self, iterator, num_steps, logs_spec, run):
        """A `while` over `iterator`'s elements until `num_steps` steps, a non-finite
        step or the data's end; `run(element, step, logs)` runs the steps of one
        element and returns `(steps, finite, logs)`. Returns `(steps_run, finite,
        logs)`."""
        def body(step, finite, logs, done):
            optional = iterator.get_next_as_optional()

            def run_element():
                ran, finite_now, new_logs = run(optional.get_value(), step, logs)
                return step + ran, finite_now, new_logs, tf.constant(False)

            return tf.cond(optional.has_value(), run_element,
                           lambda: (step, finite, logs, tf.constant(True)))

        logs = () if logs_spec is None else _empty_like(logs_spec)
        steps_run, finite, logs, _ = tf.while_loop(
            lambda step, finite, _, done: tf.logical_and(
                tf.logical_and(step < num_steps, finite), tf.logical_not(done)),
            body, (tf.constant(0), tf.constant(True), logs, tf.constant(False)))
        return steps_run, finite, logs

    def _train_iterator_loop(self, xla_step, logs_spec, iterator, num_steps):
        def run(batch, step, logs):
            out = self._step("train", batch, False, xla_step)
            logs = self._carry("train", out, logs)
            return 1, self._finite(out, logs, self.steps.train), logs

        steps_run, finite, logs = self._over_iterator(iterator, num_steps, logs_spec, run)
        return self._finish_train(steps_run, finite, logs, logs_spec)

    def _super_batches_loop(self, kind, xla_steps, logs_spec, size, iterator, num_steps):
        # One `get_next` per super-batch `(batches, lengths)`. A full one of equal
        # batches runs its `size` steps in one call (XLA-compiled for one shape); any
        # other (a pass's last, with its smaller batch) runs one step at a time, each
        # step XLA-compiled as on the per-step path: a step computes the same bits
        # whichever path reads its batch (super-batches or not: `steps_per_execution`,
        # a per-batch callback), so they never change a run's numbers. The
        # controller's executions end on super-batch boundaries.
        def run(element, step, logs):
            batches, lengths = element
            count = tf.minimum(tf.shape(lengths)[0], num_steps - step)
            regular = tf.logical_and(tf.equal(count, size),
                                     tf.reduce_all(tf.equal(lengths, lengths[0])))
            return tf.cond(
                regular,
                lambda: self.strategy.run(self._equal_batches_steps(kind, xla_steps),
                                          args=(batches, size, logs)),
                lambda: self.strategy.run(self._batch_by_batch_steps(kind, xla_steps),
                                          args=(batches, lengths, count, logs)))

        steps_run, finite, logs = self._over_iterator(iterator, num_steps, logs_spec, run)
        if kind == "train":
            return self._finish_train(steps_run, finite, logs, logs_spec)
        return steps_run, (self.model_logs() if logs_spec is None else logs)

    def _steps_over(self, kind, batch_at, count, logs, xla_step=False):
        """Steps of `kind` on `batch_at(j)` for j < count (training stops after a
        non-finite one), in the replica context of one replica, each step
        XLA-compiled alone with `xla_step`. Returns `(steps, finite, logs)`."""
        replica, step = self._replica(kind, sliced=False), getattr(self.steps, kind)
        if xla_step and not self.run_eagerly:
            replica = self._xla_replica(kind, replica, False)

        def body(j, finite, logs):
            out = replica(batch_at(j))
            logs = self._carry(kind, out, logs)
            if kind == "train":
                finite = all_finite(logs if step.reports_logs else out["loss"])
            return j + 1, finite, logs

        return tf.while_loop(lambda j, finite, _: tf.logical_and(j < count, finite), body,
                             (tf.constant(0), tf.constant(True), logs))

    def _equal_batches_steps(self, kind, xla):
        def steps(batches, count, logs):
            return self._steps_over(
                kind, lambda j: tf.nest.map_structure(lambda t: t[j], batches), count, logs)

        if not xla:
            return steps
        key = ("xla-equal-batches", kind)
        if key not in self._functions:
            self._functions[key] = tf.function(steps, jit_compile=True, autograph=False)
        return self._functions[key]

    def _batch_by_batch_steps(self, kind, xla_step):
        def steps(batches, lengths, count, logs):
            return self._steps_over(
                kind, lambda j: tf.nest.map_structure(lambda t: t[j][:lengths[j]], batches),
                count, logs, xla_step)

        return steps

    def _test_arrays_loop(self, full_batches, logs_spec, data, first_step, num_steps,
                          batch_size):
        def body(step, logs):
            batch = _batch_in_order(data, (first_step + step) * batch_size, batch_size,
                                    full_batches)
            out = self._step("test", batch, sliced=True)
            return step + 1, self._carry("test", out, logs)

        logs = () if logs_spec is None else _empty_like(logs_spec)
        _, logs = tf.while_loop(lambda step, _: step < num_steps, body,
                                (tf.constant(0), logs))
        return self.model_logs() if logs_spec is None else logs

    def _test_iterator_loop(self, xla_step, logs_spec, iterator, num_steps):
        def body(step, logs, done):
            optional = iterator.get_next_as_optional()

            def run():
                out = self._step("test", optional.get_value(), False, xla_step)
                return step + 1, self._carry("test", out, logs), tf.constant(False)

            return tf.cond(optional.has_value(), run,
                           lambda: (step, logs, tf.constant(True)))

        logs = () if logs_spec is None else _empty_like(logs_spec)
        steps_run, logs, _ = tf.while_loop(
            lambda step, _, done: tf.logical_and(step < num_steps, tf.logical_not(done)),
            body, (tf.constant(0), logs, tf.constant(False)))
        return steps_run, (self.model_logs() if logs_spec is None else logs)

    def _gathered(self, out):
        """Per-replica outputs as global ones, in the batch's order."""
        if self._replicas == 1:
            return out
        if not self._multi_worker:
            # This process holds every replica's share, in order: concatenate them, as
            # Keras `predict` does. A collective gather would fail where a smaller last
            # batch changes the shapes it gathers ("Shape mismatch in the collective
            # instance").
            return tf.nest.map_structure(
                lambda v: tf.concat(self.strategy.experimental_local_results(v), axis=0),
                out)
        return tf.nest.map_structure(lambda v: self.strategy.gather(v, axis=0), out)

    def _predict_arrays_loop(self, xla_step, out_spec, data, first_step, num_steps,
                             batch_size):
        # Unlike training and evaluation, the loop is never XLA-compiled, only the step
        # (`xla_step`): an XLA-compiled `while` that writes a dynamic-size TensorArray
        # returns it empty.
        def body(step, arrays):
            batch = _batch_in_order(data, (first_step + step) * batch_size, batch_size,
                                    full_batches=False)
            out = self._gathered(self._step("predict", batch, True, xla_step))
            return step + 1, tf.nest.map_structure(
                lambda a, v: a.write(step, v), arrays, out)

        arrays = _tensor_arrays(out_spec)
        _, arrays = tf.while_loop(lambda step, _: step < num_steps, body,
                                  (tf.constant(0), arrays))
        return tf.nest.map_structure(lambda a: a.concat(), arrays)

    def _predict_iterator_loop(self, xla_step, out_spec, iterator, num_steps):
        def body(step, arrays, done):
            optional = iterator.get_next_as_optional()

            def run():
                out = self._gathered(
                    self._step("predict", optional.get_value(), False, xla_step))
                return (step + 1, tf.nest.map_structure(
                    lambda a, v: a.write(step, v), arrays, out), tf.constant(False))

            return tf.cond(optional.has_value(), run,
                           lambda: (step, arrays, tf.constant(True)))

        arrays = _tensor_arrays(out_spec)
        steps_run, arrays, _ = tf.while_loop(
            lambda step, _, done: tf.logical_and(step < num_steps, tf.logical_not(done)),
            body, (tf.constant(0), arrays, tf.constant(False)))
        return steps_run, tf.nest.map_structure(_concat_or_empty, arrays)
