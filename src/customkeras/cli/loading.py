"""Finding and safely loading a trained model for `evaluate` and `predict`.

Models load with `keras.saving.load_model(path, safe_mode=True)`: a `.keras` file whose
loading would run arbitrary Python (a `Lambda` layer's bytecode) is refused with an
explanation, unless the user passes `--unsafe` because they trust the file.
"""

from __future__ import annotations  # `keras.Model` annotations without importing Keras

import argparse
import dataclasses
import pathlib
import re
import zipfile

from customkeras import experiments
from customkeras.cli import artifacts, config
from customkeras.cli.errors import CommandError


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model file and, when it is a run's model, that run's configuration values."""

    path: pathlib.Path
    run_values: dict | None


def find_model(path: str) -> ModelSource:
    """Accepts a run directory (its `model.keras`) or a `.keras` file.

    A run's files are read, never locked: another process may train other runs meanwhile.

    Raises:
        CommandError: nothing loadable at `path`; an unfinished run (no manifest); a run
            whose `config.json` is damaged or was edited after it finished (exit 1).
    """
    location = pathlib.Path(path)
    model_path = location / artifacts.MODEL_FILE if location.is_dir() else location
    run_dir = model_path.parent
    is_run = (run_dir / artifacts.CONFIG_FILE).is_file()
    if not model_path.is_file():
        hint = (f" (the run has no {artifacts.MODEL_FILE} yet: it did not finish; "
                f"resume it with 'customkeras train --resume {location}')"
                if location.is_dir() and is_run else "")
        raise CommandError(f"No model at {model_path}{hint}.", exit_code=1)
    if not is_run:
        return ModelSource(model_path, None)
    run_values = config.load(run_dir / artifacts.CONFIG_FILE, run_file=True)
    if artifacts.read_manifest(run_dir) is None:
        raise CommandError(
            f"{run_dir} did not finish: it has no {artifacts.MANIFEST_FILE}, so its "
            f"{artifacts.MODEL_FILE} cannot be checked. Finish it with 'customkeras train "
            f"--resume {run_dir}'.", exit_code=1)
    artifacts.check_config_unchanged(run_dir)
    if run_values.get("experiment") is not None:
        raise CommandError(
            f"{run_dir} trained your experiment {run_values['experiment']}: its test results "
            f"are in {artifacts.METRICS_FILE}; load the model in Python with "
            "keras.saving.load_model (evaluate and predict use the built-in datasets).",
            exit_code=1)
    return ModelSource(model_path, run_values)


def _check_archive(path: pathlib.Path) -> None:
    # Keras reports a truncated .keras file as "File not found": say what it is.
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CommandError(f"{path} is damaged or truncated: it is not a valid .keras "
                           f"archive ({error}). Retrain, or restore it from a backup.",
                           exit_code=1) from None
    if bad is not None:
        raise CommandError(f"{path} is damaged: its member {bad} fails its CRC check. "
                           "Retrain, or restore it from a backup.", exit_code=1)


def load_model(path: pathlib.Path, unsafe: bool = False) -> keras.Model:
    """Loads a `.keras` model in safe mode (or not, if `unsafe`), after checking its checksum.

    Raises:
        CommandError: the file is damaged or truncated, needs unsafe deserialization
            (and `unsafe` is False), or uses classes that are not registered.
    """
    import keras

    artifacts.verify_manifest(path)
    _check_archive(path)
    try:
        return keras.saving.load_model(path, safe_mode=not unsafe)
    except ValueError as error:
        if "safe_mode" in str(error) or "unsafe" in str(error).lower():
            raise CommandError(
                f"Refusing to load {path}: it needs unsafe deserialization, which would run "
                "Python code stored in the file (typically a Lambda layer), and a model file "
                "from an untrusted source could do anything on this machine. customkeras's own "
                "models never need this. If you trust this file, add --unsafe. Keras said: "
                f"{_innermost(error)}", exit_code=1) from None
        raise _unknown_object(path, error) or CommandError(
            f"Cannot load {path}: {_innermost(error)}", exit_code=1) from None
    except TypeError as error:
        raise _unknown_object(path, error) or CommandError(
            f"Cannot load {path}: {_innermost(error)} If the model uses custom classes, they "
            "must be registered (keras.saving.register_keras_serializable) and imported "
            "first.", exit_code=1) from None
    except (OSError, zipfile.BadZipFile, KeyError) as error:
        raise CommandError(f"Cannot load {path}: the file is damaged or not a .keras model "
                           f"({error}).", exit_code=1) from None


# Keras's innermost words when a config names something it will not load.
_NOT_LOCATED = re.compile(r"Could not locate (class|function) '([^']+)'.*?Full object config: "
                          r"(\{.*?\})\s*$", re.DOTALL)
_MODULE = re.compile(r"'module': '([^']+)'")


def _innermost(error: BaseException, limit: int = 300) -> str:
    """The last "Exception encountered:" part of Keras's nested message, on one line."""
    text = str(error).rsplit("Exception encountered:", 1)[-1]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _unknown_object(path: pathlib.Path, error: BaseException) -> CommandError | None:
    """A model file whose config names an object that is neither Keras's nor registered
    (e.g. `os.system`, `subprocess.Popen`): safe mode blocked it; say so in one line."""
    found = _NOT_LOCATED.search(str(error))
    if found is None:
        return None
    kind, name, config = found.groups()
    module = _MODULE.search(config)
    where = f"{module.group(1)}.{name}" if module else name
    return CommandError(
        f"Refusing to load {path}: its configuration names the {kind} {where}, which is not a "
        "Keras or registered customkeras object, so it was blocked (a model file must not "
        "make the loader call arbitrary code). If the file is yours and uses your own "
        "classes, load it in a script that imports and registers them "
        "(keras.saving.register_keras_serializable).", exit_code=1)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `evaluate` and `predict`."""
    parser.add_argument("--dataset", choices=experiments.DATASETS,
                        help="the dataset whose test set to use (default: the run's dataset)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory holding the data (default: the run's --data-dir, "
                             "then $CUSTOMKERAS_DATA_DIR, caches and downloads)")
    parser.add_argument("--unsafe", action="store_true",
                        help="allow loading a model that needs unsafe deserialization "
                             "(runs code stored in the file: only for files you trust)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def dataset_and_data_dir(args: argparse.Namespace, source: ModelSource) -> tuple[str, str | None]:
    """The dataset and data directory to use: options first, then the run's config."""
    run_values = source.run_values or {}
    dataset = args.dataset or run_values.get("dataset")
    if dataset is None:
        raise CommandError(f"{source.path} is not inside a run directory: give --dataset "
                           f"({' or '.join(experiments.DATASETS)}).")
    if run_values.get("dataset") not in (None, dataset):
        raise CommandError(f"{source.path} was trained on {run_values['dataset']}, "
                           f"not {dataset}.")
    return dataset, args.data_dir or run_values.get("data_dir")


