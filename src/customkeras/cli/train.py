"""`customkeras train`: options, `--config` and `--resume` handling.

Options use `argparse.SUPPRESS` defaults, so the namespace holds only what the user
typed: those values override a `--config` file, which overrides the defaults
(`customkeras.cli.config`).

The `tf.distribute` strategy (`--strategy`) is created as soon as the configuration is
known, before anything else touches TensorFlow: a multi-worker strategy must be.

This module imports neither TensorFlow nor Keras: the options are parsed and every value
checked first (`--help` and usage errors answer at once); `handle` imports the training
machinery after that.
"""

import argparse
import pathlib

from customkeras import _checks, experiments
from customkeras.cli import artifacts, config, custom
from customkeras.cli.errors import CommandError
from customkeras.cli.config import STRATEGIES

EPILOG = """\
examples:
  customkeras train fashion-mnist                      exercise 13a: MLP, Nadam(1e-2), 5 epochs
  customkeras train fashion-mnist --lower-optimizer sgd --lower-lr 1e-4 \\
      --upper-optimizer nadam --upper-lr 1e-3          exercise 13b: one optimizer per layer group
  customkeras train housing --model residual --loss huber --threshold 2 --metrics huber,mae
  customkeras train my_experiment.py:build --epochs 3    your own model and data (see below)
  customkeras train --config runs/fashion-mnist-20250101-120000/config.json   repeat a run
  customkeras train --resume runs/fashion-mnist-20250101-120000               continue a run
  customkeras train --resume RUN_DIR --epochs 10                              ... for more epochs
  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker",
  "index": 0}}' customkeras train fashion-mnist --strategy multi-worker --output-dir SHARED_DIR
                                   one process per worker, each with its own task index

your own experiment: MODULE:FUNCTION or FILE.py[:FUNCTION] (default function: experiment)
  names a function without arguments returning {"model": compiled_model, "train": (x, y),
  "validation": (x, y), "test": (x, y)} (or the tuple (model, train[, validation[, test]]));
  it is called after seeding, inside the --strategy's scope. The run gets the same run
  directory, --resume, plots and TensorBoard logs as the built-in experiments.
"""

CUSTOM = "MODULE:FUNCTION"  # the sub-command standing for any experiment function


class _Choices(dict):
    """Sub-command names, plus (once `open_ended`, after every sub-command is added)
    anything that looks like `MODULE:FUNCTION` or `FILE.py`."""

    open_ended = False

    def __contains__(self, name):
        return dict.__contains__(self, name) or (self.open_ended
                                                 and custom.looks_like_reference(name))


