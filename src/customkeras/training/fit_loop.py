"""The fit loop: epochs of training executions, validation, and the run's position.

In the style of Lightning's `FitLoop` (`loops/loop.py`, `loops/progress.py`): one object
per `fit` call owns where the run stands (its `TrainingState`: epoch, step, running
logs, the input iterator, the seed), which is what a checkpoint saves and a resume puts
back (`TrainingState.resume`, called by `EpochCheckpoint` / `BackupAndRestore`'s
companion in `on_train_begin`). The controller (`controller.Controller`) runs the
executions of each epoch; this loop decides what happens between them:

* the Keras callbacks' epoch and batch hooks, the progress display, `History`;
* validation at each epoch's end (`validation_freq`, Keras's meaning) and every
  `validation_interval` steps of an epoch (`history.steps`), over one set (`val_*`
  keys, as Keras) or several named ones (`val_<name>_*`);
* step intervals that executions end on: `validation_interval` and a callback's
  `step_interval` (`EpochCheckpoint(save_freq=N)`), so that such a callback sees the
  exact step;
* `max_time`: a time budget that stops at the next execution boundary. It decides
  only *where* a run stops, never what a step computes, and a run resumed from the
  stop ends with the uninterrupted run's bits.
"""

import math
import time
import warnings

import keras
import numpy as np

from customkeras.training import compat
from customkeras.training.keras_backup import BackupAndRestoreSupport
from customkeras.training.model_setup import optimizers_of
from customkeras.training.progress import Progress, make_progress
from customkeras.training.state import TrainingState, training_state_callbacks
from customkeras.training.steps.kinds import TRAIN

WARNING_RAN_OUT = (
    "Your input ran out of data: this epoch ran fewer than `steps_per_epoch` steps. Make "
    "sure that it can generate at least `steps_per_epoch * epochs` batches (e.g. "
    "`dataset.repeat()`).")


def validation_keys(name, logs):
    """History keys of a validation set's logs: `val_loss` for the single unnamed set
    (`name` None), `val_clean_loss` for the set named "clean"."""
    prefix = "val_" if name is None else f"val_{name}_"
    return {f"{prefix}{key}": value for key, value in logs.items()}


