"""A run directory's files, each written atomically (temporary file + rename).

A crash or a kill at any moment leaves every artifact either absent or complete, never
truncated: the data goes to a temporary file in the same directory, is flushed to disk,
and only then renamed over the final name (`os.replace` is atomic on POSIX and Windows).
`manifest.json` records the SHA-256 of each artifact, so a file damaged later is detected
before it is loaded.
"""

import contextlib
import csv
import datetime
import hashlib
import io
import json
import math
import os
import pathlib
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence

from customkeras.cli.errors import CommandError

MODEL_FILE = "model.keras"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
CURVES_FILE = "learning_curves.png"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
LOG_DIR = "logs"
CHECKPOINT_DIR = "checkpoints"
TEMPORARY_MARK = ".tmp"  # in `.<name>.<random hex>.tmp<suffix>`, beside the final file
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp")
# A run is finished when manifest.json records these (config.json first: it is checked on
# every later use of the run).
RESULT_FILES = (CONFIG_FILE, MODEL_FILE, METRICS_FILE, HISTORY_CSV, HISTORY_JSON, CURVES_FILE)


def _fsync_directory(directory: pathlib.Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yields a temporary path to write; on success it replaces `path` atomically.

    The temporary file lives beside `path` (same file system, so the rename is atomic)
    and keeps its suffix, for writers that insist on one (`model.save` wants `.keras`).
    On error the temporary file is removed and `path` is left as it was.

    Raises:
        OSError: writing failed (e.g. no space left on the device); its `filename` is
            `path`, not the temporary file, so that messages name the file meant.

    Example:

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("complete or absent")
    >>> target.read_text()
    'complete or absent'
    """
    path = pathlib.Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMPORARY_MARK}{path.suffix}"
    try:
        # Not tempfile.mkstemp: its 0o600 mode would stick to the final file; this honours umask.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        try:
            yield tmp
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as error:
        if error.filename == str(path):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    _fsync_directory(path.parent)


@contextlib.contextmanager
def scratch_directory(run_dir: pathlib.Path) -> Iterator[pathlib.Path]:
    """Points Python's `tempfile` at a hidden directory in `run_dir` for the duration.

    Keras's `model.save` stages files in `tempfile.mkdtemp()` directories: killed
    meanwhile, it would leave them in the system's temporary directory, where nothing
    removes them; here the run's next owner does (`remove_stale_files`).
    """
    scratch = run_dir / f".scratch.{secrets.token_hex(6)}{TEMPORARY_MARK}"
    scratch.mkdir()
    previous = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        yield scratch
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_files(run_dir: pathlib.Path) -> list[pathlib.Path]:
    """Deletes the temporary files (and scratch directories) a killed process left in
    `run_dir` (owner only)."""
    stale = [p for p in run_dir.iterdir() if _TEMPORARY.match(p.name)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_number(value: float) -> float | str:
    # JSON has no NaN/inf; keep them readable instead of emitting invalid JSON.
    return value if math.isfinite(value) else str(value)


def atomic_write_json(path: str | os.PathLike, document) -> None:
    """Writes `document` as indented, strictly valid JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def history_columns(history: Mapping[str, Sequence[float]]) -> list[str]:
    """Keras's column order: `loss`, the metrics, then their `val_` twins in the same order."""
    train = sorted((n for n in history if not n.startswith("val_")), key=lambda n: n != "loss")
    columns = train + [f"val_{n}" for n in train if f"val_{n}" in history]
    return columns + [n for n in history if n not in columns]


def write_history(run_dir: pathlib.Path, history: Mapping[str, Sequence[float]]) -> None:
    """Writes `history.csv` (one row per epoch, epochs numbered from 1) and `history.json`."""
    columns = history_columns(history)
    n_epochs = len(next(iter(history.values()), []))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *columns])
    for index in range(n_epochs):
        writer.writerow([index + 1, *(repr(float(history[c][index])) for c in columns)])
    atomic_write_text(run_dir / HISTORY_CSV, buffer.getvalue())
    document = {"epoch": list(range(1, n_epochs + 1))}
    document.update({c: [_json_number(float(v)) for v in history[c]] for c in columns})
    atomic_write_json(run_dir / HISTORY_JSON, document)


