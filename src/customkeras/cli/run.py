"""Executing one training run: data, model, Trainer, checkpoints, artifacts, summary.

Under a multi-worker strategy every worker runs this same code on the same data: all of
them train, checkpoint (collectively) and evaluate, but only the chief writes the run's
files (config, history, plot, TensorBoard logs, model, metrics, manifest) and prints the
summary; the others keep nothing (see `customkeras.training.run.RunCheckpoint`).

A resumed run keeps the XLA decisions `--jit-compile auto` made when it started (its
checkpoints record them, `EpochCheckpoint`), also on a machine that would decide
otherwise (a CPU after a GPU, or another `--strategy`): it says so in one line.

Library errors become one-line messages here: a checkpoint that cannot be read or
written (`CheckpointError`) and any `OSError` while writing (a full disk) exit with
status 1, keeping the last good checkpoint.
"""

import contextlib
import dataclasses
import pathlib
import sys
import warnings

import keras
import tensorflow as tf

import customkeras
from customkeras import experiments, training
from customkeras.cli import artifacts, config, custom, loading, resume, rundir
from customkeras.cli.cluster import worker_failures
from customkeras.cli.curves import plot_learning_curves
from customkeras.cli.errors import CommandError
from customkeras.training import distribution
from customkeras.training.steps import overrides
from customkeras.training.run import (EXIT_INTERRUPTED, CheckpointError, CheckpointWriteError,
                                      EpochCheckpoint, GracefulInterrupt, RunCheckpoint)


@dataclasses.dataclass
class _Data:
    train: object
    validation: object = None
    test: object = None
    callbacks: list = dataclasses.field(default_factory=list)  # the data's own (fit's)


class _StreamEpoch(keras.callbacks.Callback):
    """Sets the `--input stream` pipeline's epoch variable before each pass.

    The Trainer (as Keras `fit`) calls `on_epoch_begin` before it makes the epoch's
    iterator, whose pass then reads the variable: its order is that of `(seed, epoch)`,
    the same in a resumed run as in an uninterrupted one.
    """

    def __init__(self, epoch: tf.Variable):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def build_trainer(run_config: config.RunConfig, strategy: tf.distribute.Strategy | None = None
                  ) -> tuple[training.Trainer, keras.Model]:
    """Seeds, then builds the run's model and its `Trainer`, with optimizer state created.

    The optimizer variables are created now (not on the first step) so that every
    checkpoint of the run, and a restore into this trainer, has the same structure.
    Everything is created inside `strategy.scope()` (default: no distribution).
    """
    trainer, model, _ = _build(run_config, strategy)
    return trainer, model


def _build(run_config, strategy=None, with_data=False):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(run_config.seed)
    jit_compile = config.JIT_COMPILE[run_config.jit_compile]
    data = None
    with strategy.scope():
        if run_config.experiment is not None:
            built = custom.build(run_config.experiment)
            data = _Data(custom.truncate(built.train, run_config.max_train_samples),
                         built.validation, built.test)
            custom.build_model(built.model, data.train, run_config.experiment)
            trainer = _custom_trainer(built.model, strategy, jit_compile)
            model = built.model
        else:
            experiment = experiments.build_experiment(run_config.dataset,
                                                      **run_config.experiment_arguments())
            trainer = training.Trainer(experiment.model, experiment.loss, experiment.optimizer,
                                       experiment.metrics, strategy=strategy,
                                       jit_compile=jit_compile)
            model = experiment.model
        trainer.optimizer.build(model.trainable_variables)
    if with_data and data is None and run_config.input == "stream":
        # Outside the strategy's scope: a plain variable that the input pipeline reads.
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="stream_epoch")
        data = _Data(*loading.load_streams(run_config.dataset, run_config.batch_size,
                                           run_config.seed, run_config.data_dir,
                                           run_config.max_train_samples, epoch=epoch),
                     callbacks=[_StreamEpoch(epoch)])
    elif with_data and data is None:
        splits = loading.load_data(run_config.dataset, run_config.data_dir,
                                   run_config.max_train_samples)
        data = _Data(splits.train, splits.valid, splits.test)
    return trainer, model, data