class _DatasetOrExperiment(argparse._SubParsersAction):
    """The dataset sub-commands, where a name that looks like `MODULE:FUNCTION` or
    `FILE.py` selects the experiment-function sub-command (argparse has no hook for
    open-ended sub-command names: its choices check and its lookup are both here)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._name_parser_map = self.choices = _Choices()

    def __call__(self, parser, namespace, values, option_string=None):
        name = values[0]
        if not dict.__contains__(self._name_parser_map, name):
            setattr(namespace, "experiment", name)
            values = [CUSTOM, *values[1:]]
        super().__call__(parser, namespace, values, option_string)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds; received {value!r}")
    try:
        return _checks.positive_float("worker_timeout", seconds)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(value: str) -> float:
    """`--max-time`: seconds, or a number with an `s`, `m` or `h` suffix (`90`, `10m`,
    `1.5h`)."""
    text = value.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:], None)
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a duration: seconds, or a number with an s, m or h suffix (e.g. 90, "
            f"10m, 1.5h); received {value!r}") from None
    try:
        return _checks.positive_float("max_time", seconds)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _verbosity(value: str):
    if value == "auto":
        return value
    if value in ("0", "1", "2"):
        return int(value)
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from auto, 0, 1, 2)")


def _profile_range(value: str) -> tuple[int, int]:
    """`--profile A:B` as Keras's `profile_batch=(A, B)`: steps counted from 1."""
    first, colon, last = value.partition(":")
    try:
        steps = (int(first), int(last)) if colon else None
    except ValueError:
        steps = None
    if steps is None or not 1 <= steps[0] <= steps[1] <= config.COUNT_MAX:
        raise argparse.ArgumentTypeError(
            "expected A:B, the first and the last training step to profile (integers, "
            f"1 <= A <= B, e.g. 10:20); received {value!r}")
    return steps


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--config", metavar="FILE", default=s,
                           help="repeat the run described by a config.json (options given "
                                "here override its values; the output goes to a new directory)")
    run_group.add_argument("--resume", metavar="RUN_DIR", default=s,
                           help="continue an interrupted run from its last checkpoint (other "
                                "options may repeat the run's values; only --epochs, --data-dir, "
                                "--strategy, --validate-every, --checkpoint-every, --max-time, "
                                "--profile, --worker-timeout and --verbose may change)")
    run_group.add_argument("--output-dir", metavar="DIR", default=s,
                           help="where the run's files go (default: runs/<dataset>-<timestamp>)")
    run_group.add_argument("--data-dir", metavar="DIR", default=s,
                           help="directory holding fashion-mnist/ and california-housing/ "
                                "(default: $CUSTOMKERAS_DATA_DIR, then the Keras/scikit-learn "
                                "caches and downloads)")
    run_group.add_argument("--verbose", type=_verbosity, metavar="{auto,0,1,2}", default=s,
                           help="progress display: auto (bars on a terminal, one line per "
                                "epoch otherwise), 0 silent, 1 bars, 2 one line per epoch "
                                "(default: auto; multi-worker: only the chief shows it)")
    run_group.add_argument("--strategy", choices=STRATEGIES, default=s,
                           help="where to train: default (one device), mirrored (every local "
                                "GPU, or the CPU), multi-worker (one process per worker as "
                                "described by the TF_CONFIG environment variable; give every "
                                "worker the same --output-dir, visible to all of them to "
                                "--resume). Recorded in config.json (default: default)")
    run_group.add_argument("--worker-timeout", type=_seconds, metavar="SECONDS", default=s,
                           help="multi-worker: how long to wait for every worker to start, and "
                                "for the others during training, before stopping with an "
                                f"error (default: {config.DEFAULT_WORKER_TIMEOUT:g})")
    run_group.add_argument("--max-time", type=duration, metavar="DURATION", default=s,
                           help="a time budget for this command (90, 90s, 10m, 1.5h): training "
                                "stops at the next execution boundary after it, checkpoints "
                                "and prints the --resume command; the resumed run computes the "
                                "uninterrupted run's bits (default: none)")
    run_group.add_argument("--validate-every", type=int, metavar="N", default=s,
                           help="also validate every N training steps of an epoch (shown, and "
                                "written to TensorBoard against the step); changes no number "
                                "(default: at each epoch's end only)")
    run_group.add_argument("--checkpoint-every", type=int, metavar="N", default=s,
                           help="also checkpoint every N training steps of an epoch and where "
                                "training stops (Ctrl-C, --max-time), so that --resume "
                                "continues from that step, with the same bits (default: after "
                                "each epoch only)")
    run_group.add_argument("--profile", type=_profile_range, metavar="A:B", default=s,
                           help="profile training steps A to B of this invocation (counted "
                                "from 1; a resumed run counts from where it resumes) with "
                                "TensorFlow's profiler, into the run's TensorBoard logs "
                                "(logs/train/plugins/profile/): see it with tensorboard "
                                "--logdir RUN_DIR/logs, Profile tab. The epochs holding them "
                                "run one step per graph call, as Keras fit does; the results "
                                "do not change (default: no profile)")
    training = parser.add_argument_group("training")
    training.add_argument("--optimizer", choices=tuple(experiments.OPTIMIZERS), default=s,
                          help="optimizer (default: nadam; housing 'exponential': sgd)")
    training.add_argument("--lr", type=float, metavar="RATE", default=s,
                          help="learning rate (default: 1e-2 on fashion-mnist, 1e-3 on "
                               "housing, 1e-2 for housing 'exponential')")
    training.add_argument("--epochs", type=int, metavar="N", default=s,
                          help=f"number of epochs (default: {config.COMMON_DEFAULTS['epochs']})")
    training.add_argument("--batch-size", type=int, metavar="N", default=s,
                          help="batch size; under a strategy the global batch, split over the "
                               f"replicas (default: {config.COMMON_DEFAULTS['batch_size']})")
    training.add_argument("--seed", type=int, metavar="N", default=s,
                          help="random seed for weights and shuffling "
                               f"(default: {config.COMMON_DEFAULTS['seed']})")
    training.add_argument("--jit-compile", choices=tuple(config.JIT_COMPILE), default=s,
                          help="XLA: auto (on a CPU unless the model has convolutions; never "
                               "under a strategy), true or false (the exact floats of Keras "
                               "fit). Decided from the model, never from timings, so a run "
                               "and its resumption compute the same bits; auto's decisions "
                               "are kept in the checkpoints, and --resume keeps them on "
                               "another machine. Recorded in config.json (default: auto)")
    training.add_argument("--max-train-samples", type=int, metavar="N", default=s,
                          help="train on the first N training samples only, for quick runs "
                               "(with --input stream: the first N records) (default: all)")
    training.add_argument("--input", choices=config.INPUTS, default=s,
                          help="arrays: the data set in memory; stream: tf.data pipelines "
                               "from verified TFRecord shards (both resume exactly) "
                               "(default: arrays)")


