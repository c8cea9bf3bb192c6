"""The traced part of the Trainer: one train/test step and the in-graph step loops.

Orbit's design (tensorflow/models/orbit): a small step function, and a `tf.function`
loop `for i in tf.range(num_steps)` whose step count is a *tensor*, so one trace
serves every execution length (a full execution, the shorter last one of an epoch,
a validation pass). Batches are gathered in-graph from device-resident tensors with
a per-epoch index order, so no Python runs per step. The host only reads metrics
between executions.

Each loop's `input_signature` leaves the sample dimension unknown, so a new data
set with another number of samples, a smaller last batch or another batch size reuse
the same trace. Two variants exist: a plain loop, which takes any batch (including an
epoch's smaller last one), and an XLA-compiled loop (`jit_compile=True` around the
whole `while` loop) over full batches of a static size. On a quiet 2-core CPU, for the
chapter's MLP, the XLA loop ran ~5,600 steps/s, XLA on the step alone ~2,200 and no
XLA ~1,450. The Trainer runs an epoch's last, smaller batch through the plain loop
rather than compiling XLA for one more shape.

Distribution: state is created under `strategy.scope()` by the caller; each step runs
through `strategy.run`, where every replica takes its slice of the global batch and
contributes its share of the global loss (see `_step_loss`); Keras optimizers sum the
gradients over replicas and metric variables (sync-on-read) are summed over every
replica of every worker when the loop reads them.

Why not `strategy.experimental_distribute_dataset`: every worker holds the (in-memory)
data and computes the same epoch order from `(seed, epoch)`, so each replica can take
its contiguous slice of the global batch in-graph, with no `tf.data` pipeline, no
auto-sharding and no iterator in the loop. It computes the same thing: the same global
batches, split the same way (benchmarks/bench_distribute.py shows equal losses), and
faster: with the same minimal loop on a quiet 2-core CPU, slicing ran ~930 steps/s on
two mirrored devices against ~540 through a distributed dataset at batch 32 (~530
against ~380 at batch 256), and ~340 against ~240 with two workers (~230 against
~120). A distributed dataset would matter for data that does not fit in memory, which
`Trainer.fit` does not take.
"""

import functools

import tensorflow as tf

INDEX_SPEC = tf.TensorSpec([], tf.int32)
# Loss reductions that Keras divides by the number of replicas under tf.distribute.
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def unpack(batch):
    """Splits `(x, y)` or `(x, y, sample_weight)` into three values."""
    if len(batch) == 2:
        return batch[0], batch[1], None
    return batch


def _data_spec(data):
    return tf.nest.map_structure(
        lambda t: tf.TensorSpec([None] + t.shape[1:], t.dtype), data
    )


def _full_batch(start, batch_size):
    """Indices `start, ..., start + batch_size - 1`, with a static length under XLA.

    XLA treats `batch_size` as a compile-time constant (one compilation per batch
    size). `tf.slice(order, [start], [batch_size])` would do the same to `start`,
    i.e. recompile for every execution's first step; a gather over a range does not.
    """
    return start + tf.range(batch_size)


def _spec_key(spec):
    return (str(tf.nest.map_structure(lambda _: 0, spec)), tuple(tf.nest.flatten(spec)))


