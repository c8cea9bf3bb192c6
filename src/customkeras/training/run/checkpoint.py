"""The resumable state of a training run, and how it is written and found again.

A checkpoint (`tf.train.Checkpoint`) holds the model's weights, the optimizers' state,
the number of completed epochs, the history of those epochs, the random state (the
layers' seed generators plus Python's and NumPy's global generators), an optional
metadata string, the XLA decisions of `jit_compile="auto"` that the run's numbers
followed (`xla_choice`: they depend on the machine, so a resume adopts them), and any
extra trackables (e.g. a `tf.data` iterator). Because the
`Trainer` shuffles each epoch as a function of (seed, epoch), restoring one and starting
at its epoch reproduces an uninterrupted run exactly.

Checkpoints are `ckpt-<completed epochs>` files. The files are the truth: the
`checkpoint` state file is kept up to date for TensorFlow's tools, but a missing or
damaged one is no reason to start again, and restoring tries each `ckpt-N` from the
newest down, reporting every one it had to skip and why.

In a multi-worker run every worker saves (saving may read variables collectively, so all
must take part), but only the chief's checkpoints are kept: the others write theirs to a
temporary directory and delete it at once, as TensorFlow's own multi-worker checkpointing
does (`workertemp_<task id>`). Every worker restores from the chief's directory, which
must therefore be visible to all of them (a shared file system, or one machine).
"""

import dataclasses
import json
import os
import pathlib
import random
import re
import shutil
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from customkeras import _checks
from customkeras.training.run.errors import CheckpointError, CheckpointWriteError

History = dict[str, list[float]]
PREFIX = "ckpt"
STATE_FILE = "checkpoint"  # TensorFlow's name for the file naming the latest checkpoint
_INDEX = re.compile(rf"^{PREFIX}-(\d+)\.index$")
# Any file of a checkpoint: its `.index` or a `.data-*` shard.
_FILE = re.compile(rf"^{PREFIX}-(\d+)\.(index|data-\d+-of-\d+)$")


