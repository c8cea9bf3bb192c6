"""A training run's full configuration: defaults, validation and the `config.json` format.

Values come from three places, later ones winning: the defaults of the dataset (and of
the housing model), a `--config` file, and the options typed on the command line. The
resolved `RunConfig` is written to the run's `config.json`; `--config` on that file
repeats the run.
"""

import dataclasses
import json
import pathlib
from collections.abc import Mapping

from customkeras import _checks, experiments
from customkeras.cli.errors import CommandError

# `customkeras.training.STRATEGIES`, repeated so that checking a configuration does not
# import the training package (TensorFlow); tests/test_cli_startup.py checks they agree.
STRATEGIES = ("default", "mirrored", "multi-worker")
# How long a multi-worker run waits for the others (`--worker-timeout`), in seconds.
DEFAULT_WORKER_TIMEOUT = 600.0

CONFIG_FORMAT = "customkeras-run-config"
CONFIG_VERSION = 1

FASHION_DEFAULTS = {"optimizer": "nadam", "lr": 1e-2}
COMMON_DEFAULTS = {"model": "mlp", "epochs": 5, "batch_size": 32, "seed": 42}
HOUSING_DEFAULTS = {"loss": "mse", "threshold": 1.0, "metrics": ("mae",)}
SPLIT_KEYS = ("lower_optimizer", "lower_lr", "upper_optimizer", "upper_lr")
# What may change when a run is resumed: it does not change what is computed.
RESUMABLE = ("epochs", "data_dir", "strategy", "validate_every", "checkpoint_every")
# Where the training data comes from: arrays in memory (exact resume), or tf.data
# pipelines read from verified TFRecord shards (customkeras.datasets.stream_*).
INPUTS = ("arrays", "stream")
# `--jit-compile`: the Trainer's `jit_compile` (XLA changes the floats, so a resumed run
# keeps it).
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}
# Counts fit TensorFlow's int32 step and epoch counters.
COUNT_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run (not where its files go).

    `optimizer`/`lr` are set for a single-optimizer run; `lower_*`/`upper_*` instead
    for exercise 13b's two optimizers (Fashion-MNIST only). `strategy` (a name in
    `customkeras.training.STRATEGIES`) says where it runs; the results do not depend
    on it (to float rounding), so a resumed run may change it. `experiment` names a
    user's own experiment function (`MODULE:FUNCTION` or `FILE.py:FUNCTION`) instead
    of a dataset; its model, loss, optimizer and metrics are the function's.
    """

    dataset: str | None
    model: str | None
    epochs: int
    batch_size: int
    seed: int
    loss: str | None
    metrics: tuple[str, ...]
    optimizer: str | None = None
    lr: float | None = None
    lower_optimizer: str | None = None
    lower_lr: float | None = None
    upper_optimizer: str | None = None
    upper_lr: float | None = None
    threshold: float | None = None
    max_train_samples: int | None = None
    data_dir: str | None = None
    strategy: str = "default"
    experiment: str | None = None
    input: str = "arrays"
    jit_compile: str = "auto"
    validate_every: int | None = None
    checkpoint_every: int | None = None

    @property
    def split_optimizers(self) -> bool:
        """Whether this is exercise 13b: one optimizer per layer group."""
        return self.lower_optimizer is not None

    def experiment_arguments(self) -> dict:
        """The keyword arguments of `customkeras.experiments.build_experiment`."""
        names = ("model", "optimizer", "lr", *SPLIT_KEYS, "loss", "threshold", "metrics")
        return {name: getattr(self, name) for name in names}

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["metrics"] = list(self.metrics)
        return values

    def fixed_values(self) -> dict:
        """The values a resumed run must keep: all but `RESUMABLE`."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUMABLE}

    @property
    def name(self) -> str:
        """The dataset, or the experiment's reference."""
        return self.experiment or self.dataset


FIELDS = tuple(field.name for field in dataclasses.fields(RunConfig))


def _check_choice(key: str, value, choices) -> None:
    checked(_checks.one_of, key, value, tuple(choices))


def checked(check, *args):
    """Runs a `customkeras._checks` check; its TypeError/ValueError becomes a usage error."""
    try:
        return check(*args)
    except (TypeError, ValueError) as error:
        raise CommandError(str(error)) from None