def _batch_size(data, run_config) -> int | None:
    # Datasets come batched (fit refuses a batch size with them); arrays are batched here.
    return run_config.batch_size if custom.is_arrays(data) else None


def _custom_trainer(model, strategy, jit_compile):
    # The Trainer takes any model (an uncompiled one can predict); a run trains it.
    if not getattr(model, "compiled", False) and not overrides(model, "train_step"):
        raise CommandError("The experiment's model is not compiled: call model.compile("
                           "loss=..., optimizer=..., metrics=...) in the function.",
                           exit_code=1)
    return training.Trainer(model, strategy=strategy, jit_compile=jit_compile)


def _shown(path: pathlib.Path) -> pathlib.Path:
    """`path` as the user would type it: relative to the working directory when inside it."""
    try:
        return path.relative_to(pathlib.Path.cwd())
    except ValueError:
        return path


def _title(run_config: config.RunConfig) -> str:
    if run_config.experiment is not None:
        return run_config.experiment.rsplit("/", 1)[-1]
    if run_config.split_optimizers:
        optimizer = (f"lower {run_config.lower_optimizer} {run_config.lower_lr:g}, "
                     f"upper {run_config.upper_optimizer} {run_config.upper_lr:g}")
    else:
        optimizer = f"{run_config.optimizer} {run_config.lr:g}"
    loss = "" if run_config.dataset == experiments.FASHION_MNIST else f", {run_config.loss} loss"
    return f"{run_config.dataset} {run_config.model} ({optimizer}{loss})"


def _format_results(results: dict) -> str:
    return "  ".join(f"{name} {value:.4f}" for name, value in results.items())


def _write_config(run_dir: pathlib.Path, run_config: config.RunConfig) -> None:
    text = config.to_json(run_config, output_dir=str(run_dir),
                          customkeras=customkeras.__version__,
                          keras=keras.__version__, tensorflow=tf.__version__)
    artifacts.atomic_write_text(run_dir / artifacts.CONFIG_FILE, text)


def _write_history(run_dir: pathlib.Path, history: dict, run_config: config.RunConfig) -> None:
    if not history:
        return
    artifacts.write_history(run_dir, history)
    plot_learning_curves(history, run_dir / artifacts.CURVES_FILE,
                         title=_title(run_config))


