"""The loops room: in-graph loops that run many steps per graph execution.

Orbit's design (tensorflow/models, `orbit/utils/loop_fns.py`): the step is small, and
a `tf.function` loop `while step < num_steps` whose step count is a *tensor* runs it,
so one trace serves every execution length (a full execution, the shorter last one of
an epoch, a validation pass). No Python runs per step; the controller reads the logs
between executions.

Two batch sources feed a loop:

* resident arrays (`sources.ArraySource`): batches are gathered in-graph from tensors
  held on the device, in a per-epoch order. The training and evaluation loops can be
  compiled whole with XLA over full batches of one static size; an epoch's smaller
  last batch runs in the plain loop, so XLA compiles one batch shape. The prediction
  loop collects outputs of a size it cannot know in a `TensorArray`, which an
  XLA-compiled `while` returns empty: XLA compiles its step alone;
* an iterator (`sources.DatasetSource`: tf.data, generators, PyDataset) goes into the
  loop, as in Orbit: each step calls `get_next_as_optional`, the loop stops early when
  the data ends. Iterator ops cannot be XLA-compiled, so XLA compiles the step alone.

Each loop's signature leaves the batch dimension unknown, so new data with another
number of samples, a smaller last batch or another batch size reuse the same trace;
XLA compiles once per batch size. The loops are kept per `Trainer`, so repeated
`fit` / `evaluate` / `predict` calls never trace or compile again.

As in Keras `fit`, nothing is converted by AutoGraph (`autograph=False`): the loops
use `tf.while_loop` / `tf.cond` themselves, a step written for `fit` runs unchanged,
and tracing a loop takes a fraction of a second instead of seconds of source
transformation.

Distribution: every step runs through `strategy.run`. With resident arrays every
replica (on every worker) sees the same global batch and takes its contiguous slice;
with an iterator the strategy's distributed dataset hands each replica its slice.
"""

import functools

import tensorflow as tf

from customkeras.training.guard import DivergenceGuard
from customkeras.training.loop_bodies import LoopBodies, all_finite

INDEX_SPEC = tf.TensorSpec([], tf.int32)