def as_test_metrics(results: Mapping[str, float]) -> dict[str, float]:
    """Names evaluation results as `metrics.json` does: `loss` -> `test_loss`, etc."""
    return {f"test_{name}": _json_number(float(value)) for name, value in results.items()}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(run_dir: pathlib.Path, names: Sequence[str] = RESULT_FILES) -> None:
    """Records the SHA-256 of each named artifact in `manifest.json`: the run is finished."""
    files = {name: sha256_file(run_dir / name) for name in names if (run_dir / name).is_file()}
    atomic_write_json(run_dir / MANIFEST_FILE, {"sha256": files})


def manifest_damage(run_dir: pathlib.Path) -> str | None:
    """Why the run's `manifest.json` cannot be read, or None (intact, or absent)."""
    try:
        read_manifest(run_dir)
    except CommandError as error:
        return str(error.reason)
    return None


def read_manifest(run_dir: pathlib.Path, *, damaged_ok: bool = False) -> dict[str, str] | None:
    """The `{file name: SHA-256}` of a finished run, or None when it has no manifest.

    Args:
        run_dir: the run directory.
        damaged_ok: return None for a damaged manifest too (as if the run had stopped
            before writing it: `--resume` then writes the results and the manifest again).
            Defaults to False.

    Raises:
        CommandError: (exit status 1) the manifest is damaged, and not `damaged_ok`; the
            message gives the command that rewrites it.
    """
    manifest = run_dir / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["sha256"]
        if not (isinstance(recorded, dict)
                and all(isinstance(v, str) for v in recorded.values())):
            raise ValueError("'sha256' is not an object of strings")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        if damaged_ok:
            return None
        reason = " ".join(str(error).split()) or type(error).__name__
        damaged = CommandError(f"{manifest} is damaged ({reason}). Resume the run to write it "
                               f"again: customkeras train --resume {run_dir}", exit_code=1)
        damaged.reason = reason
        raise damaged from None
    return recorded


def changed_files(run_dir: pathlib.Path, recorded: Mapping[str, str]) -> list[str]:
    """The recorded files that are missing or whose SHA-256 differs from `recorded`."""
    return [name for name, digest in recorded.items()
            if not (run_dir / name).is_file() or sha256_file(run_dir / name) != digest]


def check_config_unchanged(run_dir: pathlib.Path) -> None:
    """Refuses a `config.json` edited after its run finished.

    Raises:
        CommandError: (exit status 1) its SHA-256 differs from the manifest's.
    """
    # A damaged manifest proves nothing: the checkpoints are checked instead (resume).
    recorded = read_manifest(run_dir, damaged_ok=True)
    if recorded and CONFIG_FILE in recorded and changed_files(
            run_dir, {CONFIG_FILE: recorded[CONFIG_FILE]}):
        raise CommandError(
            f"{run_dir / CONFIG_FILE} was changed after the run finished (its SHA-256 differs "
            f"from the one in {run_dir / MANIFEST_FILE}), so it no longer describes the "
            "trained model. Put the original back; to train with other settings, start a new "
            f"run: customkeras train --config {run_dir / CONFIG_FILE} --output-dir NEW_DIR",
            exit_code=1)


def verify_manifest(path: pathlib.Path) -> None:
    """Checks `path` against the `manifest.json` beside it, when there is one.

    Raises:
        CommandError: (exit status 1) the file's checksum differs from the recorded one,
            or the manifest is damaged.
    """
    recorded = read_manifest(path.parent)
    if recorded is not None and path.name in recorded and changed_files(
            path.parent, {path.name: recorded[path.name]}):
        raise CommandError(
            f"{path} is damaged: its SHA-256 differs from the one recorded in "
            f"{path.parent / MANIFEST_FILE} when the run finished. Retrain, or restore the "
            "file from a backup.", exit_code=1)


def default_run_dir(dataset: str, root: str | os.PathLike = "runs") -> pathlib.Path:
    """`runs/<dataset>-<YYYYmmdd-HHMMSS>`, with a numeric suffix if that already exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = pathlib.Path(root) / f"{dataset}-{stamp}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = pathlib.Path(root) / f"{dataset}-{stamp}-{suffix}"
    return candidate