def _print_summary(run_dir: pathlib.Path, results: dict, n_epochs: int) -> None:
    print(f"\nTest results after {n_epochs} epoch(s): {_format_results(results)}"
          if results else f"\nTrained {n_epochs} epoch(s) (no test data to evaluate).")
    run_dir = _shown(run_dir)
    print(f"Run directory: {run_dir}")
    rows = [
        (artifacts.MODEL_FILE, "trained model: keras.saving.load_model() after import customkeras"),
        (artifacts.METRICS_FILE, "test loss and metrics"),
        (f"{artifacts.HISTORY_CSV}, {artifacts.HISTORY_JSON}", "loss and metrics per epoch"),
        (artifacts.CURVES_FILE, "learning curves (training dashed, validation solid)"),
        (artifacts.CONFIG_FILE,
         f"repeat: customkeras train --config {run_dir / artifacts.CONFIG_FILE}"),
        (artifacts.LOG_DIR + "/", f"tensorboard --logdir {run_dir / artifacts.LOG_DIR}"),
        (artifacts.CHECKPOINT_DIR + "/", f"more epochs: customkeras train --resume {run_dir} "
                                         "--epochs N"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"  {name:<{width}}  {description}")


def _evaluate(trainer, data: _Data, batch_size: int) -> dict:
    if data.test is None:
        return {}
    args, kwargs = custom.fit_arguments(data.test)
    results = trainer.evaluate(*args, batch_size=batch_size, **kwargs, verbose=0, return_dict=True)
    return {name: float(value) for name, value in results.items()}


def _finish(run_dir, run_config, trainer, model, data, history) -> int:
    results = _evaluate(trainer, data, _batch_size(data.test, run_config))
    if not distribution.is_chief(trainer.strategy):
        print(f"Worker finished: test {_format_results(results)}. The chief wrote the run's "
              f"files to {_shown(run_dir)}.")
        return 0
    _write_history(run_dir, history, run_config)
    with artifacts.atomic_path(run_dir / artifacts.MODEL_FILE) as tmp, \
            artifacts.scratch_directory(run_dir):
        model.save(tmp)
    artifacts.atomic_write_json(run_dir / artifacts.METRICS_FILE,
                                artifacts.as_test_metrics(results))
    # Last: the run is finished once its manifest exists (a kill before leaves it resumable).
    artifacts.write_manifest(run_dir)
    _print_summary(run_dir, results, len(next(iter(history.values()), [])))
    return 0


_DISK_FULL = ("No space left on device", "Disk quota exceeded")


def _write_failure(run_dir: pathlib.Path, what: str, latest: str | None) -> CommandError:
    kept = (f"The last good checkpoint ({_shown(pathlib.Path(latest))}) is kept; "
            if latest else "")
    return CommandError(f"{what}. {kept}once the cause is fixed (e.g. space freed), continue "
                        f"with: customkeras train --resume {_shown(run_dir)}", exit_code=1)


def train(run_config: config.RunConfig, run_dir: pathlib.Path, *, resume: bool,
          verbose="auto", strategy: tf.distribute.Strategy | None = None,
          max_time: float | None = None, profile: tuple[int, int] | None = None) -> int:
    """Trains (or resumes) the run in `run_dir` and writes its artifacts.

    The caller owns `run_dir` (see `customkeras.cli.rundir`).

    Args:
        profile: `(first, last)` training steps of this invocation (counted from 1)
            to profile into the run's TensorBoard logs (`TensorBoard(profile_batch=)`),
            or None. Defaults to None.
        strategy: the `tf.distribute.Strategy` to train under (already created: a
            multi-worker one must be the process's first TensorFlow call).
            Defaults to no distribution.
        max_time: `--max-time`, seconds, or None.

    Returns:
        0 when training finished, 130 when interrupted by Ctrl-C (after checkpointing).

    Raises:
        CommandError: a checkpoint cannot be read or written, a file cannot be written
            (exit status 1), or the run's configuration does not match its checkpoints.
    """
    strategy = strategy or tf.distribute.get_strategy()
    state = {"latest": None}
    with worker_failures(strategy, run_dir, str(_shown(run_dir))):
        try:
            return _train(run_config, run_dir, resume, verbose, strategy, state, max_time,
                          profile)
        except KeyboardInterrupt:
            # A second Ctrl-C, or one outside the epochs (loading, the results after the
            # last epoch): the run is still resumable from its last checkpoint.
            if not (distribution.is_chief(strategy)
                    and (run_dir / artifacts.CONFIG_FILE).is_file()):
                raise
            print(f"\nInterrupted. {_saved(state['latest'] or _latest_checkpoint(run_dir))}"
                  "\nResume with:\n"
                  f"  customkeras train --resume {_shown(run_dir)}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        except CheckpointWriteError as error:
            raise _write_failure(run_dir, str(error), state["latest"]) from None
        except CheckpointError as error:
            raise CommandError(str(error), exit_code=1) from None
        except OSError as error:
            where = error.filename or "a file of the run"
            raise _write_failure(run_dir, f"Cannot write {where}: {error.strerror or error}",
                                 state["latest"]) from None
        except tf.errors.DataLossError as error:
            if run_config.input != "stream":
                raise
            # A TFRecord shard changed under a running stream (its checksum was checked
            # when the run started); the next start checks them all again and names it.
            text = " ".join((error.message or "").split())[:300]
            again = (f"Continue with 'customkeras train --resume {_shown(run_dir)}'"
                     if resume or rundir.has_trained_epoch(run_dir)
                     else "Run the same command again (no epoch was complete)")
            raise CommandError(
                f"The training data stream cannot be read: a TFRecord shard of the "
                f"{run_config.dataset} cache was damaged during the run ({text}). {again}: "
                "it checks every shard first and says how to rewrite a damaged one.",
                exit_code=1) from None
        except tf.errors.OpError as error:
            # TensorFlow's own writers (TensorBoard logs) report a full disk this way.
            text = " ".join((error.message or "").split())
            if not any(cause in text for cause in _DISK_FULL):
                raise
            raise _write_failure(run_dir, f"Cannot write the run's files: {text[:300]}",
                                 state["latest"]) from None


def _report_profile(run_dir: pathlib.Path, profile: tuple[int, int], written: set) -> None:
    """Says where `--profile`'s profile went, or why there is none."""
    first, last = profile
    if not written:
        print(f"No profile was written: this run trained fewer than {first} steps "
              f"(--profile {first}:{last}).", file=sys.stderr, flush=True)
        return
    where = _shown(min(written).parent)
    print(f"Profile of training steps {first}-{last}: {where}\n  open it: tensorboard "
          f"--logdir {_shown(run_dir / artifacts.LOG_DIR)}, then the Profile tab",
          flush=True)


def _saved(latest: str | None) -> str:
    return (f"Checkpoint: {_shown(pathlib.Path(latest))}" if latest
            else "No epoch was complete yet (a resumed run starts from the beginning).")


def _latest_checkpoint(run_dir: pathlib.Path) -> str | None:
    """The newest `ckpt-N` prefix in the run's checkpoint directory, if any."""
    numbers = []
    for path in (run_dir / artifacts.CHECKPOINT_DIR).glob("ckpt-*.index"):
        number = path.name[len("ckpt-"):-len(".index")]
        if number.isdigit():
            numbers.append(int(number))
    return str(run_dir / artifacts.CHECKPOINT_DIR / f"ckpt-{max(numbers)}") if numbers else None


def _xla_note(warning) -> str:
    """One line for an `XlaDecisionWarning`, whatever the loop kind."""
    xla = {True: "XLA", False: "no XLA"}
    if warning.recorded and not warning.used:
        return (f"Note: this run recorded XLA (--jit-compile auto), but here "
                f"{warning.reason}: the resumed run goes on without XLA, and its numbers "
                "may differ from an uninterrupted run's.")
    return (f"Note: --resume keeps this run's XLA decision (--jit-compile auto: "
            f"{xla[warning.recorded]}), although this machine would use "
            f"{xla[warning.used]} ({warning.reason}), so that its numbers do not change.")


@contextlib.contextmanager
def _xla_notes():
    """Shows the `XlaDecisionWarning`s of a resumed run (it keeps the XLA decisions it
    recorded, which this machine would not have made) as one line, once per decision
    (not per loop kind), not as warnings with their source line."""
    with warnings.catch_warnings():
        show, shown = warnings.showwarning, set()

        def one_line(message, category, filename, lineno, file=None, line=None):
            if not isinstance(message, training.XlaDecisionWarning):
                show(message, category, filename, lineno, file, line)
                return
            note = _xla_note(message)
            if note not in shown:
                shown.add(note)
                print(note, file=sys.stderr, flush=True)

        warnings.showwarning = one_line
        yield


def _train(run_config, run_dir, resume_run, verbose, strategy, state, max_time=None,
           profile=None) -> int:
    chief = distribution.is_chief(strategy)
    if resume_run:
        resume.check_against_checkpoints(run_dir, run_config)
    trainer, model, data = _build(run_config, strategy, with_data=True)
    temporary = None if chief else (run_dir / artifacts.CHECKPOINT_DIR /
                                    f"workertemp_{strategy.cluster_resolver.task_id}")
    checkpoint = RunCheckpoint(run_dir / artifacts.CHECKPOINT_DIR, model, trainer.optimizers,
                               temporary_directory=temporary)
    # history.csv/json follow every checkpoint (a killed run still shows its progress);
    # the plot is drawn once at the end, as it costs more than a short epoch.
    epoch_checkpoint = EpochCheckpoint(
        checkpoint, metadata=resume.metadata(run_config),
        on_epoch_saved=(lambda h: artifacts.write_history(run_dir, h)) if chief else None,
        save_freq=run_config.checkpoint_every or "epoch")
    completed = 0
    if resume_run:
        restored = epoch_checkpoint.restore()
        for path, reason in (restored.skipped if restored else ()):
            print(f"Skipped checkpoint {pathlib.Path(path).name}: it cannot be read "
                  f"(damaged or truncated: {reason}); resuming from "
                  f"{pathlib.Path(restored.path).name}.", file=sys.stderr, flush=True)
        completed = restored.completed_epochs if restored is not None else 0
        if restored is not None:  # for results written without training (below)
            trainer.adopt_xla(restored.xla)
        state["latest"] = restored.path if restored is not None else None
        if completed > run_config.epochs:
            raise CommandError(
                f"{run_dir} already has {completed} epochs; --epochs must be at least that.")
        if completed == run_config.epochs:
            reason = resume.unfinished_reason(run_dir)
            if reason is None:
                print(f"{run_dir} is already complete ({completed} epochs); nothing to do. "
                      "Give --epochs N to train further.")
                return 0
            print(f"{run_dir} has all {completed} epochs but {reason}: writing its results "
                  f"again from its last checkpoint ({pathlib.Path(restored.path).name}).")
        else:
            print(f"Resuming {run_dir} after epoch {completed} of {run_config.epochs}."
                  if restored is not None else
                  f"{run_dir} has no checkpoint yet: training it from the start.")
    if chief:
        # The run is unfinished from now on; config.json first, so that a run killed at
        # any later point can be resumed.
        (run_dir / artifacts.MANIFEST_FILE).unlink(missing_ok=True)
        _write_config(run_dir, run_config)
    else:  # the chief shows the progress
        verbose = 0 if verbose == "auto" else verbose
    if completed == run_config.epochs:
        return _finish(run_dir, run_config, trainer, model, data, epoch_checkpoint.history)

    interrupt = GracefulInterrupt(model)
    callbacks = [epoch_checkpoint, interrupt, *data.callbacks]
    profiles = run_dir / artifacts.LOG_DIR / "train" / "plugins" / "profile"
    profiled_before = set(profiles.glob("*/*.xplane.pb"))
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / artifacts.LOG_DIR),
                                                     write_graph=False,
                                                     profile_batch=profile or 0))
    args, kwargs = custom.fit_arguments(data.train)
    try:
        with interrupt, _xla_notes():
            fitted = trainer.fit(*args, epochs=run_config.epochs,
                                 batch_size=_batch_size(data.train, run_config),
                                 validation_data=data.validation, callbacks=callbacks,
                                 # a dataset shuffles itself
                                 shuffle=custom.is_arrays(data.train), verbose=verbose,
                                 seed=run_config.seed, initial_epoch=completed,
                                 validation_interval=run_config.validate_every,
                                 max_time=max_time, **kwargs)
    except training.TrainingDivergedError as error:
        if chief:
            _write_history(run_dir, epoch_checkpoint.history, run_config)
        raise CommandError(f"{error}\nThe checkpoints in {run_dir / artifacts.CHECKPOINT_DIR} "
                           "hold the last whole epoch before it.", exit_code=1) from None
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
        if run_config.experiment is None:
            raise
        # The user's model and data: e.g. arrays that do not fit the model.
        raise CommandError(f"Training {run_config.experiment} failed: {custom.one_line(error)}. "
                           "Fix the function's model or data, then run the same command "
                           "again.", exit_code=1) from None
    finally:
        state["latest"] = checkpoint.latest
        checkpoint.remove_temporary()
    if chief and profile:
        _report_profile(run_dir, profile, set(profiles.glob("*/*.xplane.pb")) - profiled_before)
    history = epoch_checkpoint.history
    done = epoch_checkpoint.completed_epochs
    cut_short = ("the epoch cut short resumes from its last step checkpoint"
                 if run_config.checkpoint_every else
                 "the epoch cut short is replayed from its start")
    if fitted.stopped_by_max_time and done < run_config.epochs:
        if chief:
            _write_history(run_dir, history, run_config)
        print(f"\nTime budget (--max-time {max_time:g} s) reached after {done} complete "
              f"epoch(s) of {run_config.epochs} ({cut_short}). Resume with:\n"
              f"  customkeras train --resume {_shown(run_dir)}", file=sys.stderr, flush=True)
        return 0
    # `model.stop_training` too: in a multi-worker run, a Ctrl-C on any worker stops all.
    if (interrupt.requested or model.stop_training) and done < run_config.epochs:
        if chief:
            _write_history(run_dir, history, run_config)
        print(f"\nTraining interrupted after {done} complete epoch(s) of {run_config.epochs} "
              f"({cut_short}). "
              f"{_saved(checkpoint.latest)}\nResume with:\n"
              f"  customkeras train --resume {_shown(run_dir)}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return _finish(run_dir, run_config, trainer, model, data, history)
