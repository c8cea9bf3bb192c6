"""The controller room: the host side of `fit`, `evaluate` and `predict`.

In the style of Orbit's `Controller`: between graph executions it calls the Keras
callbacks, updates the progress display, records the history, checks for divergence
and for `model.stop_training`; everything per step runs in the traced loops
(`loops`). It follows `fit`'s conventions: `model.reset_metrics()` at each epoch,
validation at each epoch's end, `History` keys as Keras names them, a callback that
sets `model._initial_epoch` in `on_train_begin` (`keras.callbacks.BackupAndRestore`)
moves the start, and `optimizer.finalize_variable_values` (EMA weights) at the end.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from customkeras.training import compat
from customkeras.training.callback_hooks import per_batch
from customkeras.training.errors import TrainingDivergedError
from customkeras.training.keras_backup import BackupAndRestoreSupport
from customkeras.training.model_setup import optimizers_of
from customkeras.training.state import TrainingState, training_state_callbacks
from customkeras.training.loops import flat_logs
from customkeras.training.progress import make_progress
from customkeras.training.steps.kinds import PREDICT, TEST, TRAIN
from customkeras.training.xla_choice import XlaChoice, XlaMode, is_xla_compile_error


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
        self.xla = XlaChoice(jit_compile, xla_allowed and not loops.run_eagerly)

    # ---- executions ---------------------------------------------------------------------

    def _executions(self, kind, feed, callbacks, first_step=0, should_stop=None):
        """Runs one pass of `kind` over `feed` from step `first_step`, one execution at
        a time; yields `(first_step, num_steps, steps_run, result)` of each (`result`
        as `Loops.run` returns it) after calling the batch-begin hook, and ends after
        an execution that ran fewer steps than asked (the data ran out, or a step
        diverged) or when `should_stop()` says so."""
        xla = self.xla.for_pass(kind.name, lambda: self.loops.step_op_types(kind, feed))
        begin = getattr(callbacks, f"on_{kind.name}_batch_begin")
        for step, count in self.planner.executions(
                feed.total, start=first_step, multiple=feed.multiple,
                limit=self._limit(callbacks, kind), boundary=feed.boundary(xla)):
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

    def _reads(self, callbacks, kind):
        """`(super_batches, steps_per_execution)` for a source's feeds: super-batches
        are allowed where XLA is (not under a strategy, whose distributed dataset
        splits each batch, nor eagerly) and executions are not one step each."""
        allowed = self.xla.allowed and not self._limit(callbacks, kind)
        return allowed, None if self.planner.adaptive else self.planner.steps

    # ---- fit ----------------------------------------------------------------------------

    def fit(self, train, validation, *, epochs, initial_epoch, shuffle, seed, callbacks,
            verbose, validation_freq=1):
        """Trains for epochs `initial_epoch` to `epochs - 1`; returns the `History`."""
        model = self.model
        callback_list = keras.callbacks.CallbackList(
            list(callbacks), add_history=True, add_progbar=False, model=model, verbose=0,
            epochs=epochs, steps=train.steps_per_epoch)
        state = TrainingState(model, optimizers_of(model), seed,
                              checkpointable_input=train.checkpointable,
                              persistent_input=train.persistent_input)
        for callback in training_state_callbacks(callbacks):
            callback.set_training_state(state)
        backup = BackupAndRestoreSupport(callbacks, state)
        self.coordinator.start()  # model.stop_training = False
        self.loops.guard.refresh()
        compat.set_initial_epoch(model, None)
        training_logs = {}
        progress = None
        try:
            callback_list.on_train_begin()
            backup.on_train_begin()
            # Keras's convention: BackupAndRestore sets `_initial_epoch` when restoring;
            # a run-management callback may ask for a mid-epoch start.
            start, resume = compat.initial_epoch(model) or initial_epoch, (0, None)
            if state.resume_point is not None:
                start, step, saved_seed, restore = state.resume_point
                resume = (step, restore)
                if saved_seed is not None:
                    state.seed = seed = saved_seed
            train.prepare_fit(start, self.strategy, *self._reads(callback_list, TRAIN))
            progress = make_progress(verbose, epochs=epochs, initial_epoch=start,
                                     steps_per_epoch=train.steps_per_epoch)
            for epoch in range(start, epochs):
                epoch_logs = self._train_epoch(
                    epoch, train, seed, shuffle, callback_list, progress, state, backup,
                    *(resume if epoch == start else (0, None)))
                if epoch_logs is None:  # the data ran out (steps_per_epoch too many)
                    break
                if validation is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = self.evaluate(validation, callback_list)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                state.epoch, state.step = epoch + 1, 0
                callback_list.on_epoch_end(epoch, epoch_logs)
                progress.epoch_end(epoch, epoch_logs)
                training_logs = epoch_logs
                if self.coordinator.agree_to_stop():
                    break
            # As `fit`: EMA weights (`use_ema=True`) replace the trained ones.
            optimizer = getattr(model, "optimizer", None)
            if isinstance(optimizer, keras.optimizers.Optimizer) and epochs > 0:
                optimizer.finalize_variable_values(model.trainable_weights)
            callback_list.on_train_end(training_logs)
        finally:
            backup.close()
            compat.set_initial_epoch(model, None)
            if progress is not None:
                progress.close()
        return _history(callback_list)

    def _train_epoch(self, epoch, source, seed, shuffle, callbacks, progress, state, backup,
                     first_step, restore):
        self.model.reset_metrics()
        state.epoch, state.step, state.iterator, state.logs = epoch, first_step, None, {}
        callbacks.on_epoch_begin(epoch)
        backup.on_epoch_begin(epoch)
        progress.epoch_begin(epoch)
        feed = source.epoch_feed(epoch, seed, shuffle, self.strategy)
        state.iterator = source.iterator
        if restore is not None:
            restore(state)
        logs, done, ran_out = (dict(state.logs) if first_step else {}), first_step, False
        for step, count, steps_run, result in self._executions(
                TRAIN, feed, callbacks, first_step, should_stop=self.coordinator.should_stop):
            _, finite, weights_finite, new_logs = result
            new_logs = _floats(new_logs)
            if not (bool(finite) and bool(weights_finite)):
                self._diverged(epoch, step, steps_run, bool(finite), new_logs)
            ran_out = steps_run < count
            if steps_run:
                logs, done = new_logs, step + steps_run
                state.step, state.logs = done, logs
                callbacks.on_train_batch_end(done - 1, logs)
                progress.execution_end(done, logs)
        stopped = self.model.stop_training and done < (feed.total or done + 1)
        short = source.finish_epoch(feed, done, ran_out, stopped, self.strategy)
        state.iterator = source.iterator  # what the next epoch carries on with
        if short:
            warnings.warn("Your input ran out of data: this epoch ran fewer than "
                          "`steps_per_epoch` steps. Make sure that it can generate at least "
                          "`steps_per_epoch * epochs` batches (e.g. `dataset.repeat()`).",
                          stacklevel=3)
        return dict(logs)

    def _diverged(self, epoch, first_step, steps_run, loss_finite, logs):
        self.loops.guard.restore()
        if loss_finite:
            reason = "the weights became non-finite (the loss was still finite)"
        else:
            reason = f"the loss was {logs.get('loss', float('nan'))}"
        # The loop stops right after the step whose loss was not finite.
        raise TrainingDivergedError(epoch + 1, first_step + steps_run, reason,
                                    restored_step=first_step)

    # ---- evaluate -----------------------------------------------------------------------

    def evaluate(self, source, callbacks):
        """One evaluation pass; returns the logs (floats).

        Args:
            source: the data source.
            callbacks: a `CallbackList` (its test hooks are called).
        """
        self.model.reset_metrics()
        callbacks.on_test_begin()
        feed = source.pass_feed(TEST, self.strategy, *self._reads(callbacks, TEST))
        logs, steps = {}, 0
        for step, _, steps_run, (_, new_logs) in self._executions(TEST, feed, callbacks):
            if steps_run:
                steps += steps_run
                logs = _floats(new_logs)
                callbacks.on_test_batch_end(step + steps_run - 1, logs)
        source.finish_pass(feed)
        if not steps:
            raise ValueError(f"`{source.name}` yielded no batch to evaluate")
        callbacks.on_test_end(logs)
        return logs

    # ---- predict ------------------------------------------------------------------------

    def predict(self, source, callbacks):
        """Returns the model's outputs over one pass, as NumPy (the model's structure)."""
        callbacks.on_predict_begin()
        feed = source.pass_feed(PREDICT, self.strategy)
        parts = []
        # A known length (`steps`, or the data's) bounds the pass, as in Keras: no
        # batch hook is called for a batch that does not exist.
        for step, _, steps_run, (_, outputs) in self._executions(PREDICT, feed, callbacks):
            if steps_run:
                parts.append(tf.nest.map_structure(np.asarray, outputs))
                callbacks.on_predict_batch_end(step + steps_run - 1, {"outputs": outputs})
        source.finish_pass(feed)
        if not parts:
            raise ValueError(f"`{source.name}` yielded no batch to predict on")
        callbacks.on_predict_end()
        return tf.nest.map_structure(lambda *arrays: np.concatenate(arrays), *parts)


def _history(callback_list):
    for callback in callback_list.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    raise RuntimeError("CallbackList did not add a History callback")
