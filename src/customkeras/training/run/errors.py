"""Errors of run management: checkpoints and run directories.

Each is a `RunError`, so a program (the `customkeras` command among them) can catch one
type and print its message, which says what happened, to which file, and what to do.
"""

import os


class RunError(Exception):
    """A training run's files cannot be used as asked; the message says why and what to do."""


class CheckpointError(RunError):
    """A checkpoint cannot be read, does not fit the model, or cannot be written.

    Args:
        message: what went wrong, naming the file, and the fix.
        path: the checkpoint (its path prefix) or directory concerned. Defaults to None.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (e.g. no space left on the device).

    The checkpoints written before are kept, so training can resume from the last one.
    """


class RunLockedError(RunError):
    """Another live process owns the run directory (see `RunLock`).

    Args:
        directory: the run directory.
        pid: the process id of the owner, or None when it could not be read.
    """

    def __init__(self, directory: str | os.PathLike, pid: int | None):
        self.directory = os.fspath(directory)
        self.pid = pid
        owner = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"{self.directory} is in use by {owner}: a run directory is written by one process "
            "at a time. Wait for it to finish (or stop it), or choose another directory.")
