"""Taking a run directory for this process: one owner at a time, no leftovers.

The owner (the chief, in a multi-worker run) holds `customkeras.training.run.RunLock`
for the whole run, removes what a killed process left half-written, and releases the
lock at the end. A new run that fails before writing anything leaves no directory.
"""

import contextlib
import pathlib
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
    try:
        if (path / artifacts.CONFIG_FILE).exists():
            raise CommandError(
                f"{path} already holds a run (it has {artifacts.CONFIG_FILE}). Continue it with "
                f"'customkeras train --resume {path}', or choose another --output-dir.")
        _remove_stale(path)
        yield path.resolve()
    finally:
        lock.release()
        # A start that failed before writing anything leaves nothing behind.
        if created and path.is_dir() and not any(path.iterdir()):
            path.rmdir()


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
