"""One owner per run directory: an advisory lock held for as long as a process writes it.

The lock is `fcntl.flock` on `<directory>/run.lock`, which holds the owner's process id.
The kernel releases a flock when its process dies, however it dies (SIGKILL included), so
a lock file left by a dead process never blocks the next one. A clean release deletes the
file. Readers (evaluating a finished run, say) do not take the lock.
"""

import contextlib
import os
import pathlib

from customkeras.training.run.errors import RunLockedError

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is then not enforced.
    fcntl = None

LOCK_FILE = "run.lock"


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    return None


class RunLock:
    """Exclusive ownership of `directory` by this process, as a context manager.

    Args:
        directory: the directory to own (it must exist).

    Raises:
        RunLockedError: on `acquire` (or entering the `with` block), when another live
            process holds it; the error names the directory and that process's id.

    Example:

    ```python
    with RunLock(run_dir):  # a second process on run_dir gets RunLockedError
        trainer.fit(x, y, callbacks=[EpochCheckpoint(run_dir / "checkpoints")])
    ```
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = pathlib.Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Takes the lock, or raises `RunLockedError` at once (it never waits)."""
        if self._fd is not None or fcntl is None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise RunLockedError(self.directory, pid) from None
            # The previous owner may have deleted the file between our open and flock:
            # then we locked an orphan inode; start again with the current file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        # Best effort: on a full disk the pid may not fit, the lock holds all the same.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Releases the lock and deletes the lock file (deleted first, while still held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> bool:
        self.release()
        return False
