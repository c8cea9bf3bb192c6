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
from customkeras.training.xla_choice import XlaChoice, is_xla_compile_error


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

    def _xla(self, kind, source):
        """Whether passes of `kind` over `source` run with XLA (`xla_choice`)."""
        return self.xla.for_pass(kind, lambda: self.loops.step_op_types(
            kind, source.element_spec, sliced=source.kind == "arrays"))

    def _call(self, kind, function, *args, xla):
        """Runs one loop call, `function(*args, xla)`. Under `"auto"`, a step that XLA
        cannot compile runs plain from then on (`xla_choice`)."""
        xla = xla and kind not in self.xla.failed
        try:
            return function(*args, xla)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if not (self.xla.auto and xla and is_xla_compile_error(error)):
                raise
        # XLA compiles before running, so the failed call changed nothing.
        warnings.warn(f"XLA could not compile the model's {kind} step; it runs without XLA "
                      "(pass jit_compile=False to skip the attempt).", stacklevel=4)
        self.xla.compile_failed(kind)
        if kind == "train":
            self.loops.guard.restore()
        return function(*args, False)

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
                              persistent_input=train.kind != "arrays" and train.steps is not None)
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
            if train.kind != "arrays":
                train.use_super_batches(None if self._limit(callback_list, "train")
                                        else self._super_batch_size(train))
                if start > 0:
                    train.fast_forward(start, self.strategy)  # the iterators before `start`
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

    def _limit(self, callbacks, kind):
        """1 where a callback must see every batch of a `kind` pass and the planner
        adapts `steps_per_execution` (a fixed one is the user's choice, as under
        Keras: once per execution), else None."""
        return 1 if self.planner.adaptive and per_batch(callbacks, kind) else None

    def _super_batch_size(self, source, purpose="train"):
        """Batches per super-batch for `purpose` on `source` (None: plain batches):
        not under a strategy (whose distributed dataset splits each batch) nor
        eagerly, as for XLA."""
        if not self.xla.allowed:
            return None
        return source.super_batch_size(
            purpose=purpose, steps_per_execution=None if self.planner.adaptive
            else self.planner.steps)

    def _iterator_loop(self, kind, source, super_batch):
        """`loop(iterator, num_steps, xla)` of `kind` over `source`'s iterator: of
        super-batches of `super_batch` batches, or of batches (None)."""
        spec = source.element_spec
        if super_batch:
            run = getattr(self.loops, f"{kind}_super_batches")
            return lambda iterator, n, xla: run(iterator, n, spec, super_batch, xla)
        run = getattr(self.loops, f"{kind}_iterator")
        return lambda iterator, n, xla: run(iterator, n, spec, xla)

    def _train_epoch(self, epoch, source, seed, shuffle, callbacks, progress, state, backup,
                     first_step, restore):
        self.model.reset_metrics()
        state.epoch, state.step, state.iterator, state.logs = epoch, first_step, None, {}
        callbacks.on_epoch_begin(epoch)
        backup.on_epoch_begin(epoch)
        progress.epoch_begin(epoch)
        if source.kind == "arrays":
            if restore is not None:
                restore(state)
            return self._train_arrays(epoch, source, seed, shuffle, callbacks, progress,
                                      state, first_step)
        return self._train_iterator(epoch, source, callbacks, progress, state, first_step,
                                    restore)

    def _after_execution(self, epoch, step, result, callbacks, progress):
        steps_run, finite, weights_finite, logs = result
        steps_run = int(steps_run)
        logs = _floats(logs)
        if not (bool(finite) and bool(weights_finite)):
            self._diverged(epoch, step, steps_run, bool(finite), logs)
        return steps_run, logs

    def _train_arrays(self, epoch, source, seed, shuffle, callbacks, progress, state,
                      first_step):
        order = source.order(seed, epoch, shuffle)
        batch_size = tf.constant(source.batch_size)
        xla = self._xla("train", source)
        logs = dict(state.logs) if first_step else {}
        for step, count, use_xla in self.planner.executions(
                source.num_samples, source.batch_size, xla, start=first_step,
                limit=self._limit(callbacks, "train")):
            if self.coordinator.should_stop():
                break
            callbacks.on_train_batch_begin(step)
            result = self._call("train", self.loops.train_arrays, source.data, order,
                                tf.constant(step), tf.constant(count), batch_size,
                                xla=use_xla)
            _, logs = self._after_execution(epoch, step, result, callbacks, progress)
            state.step, state.logs = step + count, logs
            callbacks.on_train_batch_end(step + count - 1, logs)
            progress.execution_end(step + count, logs)
        return dict(logs)

    def _train_iterator(self, epoch, source, callbacks, progress, state, first_step,
                        restore):
        source.on_epoch_begin()
        iterator = source.begin_epoch(self.strategy)
        state.iterator = iterator
        if restore is not None:
            restore(state)
        total = source.steps_this_epoch()
        xla = self._xla("train", source)
        logs, done, ran_out = (dict(state.logs) if first_step else {}), first_step, False
        size = source.super_batch or 1
        loop = self._iterator_loop("train", source, source.super_batch)
        for step, count, use_xla in self.planner.stream(total, xla, start=first_step,
                                                        multiple=size,
                                                        limit=self._limit(callbacks, "train")):
            if self.coordinator.should_stop():
                break
            callbacks.on_train_batch_begin(step)
            result = self._call("train", loop, iterator, count, xla=use_xla)
            steps_run, new_logs = self._after_execution(epoch, step, result, callbacks,
                                                        progress)
            ran_out = steps_run < count
            if steps_run:
                logs, done = new_logs, step + steps_run
                state.step, state.logs = done, logs
                callbacks.on_train_batch_end(done - 1, logs)
                progress.execution_end(done, logs)
            if ran_out:
                break
        source.on_epoch_end()
        if self.model.stop_training and done < (total or done + 1):
            return dict(logs)  # stopped: the epoch's iterator stays where it is
        if done == 0:
            raise ValueError(f"`{source.name}` yielded no batch: it must yield at least one "
                             "per epoch (is it empty, or exhausted?)")
        short = source.end_epoch(done, ran_out, self.strategy)
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
        logs, limit = {}, self._limit(callbacks, "test")
        if source.kind == "arrays":
            xla = self._xla("test", source)
            batch_size = tf.constant(source.batch_size)
            for step, count, use_xla in self.planner.executions(source.num_samples,
                                                                source.batch_size, xla,
                                                                limit=limit):
                callbacks.on_test_batch_begin(step)
                logs = _floats(self._call(
                    "test", self.loops.test_arrays, source.data, tf.constant(step),
                    tf.constant(count), batch_size, xla=use_xla))
                callbacks.on_test_batch_end(step + count - 1, logs)
        else:
            source.on_epoch_begin()
            size = None if limit else self._super_batch_size(source, "test")
            iterator = source.pass_iterator(self.strategy, size)
            xla = self._xla("test", source)
            loop = self._iterator_loop("test", source, size)
            # A known length (`steps`, or the data's) bounds the pass, as in Keras.
            for step, count, use_xla in self.planner.stream(source.steps_per_epoch, xla,
                                                            multiple=size or 1, limit=limit):
                callbacks.on_test_batch_begin(step)
                steps_run, new_logs = self._call("test", loop, iterator, count, xla=use_xla)
                steps_run = int(steps_run)
                if steps_run == 0:
                    break
                logs = _floats(new_logs)
                callbacks.on_test_batch_end(step + steps_run - 1, logs)
                if steps_run < count:
                    break
            source.on_epoch_end()
            source.end_pass(iterator)
            if not logs:
                raise ValueError(f"`{source.name}` yielded no batch to evaluate")
        callbacks.on_test_end(logs)
        return logs

    # ---- predict ------------------------------------------------------------------------

    def predict(self, source, callbacks):
        """Returns the model's outputs over one pass, as NumPy (the model's structure)."""
        callbacks.on_predict_begin()
        parts, limit = [], self._limit(callbacks, "predict")
        if source.kind == "arrays":
            xla = self._xla("predict", source)
            batch_size = tf.constant(source.batch_size)
            # As in training: XLA on the full batches, the smaller last one plain.
            for step, count, use_xla in self.planner.executions(source.num_samples,
                                                                source.batch_size, xla,
                                                                limit=limit):
                callbacks.on_predict_batch_begin(step)
                outputs = self._call(
                    "predict", self.loops.predict_arrays, source.data, tf.constant(step),
                    tf.constant(count), batch_size, xla=use_xla)
                parts.append(tf.nest.map_structure(np.asarray, outputs))
                callbacks.on_predict_batch_end(step + count - 1, {"outputs": outputs})
        else:
            source.on_epoch_begin()
            iterator = source.pass_iterator(self.strategy)
            xla = self._xla("predict", source)
            # A known length (`steps`, or the data's) bounds the pass, as in Keras: no
            # batch hook is called for a batch that does not exist.
            for step, count, use_xla in self.planner.stream(source.steps_per_epoch, xla,
                                                            limit=limit):
                callbacks.on_predict_batch_begin(step)
                steps_run, outputs = self._call(
                    "predict", lambda it, n, x: self.loops.predict_iterator(
                        it, n, source.element_spec, x), iterator, count, xla=use_xla)
                steps_run = int(steps_run)
                if steps_run:
                    parts.append(tf.nest.map_structure(np.asarray, outputs))
                    callbacks.on_predict_batch_end(step + steps_run - 1, {"outputs": outputs})
                if steps_run < count:
                    break
            source.on_epoch_end()
            source.end_pass(iterator)
            if not parts:
                raise ValueError(f"`{source.name}` yielded no batch to predict on")
        callbacks.on_predict_end()
        return tf.nest.map_structure(lambda *arrays: np.concatenate(arrays), *parts)


def _history(callback_list):
    for callback in callback_list.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    raise RuntimeError("CallbackList did not add a History callback")