def data_spec(data):
    """The `TensorSpec` structure of resident data, batch dimension left unknown."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None] + t.shape[1:], t.dtype), data)


def _spec_key(spec):
    return (str(tf.nest.map_structure(lambda _: 0, spec)), tuple(tf.nest.flatten(spec)))


def _batch_totals(batch):
    """`(global_size, global_weight)` of a whole (global) batch."""
    size = tf.shape(tf.nest.flatten(batch)[0])[0]
    weights = batch[2] if isinstance(batch, tuple) and len(batch) == 3 else None
    if weights is None or tf.nest.is_nested(weights):
        return size, None
    return size, tf.reduce_sum(tf.cast(weights, tf.float32))


class Loops(LoopBodies):
    """Owns the traced loops of one `Trainer`.

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
        guard: the `DivergenceGuard` holding the last finite state.
    """

    def __init__(self, model, steps, strategy, state, run_eagerly=False):
        self.model = model
        self.steps = steps
        self.strategy = strategy
        self.run_eagerly = run_eagerly
        self._replicas = strategy.num_replicas_in_sync
        self._multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.trace_counts = {"train_step": 0, "test_step": 0, "predict_step": 0}
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

    # ---- replica functions -------------------------------------------------------------

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
        step = getattr(self.steps, kind)
        method = getattr(step, kind)

        def run(batch):
            self.trace_counts[f"{kind}_step"] += 1
            if sliced:  # a global batch of resident arrays: take this replica's share
                totals = _batch_totals(batch)
                batch = self._share(batch)
            else:
                totals = self._global_totals(batch)
            if kind == "predict":
                return method(batch)
            return method(batch, totals)

        return run

    def _reduce_logs(self, logs):
        """Per-replica step logs as one value each (the mean, as Keras `fit` reports)."""
        if self._replicas == 1:
            return logs
        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None), logs)

    def _finite(self, out, logs, step):
        """Whether a step's loss (default step) or its reduced logs are all finite."""
        if not step.reports_logs:
            if self._multi_worker:
                # Reducing the loss over workers would add a network round trip to
                # every step; the weights, updated alike on every worker, tell the
                # same: a non-finite loss makes them non-finite through its gradients.
                return self.guard.weights_finite()
            logs = self.strategy.reduce(tf.distribute.ReduceOp.SUM, out["loss"], axis=None)
        return all_finite(logs)

    # ---- structures of the model's own steps ------------------------------------------

    def _probe(self, kind, spec, sliced):
        """The step of `kind` on batches of `spec`, traced once without running it (a
        concrete function, cached): its outputs' structure, its ops."""
        key = (kind, _spec_key(spec))
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

    def structure(self, kind, spec, sliced):
        """The `TensorSpec` structure a step returns for batches of `spec`.

        Found by tracing the step once, without running it, so that the loops can
        carry the step's logs (or collect its outputs) from their first iteration.
        """
        outputs = self._probe(kind, spec, sliced).structured_outputs
        return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), outputs)

    def step_op_types(self, kind, spec, sliced):
        """The TensorFlow op types of the step of `kind` (for the XLA policy), its
        nested functions' included.

        A model's own step is read whole (it is traced for its logs anyway). Of the
        default step, the forward pass (its predict step) is enough, since what the
        policy looks for, convolutions, shows there, and tracing it costs a fraction
        of the training step with its gradients and updates.
        """
        if not getattr(self.steps, kind).reports_logs:
            kind = "predict"
        graph = self._probe(kind, spec, sliced).graph.as_graph_def()
        types = {node.op for node in graph.node}
        for function in graph.library.function:
            types.update(node.op for node in function.node_def)
        return types

    # ---- cached loop functions --------------------------------------------------------

    def tracing_count(self):
        """How many traces the loops' functions have made so far (a call that adds one
        timed a trace, not only steps)."""
        return sum(function.experimental_get_tracing_count()
                   for function in self._functions.values()
                   if hasattr(function, "experimental_get_tracing_count"))

    def _function(self, key, body, signature, jit_compile):
        if key not in self._functions:
            if self.run_eagerly:
                self._functions[key] = body
            else:
                self._functions[key] = tf.function(
                    body, input_signature=signature, jit_compile=bool(jit_compile),
                    autograph=False)
        return self._functions[key]

    def train_arrays(self, data, order, first_step, num_steps, batch_size, jit_compile):
        """Runs up to `num_steps` training steps over resident `data` in `order`.

        Returns:
            `(steps_run, finite, weights_finite, logs)`: the loop stops after a step
            whose loss (or logs) is not finite; when all is finite, the guard's backup
            was refreshed. `logs` is the model's step logs, or None for the default
            step (read `model.metrics`).
        """
        if self.run_eagerly:
            return self._eager("train", self._array_batches(data, order, first_step,
                                                            batch_size), num_steps, True)
        spec = data_spec(data)
        key = ("train", "arrays", bool(jit_compile), _spec_key(spec))
        logs_spec = self._logs_spec("train", spec, sliced=True)
        self.guard  # after the probe: a custom step's optimizers now exist
        body = functools.partial(self._train_arrays_loop, bool(jit_compile), logs_spec)
        signature = [spec, tf.TensorSpec([None], tf.int32)] + [INDEX_SPEC] * 3
        loop = self._function(key, body, signature, jit_compile)
        return loop(data, order, first_step, num_steps, batch_size)

    def test_arrays(self, data, first_step, num_steps, batch_size, jit_compile):
        """Runs `num_steps` evaluation steps over resident `data`; returns the logs."""
        if self.run_eagerly:
            return self._eager("test", self._array_batches(data, None, first_step,
                                                           batch_size), num_steps, True)[1]
        spec = data_spec(data)
        key = ("test", "arrays", bool(jit_compile), _spec_key(spec))
        logs_spec = self._logs_spec("test", spec, sliced=True)
        body = functools.partial(self._test_arrays_loop, bool(jit_compile), logs_spec)
        loop = self._function(key, body, [spec] + [INDEX_SPEC] * 3, jit_compile)
        return loop(data, first_step, num_steps, batch_size)

    def predict_arrays(self, data, first_step, num_steps, batch_size, jit_compile):
        """Returns the outputs of `num_steps` prediction steps, concatenated."""
        if self.run_eagerly:
            return self._eager("predict", self._array_batches(data, None, first_step,
                                                              batch_size), num_steps, True)[1]
        spec = data_spec(data)
        key = ("predict", "arrays", bool(jit_compile), _spec_key(spec))
        out_spec = self.structure("predict", spec, sliced=True)
        body = functools.partial(self._predict_arrays_loop, bool(jit_compile), out_spec)
        # XLA on the step only (see `_predict_arrays_loop`).
        loop = self._function(key, body, [spec] + [INDEX_SPEC] * 3, False)
        return loop(data, first_step, num_steps, batch_size)

    def train_iterator(self, iterator, num_steps, element_spec, jit_compile):
        """Runs up to `num_steps` training steps on batches from `iterator`.

        Returns:
            `(steps_run, finite, weights_finite, logs)` as `train_arrays`; fewer steps
            than asked (with `finite`) means the data ran out.
        """
        if self.run_eagerly:
            return self._eager("train", _iterator_batches(iterator), num_steps, False)
        key = ("train", "iterator", bool(jit_compile), _spec_key(element_spec))
        logs_spec = self._logs_spec("train", element_spec, sliced=False)
        self.guard  # after the probe: a custom step's optimizers now exist
        body = functools.partial(self._train_iterator_loop, bool(jit_compile), logs_spec)
        loop = self._function(key, body, None, False)
        return loop(iterator, tf.constant(num_steps))

    def train_super_batches(self, iterator, num_steps, element_spec, size, jit_compile):
        """`train_iterator` over an iterator of super-batches `(batches, lengths)` of up
        to `size` of the batches of `element_spec` (`DatasetSource.use_super_batches`).
        `num_steps` is a multiple of `size`, or the steps left in the pass."""
        return self._super_batches("train", iterator, num_steps, element_spec, size,
                                   jit_compile)

    def test_super_batches(self, iterator, num_steps, element_spec, size, jit_compile):
        """`test_iterator` over an iterator of super-batches; returns `(steps_run, logs)`."""
        return self._super_batches("test", iterator, num_steps, element_spec, size,
                                   jit_compile)

    def _super_batches(self, kind, iterator, num_steps, element_spec, size, jit_compile):
        key = (kind, "super-batches", size, _spec_key(element_spec), bool(jit_compile))
        logs_spec = self._logs_spec(kind, element_spec, sliced=False)
        if kind == "train":
            self.guard  # after the probe: a custom step's optimizers now exist
        body = functools.partial(self._super_batches_loop, kind, bool(jit_compile), logs_spec,
                                 size)
        loop = self._function(key, body, None, False)
        return loop(iterator, tf.constant(num_steps))

    def test_iterator(self, iterator, num_steps, element_spec, jit_compile):
        """Runs up to `num_steps` evaluation steps; returns `(steps_run, logs)`."""
        if self.run_eagerly:
            return self._eager("test", _iterator_batches(iterator), num_steps, False)
        key = ("test", "iterator", bool(jit_compile), _spec_key(element_spec))
        logs_spec = self._logs_spec("test", element_spec, sliced=False)
        body = functools.partial(self._test_iterator_loop, bool(jit_compile), logs_spec)
        loop = self._function(key, body, None, False)
        return loop(iterator, tf.constant(num_steps))

    def predict_iterator(self, iterator, num_steps, element_spec, jit_compile):
        """Returns `(steps_run, outputs)` of up to `num_steps` prediction steps."""
        if self.run_eagerly:
            return self._eager("predict", _iterator_batches(iterator), num_steps, False)
        key = ("predict", "iterator", bool(jit_compile), _spec_key(element_spec))
        out_spec = self.structure("predict", element_spec, sliced=False)
        body = functools.partial(self._predict_iterator_loop, bool(jit_compile), out_spec)
        loop = self._function(key, body, None, False)
        return loop(iterator, tf.constant(num_steps))

    def _logs_spec(self, kind, spec, sliced):
        step = getattr(self.steps, kind)
        if not step.reports_logs:
            return None
        logs = self.structure(kind, spec, sliced)
        where = f"`{type(self.model).__name__}.{kind}_step`"
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

    # ---- run_eagerly: one step at a time, in Python ------------------------------------

    def _array_batches(self, data, order, first_step, batch_size):
        size = tf.shape(tf.nest.flatten(data)[0])[0]
        step = int(first_step)
        while True:
            start = step * int(batch_size)
            stop = tf.minimum(start + batch_size, size if order is None else tf.shape(order)[0])
            indices = tf.range(start, stop) if order is None else order[start:stop]
            yield tf.nest.map_structure(lambda t: tf.gather(t, indices), data)
            step += 1

    def _eager(self, kind, batches, num_steps, sliced):
        """Runs up to `num_steps` steps in Python (`run_eagerly`), for print / pdb.

        Returns what the graph loops return: for "train" `(steps_run, finite,
        weights_finite, logs)`, otherwise `(steps_run, logs or outputs)`.
        """
        step = getattr(self.steps, kind)
        logs, outputs, steps_run, finite = {}, [], 0, tf.constant(True)
        for _, batch in zip(range(int(num_steps)), batches):
            out = self._step(kind, batch, sliced)
            steps_run += 1
            if kind == "predict":
                outputs.append(self._gathered(out))
                continue
            if step.reports_logs:
                logs = self._reduce_logs(out)
            if kind == "train":
                finite = self._finite(out, logs, step)
                if not bool(finite):
                    break
        steps_run = tf.constant(steps_run)
        if kind == "predict":
            return steps_run, _concat_parts(outputs)
        if kind == "train":
            return self._finish_train(steps_run, finite, logs, None if not step.reports_logs
                                      else logs)
        return steps_run, (self.model_logs() if not step.reports_logs else logs)

    def check_logs(self, purpose, source):
        """Traces the model's own step for `source` (without running it) and checks
        that it returns a dict of scalars; `purpose` is "train", "test" or "predict".
        (Eagerly, nothing is traced: the step's Python runs only for real steps.)"""
        if purpose != "predict" and not self.run_eagerly:
            self._logs_spec(purpose, source.element_spec, sliced=source.kind == "arrays")

    # ---- loop bodies --------------------------------------------------------------------

    # ---- logs ---------------------------------------------------------------------------

    def model_logs(self):
        """The results of `model.metrics`, by name (dict results are merged in)."""
        return self.model.get_metrics_result()


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


def _iterator_batches(iterator):
    while True:
        optional = iterator.get_next_as_optional()
        if not bool(optional.has_value()):
            return
        yield optional.get_value()


def _concat_parts(parts):
    if not parts:
        return ()
    return tf.nest.map_structure(lambda *p: tf.concat(p, axis=0), *parts)