def _parse_metrics(value) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:  # `--metrics ""` would silently mean no metrics at all
            raise CommandError("`metrics` must name at least one metric, comma-separated "
                               f"(e.g. mae,huber); received metrics={value!r}")
        value = names
    if not isinstance(value, (list, tuple)) or not all(isinstance(n, str) for n in value):
        raise CommandError("`metrics` must be a comma-separated list of names; received "
                           f"metrics={value!r}")
    if len(set(value)) != len(value):
        raise CommandError("`metrics` must not list a name twice; received "
                           f"metrics={','.join(value)!r}")
    return tuple(value)


def resolve(values: Mapping) -> RunConfig:
    """Fills in defaults and validates `values` (a `--config` file merged with options).

    Args:
        values: any subset of `FIELDS`; `dataset` is required.

    Raises:
        CommandError: an unknown key or name, a value out of range, or a combination
            that does not make sense (e.g. `optimizer` together with `lower_optimizer`).
    """
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise CommandError(
            f"Unknown configuration key(s) {', '.join(unknown)}. Valid keys: {', '.join(FIELDS)}."
        )
    dataset = values.get("dataset")
    given = {key: value for key, value in values.items() if value is not None}
    if values.get("experiment") is not None:
        return _resolve_experiment(given)
    _check_choice("dataset", dataset, experiments.DATASETS)
    resolved = {**COMMON_DEFAULTS, **given}

    if dataset == experiments.FASHION_MNIST:
        _check_choice("model", resolved["model"], experiments.FASHION_MODELS)
        for key in ("threshold",):
            if key in given:
                raise CommandError(f"{key} applies to the housing dataset only.")
        resolved.setdefault("loss", experiments.FASHION_LOSS)
        resolved.setdefault("metrics", experiments.FASHION_METRICS)
        _check_choice("loss", resolved["loss"], (experiments.FASHION_LOSS,))
        split = any(key in given for key in SPLIT_KEYS)
        if split:
            if "optimizer" in given or "lr" in given:
                raise CommandError(
                    "Give either --optimizer/--lr (one optimizer, exercise 13a) or "
                    "--lower-*/--upper-* (two optimizers, exercise 13b), not both."
                )
            for side, (name, lr) in (("lower", experiments.LOWER_DEFAULTS),
                                     ("upper", experiments.UPPER_DEFAULTS)):
                resolved.setdefault(f"{side}_optimizer", name)
                resolved.setdefault(f"{side}_lr", lr)
        else:
            for key, default in FASHION_DEFAULTS.items():
                resolved.setdefault(key, default)
    else:
        _check_choice("model", resolved["model"], tuple(experiments.HOUSING_MODELS))
        for key in SPLIT_KEYS:
            if key in given:
                raise CommandError(
                    f"{key} (exercise 13b's two optimizers) applies to fashion-mnist only."
                )
        spec = experiments.HOUSING_MODELS[resolved["model"]]
        resolved.setdefault("optimizer", spec.optimizer)
        resolved.setdefault("lr", spec.learning_rate)
        for key, default in HOUSING_DEFAULTS.items():
            resolved.setdefault(key, default)
        _check_choice("loss", resolved["loss"], experiments.HOUSING_LOSSES)

    resolved.setdefault("input", "arrays")
    _check_choice("input", resolved["input"], INPUTS)
    resolved["metrics"] = _parse_metrics(resolved["metrics"])
    metric_choices = (experiments.FASHION_METRICS if dataset == experiments.FASHION_MNIST
                      else experiments.HOUSING_METRICS)
    for name in resolved["metrics"]:
        _check_choice("metrics", name, metric_choices)
    for key in ("optimizer", "lower_optimizer", "upper_optimizer"):
        if key in resolved:
            _check_choice(key, resolved[key], tuple(experiments.OPTIMIZERS))
    for key in ("lr", "lower_lr", "upper_lr", "threshold"):
        if key in resolved:
            resolved[key] = checked(_checks.positive_float, key, resolved[key])
    return _common(resolved)


