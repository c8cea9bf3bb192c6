"""The controller room: the host side of passes over data, between executions.

In the style of Orbit's `Controller`: it runs a pass of any step kind over any feed as
a sequence of graph executions (`executions`): how many steps each runs
(`executions.ExecutionPlanner`), whether XLA runs (`xla_choice`, decided once per
kind) and its fallback, the batch hooks of the Keras callbacks, `model.stop_training`.
Everything per step runs in the traced loops (`loops`). `evaluate` and `predict` are
one pass each; `fit`'s epochs are the fit loop's (`fit_loop.FitLoop`), which runs its
epochs' passes through this room.
"""

import warnings

import numpy as np
import tensorflow as tf

from customkeras.training.callback_hooks import per_batch
from customkeras.training.errors import TrainingDivergedError
from customkeras.training.loops import flat_logs
from customkeras.training.steps.kinds import PREDICT, TEST
from customkeras.training.xla_choice import (XlaChoice, XlaMode, is_xla_compile_error,
                                             on_accelerator)


def _floats(logs):
    return {name: float(value) for name, value in flat_logs(logs).items()}


class Controller:
    """Runs passes over data sources through a `Trainer`'s loops.

    Args:
        model: the model.
        loops: the `loops.Loops`.
        planner: the `executions.ExecutionPlanner`.
        coordinator: the host-side decisions (`distribution.make_coordinator`).
        strategy: the strategy.
        jit_compile: `True`, `False` or `"auto"`.
        xla_allowed: False under a strategy (XLA cannot wrap `strategy.run`).
    """

    def __init__(self, model, loops, planner, coordinator, strategy, jit_compile, xla_allowed):
        self.model = model
        self.loops = loops
        self.planner = planner
        self.coordinator = coordinator
        self.strategy = strategy
        self.xla = XlaChoice(jit_compile, xla_allowed and not loops.run_eagerly, model)

    # ---- executions ---------------------------------------------------------------------

    def executions(self, kind, feed, callbacks, first_step=0, should_stop=None,
                   next_stop=None):
        """Runs one pass of `kind` over `feed` from step `first_step`, one execution at
        a time; yields `(first_step, num_steps, steps_run, result)` of each (`result`
        as `Loops.run` returns it) after calling the batch-begin hook, and ends after
        an execution that ran fewer steps than asked (the data ran out, or a step
        diverged) or when `should_stop()` says so. No execution crosses the feed's
        boundary (where its XLA mode changes) nor `next_stop(step)`."""
        xla = self.xla.for_pass(kind.name, lambda: self.loops.step_op_types(kind, feed))
        begin = getattr(callbacks, f"on_{kind.name}_batch_begin")
        boundary = feed.boundary(xla)

        def next_boundary(step):
            stops = [s for s in (next_stop and next_stop(step),
                                 boundary if boundary is not None and step < boundary
                                 else None) if s is not None]
            return min(stops) if stops else None

        for step, count in self.planner.executions(
                feed.total, start=first_step, multiple=feed.multiple,
                limit=self._limit(callbacks, kind), next_boundary=next_boundary):
            if should_stop is not None and should_stop():
                return
            begin(step)
            result = self._execute(kind, feed, step, count,
                                   xla and kind.name not in self.xla.failed)
            steps_run = int(result[0])
            yield step, count, steps_run, result
            if steps_run < count:
                return

    def _execute(self, kind, feed, step, count, xla):
        """One execution. Under `"auto"`, a step that XLA cannot compile runs plain from
        then on (`xla_choice`)."""
        mode = feed.mode(xla, step)
        try:
            return self.loops.run(kind, feed, step, count, mode)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if not (self.xla.auto and mode is not XlaMode.NONE
                    and is_xla_compile_error(error)):
                raise
        # XLA compiles before running, so the failed call changed nothing.
        warnings.warn(f"XLA could not compile the model's {kind.name} step; it runs "
                      "without XLA (pass jit_compile=False to skip the attempt).",
                      stacklevel=4)
        self.xla.compile_failed(kind.name)
        if kind.checks_finite:
            self.loops.guard.restore()
        return self.loops.run(kind, feed, step, count, feed.mode(False, step))

    def _limit(self, callbacks, kind):
        """1 where a callback must see every batch of a `kind` pass and the planner
        adapts `steps_per_execution` (a fixed one is the user's choice, as under
        Keras: once per execution), else None."""
        return 1 if self.planner.adaptive and per_batch(callbacks, kind.name) else None

    def reads(self, callbacks, kind):
        """`(super_batches, steps_per_execution)` for a source's feeds: super-batches
        are allowed where XLA is (not under a strategy, whose distributed dataset
        splits each batch, nor eagerly), on a CPU (where they were measured to pay:
        on a GPU, unmeasured, Keras's one batch per read stands), and where
        executions are not one step each. They never change a number."""
        allowed = (self.xla.allowed and not on_accelerator(self.model)
                   and not self._limit(callbacks, kind))
        return allowed, None if self.planner.adaptive else self.planner.steps

    def diverged(self, epoch, first_step, steps_run, loss_finite, logs):
        """Puts back the last finite state and raises `TrainingDivergedError`."""
        self.loops.guard.restore()
        if loss_finite:
            reason = "the weights became non-finite (the loss was still finite)"
        else:
            reason = f"the loss was {logs.get('loss', float('nan'))}"
        # The loop stops right after the step whose loss was not finite.
        raise TrainingDivergedError(epoch + 1, first_step + steps_run, reason,
                                    restored_step=first_step)

    floats = staticmethod(_floats)

    # ---- evaluate -----------------------------------------------------------------------

    def evaluate(self, source, callbacks, name=None):
        """One evaluation pass; returns the logs (floats).

        Args:
            source: the data source.
            callbacks: a `CallbackList` (its test hooks are called).
            name: the name of a validation set among several, or None. The hooks
                see its logs under `<name>_<key>` (so that `TensorBoard` writes each
                set's own `evaluation_<name>_loss_vs_iterations`).
        """
        def named(logs):
            return logs if name is None else {f"{name}_{k}": v for k, v in logs.items()}

        self.model.reset_metrics()
        callbacks.on_test_begin()
        feed = source.pass_feed(TEST, self.strategy, *self.reads(callbacks, TEST))
        logs, steps = {}, 0
        for step, _, steps_run, (_, new_logs) in self.executions(TEST, feed, callbacks):
            if steps_run:
                steps += steps_run
                logs = _floats(new_logs)
                callbacks.on_test_batch_end(step + steps_run - 1, named(logs))
        source.finish_pass(feed)
        if not steps:
            raise ValueError(f"`{source.name}` yielded no batch to evaluate")
        callbacks.on_test_end(named(logs))
        return logs

    # ---- predict ------------------------------------------------------------------------

    def predict(self, source, callbacks):
        """Returns the model's outputs over one pass, as NumPy (the model's structure)."""
        callbacks.on_predict_begin()
        feed = source.pass_feed(PREDICT, self.strategy)
        parts = []
        # A known length (`steps`, or the data's) bounds the pass, as in Keras: no
        # batch hook is called for a batch that does not exist.
        for step, _, steps_run, (_, outputs) in self.executions(PREDICT, feed, callbacks):
            if steps_run:
                parts.append(tf.nest.map_structure(np.asarray, outputs))
                callbacks.on_predict_batch_end(step + steps_run - 1, {"outputs": outputs})
        source.finish_pass(feed)
        if not parts:
            raise ValueError(f"`{source.name}` yielded no batch to predict on")
        callbacks.on_predict_end()
        return tf.nest.map_structure(lambda *arrays: np.concatenate(arrays), *parts)
