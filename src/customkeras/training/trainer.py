"""`Trainer`: the chapter's custom training loop (exercise 13), fast and open.

The Trainer wires the engine's rooms together: the model's steps (`steps`), the
in-graph loops (`loops`), the data sources (`sources`) and the host-side controller
(`controller`); see docs/architecture.md.
"""

from collections.abc import Mapping

import keras
import tensorflow as tf

from customkeras.training import compat
from customkeras import _checks
from customkeras.training import distribution, model_setup, objectives
from customkeras.training.callback_hooks import as_callbacks
from customkeras.training.controller import Controller
from customkeras.training.fit_loop import FitLoop
from customkeras.training.executions import ExecutionPlanner
from customkeras.training.loops import Loops
from customkeras.training.progress import VERBOSE_CHOICES
from customkeras.training.sources import ArrayCache, Source, is_dataset_like, make_source
from customkeras.training.sources.arrays import as_arrays
from customkeras.training.sources import model_fit
from customkeras.training.steps import make_steps, overrides
from customkeras.training.steps.kinds import KINDS



class Trainer:
    """Trains a Keras model with a fast custom loop: `fit`'s semantics, your own step.

    Three ways to give it a model:

    * `Trainer(model, loss, optimizer, metrics=...)`: the Trainer compiles the model
      with them (as `model.compile` would, with `loss_weights` and
      `weighted_metrics`), and `optimizer` may be per group (exercise 13b);
    * `Trainer(model)` with a compiled model: a drop-in for `model.fit`, `evaluate`
      and `predict` (the same arguments, with Keras's meaning), with the model's
      compiled loss, `loss_weights`, optimizer and metrics;
    * `Trainer(model)` with a model whose class overrides `train_step` (and
      `test_step`, `predict_step`), as the Keras guide teaches: its own step runs,
      with its own optimizers if it sets them in an overridden `compile` (a GAN).

    Any `keras.Model` is accepted: one that is not compiled can `predict`, and `fit` /
    `evaluate` refuse it at the call, as Keras does.

    The default step is Keras's: the compiled loss (sample-weighted) plus
    `model.losses`, loss scaling under `mixed_float16`, the optimizer's clipping,
    gradient accumulation and EMA, constraints after every step, compiled and
    model-tracked metrics reset at each epoch; validation at each epoch's end;
    `history.history` keyed as Keras keys it.

    Args:
        model: a `keras.Model`.
        loss: a loss (object, function or name), or a list / dict of them for a
            multi-output model, as `compile(loss=...)` takes. Defaults to None (the
            model is compiled, or has its own step).
        optimizer: a Keras optimizer (or its name), or per-group optimizers: a
            mapping `{layers: optimizer}` (keys: a layer, a sub-model, or a tuple of
            them) or a list of `(layers, optimizer)` pairs, every trainable variable
            in exactly one group. Defaults to None (needed only to train).
        metrics: metrics as `compile(metrics=...)` takes them. Defaults to none.
        loss_weights: as `compile(loss_weights=...)`. Defaults to None.
        weighted_metrics: metrics weighted by `sample_weight`, as
            `compile(weighted_metrics=...)`. Defaults to none.
        steps_per_execution: steps per graph call, or `"auto"` to adapt it so that
            each call takes about 0.2 s (see `executions`). The host reads logs,
            updates the display, calls batch callbacks and checks
            `model.stop_training` only between calls. Under `"auto"`, a pass whose
            callbacks override a batch hook runs one step per call, so that they see
            every batch as under `fit` (`callback_hooks`); with an integer they are
            called once per call, as Keras does. An `executions.ExecutionPlanner` is
            used as it is (a policy passed in, e.g. with a clock of its own, for
            tests). The size of an execution never changes a number. Defaults to
            `"auto"`.
        jit_compile: `True` to compile with XLA, `False` not to. `"auto"` decides
            once per loop kind (train, test, predict) from what a resumed or extended
            run sees the same way, never from timings or run lengths: XLA on a GPU,
            and on a CPU unless the step has convolutions; none under a strategy or
            eagerly; plain, with a warning, if XLA cannot compile the step (see
            `xla_choice`). XLA changes the floats (and, on a CPU, the draws of
            seeded random ops such as `Dropout`) against `fit`'s plain steps;
            `False` reproduces `model.fit` exactly. Defaults to `"auto"`.
        strategy: a `tf.distribute.Strategy`, or None for no distribution (see
            `create_strategy`). Create the model, its optimizers and metric objects
            inside `strategy.scope()`. `batch_size` is then the global batch; each
            replica takes its share and the default step weights each share's loss
            by its size, so results match one device. Defaults to None.
        run_eagerly: run every step eagerly, in Python, for debugging with `print`
            or `pdb` (slow), as `compile(run_eagerly=True)`. Defaults to None: the
            compiled model's `run_eagerly`, else False.

    Example:

    ```python
    trainer = Trainer(model, "sparse_categorical_crossentropy",
                      keras.optimizers.Nadam(), metrics=["accuracy"])
    history = trainer.fit(x_train, y_train, epochs=5,
                          validation_data=(x_valid, y_valid), seed=42)
    trainer.evaluate(x_test, y_test)  # [loss, accuracy], as model.evaluate
    trainer.predict(x_test)           # what model.predict returns
    ```
    """

    def __init__(self, model, loss=None, optimizer=None, metrics=(), *, loss_weights=None,
                 weighted_metrics=(), steps_per_execution="auto", jit_compile="auto",
                 strategy=None, run_eagerly=None):
        _checks.instance("model", model, keras.Model, "a keras.Model")
        _checks.one_of("jit_compile", jit_compile, (True, False, "auto"))
        planner = None
        if isinstance(steps_per_execution, ExecutionPlanner):  # a policy passed in
            planner, steps_per_execution = steps_per_execution, (
                "auto" if steps_per_execution.adaptive else steps_per_execution.steps)
        elif steps_per_execution != "auto":
            _checks.integer("steps_per_execution", steps_per_execution, 1,
                            alternative="'auto' or an ExecutionPlanner")
        if strategy is not None:
            _checks.instance("strategy", strategy, tf.distribute.Strategy,
                             "a tf.distribute.Strategy or None")
        if run_eagerly is not None:
            _checks.instance("run_eagerly", run_eagerly, bool, "True, False or None")
        self.model = model
        self.steps_per_execution = steps_per_execution
        self.jit_compile = jit_compile
        self.strategy = strategy or tf.distribute.get_strategy()
        self._distributed = distribution.is_distributed(self.strategy)
        self._compile_arguments = None
        if loss is not None or optimizer is not None or metrics or weighted_metrics:
            if loss is not None:
                objectives.check_loss(loss)
            self._compile_arguments = dict(
                loss=loss, optimizer=optimizer, metrics=metrics, loss_weights=loss_weights,
                weighted_metrics=weighted_metrics)
        if run_eagerly is None:
            run_eagerly = bool(getattr(model, "run_eagerly", False))
        self.run_eagerly = run_eagerly
        # Host-side decisions that every worker of a multi-worker run must share.
        self._coordinator = distribution.make_coordinator(self.strategy, model)
        self._planner = planner or ExecutionPlanner(steps_per_execution)
        self._planner.agree = self._coordinator.agree_between_executions
        self._arrays = ArrayCache()
        self._controller = None
        self._xla_recorded = None  # decisions to adopt once the engine exists
        if self._compile_arguments is not None and model.built:
            self._compile()

    # ---- public API ------------------------------------------------------------------

    @property
    def optimizer(self):
        """The model's optimizer; for groups a `MultiOptimizer` whose `.optimizers`
        lists them."""
        return getattr(self.model, "optimizer", None)

    @property
    def optimizers(self):
        """Every optimizer whose state training changes (for checkpoints): the
        model's, its groups, and a custom step's own (once it has been traced)."""
        return model_setup.optimizers_of(self.model)

    @property
    def metrics(self):
        """The model's metrics (`model.metrics`), reset at each epoch."""
        return self.model.metrics

    @property
    def trace_counts(self):
        """How many times each step has been traced (diagnostics)."""
        if self._controller is None:
            return {"train_step": 0, "test_step": 0, "predict_step": 0}
        return dict(self._controller.loops.trace_counts)

    @property
    def execution_counts(self):
        """How many graph executions ran, by `(kind, feed, XLA mode)`, e.g.
        `{("train", "arrays", "whole loop"): 12}` (diagnostics: which path ran)."""
        if self._controller is None:
            return {}
        return dict(self._controller.loops.execution_counts)

    @property
    def xla_decisions(self):
        """`{kind: (uses_xla, reason)}` for the loop kinds run so far ("train",
        "test", "predict"): what `jit_compile` decided, and why."""
        if self._controller is None:
            return {}
        return dict(self._controller.xla.decisions)

    def adopt_xla(self, recorded):
        """Makes `jit_compile="auto"` follow the XLA decisions a run recorded instead of
        deciding on this machine (`xla_choice`), e.g. before evaluating a restored run
        without training it. `fit` with `EpochCheckpoint` or `BackupAndRestore` does
        it itself. An explicit `jit_compile` ignores them.

        Args:
            recorded: `{kind: bool}`, as `RestoredCheckpoint.xla` or
                `TrainingState.state_dict()["xla"]` hold them, or None (nothing).
        """
        if self._controller is None:
            self._xla_recorded = dict(recorded or {}) or None
        else:
            self._controller.xla.adopt(recorded)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, *, seed=None,
            validation_interval=None, max_time=None):
        """Trains the model for epochs `initial_epoch` to `epochs - 1`, as `model.fit`.

        The arguments are Keras 3's, in its order and with its meaning; `seed` is the
        Trainer's own.

        Args:
            x: inputs: arrays (a NumPy array or tensor, or a tuple / list / dict of
                them; a dict is matched to the model's inputs by name), a
                `tf.data.Dataset` of `x`, `(x, y)` or `(x, y, sample_weight)` batches,
                a generator of such batches, or a `keras.utils.PyDataset`.
            y: targets for array inputs (same structures as the model's outputs), or
                None (streamed data yields them; a model with its own step may need
                none). Defaults to None.
            batch_size: samples per step for arrays; the last step of an epoch takes
                the rest, as Keras does. Ignored for streamed data, which is already
                batched (as Keras ignores it). Defaults to None: 32, or with
                `steps_per_epoch` the samples divided among that many steps (Keras's
                rule).
            epochs: index of the epoch to stop before (as in Keras). Defaults to 1.
            verbose: `"auto"`, 0, 1 (progress bars) or 2 (one line per epoch).
                Defaults to `"auto"`.
            callbacks: a Keras callback or a list of them. One that overrides a batch
                hook is called at every batch (see `callback_hooks`). Defaults to
                None.
            validation_split: the fraction of the array samples, taken from their end
                before any shuffling, to validate on instead of training (Keras's
                rule; arrays only). Ignored when `validation_data` is given. Defaults
                to 0.0.
            validation_data: `(x_val, y_val)`, `(x_val, y_val, sample_weight_val)`,
                or streamed data, evaluated at each epoch's end (history keys
                `val_loss`, ...); or several named sets, `{"clean": (x, y), "noisy":
                dataset}`, each evaluated (keys `val_clean_loss`, `val_noisy_loss`,
                ...). Defaults to None.
            shuffle: whether to shuffle array samples every epoch (ignored, with a
                warning, for a dataset). Defaults to True.
            class_weight: `{class_index: weight}`: each sample's loss is weighted by
                its class's weight (1.0 for classes not listed), from sparse or
                one-hot targets, for a single-output model; the weights reach a
                model's own `train_step` as `sample_weight`. Not with `sample_weight`,
                nor with a generator (Keras refuses both). Defaults to None.
            sample_weight: weights for array data, of shape `(n,)`, `(n, 1)` or per
                timestep `(n, t)` (or one per output). Defaults to None.
            initial_epoch: epoch to start from, for resuming. Defaults to 0.
            steps_per_epoch: steps per epoch; with a repeated dataset or a generator
                the same iterator carries on across epochs. Defaults to None (one
                whole pass).
            validation_steps: steps per validation pass. Defaults to None (a pass).
            validation_batch_size: samples per validation step for array validation
                data. Defaults to None (`batch_size`).
            validation_freq: validate every this many epochs. Defaults to 1.
            seed: seed of the per-epoch shuffle of arrays, in [0, 2**32 - 1]. The
                order of epoch `e` depends only on `(seed, e)`, so a resumed run
                replays the same orders. None draws one from NumPy's global generator
                (seeded by `keras.utils.set_random_seed`); in a multi-worker run, the
                chief's draw. Defaults to None.
            validation_interval: also validate every this many training steps of
                an epoch (counted from the epoch's start; at its last step only when
                the epoch's own validation does not follow). Each such validation
                calls the callbacks' test hooks (`TensorBoard` writes
                `evaluation_*_vs_iterations`), reaches the progress display and
                appends `{"step": global step, "epoch": epoch, "val_loss": ...}` to
                `history.steps`. Executions end at its multiples; the training
                itself computes the same bits. Defaults to None (epochs only).
            max_time: a time budget in seconds: training stops at the first
                execution boundary after it (within about 0.2 s under
                `steps_per_execution="auto"`), keeps what was trained and says so;
                `history.stopped_by_max_time` tells. It decides where the run stops,
                never what a step computes: resumed from a checkpoint
                (`EpochCheckpoint(save_freq=N)` saves at the stop too), the run ends
                with the uninterrupted run's bits. Defaults to None.

        Returns:
            A `keras.callbacks.History`; `history.steps` lists the step-interval
            validations.

        Raises:
            TypeError, ValueError: bad arguments or data, an uncompiled model, before
                any training (in a multi-worker run, also workers whose data or
                arguments differ).
            TrainingDivergedError: a NaN or infinite loss or weight.
        """
        self._require_compiled("fit")
        epochs = _checks.integer("epochs", epochs, 0)
        initial_epoch = _checks.integer("initial_epoch", initial_epoch, 0)
        seed = _checks.optional_seed("seed", seed)
        validation_freq = _checks.integer("validation_freq", validation_freq, 1)
        if validation_interval is not None:
            validation_interval = _checks.integer("validation_interval", validation_interval,
                                                  1, alternative="None")
        if max_time is not None:
            max_time = _checks.positive_float("max_time", max_time)
        callbacks = as_callbacks(callbacks)
        self._check_batch_size(batch_size)
        if validation_batch_size is not None:
            _checks.integer("validation_batch_size", validation_batch_size, 1)
        if validation_data is None and validation_split:
            (x, y, sample_weight), validation_data = _split_for_validation(
                x, y, sample_weight, validation_split)
        train = make_source(x, y, sample_weight, batch_size=batch_size, steps=steps_per_epoch,
                            names=("x", "y", "sample_weight"), cache=self._arrays,
                            shuffle=shuffle, class_weight=class_weight)
        validations = self._validation_sources(
            validation_data, validation_batch_size or batch_size, validation_steps)
        controller = self._setup(train, "train")
        for validation in validations.values():
            model_fit.check_source(self.model, validation, "test")
            with self.strategy.scope():
                controller.loops.check_logs(KINDS["test"], validation)
        seed = self._coordinator.agree_on_fit(
            train.fingerprint,
            tuple(v.fingerprint for v in validations.values()) if validations else None,
            seed, epochs=epochs, batch_size=getattr(train, "batch_size", 0), shuffle=shuffle,
            initial_epoch=initial_epoch,
            steps_per_execution=0 if self._planner.adaptive else self.steps_per_execution,
            validation_interval=validation_interval or 0)
        loop = FitLoop(controller, train, validations, epochs=epochs,
                       initial_epoch=initial_epoch, shuffle=shuffle, seed=seed,
                       callbacks=callbacks, verbose=verbose, validation_freq=validation_freq,
                       validation_interval=validation_interval, max_time=max_time)
        with self.strategy.scope():  # state a step builds lazily belongs to the strategy
            history = loop.run()
        history.stopped_by_max_time = loop.stopped_by_max_time
        if loop.stopped_by_max_time and verbose != 0:
            epoch, step = loop.stopped_at
            where = (f"after step {step} of epoch {epoch + 1}"
                     if step < (train.steps_per_epoch or step + 1) else
                     f"after epoch {epoch + 1}")
            print(f"Stopped: max_time={max_time:g} s reached {where}.", flush=True)
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Returns the loss and metrics of the model on the data, as `model.evaluate`.

        Args:
            x, y, sample_weight: as for `fit`.
            batch_size: samples per step for arrays (ignored for streamed data).
                Defaults to None (32).
            verbose: `"auto"` or 1 (Keras's progress bar), 2 (one line at the end) or
                0 (silent), as `model.evaluate`. Defaults to `"auto"`.
            steps: at most this many steps. Defaults to None (one pass).
            callbacks: a Keras callback or a list of them (their test hooks are
                called). Defaults to None.
            return_dict: return `{"loss": ..., "<metric>": ...}`. Defaults to False:
                as Keras, the loss alone (a float) when there is nothing else, else
                the list of values in the order of `model.metrics_names`.

        Returns:
            The results of the pass; the loss includes `model.losses`, as in Keras.

        Raises:
            ValueError: the model is not compiled (and has no `test_step` of its
                own), or bad data, before any step.
        """
        self._require_compiled("evaluate")
        controller, source, callback_list = self._pass(
            "test", x, y, sample_weight, batch_size, steps, callbacks, verbose)
        self._coordinator.agree_on_evaluation(source.fingerprint,
                                              getattr(source, "batch_size", 0))
        with self.strategy.scope():
            logs = controller.evaluate(source, callback_list)
        if return_dict:
            return logs
        return compat.metrics_in_order(self.model, logs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Returns the model's outputs for `x`, as `model.predict` does.

        Works on a model that is not compiled, as `model.predict` does.

        Args:
            x: inputs: arrays, or streamed data (its targets are ignored).
            batch_size: samples per step for arrays (ignored for streamed data).
                Defaults to None (32).
            verbose: `"auto"` or 1 (Keras's progress bar), 2 (one line at the end) or
                0 (silent), as `model.predict`. Defaults to `"auto"`.
            steps: at most this many steps. Defaults to None (one pass).
            callbacks: a Keras callback or a list of them (their predict hooks are
                called). Defaults to None.

        Returns:
            A NumPy array, or a list / dict of them for a multi-output model.
        """
        controller, source, callback_list = self._pass(
            "predict", x, None, None, batch_size, steps, callbacks, verbose)
        with self.strategy.scope():
            return controller.predict(source, callback_list)

    # ---- set-up ---------------------------------------------------------------------------

    def _pass(self, purpose, x, y, sample_weight, batch_size, steps, callbacks, verbose):
        """`(controller, source, callback list)` of one `evaluate` ("test") or
        `predict` call, its arguments checked; Keras's progress bar is a callback."""
        _check_verbose(verbose)
        callbacks = as_callbacks(callbacks)
        self._check_batch_size(batch_size)
        source = make_source(x, y, sample_weight, batch_size=batch_size, steps=steps,
                             names=("x", "y", "sample_weight"), cache=self._arrays,
                             purpose="evaluate" if purpose == "test" else purpose)
        controller = self._setup(source, purpose)
        return controller, source, keras.callbacks.CallbackList(
            callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1,
            steps=source.steps_per_epoch, model=self.model)

    @staticmethod
    def _check_batch_size(batch_size):
        if batch_size is not None:
            _checks.integer("batch_size", batch_size, 1)

    def _require_compiled(self, method):
        """Keras's refusal of `fit` / `evaluate` on an uncompiled model, at the call."""
        step = "train_step" if method == "fit" else "test_step"
        if (self._compile_arguments is None and not getattr(self.model, "compiled", False)
                and not overrides(self.model, step)):
            raise ValueError(
                f"You must call `compile()` before using the model: `{method}` needs the "
                f"model's loss, and the model {self.model.name!r} is not compiled (as "
                f"Keras's `model.{method}` refuses it). Compile it, or pass a loss and an "
                "optimizer to Trainer: `Trainer(model, loss, optimizer)`. (`predict` "
                "works without.)")

    def _validation_sources(self, validation_data, batch_size, steps):
        """`{name: source}` of `fit`'s validation sets: `{None: source}` for one."""
        if validation_data is None:
            return {}
        if not isinstance(validation_data, Mapping):
            return {None: self._validation_source(validation_data, batch_size, steps)}
        if not validation_data:
            raise ValueError("`validation_data` must name at least one set; received an "
                             "empty dict")
        sources = {}
        for name, data in validation_data.items():
            if not (isinstance(name, str) and name.isidentifier()):
                raise ValueError(
                    "`validation_data` names must be identifiers (they become history "
                    f"keys, `val_<name>_loss`); received the name {name!r}")
            sources[name] = self._validation_source(data, batch_size, steps, name)
        return sources

    def _validation_source(self, validation_data, batch_size, steps, name=None):
        argument = "validation_data" if name is None else f"validation_data[{name!r}]"
        if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            x, y, *rest = validation_data
            names = tuple(f"{argument}[{i}]" for i in range(3))
            return make_source(x, y, rest[0] if rest else None, batch_size=batch_size,
                               steps=steps, names=names, cache=self._arrays,
                               purpose="evaluate")
        if is_dataset_like(validation_data) or isinstance(validation_data, Source):
            return make_source(validation_data, None, None, batch_size=None, steps=steps,
                               names=(argument, "", ""), cache=self._arrays)
        raise ValueError(
            f"`{argument}` must be a tuple (x_val, y_val) or (x_val, y_val, "
            "sample_weight_val), a tf.data.Dataset, a generator or a PyDataset (or a dict "
            "of them, named sets); received "
            f"{type(validation_data).__name__}")

    def _compile(self):
        model_setup.compile_model(self.model, self.strategy, run_eagerly=self.run_eagerly,
                                  **self._compile_arguments)
        self._compile_arguments = None

    def _setup(self, source, purpose):
        """Checks `source` against the model, and builds the engine on first use."""
        if self._controller is None:
            if self._compile_arguments is not None:
                if not self.model.built:  # per-group optimizers need the variables
                    model_setup.build(self.model, source.element_spec, self.strategy)
                self._compile()
        if purpose == "train" and getattr(self.model, "optimizer", None) is None and \
                not overrides(self.model, "train_step"):
            raise ValueError("training needs an optimizer: pass one, "
                             "`Trainer(model, loss, optimizer)`, or compile the model with one")
        model_fit.check_source(self.model, source, purpose)
        # Idempotent: what the first call's data could not build (the compiled loss
        # after a `predict`) is built by a later call's.
        model_setup.build(self.model, source.element_spec, self.strategy)
        if self._controller is None:
            if self._distributed:
                distribution.check_created_in_scope(
                    self.model, self.optimizer, self.strategy, self.model.metrics)
            steps = make_steps(self.model, self.strategy)
            loops = Loops(self.model, steps, self.strategy, self._state,
                          run_eagerly=self.run_eagerly)
            self._controller = Controller(
                self.model, loops, self._planner, self._coordinator, self.strategy,
                self.jit_compile, xla_allowed=not self._distributed)
            self._controller.xla.adopt(self._xla_recorded)
            self._xla_recorded = None
        with self.strategy.scope():
            self._controller.loops.check_logs(KINDS[purpose], source)
        return self._controller

    def _state(self):
        """Every variable training changes: the model's and every optimizer's."""
        seen, state = set(), []
        for variable in [*self.model.variables,
                         *(v for o in self.optimizers for v in o.variables)]:
            if id(variable) not in seen:
                seen.add(id(variable))
                state.append(variable)
        return state


def _check_verbose(verbose):
    if verbose not in VERBOSE_CHOICES or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be one of {VERBOSE_CHOICES}; received "
                         f"verbose={verbose!r}")


def _split_for_validation(x, y, sample_weight, validation_split):
    """Keras's `validation_split`: the last fraction of the arrays, before shuffling."""
    fraction = _checks.finite_float("validation_split", validation_split, 0.0, 1.0,
                                    max_inclusive=False)
    if is_dataset_like(x) or isinstance(x, Source):
        raise ValueError(
            "`validation_split` is only supported for arrays (NumPy arrays or tensors), as "
            f"in Keras; received validation_split={validation_split!r} with `x` of type "
            f"{type(x).__name__}: pass `validation_data` instead")
    arrays = tuple(None if part is None else as_arrays(part, name) for part, name in
                   ((x, "x"), (y, "y"), (sample_weight, "sample_weight")))
    return compat.train_validation_split(arrays, validation_split=fraction)