def _common(resolved: dict) -> RunConfig:
    """Checks what every run has (counts, seed, strategy) and makes the `RunConfig`."""
    resolved.setdefault("strategy", "default")
    _check_choice("strategy", resolved["strategy"], STRATEGIES)
    resolved.setdefault("jit_compile", "auto")
    _check_choice("jit_compile", resolved["jit_compile"], tuple(JIT_COMPILE))
    for key in ("epochs", "batch_size", "max_train_samples"):
        if key in resolved:
            resolved[key] = checked(_checks.integer, key, resolved[key], 1, COUNT_MAX)
    for key in ("validate_every", "checkpoint_every"):  # steps; they change no number
        if resolved.get(key) is not None:
            resolved[key] = checked(_checks.integer, key, resolved[key], 1, COUNT_MAX)
    resolved["seed"] = checked(_checks.seed, "seed", resolved["seed"])
    if "data_dir" in resolved:
        # A directory name; not any JSON value made into one (`"data_dir": 5` is no "5").
        resolved["data_dir"] = checked(_checks.instance, "data_dir", resolved["data_dir"],
                                       str, "a directory name (a string)")
    return RunConfig(**resolved)


EXPERIMENT_KEYS = ("experiment", "epochs", "batch_size", "seed", "max_train_samples",
                   "data_dir", "strategy", "jit_compile", "validate_every", "checkpoint_every")


def _resolve_experiment(given: dict) -> RunConfig:
    reference = checked(_checks.instance, "experiment", given["experiment"], str, "a string")
    # A config.json of such a run also holds the built-in fields, empty or at defaults.
    unset = {"metrics": ((), []), "input": ("arrays",)}
    others = sorted(key for key in set(given) - set(EXPERIMENT_KEYS)
                    if given[key] not in unset.get(key, ()))
    if others:
        raise CommandError(
            f"{', '.join(others)} cannot be given with an experiment function ({reference}): "
            "it builds its own model, loss, optimizer and metrics. Only "
            f"{', '.join(EXPERIMENT_KEYS[1:])} apply.")
    resolved = {**COMMON_DEFAULTS, **given, "dataset": None, "model": None, "loss": None,
                "metrics": (), "input": "arrays"}
    return _common(resolved)


def to_json(config: RunConfig, **run_info) -> str:
    """The text of `config.json`: the resolved configuration plus facts about the run."""
    document = {"format": CONFIG_FORMAT, "version": CONFIG_VERSION,
                "config": config.to_dict(), "run": run_info}
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows (expected a finite number)")


def load(path: str | pathlib.Path, *, run_file: bool = False) -> dict:
    """Reads the configuration values of a `config.json` (or a flat JSON object of them).

    Args:
        path: the file.
        run_file: whether it is a run directory's own `config.json` (then a bad file
            is a damaged run, exit status 1) rather than one the user gave with
            `--config` (bad usage, exit status 2). Defaults to False.

    Returns:
        The raw values, to be merged with command-line options and passed to `resolve`.

    Raises:
        CommandError: the file is missing, is not strict JSON (`NaN` and `Infinity`
            are refused), or has the wrong format.
    """
    path = pathlib.Path(path)
    code, what = (1, "damaged") if run_file else (2, "invalid")
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise CommandError(f"Configuration file {path} does not exist.", exit_code=code) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CommandError(f"Configuration file {path} is {what}: {error}",
                           exit_code=code) from None
    if not isinstance(document, dict):
        raise CommandError(f"Configuration file {path} is {what}: it must hold a JSON object.",
                           exit_code=code)
    if "format" in document:
        if document["format"] != CONFIG_FORMAT or document.get("version") != CONFIG_VERSION:
            raise CommandError(
                f"{path}{' is damaged: it' if run_file else ''} is not a customkeras run "
                "configuration (format "
                f"{document.get('format')!r} version {document.get('version')!r}; expected "
                f"{CONFIG_FORMAT!r} version {CONFIG_VERSION}).", exit_code=code)
        document = document.get("config")
        if not isinstance(document, dict):
            raise CommandError(f"Configuration file {path} is {what}: it has no 'config' "
                               "object.", exit_code=code)
    return document


def resolve_run_file(path: pathlib.Path, values: Mapping | None = None) -> RunConfig:
    """`resolve` for a run's own `config.json`: any problem is a damaged run (exit 1)."""
    try:
        return resolve(values if values is not None else load(path, run_file=True))
    except CommandError as error:
        if error.exit_code == 1:
            raise
        raise CommandError(f"Configuration file {path} is damaged: {error}",
                           exit_code=1) from None