class StepLoops:
    """Owns the traced step functions and loops of one `Trainer`.

    Args:
        model: the Keras model (built).
        loss: a `keras.losses.Loss` returning the (sample-weighted) batch mean.
        optimizer: a built Keras optimizer (possibly a `MultiOptimizer`).
        loss_tracker: a `keras.metrics.Mean` named `"loss"`.
        metrics: the compiled-style metric objects.
        strategy: a `tf.distribute.Strategy` (the default one when not distributing).

    Attributes:
        trace_counts: how many times the train and test steps were traced
            (Python runs the step body only while tracing).
    """

    def __init__(self, model, loss, optimizer, loss_tracker, metrics, strategy):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.loss_tracker = loss_tracker
        self.metrics = list(metrics)
        self.strategy = strategy
        self._multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.trace_counts = {"train_step": 0, "test_step": 0}
        self._state = list(model.variables) + list(optimizer.variables)
        with strategy.scope():
            # The values at the end of the last execution whose loss and weights
            # were finite: what the model falls back to when training diverges.
            self._backups = [
                tf.Variable(v.value, trainable=False, name="backup") for v in self._state
            ]
        # Traced loops by (train/test, XLA or not, data structure): each is traced
        # once, whatever the number of samples, the batch size or the step count.
        self._loops = {}

    # ---- one step ------------------------------------------------------------------

    def _replica_batch(self, batch):
        """This replica's share of the global batch, and the global batch's totals.

        Every replica (on every worker) sees the same global batch and takes its
        contiguous slice, so no dataset needs sharding or rebatching.

        Returns:
            `(share, global_size, global_weight)`: `global_weight` is the sum of the
            global batch's sample weights (None without them).
        """
        global_size = tf.shape(tf.nest.flatten(batch)[0])[0]
        _, _, weights = unpack(batch)
        global_weight = None if weights is None else tf.reduce_sum(weights)
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            return batch, global_size, global_weight
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        start = global_size * replica // replicas
        stop = global_size * (replica + 1) // replicas
        share = tf.nest.map_structure(lambda t: t[start:stop], batch)
        return share, global_size, global_weight

    def _step_loss(self, y, y_pred, sample_weight, global_size, global_weight):
        """Mean main loss (sample-weighted) + every loss in `model.losses`.

        Under a strategy, this replica's share: summed over replicas (as the
        optimizer sums gradients), it is the loss of the global batch, averaged
        once over the global batch.
        """
        loss = self.loss(y, y_pred, sample_weight=sample_weight)
        extra = [tf.cast(tf.reduce_sum(term), loss.dtype) for term in self.model.losses]
        replicas = self.strategy.num_replicas_in_sync
        if replicas > 1:
            # Keras divides a mean loss over this share by the number of replicas
            # (`scale_loss_for_distribution`): right for equal shares only. Replace
            # that 1 / replicas by (this share's divisor) / (the global divisor).
            if self.loss.reduction == "mean_with_sample_weight" and sample_weight is not None:
                local = tf.reduce_sum(sample_weight) * replicas
                loss = tf.math.divide_no_nan(loss * tf.cast(local, loss.dtype),
                                             tf.cast(global_weight, loss.dtype))
            elif self.loss.reduction in _MEAN_REDUCTIONS:
                local = tf.cast(tf.shape(y_pred)[0] * replicas, loss.dtype)
                loss = loss * local / tf.cast(global_size, loss.dtype)
            # Each replica computes the regularization and `add_loss` terms; they
            # count once per step. Keras `fit` divides them by the number of
            # replicas; weighting each by its share of the batch is the same for equal
            # shares, and keeps a batch-mean term (e.g. a reconstruction loss) exact
            # when the last batch splits unevenly.
            share = tf.cast(tf.shape(y_pred)[0], loss.dtype) / tf.cast(global_size, loss.dtype)
            extra = [term * share for term in extra]
        return tf.add_n([loss] + extra) if extra else loss

    def _update_metrics(self, loss, y, y_pred, global_size):
        # The tracker sums value * weight, and the weights, over replicas: with
        # (share * replicas, global size / replicas) from each, it adds the step's
        # loss weighted by the global batch size, as on one device. (A weight
        # proportional to the share's size would drop the regularization share of a
        # replica that got no sample in a small last batch.)
        replicas = self.strategy.num_replicas_in_sync
        self.loss_tracker.update_state(
            loss * replicas, sample_weight=tf.cast(global_size, loss.dtype) / replicas
        )
        # As with `compile(metrics=...)`, metrics ignore sample weights (Keras keeps
        # weighted ones apart, in `weighted_metrics`); only the loss is weighted.
        for metric in self.metrics:
            metric.update_state(y, y_pred)

    def _train_step(self, batch):
        self.trace_counts["train_step"] += 1
        batch, global_size, global_weight = self._replica_batch(batch)
        x, y, sample_weight = unpack(batch)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            loss = self._step_loss(y, y_pred, sample_weight, global_size, global_weight)
        gradients = tape.gradient(loss, variables)
        # Keras 3 optimizers sum gradients over replicas and apply variable
        # constraints inside `apply_gradients`: the constraints hold after every
        # step without a second application here.
        self.optimizer.apply_gradients(zip(gradients, variables))
        self._update_metrics(loss, y, y_pred, global_size)
        return loss

    def _test_step(self, batch):
        self.trace_counts["test_step"] += 1
        batch, global_size, global_weight = self._replica_batch(batch)
        x, y, sample_weight = unpack(batch)
        y_pred = self.model(x, training=False)
        loss = self._step_loss(y, y_pred, sample_weight, global_size, global_weight)
        self._update_metrics(loss, y, y_pred, global_size)
        return loss

    # ---- loops -----------------------------------------------------------------------

    def logs(self):
        """The running results of the loss tracker and metrics, by name."""
        results = {}
        for metric in [self.loss_tracker] + self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                results.update(result)
            else:
                results[metric.name] = result
        return results

    def train(self, data, order, first_step, num_steps, batch_size, jit_compile=False):
        """Runs up to `num_steps` training steps in one graph call.

        Args:
            data: `(x, y)` or `(x, y, sample_weight)` tensors of the whole data set.
            order: int32 vector, the epoch's sample order.
            first_step: 0-based index in the epoch of the first step to run.
            num_steps: how many steps to run (fewer if a loss is not finite).
            batch_size: samples per step. Without XLA the last step of an epoch may
                get fewer; with XLA every step must be a full batch.
            jit_compile: whether to run the XLA-compiled loop.

        Returns:
            `(steps_run, loss_finite, weights_finite, logs)` as tensors. When both
            flags are true, the backup of the variables was refreshed.
        """
        loop = self._loop("train", data, jit_compile, [tf.TensorSpec([None], tf.int32)])
        return loop(data, order, first_step, num_steps, batch_size)

    def test(self, data, first_step, num_steps, batch_size, jit_compile=False):
        """Runs `num_steps` evaluation steps in one graph call; returns the logs.

        As for `train`, with XLA every step must be a full batch.
        """
        return self._loop("test", data, jit_compile, [])(data, first_step, num_steps, batch_size)

    def _loop(self, name, data, jit_compile, extra_specs):
        spec = _data_spec(data)
        key = (name, bool(jit_compile), _spec_key(spec))
        if key not in self._loops:
            body = self._train_loop if name == "train" else self._test_loop
            self._loops[key] = tf.function(
                functools.partial(body, bool(jit_compile)),
                input_signature=[spec] + extra_specs + [INDEX_SPEC] * 3,
                jit_compile=bool(jit_compile),
            )
        return self._loops[key]

    def _train_loop(self, full_batches, data, order, first_step, num_steps, batch_size):
        def body(step, loss_finite):
            start = (first_step + step) * batch_size
            if full_batches:
                indices = tf.gather(order, _full_batch(start, batch_size))
            else:
                indices = order[start:tf.minimum(start + batch_size, tf.shape(order)[0])]
            batch = tf.nest.map_structure(lambda t: tf.gather(t, indices), data)
            loss = self.strategy.run(self._train_step, args=(batch,))
            if self._multi_worker:
                # Reducing the loss over workers would add a network round trip to
                # every step (~30% of the step time with two workers on one
                # machine). The weights, updated alike on every worker, tell the same
                # without one: a non-finite loss makes them non-finite through its
                # gradients (and one that does not still shows in the logs, read
                # after the execution).
                return step + 1, self._weights_finite()
            loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            return step + 1, tf.reduce_all(tf.math.is_finite(loss))

        steps_run, loss_finite = tf.while_loop(
            lambda step, finite: tf.logical_and(step < num_steps, finite),
            body,
            (tf.constant(0), tf.constant(True)),
        )
        # An update can overflow the weights while its loss still looks finite.
        weights_finite = self._weights_finite()
        logs = self.logs()
        # The running loss covers a multi-worker loop, which checks the weights
        # after each step rather than the loss.
        loss_finite = tf.logical_and(loss_finite, tf.math.is_finite(logs["loss"]))
        tf.cond(tf.logical_and(loss_finite, weights_finite), self._snapshot, lambda: False)
        return steps_run, loss_finite, weights_finite, logs

    def _weights_finite(self):
        return tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(v)) for v in self.model.trainable_variables]
        )

    def _test_loop(self, full_batches, data, first_step, num_steps, batch_size):
        def take(tensor, start):
            if full_batches:
                return tf.gather(tensor, _full_batch(start, batch_size))
            return tensor[start:tf.minimum(start + batch_size, tf.shape(tensor)[0])]

        def body(step):
            start = (first_step + step) * batch_size
            batch = tf.nest.map_structure(lambda t: take(t, start), data)
            self.strategy.run(self._test_step, args=(batch,))
            return (step + 1,)

        tf.while_loop(lambda step: step < num_steps, body, (tf.constant(0),))
        return self.logs()

    # ---- divergence backup -------------------------------------------------------------

    def _snapshot(self):
        for backup, variable in zip(self._backups, self._state):
            backup.assign(variable.value)
        return True

    def snapshot(self):
        """Records the current variables as the last finite state."""
        self._snapshot()

    def restore(self):
        """Puts back the variables recorded by the last snapshot."""
        for backup, variable in zip(self._backups, self._state):
            variable.assign(backup)
