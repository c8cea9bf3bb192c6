"""`Trainer`: the chapter's custom training loop (exercise 13), made fast.

The host side is a small controller in the style of Orbit's `Controller`: between
graph executions it updates the progress display, calls the Keras callbacks, records
the history and checks for divergence. Everything per step is traced (see `steps`).
"""

import warnings

import keras
import tensorflow as tf

from customkeras.training import distribution, inputs, objectives
from customkeras.training.errors import TrainingDivergedError
from customkeras.training.executions import ExecutionPlanner
from customkeras.training.optimizer_groups import group_optimizer
from customkeras.training.progress import make_progress
from customkeras.training.steps import StepLoops

# Under `jit_compile="auto"`, XLA is used for runs of at least this many steps. On a
# quiet 2-core CPU, for the chapter's MLP, the XLA loop took ~0.18 ms/step against
# ~0.7 ms without, but compiling cost ~1.4 s more than tracing the plain loop: XLA
# pays off after ~3,000 steps (two epochs of Fashion-MNIST at batch 32).
XLA_MIN_STEPS = 3000


class Trainer:
    """Trains a Keras model with a custom loop that keeps the chapter's semantics.

    The loss of a step is the mean main loss over the batch (sample-weighted when
    `sample_weight` is given, as in Keras) plus the sum of `model.losses`
    (regularization and `add_loss` terms). Variable constraints hold after every
    step. The running loss and metrics restart at each epoch, and validation runs at
    each epoch's end. `history.history` has the keys Keras `fit` would produce.

    Args:
        model: a Keras model with one output.
        loss: a `keras.losses.Loss`, a loss function, or a Keras loss name.
        optimizer: a Keras optimizer (or its name), or per-group optimizers: a mapping
            `{layers: optimizer}` (keys: a layer, a sub-model, or a tuple of them) or a
            list of `(layers, optimizer)` pairs. Every trainable variable must be in
            exactly one group (exercise 13b).
        metrics: metric objects, functions or names (`"accuracy"`, `"mae"`, ...).
            Defaults to none.
        steps_per_execution: training steps per graph call, or `"auto"` to adapt it
            so that each call takes about 0.2 s (see `executions`). The host reads
            metrics, updates the display, calls batch callbacks and checks
            `model.stop_training` only between calls. Defaults to `"auto"`.
        jit_compile: `True` to compile each step with XLA, `False` not to. `"auto"`
            uses XLA for runs of at least `XLA_MIN_STEPS` (3000) steps, where the
            faster steps repay the compilation, and falls back without it (with a
            warning) if the model cannot be compiled. Defaults to `"auto"`.
        strategy: a `tf.distribute.Strategy`, or None for the default (no
            distribution); see `create_strategy`. Create the model, the optimizers
            and any metric objects inside `strategy.scope()`. `batch_size` is then
            the global batch: each replica (on each worker) takes its slice of it,
            and the loss is averaged once over the global batch, so the results
            match a single device. Under `MultiWorkerMirroredStrategy` every worker
            calls `fit` with the same data and arguments; the workers agree on the
            shuffle seed, the steps per execution and stopping. XLA is not used
            under a strategy. Defaults to None.

    Example:

    ```python
    trainer = Trainer(model, "sparse_categorical_crossentropy",
                      keras.optimizers.Nadam(), metrics=["accuracy"])
    history = trainer.fit(x_train, y_train, epochs=5,
                          validation_data=(x_valid, y_valid), seed=42)
    trainer.evaluate(x_test, y_test)  # {"loss": ..., "accuracy": ...}
    ```
    """

    def __init__(
        self,
        model,
        loss,
        optimizer,
        metrics=(),
        *,
        steps_per_execution="auto",
        jit_compile="auto",
        strategy=None,
    ):
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model; received {model!r}")
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"`jit_compile` must be True, False or 'auto'; received {jit_compile!r}")
        if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
            raise ValueError(
                f"`strategy` must be a tf.distribute.Strategy or None; received {strategy!r}"
            )
        self.model = model
        self.loss = objectives.resolve_loss(loss)
        if steps_per_execution != "auto" and (
            isinstance(steps_per_execution, bool)
            or not isinstance(steps_per_execution, int)
            or steps_per_execution < 1
        ):
            raise ValueError(
                "`steps_per_execution` must be an integer >= 1 or 'auto'; received "
                f"{steps_per_execution!r}"
            )
        self.steps_per_execution = steps_per_execution
        self.jit_compile = jit_compile
        self.strategy = strategy or tf.distribute.get_strategy()
        self._distributed = distribution.is_distributed(self.strategy)
        # Host-side decisions that every worker of a multi-worker run must share.
        self._coordinator = distribution.make_coordinator(self.strategy, model)
        self._planner = ExecutionPlanner(
            steps_per_execution, agree=self._coordinator.agree_between_executions
        )
        self._metric_spec = metrics
        self._optimizer_spec = optimizer
        if isinstance(optimizer, (str, keras.optimizers.Optimizer)) or model.built:
            self._resolve_optimizer()
        else:  # groups need the model's variables, which exist once it is built
            self._optimizer = None
        self._loops = None
        self._xla_failed = False
        self.metrics = None

    # ---- public API ------------------------------------------------------------------

    @property
    def optimizer(self):
        """The optimizer; for groups a `MultiOptimizer` whose `.optimizers` lists them."""
        return self._optimizer

    @property
    def trace_counts(self):
        """How many times the train and test steps have been traced (diagnostics)."""
        if self._loops is None:
            return {"train_step": 0, "test_step": 0}
        return dict(self._loops.trace_counts)

    def fit(
        self,
        x,
        y,
        *,
        epochs=1,
        batch_size=32,
        validation_data=None,
        shuffle=True,
        sample_weight=None,
        callbacks=(),
        verbose="auto",
        seed=None,
        initial_epoch=0,
    ):
        """Trains the model for epochs `initial_epoch` to `epochs - 1`.

        Args:
            x: inputs, an array-like (or a tuple/list/dict of them for multi-input
                models) with samples along the first axis.
            y: targets with the same number of samples.
            epochs: index of the epoch to stop before (as in Keras). Defaults to 1.
            batch_size: samples per step; the last step of an epoch takes the rest,
                as Keras does. Defaults to 32.
            validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight_val)`
                evaluated at each epoch's end. Defaults to None.
            shuffle: whether to shuffle the samples every epoch. Defaults to True.
            sample_weight: one weight per sample, or None. Defaults to None.
            callbacks: Keras callbacks. Defaults to none.
            verbose: `"auto"`, 0, 1 (progress bars) or 2 (one line per epoch).
                Defaults to `"auto"`.
            seed: seed of the per-epoch shuffle. The order of epoch `e` depends only
                on `(seed, e)`, so resuming with `initial_epoch` replays the same
                orders. None draws a seed from NumPy's global generator (seeded by
                `keras.utils.set_random_seed`); in a multi-worker run, the chief's
                draw, so that every worker shuffles alike. Defaults to None.
            initial_epoch: epoch to start from, for resuming. Defaults to 0.

        Returns:
            A `keras.callbacks.History`.

        Raises:
            ValueError: bad arguments or data, before any training (in a
                multi-worker run, also workers whose data or arguments differ).
            TrainingDivergedError: a NaN or infinite loss or weight.
        """
        epochs = inputs.check_positive_int(epochs, "epochs", minimum=0)
        batch_size = inputs.check_positive_int(batch_size, "batch_size")
        initial_epoch = inputs.check_positive_int(initial_epoch, "initial_epoch", minimum=0)
        if seed is not None:
            seed = inputs.check_positive_int(seed, "seed", minimum=0)
        train = self._prepare(x, y, sample_weight, ("x", "y", "sample_weight"))
        validation = None
        if validation_data is not None:
            validation = self._prepare(
                *inputs.split_validation(validation_data), inputs.VALIDATION_NAMES
            )
        seed = self._coordinator.agree_on_fit(
            train, validation, seed, epochs=epochs, batch_size=batch_size,
            shuffle=shuffle, initial_epoch=initial_epoch,
            steps_per_execution=0 if self._planner.adaptive else self.steps_per_execution,
        )
        n_samples = int(train[1].shape[0])
        steps_per_epoch = -(-n_samples // batch_size)

        callback_list = keras.callbacks.CallbackList(
            list(callbacks), add_history=True, add_progbar=False, model=self.model,
            verbose=0, epochs=epochs, steps=steps_per_epoch,
        )
        progress = make_progress(
            verbose, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch
        )
        self.model.optimizer = self._optimizer
        self._coordinator.start()  # model.stop_training = False
        self._loops.snapshot()
        epochs_to_run = max(epochs - initial_epoch, 0)
        jit_compile = self._use_xla(epochs_to_run * steps_per_epoch)
        if validation is not None:
            val_steps = -(-int(validation[1].shape[0]) // batch_size)
            val_jit_compile = self._use_xla(epochs_to_run * val_steps)
        training_logs = {}
        try:
            callback_list.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                epoch_logs = self._run_epoch(
                    epoch, train, inputs.epoch_order(n_samples, seed, epoch, shuffle),
                    batch_size, jit_compile, callback_list, progress,
                )
                if validation is not None:
                    val_logs = self._evaluate_tensors(
                        validation, batch_size, callback_list, val_jit_compile
                    )
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                callback_list.on_epoch_end(epoch, epoch_logs)
                progress.epoch_end(epoch, epoch_logs)
                training_logs = epoch_logs
                if self._coordinator.agree_to_stop():
                    break
            callback_list.on_train_end(training_logs)
        finally:
            progress.close()
        return _history(callback_list)

    def evaluate(self, x, y, *, batch_size=32, sample_weight=None):
        """Returns the loss and metrics of the model on `(x, y)`.

        Args:
            x: inputs.
            y: targets.
            batch_size: samples per step. Defaults to 32.
            sample_weight: one weight per sample, or None. Defaults to None.

        Returns:
            A dict `{"loss": float, "<metric name>": float, ...}`; the loss includes
            `model.losses`, as in Keras `evaluate`.
        """
        batch_size = inputs.check_positive_int(batch_size, "batch_size")
        data = self._prepare(x, y, sample_weight, ("x", "y", "sample_weight"))
        self._coordinator.agree_on_evaluation(data, batch_size)
        return self._evaluate_tensors(data, batch_size, keras.callbacks.CallbackList())

    # ---- controller ---------------------------------------------------------------------

    def _run_epoch(self, epoch, data, order, batch_size, jit_compile, callbacks, progress):
        for metric in self._all_metrics():
            metric.reset_state()
        callbacks.on_epoch_begin(epoch)
        progress.epoch_begin(epoch)
        order = tf.constant(order)
        batch_size_t = tf.constant(batch_size)
        logs = {}
        for step, count, xla in self._planner.executions(len(order), batch_size, jit_compile):
            if self._coordinator.should_stop():
                break
            callbacks.on_train_batch_begin(step)
            steps_run, loss_finite, weights_finite, logs = self._call_loop(
                "train", xla, data, order, tf.constant(step), tf.constant(count), batch_size_t
            )
            logs = {name: float(value) for name, value in logs.items()}
            if not (bool(loss_finite) and bool(weights_finite)):
                self._diverged(epoch, step, int(steps_run), bool(loss_finite), logs)
            callbacks.on_train_batch_end(step + count - 1, logs)
            progress.execution_end(step + count, logs)
        return dict(logs)

    def _use_xla(self, num_steps):
        """Whether a run of `num_steps` steps (in total, over its epochs) uses XLA."""
        if self._distributed or self._xla_failed:
            return False  # strategy.run inside an XLA-compiled loop is not supported
        if self.jit_compile == "auto":
            return num_steps >= XLA_MIN_STEPS
        return self.jit_compile

    def _call_loop(self, loop_name, jit_compile, *args):
        """Runs one traced loop; under `jit_compile="auto"`, falls back from XLA."""
        jit_compile = jit_compile and not self._xla_failed
        try:
            return getattr(self._loops, loop_name)(*args, jit_compile=jit_compile)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            if not (self.jit_compile == "auto" and jit_compile):
                raise
        # XLA could not compile a step (an op without an XLA kernel). XLA compiles
        # before running, so the failed call changed nothing: rerun it without XLA.
        warnings.warn(
            "XLA could not compile the model's step; continuing without XLA "
            "(pass jit_compile=False to skip the attempt).",
            stacklevel=3,
        )
        self._xla_failed = True
        if loop_name == "train":  # the backup was refreshed when `fit` started
            self._loops.restore()
        return getattr(self._loops, loop_name)(*args, jit_compile=False)

    def _diverged(self, epoch, first_step, steps_run, loss_finite, logs):
        self._loops.restore()
        if loss_finite:
            reason = "the weights became non-finite (the loss was still finite)"
        else:
            reason = f"the loss was {logs.get('loss', float('nan'))}"
        # The loop stops right after the step whose loss was not finite.
        raise TrainingDivergedError(
            epoch + 1, first_step + steps_run, reason, restored_step=first_step
        )

    def _evaluate_tensors(self, data, batch_size, callbacks, jit_compile=None):
        for metric in self._all_metrics():
            metric.reset_state()
        n_samples = int(data[1].shape[0])
        if jit_compile is None:
            jit_compile = self._use_xla(-(-n_samples // batch_size))
        callbacks.on_test_begin()
        logs = {}
        batch_size_t = tf.constant(batch_size)
        for step, count, xla in self._planner.executions(n_samples, batch_size, jit_compile):
            callbacks.on_test_batch_begin(step)
            logs = self._call_loop(
                "test", xla, data, tf.constant(step), tf.constant(count), batch_size_t
            )
            logs = {name: float(value) for name, value in logs.items()}
            callbacks.on_test_batch_end(step + count - 1, logs)
        callbacks.on_test_end(logs)
        return logs

    # ---- set-up ---------------------------------------------------------------------------

    def _all_metrics(self):
        return [self._loops.loss_tracker] + self._loops.metrics

    def _resolve_optimizer(self):
        with self.strategy.scope():
            self._optimizer = group_optimizer(self.model, self._optimizer_spec)

    def _prepare(self, x, y, sample_weight, names):
        """Checks one data set, builds the training state on first use, returns tensors."""
        x = inputs.as_arrays(x, names[0])
        y = inputs.as_arrays(y, names[1])
        if tf.nest.is_nested(y):
            raise ValueError(f"`{names[1]}` must be one array (single-output models)")
        if sample_weight is not None:
            sample_weight = inputs.as_arrays(sample_weight, names[2]).astype("float32")
        with self.strategy.scope():
            output = inputs.check_data(self.model, self.loss, x, y, sample_weight, names)
        if self._loops is None:
            self._build(y.shape, tuple(output.shape))
        data = (x, y) if sample_weight is None else (x, y, sample_weight)
        return inputs.to_tensors(data)

    def _build(self, label_shape, output_shape):
        if self._optimizer is None:
            self._resolve_optimizer()
        with self.strategy.scope():
            self.metrics = objectives.resolve_metrics(
                self._metric_spec, label_shape, output_shape
            )
            loss_tracker = keras.metrics.Mean(name="loss")
        if self._distributed:
            distribution.check_created_in_scope(
                self.model, self._optimizer, self.strategy, self.metrics
            )
        with self.strategy.scope():
            if not self._optimizer.built:  # e.g. built and restored from a checkpoint
                self._optimizer.build(self.model.trainable_variables)
        self._loops = StepLoops(
            self.model, self.loss, self._optimizer, loss_tracker, self.metrics, self.strategy
        )


def _history(callback_list):
    for callback in callback_list.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    raise RuntimeError("CallbackList did not add a History callback")