def add_parser(subparsers) -> None:
    """Adds `train` and its dataset sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "train", help="train one of the chapter's experiments",
        description="Train one of the chapter's experiments with the custom Trainer. Each run "
                    "writes model.keras, history.csv/.json, learning_curves.png, metrics.json, "
                    "config.json, TensorBoard logs and epoch checkpoints to its directory.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_options(parser)
    datasets = parser.add_subparsers(dest="dataset", metavar="DATASET",
                                     action=_DatasetOrExperiment)
    fashion = datasets.add_parser(
        "fashion-mnist", help="exercise 13: an MLP on Fashion-MNIST",
        description="Exercise 13 on Fashion-MNIST: Flatten -> Dense(100, relu) -> "
                    "Dense(10, softmax), sparse categorical cross-entropy, accuracy. "
                    "13a: one optimizer (default Nadam, lr 1e-2). 13b: give any --lower-*/"
                    "--upper-* option to train the lower layers and the upper layer with "
                    "different optimizers (defaults SGD 1e-4 and Nadam 1e-3).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_options(fashion)
    split = fashion.add_argument_group("exercise 13b: one optimizer per layer group")
    for side, (name, lr) in (("lower", experiments.LOWER_DEFAULTS),
                             ("upper", experiments.UPPER_DEFAULTS)):
        split.add_argument(f"--{side}-optimizer", choices=tuple(experiments.OPTIMIZERS),
                           default=argparse.SUPPRESS,
                           help=f"optimizer of the {side} layers (default: {name})")
        split.add_argument(f"--{side}-lr", type=float, metavar="RATE", default=argparse.SUPPRESS,
                           help=f"learning rate of the {side} layers (default: {lr:g})")

    housing = datasets.add_parser(
        "housing", help="the chapter's California-housing regressions",
        description="The chapter's regression experiments on California housing, with its "
                    "custom losses, metrics, layers and models. Models: "
                    + "; ".join(f"{name}: {spec.description}"
                                for name, spec in experiments.HOUSING_MODELS.items()) + ".",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_options(housing)
    regression = housing.add_argument_group("regression")
    regression.add_argument("--model", choices=tuple(experiments.HOUSING_MODELS),
                            default=argparse.SUPPRESS, help="the model (default: mlp)")
    regression.add_argument("--loss", choices=experiments.HOUSING_LOSSES,
                            default=argparse.SUPPRESS,
                            help="mse, or huber (customkeras.losses.HuberLoss) (default: mse)")
    regression.add_argument("--threshold", type=float, metavar="T", default=argparse.SUPPRESS,
                            help="threshold of the Huber loss and metric (default: 1.0)")
    regression.add_argument("--metrics", metavar="NAMES", default=argparse.SUPPRESS,
                            help="comma-separated metrics among "
                                 f"{', '.join(experiments.HOUSING_METRICS)}; huber is "
                                 "customkeras.metrics.HuberMetric (default: mae)")
    own = datasets.add_parser(
        CUSTOM, help="your own experiment: a function returning a compiled model and data",
        description="Train your own experiment: MODULE:FUNCTION or FILE.py[:FUNCTION] names a "
                    "function without arguments that returns the model and the data (see the "
                    "notes at the end of 'customkeras train --help').",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_options(own)
    datasets.choices.open_ended = True
    # `train --help` shows each experiment's own options too: the README's examples use
    # them, and `train housing --help` is not where a new user looks first.
    parser.epilog = EPILOG + "\n" + "\n".join([
        _options_help(fashion, split, "fashion-mnist",
                      "customkeras train fashion-mnist --lower-optimizer sgd --lower-lr 1e-4"),
        _options_help(housing, regression, "housing",
                      "customkeras train housing --model residual --loss huber --threshold 2"),
        f"options of 'customkeras train {CUSTOM} ...': the common options above; the "
        "function builds the rest\n  example: customkeras train my_experiment.py:build --epochs 3\n"])
    parser.set_defaults(handler=handle)


def _options_help(subparser: argparse.ArgumentParser, group, name: str, example: str) -> str:
    """The help of `group`'s options of the `train NAME` sub-command, with an example."""
    formatter = subparser._get_formatter()
    formatter.start_section(f"options of 'customkeras train {name} ...' (given after "
                            f"'{name}')")
    formatter.add_arguments(group._group_actions)
    formatter.end_section()
    return formatter.format_help().rstrip("\n") + f"\n  example: {example}\n"


def _options(args: argparse.Namespace) -> dict:
    return {key: value for key, value in vars(args).items()
            if key in config.FIELDS and key not in ("dataset", "experiment")}


def _target(args: argparse.Namespace) -> dict:
    """The dataset or experiment function named on the command line, if any."""
    if getattr(args, "experiment", None) is not None:
        return {"experiment": custom.normalize(args.experiment)}
    return {"dataset": args.dataset} if args.dataset is not None else {}


