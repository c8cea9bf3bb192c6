"""Run management: exact resume, graceful Ctrl-C and one owner per run directory.

- `EpochCheckpoint`: a Keras callback that checkpoints after each whole epoch and, when
  training begins, restores the newest checkpoint and starts `fit` at the next epoch
  (Keras's `model._initial_epoch` convention); with the `Trainer` the resumed run equals
  an uninterrupted one.
- `RunCheckpoint`: the checkpoint itself (weights, optimizer state, random state,
  history, metadata, extra trackables), found from its files, falling back to an older
  one when the newest is damaged.
- `GracefulInterrupt`: the first Ctrl-C stops training at the next step boundary.
- `RunLock`: an advisory lock so that one process at a time writes a run directory.

Errors are `RunError`s: `CheckpointError` (`CheckpointWriteError` when writing failed),
`RunLockedError`.
"""

from customkeras.training.run.callbacks import CheckpointFallbackWarning, EpochCheckpoint
from customkeras.training.run.checkpoint import RestoredCheckpoint, RunCheckpoint
from customkeras.training.run.errors import (CheckpointError, CheckpointWriteError, RunError,
                                             RunLockedError)
from customkeras.training.run.interrupt import EXIT_INTERRUPTED, GracefulInterrupt
from customkeras.training.run.lock import LOCK_FILE, RunLock

__all__ = [
    "EXIT_INTERRUPTED",
    "LOCK_FILE",
    "CheckpointError",
    "CheckpointFallbackWarning",
    "CheckpointWriteError",
    "EpochCheckpoint",
    "GracefulInterrupt",
    "RestoredCheckpoint",
    "RunCheckpoint",
    "RunError",
    "RunLock",
    "RunLockedError",
]
