"""`customkeras train MODULE:FUNCTION` (or `FILE.py[:FUNCTION]`): a user's own experiment.

The function takes no arguments (the command seeds Keras first, and calls it inside the
`--strategy`'s scope) and returns the model and the data, either as a dict

    {"model": model, "train": (x, y), "validation": (x, y), "test": (x, y)}

or as a tuple `(model, train[, validation[, test]])`. The model is compiled (its loss,
optimizer and metrics are used) or overrides `train_step`; `validation` and `test` are
optional; each data entry is `(x, y)`, `(x, y, sample_weight)` or anything `Trainer.fit`
takes as `x` (a `tf.data.Dataset`, a generator, a `keras.utils.PyDataset`).
"""

from __future__ import annotations  # `keras.Model` annotations without importing Keras

import dataclasses
import inspect
import pathlib

from customkeras._user_code import import_source
from customkeras.cli.errors import CommandError

DEFAULT_FUNCTION = "experiment"
KEYS = ("model", "train", "validation", "test")


def looks_like_reference(text: str) -> bool:
    """Whether a `train` argument names an experiment function rather than a dataset."""
    return ":" in text or text.endswith(".py")


def normalize(reference: str) -> str:
    """`MODULE:FUNCTION`, or `/absolute/FILE.py:FUNCTION` (so that --resume works anywhere).

    Raises:
        CommandError: not of the form `MODULE:FUNCTION` or `FILE.py[:FUNCTION]`.
    """
    source, _, function = reference.rpartition(":") if ":" in reference else (reference, "", "")
    if source.endswith(".py"):
        path = pathlib.Path(source)
        if not path.is_file():
            raise CommandError(f"Experiment file {source} does not exist (from {reference!r}).")
        return f"{path.resolve()}:{function or DEFAULT_FUNCTION}"
    if not source or not function or not all(p.isidentifier() for p in source.split(".")):
        raise CommandError(f"Expected MODULE:FUNCTION or FILE.py[:FUNCTION]; received "
                           f"{reference!r}.")
    return reference


def load_function(reference: str):
    """Imports the experiment function `reference` names (already `normalize`d)."""
    source, _, name = reference.rpartition(":")
    try:
        module = import_source(source)
    except Exception as error:  # the user's module: any failure is "cannot import"
        raise CommandError(f"Cannot import {source} (from {reference!r}): "
                           f"{type(error).__name__}: {error}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise CommandError(f"{source} has no function {name!r} (from {reference!r}).")
    return function


@dataclasses.dataclass
class CustomExperiment:
    """What a user's experiment function returned, checked."""

    model: keras.Model
    train: object
    validation: object = None
    test: object = None


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: message` of an exception on one line (at most `limit` characters)."""
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _call(reference: str, function):
    """Calls the experiment function; its failures become one-line errors (exit status 1)."""
    try:
        inspect.signature(function).bind()
    except TypeError as error:
        raise CommandError(
            f"The experiment function {reference} must take no arguments ({error}): give its "
            "parameters default values, or wrap it in a function without any.",
            exit_code=1) from None
    except ValueError:  # no signature to inspect (a builtin): let the call tell
        pass
    try:
        return function()
    except Exception as error:  # the user's code: report it, not our traceback
        raise CommandError(f"The experiment function {reference} raised {one_line(error)}. "
                           "Fix it, then run the same command again.", exit_code=1) from None


def _wrong(reference: str, what: str) -> CommandError:
    return CommandError(
        f"The experiment function {reference} returned {what}; expected a dict with "
        "'model' and 'train' (optionally 'validation', 'test'), or a tuple "
        "(model, train[, validation[, test]]).", exit_code=1)


def build(reference: str) -> CustomExperiment:
    """Calls the experiment function and checks what it returns.

    Raises:
        CommandError: the reference cannot be loaded, or the function returned
            something else than a model and data.
    """
    import keras

    returned = _call(reference, load_function(reference))
    if isinstance(returned, dict):
        unknown = sorted(set(returned) - set(KEYS))
        if unknown or "model" not in returned or "train" not in returned:
            raise _wrong(reference, f"a dict with keys {sorted(returned)}")
        parts = dict(returned)
    elif isinstance(returned, tuple) and 2 <= len(returned) <= 4:
        parts = dict(zip(KEYS, returned))
    else:
        raise _wrong(reference, f"{type(returned).__name__} {returned!r:.60}")
    if not isinstance(parts["model"], keras.Model):
        raise _wrong(reference, f"a model of type {type(parts['model']).__name__}")
    for key in KEYS[1:]:
        value = parts.get(key)
        if isinstance(value, list):
            parts[key] = value = tuple(value)
        if isinstance(value, tuple) and not 1 <= len(value) <= 3:
            raise _wrong(reference, f"{key} data as a tuple of {len(value)} items "
                                    "(expected (x, y) or (x, y, sample_weight))")
    return CustomExperiment(**parts)


def is_arrays(data) -> bool:
    """Whether `data` is `(x, y[, w])` of arrays (which can be truncated and sliced)."""
    return isinstance(data, tuple) and all(
        hasattr(part, "shape") and hasattr(part, "__getitem__") for part in data)


def truncate(data, max_samples: int | None):
    """The first `max_samples` samples of array data (`--max-train-samples`)."""
    if max_samples is None:
        return data
    if not is_arrays(data):
        raise CommandError("--max-train-samples applies to array data only; the experiment's "
                           "training data is a dataset: make it smaller in the function.")
    return tuple(part[:max_samples] for part in data)


def fit_arguments(data) -> tuple[tuple, dict]:
    """`Trainer.fit`/`evaluate` positional and keyword arguments for one data entry."""
    if isinstance(data, tuple):
        x, y, *weights = data
        return (x, y), ({"sample_weight": weights[0]} if weights else {})
    return (data,), {}


def build_model(model: keras.Model, train, reference: str = "the experiment") -> None:
    """Creates an unbuilt model's variables from one training sample (checkpoints need them).

    Raises:
        CommandError: (exit status 1) the model fails on that sample.
    """
    if model.built:
        return
    import numpy as np

    try:
        if is_arrays(train):
            model(np.asarray(train[0][:1]))
        else:
            batch = next(iter(train))
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    except Exception as error:  # the user's model and data
        raise CommandError(f"The model of {reference} fails on its first training sample: "
                           f"{one_line(error)}. Make the function's data fit its model.",
                           exit_code=1) from None
