"""Taking a run directory for this process: one owner at a time, no leftovers.

The owner (the chief, in a multi-worker run) holds `customkeras.training.run.RunLock`
for the whole run, removes what a killed process left half-written, and releases the
lock at the end. A new run that fails before writing anything leaves no directory.
"""

import contextlib
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Iterator

from customkeras.cli import artifacts
from customkeras.cli.errors import CommandError
from customkeras.training.run import RunLock, RunLockedError
from customkeras.training.run.checkpoint import remove_stale_files
from customkeras.training.run.lock import LOCK_FILE


def _lock(run_dir: pathlib.Path) -> RunLock:
    try:
        return RunLock(run_dir).acquire()
    except RunLockedError as error:
        raise CommandError(str(error), exit_code=1) from None
    except OSError as error:
        raise CommandError(f"Cannot lock {run_dir / LOCK_FILE}: {error.strerror or error}.",
                           exit_code=1) from None


def _remove_stale(run_dir: pathlib.Path) -> None:
    stale = artifacts.remove_stale_files(run_dir)
    stale += remove_stale_files(run_dir / artifacts.CHECKPOINT_DIR)
    if stale:
        names = ", ".join(str(path.relative_to(run_dir)) for path in stale)
        print(f"Removed what an interrupted process left half-written: {names}.",
              file=sys.stderr, flush=True)


@contextlib.contextmanager
def new_run(path: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Creates and takes the output directory of a new run, before any training.

    Raises:
        CommandError: the directory is in use by another process (exit status 1),
            already holds a run (use `--resume`), or cannot be created or written.
    """
    path = pathlib.Path(path)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise CommandError(
            f"Output directory {path} is not writable ({error.strerror or error}). "
            "Choose another --output-dir.") from None
    lock = _lock(path)
    before = set(path.iterdir())
    try:
        if (path / artifacts.CONFIG_FILE).exists():
            raise CommandError(
                f"{path} already holds a run (it has {artifacts.CONFIG_FILE}). Continue it with "
                f"'customkeras train --resume {path}', or choose another --output-dir.")
        _remove_stale(path)
        yield path.resolve()
    except Exception:
        # A start that failed before its first epoch (a raising experiment function,
        # data that does not fit its model, ...) has nothing to resume: what it wrote
        # (config.json, logs/) would only block the corrected command ("already holds a run").
        if not has_trained_epoch(path):
            _remove_new_entries(path, before)
        raise
    finally:
        lock.release()
        # A start that failed before writing anything leaves nothing behind.
        if created and path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def has_trained_epoch(run_dir: pathlib.Path) -> bool:
    """Whether the run has a checkpoint after a complete epoch (`ckpt-0` is the initial
    state, saved when training begins: nothing worth resuming)."""
    return any(path.name != "ckpt-0.index"
               for path in (run_dir / artifacts.CHECKPOINT_DIR).glob("ckpt-*.index"))


def _remove_new_entries(run_dir: pathlib.Path, before: set[pathlib.Path]) -> None:
    """Deletes what appeared in `run_dir` since `before` (the lock file aside)."""
    for entry in set(run_dir.iterdir()) - before:
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextlib.contextmanager
def existing_run(run_dir: pathlib.Path) -> Iterator[pathlib.Path]:
    """Takes the directory of a run being resumed and removes stale temporary files.

    Raises:
        CommandError: (exit status 1) another live process owns it.
    """
    lock = _lock(run_dir)
    try:
        _remove_stale(run_dir)
        yield run_dir
    finally:
        lock.release()