class FitLoop:
    """One `fit` call's epochs, from its start to `epochs`.

    Args:
        controller: the `Controller` that runs executions.
        train: the training source.
        validations: `{name: source}` of the validation sets (`None` is the name of a
            single unnamed set), possibly empty.
        epochs, initial_epoch, shuffle, seed, verbose, validation_freq: as `fit`'s.
        callbacks: the list of Keras callbacks.
        validation_interval: validate every this many steps of an epoch too, or None.
        max_time: stop at the first execution boundary after this many seconds, or
            None.
        clock: a function returning seconds (for `max_time`). Defaults to
            `time.monotonic`.

    Attributes:
        state: the `TrainingState`: the run's position.
        display: the progress display this loop added to the callbacks, or None.
        stopped_by_max_time: whether `max_time` stopped the run.
        stopped_at: `(epoch, step)` where `max_time` stopped it, or None.
    """

    def __init__(self, controller, train, validations, *, epochs, initial_epoch, shuffle,
                 seed, callbacks, verbose, validation_freq=1, validation_interval=None,
                 max_time=None, clock=time.monotonic):
        self.controller = controller
        self.model = controller.model
        self.train = train
        self.validations = validations
        self.epochs, self.initial_epoch = epochs, initial_epoch
        self.shuffle = shuffle
        self.validation_freq = validation_freq
        self.validation_interval = validation_interval
        self.max_time, self._clock = max_time, clock
        self.callbacks = list(callbacks)
        # After the callbacks, as Keras's progress bar, unless they hold a display.
        self.display = (None if any(isinstance(c, Progress) for c in self.callbacks)
                        else make_progress(verbose))
        self.callback_list = keras.callbacks.CallbackList(
            [*self.callbacks, self.display] if self.display else self.callbacks,
            add_history=True, add_progbar=False, model=self.model, verbose=0,
            epochs=epochs, steps=train.steps_per_epoch)
        self.history = _history(self.callback_list)
        self.history.steps = []
        self.state = TrainingState(self.model, optimizers_of(self.model), seed,
                                   checkpointable_input=train.checkpointable,
                                   persistent_input=train.persistent_input,
                                   xla=controller.xla)
        for callback in training_state_callbacks(self.callback_list.callbacks):
            callback.set_training_state(self.state)
        # Executions end on these multiples of an epoch's steps.
        self.intervals = sorted({n for n in [validation_interval, *(
            getattr(c, "step_interval", None) for c in self.callbacks)] if n})
        self.stopped_by_max_time = False
        self.stopped_at = None
        self._started = None
        self._steps_before_epoch = 0

    # ---- the loop -------------------------------------------------------------------

    def run(self):
        """Trains; returns the `History` (with `history.steps`)."""
        model, state, callbacks = self.model, self.state, self.callback_list
        backup = BackupAndRestoreSupport(self.callbacks, state)
        self.controller.coordinator.start()  # model.stop_training = False
        self.controller.loops.guard.refresh()
        compat.set_initial_epoch(model, None)
        training_logs = {}
        self._started = self._clock()
        try:
            callbacks.on_train_begin()
            backup.on_train_begin()
            start, first_step, restore = self._start()
            allowed, steps_per_execution = self.controller.reads(callbacks, TRAIN)
            # Super-batches must end where the step intervals do.
            divides = math.gcd(steps_per_execution or 0, *self.intervals) or None
            self.train.prepare_fit(start, self.controller.strategy, allowed, divides)
            spe = self.train.steps_per_epoch
            self._steps_before_epoch = start * spe if spe else 0
            for epoch in range(start, self.epochs):
                logs, done, whole = self._epoch(
                    epoch, backup, *((first_step, restore) if epoch == start else (0, None)))
                self._steps_before_epoch += done
                if self._validates_at_epoch_end(epoch):
                    # A cut-short epoch's checkpoint saves its running metrics.
                    logs.update(self._validate(keep_training_metrics=not whole))
                if whole:  # a cut-short epoch's position stays where it stopped
                    state.epoch, state.step = epoch + 1, 0
                callbacks.on_epoch_end(epoch, logs)
                training_logs = logs
                if self.controller.coordinator.agree_to_stop():
                    break
            # As `fit`: EMA weights (`use_ema=True`) replace the trained ones.
            optimizer = getattr(model, "optimizer", None)
            if isinstance(optimizer, keras.optimizers.Optimizer) and self.epochs > 0:
                optimizer.finalize_variable_values(model.trainable_weights)
            callbacks.on_train_end(training_logs)
        finally:
            backup.close()
            compat.set_initial_epoch(model, None)
            if self.display is not None:  # no hook runs when `fit` raises
                self.display.close()
        return self.history

    def _start(self):
        """`(epoch, step, restore)` to start from: `initial_epoch`, or where a callback
        put the run back (Keras's `model._initial_epoch` convention, or a mid-epoch
        `TrainingState.resume`)."""
        state = self.state
        start = compat.initial_epoch(self.model) or self.initial_epoch
        if state.resume_point is None:
            return start, 0, None
        start, step, saved_seed, restore = state.resume_point
        if saved_seed is not None:
            state.seed = saved_seed
        return start, step, restore

    def _epoch(self, epoch, backup, first_step, restore):
        """One training epoch from its step `first_step`; returns `(logs, steps done,
        whether the epoch ran whole)`."""
        state, callbacks, controller = self.state, self.callback_list, self.controller
        self.model.reset_metrics()
        state.epoch, state.step, state.iterator, state.logs = epoch, first_step, None, {}
        callbacks.on_epoch_begin(epoch)
        backup.on_epoch_begin(epoch)
        feed = self.train.epoch_feed(epoch, state.seed, self.shuffle, controller.strategy)
        state.iterator = self.train.iterator
        if restore is not None:
            restore(state)
        logs, done, ran_out = (dict(state.logs) if first_step else {}), first_step, False
        for step, count, steps_run, result in controller.executions(
                TRAIN, feed, callbacks, first_step, should_stop=self._should_stop,
                next_stop=self._next_stop):
            _, finite, weights_finite, new_logs = result
            new_logs = controller.floats(new_logs)
            if not (bool(finite) and bool(weights_finite)):
                controller.diverged(epoch, step, steps_run, bool(finite), new_logs)
            ran_out = steps_run < count
            if not steps_run:
                continue
            logs, done = new_logs, step + steps_run
            state.step, state.logs = done, logs
            if self._validates_at(done, feed.total):
                self._validate_mid_epoch(done)
            callbacks.on_train_batch_end(done - 1, logs)
            self._check_time()
        stopped = self.model.stop_training and done < (feed.total or done + 1)
        short = self.train.finish_epoch(feed, done, ran_out, stopped, controller.strategy)
        state.iterator = self.train.iterator  # what the next epoch carries on with
        if short:
            warnings.warn(WARNING_RAN_OUT, stacklevel=4)
        return dict(logs), done, not stopped

    def _should_stop(self):
        return self.controller.coordinator.should_stop()

    def _next_stop(self, step):
        """The first step after `step` at which an execution must end (a multiple of
        a step interval), or None."""
        stops = [(step // n + 1) * n for n in self.intervals]
        return min(stops) if stops else None

    def _check_time(self):
        if self.max_time is not None and self._clock() - self._started >= self.max_time:
            self.stopped_by_max_time = True
            self.stopped_at = (self.state.epoch, self.state.step)
            self.model.stop_training = True

    # ---- validation ---------------------------------------------------------------

    def _validates_at_epoch_end(self, epoch):
        return bool(self.validations) and (epoch + 1) % self.validation_freq == 0

    def _validates_at(self, step, total):
        """Whether to validate after step `step` of an epoch of `total` steps: at the
        multiples of `validation_interval`, but the epoch's last step when the
        epoch's own validation follows."""
        n = self.validation_interval
        if not (n and self.validations) or step % n:
            return False
        return step != total or not self._validates_at_epoch_end(self.state.epoch)

    def _validate(self, keep_training_metrics):
        """Evaluates every validation set; returns their logs as history keys.

        Evaluation resets and updates the model's metrics, which hold the running
        training metrics of the epoch. With `keep_training_metrics` (mid-epoch, or an
        epoch cut short) they are put back afterwards, so that the epoch goes on, or
        is checkpointed, with the training's; after a whole epoch they keep the
        validation's, as under Keras `fit`."""
        variables = self.state.metrics_variables if keep_training_metrics else []
        values = [np.array(v.numpy()) for v in variables]
        logs = {}
        for name, source in self.validations.items():
            logs.update(validation_keys(name, self.controller.evaluate(
                source, self.callback_list, name=name)))
        self.state.validation_logs = logs
        for variable, value in zip(variables, values):
            variable.assign(value)
        return logs

    def _validate_mid_epoch(self, step):
        logs = self._validate(keep_training_metrics=True)
        record = {"step": self._steps_before_epoch + step, "epoch": self.state.epoch,
                  **logs}
        self.history.steps.append(record)


def _history(callback_list):
    for callback in callback_list.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    raise RuntimeError("CallbackList did not add a History callback")
