"""The loops room: one builder of the in-graph loops that run many steps per execution.

Orbit's design (`orbit/utils/loop_fns.py`): the step is small, and a `tf.function`
loop `while step < num_steps` whose step count is a *tensor* runs it, folding each
step's results with a reducer, so one trace serves every execution length and no
Python runs per step. Here one function makes that loop for any step kind
(`steps.kinds`: train, test and predict differ only by their step and reducer) and any
feed (`sources.feeds`: resident arrays, an iterator, super-batches), in an XLA mode
(`xla_choice.XlaMode`) that the feed gives for the execution.

Each loop leaves the batch dimension unknown, so other data with the same structure, a
smaller last batch or another batch size reuse the same trace (XLA compiles once per
batch size). Loops are kept per `Trainer`, so repeated `fit` / `evaluate` / `predict`
calls never trace again. As in Keras `fit`, nothing is converted by AutoGraph. With
`run_eagerly` the same loop function runs without `tf.function`: every step's Python
runs, for `print` and `pdb`.

Distribution: every step runs through `strategy.run`. A resident-arrays feed gives
every replica (on every worker) the same global batch, of which it takes its
contiguous slice; an iterator's distributed dataset hands each replica its slice.
"""

import collections
import functools

import tensorflow as tf

from customkeras.training.guard import DivergenceGuard
from customkeras.training.sources.feeds import spec_key
from customkeras.training.steps.kinds import EAGER, KINDS, all_finite
from customkeras.training.xla_choice import XlaMode


def _batch_totals(batch):
    """`(global_size, global_weight)` of a whole (global) batch."""
    size = tf.shape(tf.nest.flatten(batch)[0])[0]
    weights = batch[2] if isinstance(batch, tuple) and len(batch) == 3 else None
    if weights is None or tf.nest.is_nested(weights):
        return size, None
    return size, tf.reduce_sum(tf.cast(weights, tf.float32))


def flat_logs(logs):
    """Nested dicts of logs merged into one, as Keras `fit` reports them (a compiled
    model's `compile_metrics` result is a dict)."""
    flat = {}
    for name, value in logs.items():
        if isinstance(value, dict):
            flat.update(flat_logs(value))
        else:
            flat[name] = value
    return flat


