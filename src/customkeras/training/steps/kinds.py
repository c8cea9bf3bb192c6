"""Step kinds: what a loop of training, evaluation or prediction steps folds and returns.

The loop builder (`training.loops`) makes one `while` loop for every kind; a kind says
how the loop carries its steps' results from one step to the next (a reducer, as in
Orbit's `create_tf_while_loop_fn_with_state`) and what an execution returns:

* `TRAIN` carries the model's own step logs (a custom `train_step`) or nothing (the
  default step: the logs are `model.metrics`), stops after a step whose loss is not
  finite, and refreshes the divergence guard after a finite execution;
* `TEST` carries logs as `TRAIN`, without the checks;
* `PREDICT` writes each step's outputs into `TensorArray`s and concatenates them.

Each in-graph method takes the `Loops` that runs it, which owns the replica helpers
(`reduce_logs`, `gathered`, `guard`). A new kind of loop (say, evaluation that also
returns the outputs) is one more `StepKind` here.
"""

import tensorflow as tf


def all_finite(values):
    """Whether every floating-point tensor in `values` is finite."""
    values = [tf.cast(v, tf.float32) for v in tf.nest.flatten(values) if v.dtype.is_floating]
    if not values:
        return tf.constant(True)
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])


def _zeros(spec):
    return tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)


def _concat_or_empty(array):
    # `concat` of an empty TensorArray fails; an exhausted iterator gives one.
    return tf.cond(array.size() > 0, array.concat,
                   lambda: tf.zeros([0] + array.element_shape[1:].as_list(), array.dtype))


EAGER = object()  # the carried structure of a loop that runs in Python


class StepKind:
    """One kind of step loop: `"train"`, `"test"` or `"predict"`.

    Args:
        name: the kind's name: the `Steps` attribute that holds its step, the Keras
            callback hooks' infix (`on_{name}_batch_begin`) and the step's name in
            `trace_counts` (`{name}_step`).
        carries_logs: whether the loop carries the step's logs (else its outputs).
        checks_finite: whether the loop stops after a non-finite step.
    """

    def __init__(self, name, carries_logs, checks_finite):
        self.name = name
        self.carries_logs = carries_logs
        self.checks_finite = checks_finite

    def __repr__(self):
        return f"StepKind({self.name!r})"

    def step_of(self, steps):
        """This kind's step in a `Steps`."""
        return getattr(steps, self.name)

    # ---- in-graph: the reducer ----------------------------------------------------------

    def initial(self, spec):
        """The carry before the first step; `spec` is the step's output structure for
        kinds that carry outputs or a model's own logs, else None; `EAGER` when the
        loop runs in Python (`run_eagerly`), whose carries take the first step's
        structure, so that no step is traced beforehand."""
        if spec is EAGER:
            return None if self.carries_logs else []
        if self.carries_logs:
            return () if spec is None else _zeros(spec)
        return tf.nest.map_structure(
            lambda s: tf.TensorArray(s.dtype, size=0, dynamic_size=True, infer_shape=False,
                                     element_shape=tf.TensorShape([None]).concatenate(
                                         s.shape[1:])), spec)

    def fold(self, loops, out, carry, index):
        """The carry after a step whose per-replica outputs are `out` (the `index`-th
        of the pass); returns `(finite, carry)`."""
        if not self.carries_logs:
            outputs = loops.gathered(out)
            if isinstance(carry, list):  # eagerly
                return tf.constant(True), carry + [outputs]
            return tf.constant(True), tf.nest.map_structure(
                lambda array, value: array.write(index, value), carry, outputs)
        step = self.step_of(loops.steps)
        if step.reports_logs:
            reduced = loops.reduce_logs(out)
            carry = reduced if carry is None else tf.nest.map_structure(
                lambda v, s: tf.cast(tf.reshape(v, s.shape), s.dtype), reduced, carry)
        if not self.checks_finite:
            return tf.constant(True), carry
        return loops.finite(out, carry, step), carry

    def finish(self, loops, steps_run, finite, carry):
        """What an execution returns: `(steps_run, finite, weights_finite, logs)` for
        training, `(steps_run, logs)` for evaluation, `(steps_run, outputs)` for
        prediction. `logs` is the model's own step logs, else `model.metrics`'."""
        if isinstance(carry, list):  # eagerly
            return steps_run, () if not carry else tf.nest.map_structure(
                lambda *parts: tf.concat(parts, axis=0), *carry)
        if not self.carries_logs:
            return steps_run, tf.nest.map_structure(_concat_or_empty, carry)
        own_logs = self.step_of(loops.steps).reports_logs
        if carry is None:  # eagerly, no step ran
            carry = {}
        if not self.checks_finite:
            return steps_run, (carry if own_logs else loops.model_logs())
        # An update can overflow the weights while its loss still looks finite.
        weights_finite = loops.guard.weights_finite()
        logs = carry
        if not own_logs:
            logs = loops.model_logs()
            # The running loss covers a multi-worker loop, which checks the weights
            # after each step rather than the loss.
            if "loss" in logs:
                finite = tf.logical_and(finite, tf.math.is_finite(logs["loss"]))
        loops.guard.refresh_if(tf.logical_and(finite, weights_finite))
        return steps_run, finite, weights_finite, logs


TRAIN = StepKind("train", carries_logs=True, checks_finite=True)
TEST = StepKind("test", carries_logs=True, checks_finite=False)
PREDICT = StepKind("predict", carries_logs=False, checks_finite=False)
KINDS = {kind.name: kind for kind in (TRAIN, TEST, PREDICT)}