def _resume_config(args: argparse.Namespace) -> tuple[config.RunConfig, pathlib.Path]:
    from customkeras.cli import resume

    run_dir = pathlib.Path(args.resume)
    config_file = run_dir / artifacts.CONFIG_FILE
    if not config_file.is_file():
        raise CommandError(f"{run_dir} is not a run directory: it has no {artifacts.CONFIG_FILE}.")
    values = config.load(config_file, run_file=True)
    artifacts.check_config_unchanged(run_dir)
    run_config = config.resolve_run_file(config_file, values)
    # The same command line with --resume added is fine: compare values, not presence.
    given = dict(values)
    if hasattr(args, "config"):
        given.update(config.load(args.config))
    target = _target(args)
    given.update(target)
    named = target.get("experiment") or target.get("dataset")
    if named is not None and named != (run_config.experiment or run_config.dataset):
        # Before comparing options: a housing run's defaults differ from a Fashion-MNIST
        # run's (its loss, ...), which would hide the real difference.
        raise CommandError(f"{run_dir} is a {run_config.name} run, not {named}: continue it "
                           f"with 'customkeras train --resume {run_dir}' (no dataset needed), "
                           f"or start a new {named} run without --resume.")
    given.update(_options(args))
    resume.refuse_changes(run_dir, run_config, config.resolve(given))
    if hasattr(args, "output_dir") and pathlib.Path(args.output_dir).resolve() != run_dir.resolve():
        raise CommandError(f"--resume continues the run in {run_dir}; --output-dir "
                           f"{args.output_dir} would change where it is. Start a new run to "
                           "write elsewhere.")
    return config.resolve({**values, **{k: v for k, v in _options(args).items()
                                        if k in config.RESUMABLE}}), run_dir.resolve()


def _new_config(args: argparse.Namespace) -> config.RunConfig:
    values = config.load(args.config) if hasattr(args, "config") else {}
    target = _target(args)
    for key, value in target.items():
        if values.get(key) not in (None, value):
            raise CommandError(f"{args.config} describes a {values[key]} run, not {value}.")
    values.update(target)
    if values.get("dataset") is None and values.get("experiment") is None:
        raise CommandError(
            "Choose a dataset: 'customkeras train fashion-mnist' or 'customkeras train "
            "housing', or your own experiment: 'customkeras train MODULE:FUNCTION' (or give "
            "--config FILE or --resume RUN_DIR). See 'customkeras train -h'.")
    values.update(_options(args))
    return config.resolve(values)


def handle(args: argparse.Namespace) -> int:
    """Runs `customkeras train`; returns the exit status."""
    from customkeras.cli.startup import load_components

    verbose = getattr(args, "verbose", "auto")
    max_time = getattr(args, "max_time", None)
    profile = getattr(args, "profile", None)
    timeout = getattr(args, "worker_timeout", config.DEFAULT_WORKER_TIMEOUT)
    if hasattr(args, "resume"):
        load_components()  # the checks of a run directory read its checkpoints
        from customkeras.cli import cluster, run, rundir
        from customkeras.training import distribution

        run_config, run_dir = _resume_config(args)
        strategy = cluster.start_strategy(run_config.strategy, timeout)
        if not distribution.is_chief(strategy):  # the chief owns the directory
            return run.train(run_config, run_dir, resume=True, verbose=verbose, max_time=max_time,
                             profile=profile, strategy=strategy)
        with rundir.existing_run(run_dir):
            return run.train(run_config, run_dir, resume=True, verbose=verbose, max_time=max_time,
                             profile=profile,
                             strategy=strategy)
    run_config = _new_config(args)
    if run_config.strategy == "multi-worker" and not hasattr(args, "output_dir"):
        raise CommandError(
            "--strategy multi-worker needs --output-dir: the same directory for every worker "
            "(on a file system they share, for --resume to work).")
    # Every value is checked: now TensorFlow (quietly), the components and the engine.
    load_components()
    from customkeras.cli import cluster, run, rundir
    from customkeras.training import distribution

    strategy = cluster.start_strategy(run_config.strategy, timeout)
    output = getattr(args, "output_dir", None) or artifacts.default_run_dir(
        run_config.dataset or "experiment")
    if not distribution.is_chief(strategy):
        # Only the chief writes the run; this worker needs the directory for its
        # temporary checkpoint copies.
        run_dir = pathlib.Path(output).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        return run.train(run_config, run_dir, resume=False, verbose=verbose, strategy=strategy,
                         max_time=max_time, profile=profile)
    with rundir.new_run(output) as run_dir:
        return run.train(run_config, run_dir, resume=False, verbose=verbose, strategy=strategy,
                         max_time=max_time, profile=profile)