def _numbers(directory: pathlib.Path, pattern: re.Pattern = _FILE) -> list[int]:
    """The N of every `ckpt-N` with a file matching `pattern` in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = (pattern.match(path.name) for path in directory.iterdir())
    return sorted({int(match.group(1)) for match in found if match})
_RESERVED = ("model", "optimizers", "seed_states", "completed_epochs", "history",
             "rng_state", "metadata", "xla_decisions")
# The XLA decisions' entry; checkpoints written before it was added have none.
_XLA_KEY = "xla_decisions/.ATTRIBUTES/VARIABLE_VALUE"


def _rng_state() -> str:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return json.dumps({
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "python": [version, list(state), gauss],
    })


def _set_rng_state(text: str) -> None:
    if not text:
        return
    state = json.loads(text)
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


@dataclasses.dataclass(frozen=True)
class RestoredCheckpoint:
    """What `RunCheckpoint.restore` brought back.

    Attributes:
        completed_epochs: the number of whole epochs the checkpoint was taken after.
        history: `{name: [value per completed epoch]}`.
        metadata: the string saved with it (`""` when none).
        path: the checkpoint's path prefix, e.g. `".../ckpt-3"`.
        skipped: `(path, reason)` for each newer checkpoint that could not be read.
        xla: `{kind: bool}`, the XLA decisions of `jit_compile="auto"` the run made
            (`TrainingState.state_dict()["xla"]`); empty when none was recorded.
    """

    completed_epochs: int
    history: History
    metadata: str
    path: str
    skipped: tuple[tuple[str, str], ...] = ()
    xla: dict = dataclasses.field(default_factory=dict)


class RunCheckpoint:
    """The resumable state of one training run, in `directory`.

    Args:
        directory: where the checkpoint files go (created on first save).
        model: the model being trained (built: its variables must exist).
        optimizers: every optimizer object holding training state, e.g. the Trainer's
            optimizer and, for per-group optimizers, each group's optimizer.
            Defaults to none.
        extra: more trackables to save and restore with the run, by name, e.g.
            `{"iterator": iter(dataset)}` for a `tf.data` iterator's position.
            Defaults to none.
        max_to_keep: how many recent checkpoints to keep. Defaults to 2, so a damaged
            latest checkpoint can fall back to the one before.
        temporary_directory: None for the process that keeps the checkpoints (the
            chief); for another worker of a multi-worker run, where its copy of each
            save goes before being deleted. Defaults to None.

    Example:

    ```python
    checkpoint = RunCheckpoint(run_dir / "checkpoints", model, [optimizer])
    restored = checkpoint.restore()  # None the first time
    ...
    checkpoint.save(completed_epochs=1, history={"loss": [0.5]})
    ```
    """

    def __init__(self, directory: str | os.PathLike, model: keras.Model,
                 optimizers: Sequence = (), *, extra: Mapping | None = None,
                 max_to_keep: int = 2, temporary_directory: str | os.PathLike | None = None):
        _checks.instance("model", model, keras.Model, "a keras.Model")
        self._max_to_keep = _checks.positive_int("max_to_keep", max_to_keep)
        extra = dict(extra or {})
        clashes = sorted(set(extra) & set(_RESERVED))
        if clashes:
            raise ValueError(f"`extra` must not use the reserved names {_RESERVED}; "
                             f"received extra names {clashes}")
        self.directory = pathlib.Path(directory)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self._history = tf.Variable("{}", dtype=tf.string, trainable=False, name="history")
        self._rng = tf.Variable("", dtype=tf.string, trainable=False, name="rng_state")
        self._metadata = tf.Variable("", dtype=tf.string, trainable=False, name="metadata")
        self._xla = tf.Variable("{}", dtype=tf.string, trainable=False, name="xla_decisions")
        weight_ids = {id(weight) for weight in model.weights}
        # Seed-generator states are model variables but not weights; track them by name.
        seed_states = [v for v in model.variables if id(v) not in weight_ids]
        objects = dict(model=model, optimizers=list(optimizers), seed_states=seed_states,
                       completed_epochs=self._epoch, history=self._history,
                       rng_state=self._rng, metadata=self._metadata, **extra)
        self._checkpoint = tf.train.Checkpoint(**objects, xla_decisions=self._xla)
        # For checkpoints written before the XLA decisions were recorded.
        self._checkpoint_without_xla = tf.train.Checkpoint(**objects)
        # Created now (else lazily by a restore), so that what is saved is what is restored.
        _ = self._checkpoint.save_counter
        _ = self._checkpoint_without_xla.save_counter
        self._temporary = None if temporary_directory is None else pathlib.Path(
            temporary_directory)
        self._saved = None  # the last save, as a path prefix in `directory`
        self._discarded = set()  # unreadable checkpoints newer than the one restored
        self.remove_temporary()  # a non-chief worker's copy, left by a kill while saving

    @property
    def temporary_directory(self) -> pathlib.Path | None:
        """Where a non-chief worker writes its copies (None on the chief)."""
        return self._temporary

    def _prefix(self, number: int) -> str:
        return os.fspath(self.directory / f"{PREFIX}-{number}")

    def numbers(self) -> list[int]:
        """The numbers of the `ckpt-N` checkpoints found in the directory, oldest first.

        A checkpoint with any of its files counts: one whose `.index` is lost is then
        reported as skipped when restoring, not silently passed over.
        """
        return _numbers(self.directory)

    @property
    def latest(self) -> str | None:
        """Path prefix of this object's last save, else of the newest checkpoint file."""
        if self._saved is not None:
            return self._saved
        numbers = self.numbers()
        return self._prefix(numbers[-1]) if numbers else None

    def save(self, completed_epochs: int, history: Mapping[str, Sequence[float]], *,
             metadata: str = "", number: int | None = None,
             xla: Mapping[str, bool] | None = None) -> str:
        """Writes `ckpt-<number>`, then deletes all but the newest `max_to_keep`.

        Args:
            completed_epochs: the number of whole epochs trained.
            history: `{name: [value per completed epoch]}`.
            metadata: any string to keep with it (e.g. the run's configuration).
                Defaults to `""`.
            number: the checkpoint's number, increasing along a run. Defaults to
                `completed_epochs` (mid-epoch checkpoints number their steps).
            xla: `{kind: bool}`, the XLA decisions of `jit_compile="auto"` made so far
                (`TrainingState.state_dict().get("xla")`), read back as
                `restored.xla`. Defaults to None (none).

        Returns:
            The checkpoint's path prefix (on a non-chief worker, the chief's).

        Raises:
            CheckpointWriteError: the checkpoint could not be written (e.g. no space
                left on the device); the checkpoints written before are kept.
        """
        completed_epochs = _checks.integer("completed_epochs", completed_epochs, 0)
        number = completed_epochs if number is None else _checks.integer("number", number, 0)
        self._epoch.assign(completed_epochs)
        self._history.assign(json.dumps({k: [float(x) for x in v] for k, v in history.items()}))
        self._rng.assign(_rng_state())
        self._metadata.assign(metadata)
        self._xla.assign(json.dumps({str(k): bool(v) for k, v in (xla or {}).items()},
                                    sort_keys=True))
        prefix = self._prefix(number)
        if self._temporary is not None:
            try:
                self._write(os.fspath(self._temporary / f"{PREFIX}-{number}"))
            finally:
                self.remove_temporary()
            self._saved = prefix
            return prefix
        self._write(prefix)
        self._saved = prefix
        self._sweep(number)
        return prefix

    def _write(self, prefix: str) -> None:
        try:
            self._checkpoint.write(prefix)
        except (tf.errors.OpError, OSError) as error:
            shutil.rmtree(f"{prefix}_temp", ignore_errors=True)
            raise CheckpointWriteError(
                f"Cannot write the checkpoint {prefix}: {_first_line(error)}",
                path=prefix) from error

    def _sweep(self, newest: int) -> None:
        """Records the state file and deletes checkpoints beyond `max_to_keep`."""
        numbers = self.numbers()
        kept = [n for n in numbers if n <= newest][-self._max_to_keep:]
        # Older than the newest kept, or unreadable ones from a future this run replaced.
        deleted = [n for n in numbers if (n < kept[0]) or (n > newest and n in self._discarded)]
        # For TensorFlow's tools (tf.train.latest_checkpoint); restoring does not need it.
        # Written as CheckpointManager writes it (text proto, relative paths), atomically.
        lines = [f'model_checkpoint_path: "{PREFIX}-{newest}"']
        lines += [f'all_model_checkpoint_paths: "{PREFIX}-{n}"' for n in kept]
        state = self.directory / STATE_FILE
        temporary = self.directory / f".{STATE_FILE}.tmp"
        try:
            temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(temporary, state)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise CheckpointWriteError(f"Cannot write {state}: {error.strerror or error}",
                                       path=state) from error
        for number in deleted:
            # The index first: a kill in between leaves data without an index, which is
            # no checkpoint, and which `remove_stale_files` deletes later.
            paths = sorted(self.directory.glob(f"{PREFIX}-{number}.*"),
                           key=lambda path: path.suffix != ".index")
            for path in paths:
                path.unlink(missing_ok=True)
            self._discarded.discard(number)

    def remove_temporary(self) -> None:
        """Deletes a non-chief worker's temporary checkpoint directory, if any."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def remove_stale_files(self) -> list[pathlib.Path]:
        """Deletes what a process killed while saving left (see `remove_stale_files`)."""
        return remove_stale_files(self.directory)

    def restore(self) -> RestoredCheckpoint | None:
        """Restores the newest readable checkpoint, found from the files.

        Returns:
            A `RestoredCheckpoint`, or `None` when the directory has no checkpoint.

        Raises:
            CheckpointError: no checkpoint can be read, or they do not fit this model
                (e.g. it was built with other settings).
        """
        failures = []
        for number in reversed(self.numbers()):
            path = self._prefix(number)
            if not os.path.isfile(f"{path}.index"):
                failures.append((path, f"its {PREFIX}-{number}.index file is missing"))
                continue
            try:
                with_xla = tf.train.load_checkpoint(path).has_tensor(_XLA_KEY)
                if not with_xla:
                    self._xla.assign("{}")
                status = (self._checkpoint if with_xla
                          else self._checkpoint_without_xla).restore(path)
                status.assert_existing_objects_matched()
                history = json.loads(self._history.numpy().decode("utf-8"))
                xla = json.loads(self._xla.numpy().decode("utf-8"))
                if not isinstance(xla, dict):
                    raise TypeError(f"its XLA decisions are not a JSON object: {xla!r}")
                _set_rng_state(self._rng.numpy().decode("utf-8"))
            # A damaged file surfaces as any of these, depending on which bytes are bad.
            except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError,
                    TypeError, OSError, UnicodeDecodeError) as error:
                failures.append((path, _first_line(error)))
                continue
            self._discarded = {int(p.rsplit("-", 1)[1]) for p, _ in failures}
            return RestoredCheckpoint(int(self._epoch.numpy()), history,
                                      self._metadata.numpy().decode("utf-8"), path,
                                      tuple(failures), xla=xla)
        if failures:
            raise CheckpointError(
                f"Cannot restore any checkpoint in {self.directory} (damaged or truncated, "
                "or made for another model):\n  "
                + "\n  ".join(f"{path}: {reason}" for path, reason in failures),
                path=self.directory)
        return None


def checkpoint_metadata(directory: str | os.PathLike) -> tuple[str, str] | None:
    """The metadata of the newest checkpoint in `directory` that has readable metadata.

    It reads the files only (no model needed), e.g. to check that a run's configuration
    still matches its checkpoints before building anything.

    Returns:
        `(path prefix, metadata)`, or None when no checkpoint has readable metadata.
    """
    directory = pathlib.Path(directory)
    for number in reversed(_numbers(directory, _INDEX)):
        prefix = os.fspath(directory / f"{PREFIX}-{number}")
        try:
            value = tf.train.load_checkpoint(prefix).get_tensor(
                "metadata/.ATTRIBUTES/VARIABLE_VALUE")
            return prefix, value.decode("utf-8")
        except Exception:  # noqa: BLE001 - a damaged file fails in many ways (an empty
            # data file: IndexError "Read less bytes than requested"); restoring says which.
            continue
    return None


def remove_stale_files(directory: str | os.PathLike) -> list[pathlib.Path]:
    """Deletes what a process killed while saving left: `ckpt-N_temp/` directories, the
    state file's temporary copy, and the data files of a checkpoint older than the newest
    one whose `.index` was already deleted (a kill between the deletions of an old
    checkpoint's files).

    Call it only from the process that owns the directory (see `RunLock`): another
    process may be saving there.

    Returns:
        The paths deleted.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(f"{PREFIX}-*_temp") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    state_copy = directory / f".{STATE_FILE}.tmp"
    if state_copy.is_file():
        state_copy.unlink()
        stale.append(state_copy)
    indexed = _numbers(directory, _INDEX)
    for path in sorted(directory.glob(f"{PREFIX}-*.data-*")):
        match = _FILE.match(path.name)
        # Only below the newest index: a newest checkpoint missing its index is reported
        # (and kept) by `restore`, not deleted here.
        if match and indexed and int(match.group(1)) < indexed[-1] and (
                int(match.group(1)) not in indexed):
            path.unlink(missing_ok=True)
            stale.append(path)
    return stale