class Loops:
    """Builds, keeps and runs the traced loops of one `Trainer`.

    Args:
        model: the built model.
        steps: the model's `steps.Steps`.
        strategy: a `tf.distribute.Strategy` (the default one when not distributing).
        state: a function returning the variables that training changes (model and
            optimizers), backed up after every finite execution; called once the
            steps have been traced, when a custom step's own optimizers exist.
        run_eagerly: run every step in Python (for `print` / `pdb`), no graph.

    Attributes:
        trace_counts: how many times each step function was traced (in eager mode,
            how many times it ran).
        execution_counts: how many executions ran, by `(kind, feed, XLA mode)`, e.g.
            `("train", "super-batches", "per step")` (diagnostics and tests).
        guard: the `DivergenceGuard` holding the last finite state.
    """

    def __init__(self, model, steps, strategy, state, run_eagerly=False):
        self.model = model
        self.steps = steps
        self.strategy = strategy
        self.run_eagerly = run_eagerly
        self._replicas = strategy.num_replicas_in_sync
        self._multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.trace_counts = {f"{name}_step": 0 for name in KINDS}
        self.execution_counts = collections.Counter()
        self._state = state
        self._guard = None
        self._functions = {}
        self._probes = {}

    @property
    def guard(self):
        """The `DivergenceGuard`, created on first use."""
        if self._guard is None:
            self._guard = DivergenceGuard(self.model, self._state(), self.strategy)
        return self._guard

    # ---- running an execution ---------------------------------------------------------

    def run(self, kind, feed, first_step, num_steps, mode):
        """Runs up to `num_steps` steps of `kind` from `feed`, starting at its step
        `first_step`, in XLA `mode`; returns what `kind.finish` returns (its first
        item is the number of steps run: fewer than asked when the data ran out or,
        training, after a step whose loss was not finite)."""
        out_spec = EAGER if self.run_eagerly else self._carried_spec(kind, feed)
        if kind.checks_finite:
            self.guard  # after the probe: a custom step's optimizers now exist
        key = (kind.name, feed.key(mode))
        if key not in self._functions:
            body = functools.partial(self._loop, kind, feed, mode, out_spec)
            if self.run_eagerly:
                self._functions[key] = body
            else:
                signature = None if feed.signature is None else [
                    *feed.signature, tf.TensorSpec([], tf.int32)]
                self._functions[key] = tf.function(
                    body, input_signature=signature,
                    jit_compile=mode is XlaMode.WHOLE_LOOP, autograph=False)
        self.execution_counts[(kind.name, key[1][0], mode.value)] += 1
        return self._functions[key](*feed.arguments(first_step), tf.constant(num_steps))

    # ---- the loop builder ---------------------------------------------------------------

    def _loop(self, kind, feed, mode, out_spec, *arguments):
        """The loop: elements of `feed` until `num_steps` steps, the data's end or
        (training) a non-finite step, each step's results folded by `kind`."""
        *feed_arguments, num_steps = arguments
        run_steps = functools.partial(self._run_steps, kind, feed.sliced)

        def body(step, finite, done, carry):
            has_value, element = feed.next(feed_arguments, step, mode)

            def run():
                ran, finite_now, new_carry = feed.steps(element, step, num_steps, mode,
                                                        run_steps, carry)
                return step + ran, finite_now, tf.constant(False), new_carry

            if has_value is True:
                return run()
            return tf.cond(has_value, run, lambda: (step, finite, tf.constant(True), carry))

        def more(step, finite, done, _):
            return tf.logical_and(tf.logical_and(step < num_steps, finite),
                                  tf.logical_not(done))

        state = (tf.constant(0), tf.constant(True), tf.constant(False),
                 kind.initial(out_spec))
        if self.run_eagerly:  # Python: the carry takes the first step's structure
            while bool(more(*state)):
                state = body(*state)
        else:
            state = tf.while_loop(more, body, state)
        steps_run, finite, _, carry = state
        return kind.finish(self, steps_run, finite, carry)

    def _run_steps(self, kind, sliced, data, batch_at, count, carry, index, group_xla,
                   step_xla):
        """`count` steps of `kind` on `batch_at(data, j)`: the group compiled whole
        with `group_xla`, each step alone with `step_xla`. Returns `(steps, finite,
        carry)`; training stops after a non-finite step."""
        if isinstance(count, int) and count == 1 and not group_xla:
            return (1, *self._one_step(kind, sliced, batch_at(data, 0), carry, index,
                                       step_xla))

        def group(data, count, carry, index):
            def body(j, finite, carry):
                return (j + 1, *self._one_step(kind, sliced, batch_at(data, j), carry,
                                               index + j, step_xla))

            return tf.while_loop(lambda j, finite, _: tf.logical_and(j < count, finite),
                                 body, (tf.constant(0), tf.constant(True), carry))

        if group_xla and not self.run_eagerly:
            key = ("xla-group", kind.name, batch_at, count)
            if key not in self._functions:
                self._functions[key] = tf.function(group, jit_compile=True, autograph=False)
            group = self._functions[key]
        return group(data, count, carry, index)

    def _one_step(self, kind, sliced, batch, carry, index, xla):
        """One step on every replica, folded into `carry`; returns `(finite, carry)`."""
        replica = self._replica(kind, sliced)
        if xla and not self.run_eagerly:
            # Keyed by `sliced` too: a resident-arrays step and an iterator step of one
            # kind are different functions, even where their specs match.
            key = ("xla-step", kind.name, sliced)
            if key not in self._functions:
                self._functions[key] = tf.function(replica, jit_compile=True,
                                                   autograph=False)
            replica = self._functions[key]
        return kind.fold(self, self.strategy.run(replica, args=(batch,)), carry, index)

    # ---- replica functions --------------------------------------------------------------

    def _share(self, batch):
        """This replica's contiguous slice of a global batch (resident arrays)."""
        if self._replicas == 1:
            return batch
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        start = size * replica // self._replicas
        stop = size * (replica + 1) // self._replicas
        return tf.nest.map_structure(lambda t: t[start:stop], batch)

    def _global_totals(self, share):
        """The global batch's totals, from a replica's share (distributed datasets)."""
        size, weight = _batch_totals(share)
        if self._replicas == 1:
            return size, weight
        context = tf.distribute.get_replica_context()
        size = context.all_reduce(tf.distribute.ReduceOp.SUM, size)
        if weight is not None:
            weight = context.all_reduce(tf.distribute.ReduceOp.SUM, weight)
        return size, weight

    def _replica(self, kind, sliced):
        """The function `strategy.run` calls for `kind` on a global or replica batch."""
        method = getattr(kind.step_of(self.steps), kind.name)

        def run(batch):
            self.trace_counts[f"{kind.name}_step"] += 1
            if sliced:  # a global batch of resident arrays: take this replica's share
                totals = _batch_totals(batch)
                batch = self._share(batch)
            else:
                totals = self._global_totals(batch)
            if not kind.carries_logs:
                return method(batch)
            return method(batch, totals)

        return run

    # ---- what the reducers use (`steps.kinds`) --------------------------------------------

    def reduce_logs(self, logs):
        """Per-replica step logs as one value each (the mean, as Keras `fit` reports)."""
        if self._replicas == 1:
            return logs
        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None), logs)

    def finite(self, out, logs, step):
        """Whether a step's loss (default step) or its reduced logs are all finite."""
        if not step.reports_logs:
            if self._multi_worker:
                # Reducing the loss over workers would add a network round trip to
                # every step; the weights, updated alike on every worker, tell the
                # same: a non-finite loss makes them non-finite through its gradients.
                return self.guard.weights_finite()
            logs = self.strategy.reduce(tf.distribute.ReduceOp.SUM, out["loss"], axis=None)
        return all_finite(logs)

    def gathered(self, out):
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

    def model_logs(self):
        """The results of `model.metrics`, by name (dict results are merged in)."""
        return self.model.get_metrics_result()

    # ---- structures of the steps ----------------------------------------------------------

    def _probe(self, kind, spec, sliced):
        """The step of `kind` on batches of `spec`, traced once without running it (a
        concrete function, cached): its outputs' structure, its ops."""
        key = (kind.name, sliced, spec_key(spec))
        if key not in self._probes:
            replica = self._replica(kind, sliced)

            def probe(batch):
                out = self.strategy.run(replica, args=(batch,))
                return tf.nest.map_structure(
                    lambda v: self.strategy.experimental_local_results(v)[0], out)

            counts = dict(self.trace_counts)
            self._probes[key] = tf.function(probe, autograph=False).get_concrete_function(
                spec)
            self.trace_counts.update(counts)  # a probe is not a trace of the loop
        return self._probes[key]

    def _structure(self, kind, spec, sliced):
        outputs = self._probe(kind, spec, sliced).structured_outputs
        return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), outputs)

    def _carried_spec(self, kind, feed):
        """The structure a loop of `kind` carries: the step's outputs (prediction), a
        model's own step logs (checked: a dict of scalars), or None (`model.metrics`).
        Found by tracing the step once, without running it."""
        if not kind.carries_logs:
            return self._structure(kind, feed.element_spec, feed.sliced)
        if not kind.step_of(self.steps).reports_logs:
            return None
        logs = self._structure(kind, feed.element_spec, feed.sliced)
        where = f"`{type(self.model).__name__}.{kind.name}_step`"
        if not isinstance(logs, dict):
            raise ValueError(f"{where} must return a dict of scalars (its logs, e.g. "
                             f"{{'loss': loss}}); it returns {type(logs).__name__}")
        for name, value in flat_logs(logs).items():
            if not isinstance(value, tf.TensorSpec) or value.shape.rank != 0:
                raise ValueError(
                    f"{where} must return a dict of scalars; its value for key {name!r} "
                    f"is {value}: reduce it to a scalar (e.g. a mean) or track it in a "
                    "metric")
        return logs

    def check_logs(self, kind, source):
        """Traces the model's own step of `kind` for `source` (without running it) and
        checks that it returns a dict of scalars. (Eagerly, nothing is traced: the
        step's Python runs only for real steps.)"""
        if kind.carries_logs and not self.run_eagerly:
            self._carried_spec(kind, source)

    def step_op_types(self, kind, source):
        """The TensorFlow op types of the step of `kind` on `source`'s batches (for
        the XLA policy), its nested functions' included.

        A model's own step is read whole (it is traced for its logs anyway). Of the
        default step, the forward pass (its predict step) is enough, since what the
        policy looks for, convolutions, shows there, and tracing it costs a fraction
        of the training step with its gradients and updates.
        """
        if not kind.step_of(self.steps).reports_logs:
            kind = KINDS["predict"]
        graph = self._probe(kind, source.element_spec, source.sliced).graph.as_graph_def()
        types = {node.op for node in graph.node}
        for function in graph.library.function:
            types.update(node.op for node in function.node_def)
        return types

    def tracing_count(self):
        """How many traces the loops' functions have made so far."""
        return sum(function.experimental_get_tracing_count()
                   for function in self._functions.values()
                   if hasattr(function, "experimental_get_tracing_count"))