def load_data(dataset: str, data_dir: str | None = None,
              max_train_samples: int | None = None) -> experiments.Splits:
    """`experiments.load_splits`, with a missing or damaged dataset as a `CommandError`."""
    from customkeras import datasets

    try:
        return experiments.load_splits(dataset, data_dir, max_train_samples)
    except datasets.DatasetError as error:
        raise CommandError(f"Cannot load the {dataset} data.\n{error}", exit_code=1) from None


def load_streams(dataset: str, batch_size: int, seed: int, data_dir: str | None = None,
                 max_train_samples: int | None = None, epoch=None):
    """`train --input stream`: the train (shuffled by `seed`; its first `max_train_samples`
    records only, if given), valid and test `tf.data` pipelines of `dataset`, read from
    verified TFRecord shards.

    `epoch` (an int64 `tf.Variable`, or None) makes each training pass's order a function
    of `(seed, epoch)`, read when the pass starts (see `datasets.stream_fashion_mnist`);
    None reshuffles at each pass."""
    from customkeras import datasets

    stream = (datasets.stream_fashion_mnist if dataset == experiments.FASHION_MNIST
              else datasets.stream_california_housing)
    try:
        return (stream("train", batch_size=batch_size, shuffle=True, seed=seed,
                       data_dir=data_dir, max_examples=max_train_samples, epoch=epoch),
                stream("valid", batch_size=batch_size, data_dir=data_dir),
                stream("test", batch_size=batch_size, data_dir=data_dir))
    except datasets.DatasetError as error:
        raise CommandError(f"Cannot load the {dataset} data.\n{error}", exit_code=1) from None
