"""`customkeras train --strategy ...`: creating the strategy first, and multi-worker failures.

A multi-worker run is the same `customkeras train` command started once per worker, each
with its own `TF_CONFIG`. TensorFlow's `MultiWorkerMirroredStrategy` must be created
before any other TensorFlow operation in the process, and its creation blocks until
every worker in `TF_CONFIG` has started.
"""

import contextlib
import faulthandler
import os
import pathlib
import re
import sys

import tensorflow as tf

from customkeras import training
from customkeras.cli import artifacts
from customkeras.cli.config import DEFAULT_WORKER_TIMEOUT
from customkeras.cli.errors import CommandError
from customkeras.training import distribution


def start_strategy(name: str, worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
                   stream=None) -> tf.distribute.Strategy:
    """Creates the run's strategy; call it before anything else touches TensorFlow.

    Args:
        name: `"default"`, `"mirrored"` or `"multi-worker"`.
        worker_timeout: multi-worker only: seconds to wait for every worker to start,
            and for the others at each collective operation during training.
        stream: where to say that the worker is waiting. Defaults to `sys.stderr`.

    Raises:
        CommandError: a missing or invalid `TF_CONFIG`, or TensorFlow already running.
    """
    if name != "multi-worker":
        return training.create_strategy(name)
    try:
        task = training.read_tf_config()
    except ValueError as error:
        raise CommandError(f"--strategy multi-worker: {error}") from None
    stream = stream or sys.stderr
    print(f"Worker {task.worker_id} of {task.num_workers} ({task.task_type} {task.task_index}, "
          f"{task.address}): waiting up to {worker_timeout:g} s for every worker in "
          "TF_CONFIG to start.", file=stream, flush=True)
    # TensorFlow waits for the cluster inside C++ while holding the GIL: neither Ctrl-C
    # nor a Python thread can end that wait. faulthandler's watchdog is a C thread: it
    # ends the process (exit status 1) if the cluster has not formed in time.
    with open(os.devnull, "w") as devnull:
        faulthandler.dump_traceback_later(worker_timeout, exit=True, file=devnull)
        try:
            strategy = training.create_strategy(name, timeout_seconds=worker_timeout)
        except ValueError as error:
            raise CommandError(f"--strategy multi-worker: {error}") from None
        finally:
            faulthandler.cancel_dump_traceback_later()
    print(f"Worker {task.worker_id}: all {task.num_workers} workers joined.",
          file=stream, flush=True)
    return strategy


@contextlib.contextmanager
def worker_failures(strategy: tf.distribute.Strategy, run_dir: pathlib.Path, shown: str):
    """Turns a multi-worker run's lost peer or timed-out collective into a `CommandError`.

    When a worker dies, the others' collective operations fail (its connection closes,
    or TensorFlow's coordination service misses its heartbeats, or `--worker-timeout`
    expires); every survivor then stops with this message instead of a traceback.

    Args:
        strategy: the run's strategy; other strategies' errors pass through.
        run_dir: the run directory, to tell whether it can be resumed.
        shown: `run_dir` as the message should show it.
    """
    if not distribution.is_multi_worker(strategy):
        yield
        return
    try:
        yield
    except tf.errors.OpError as error:
        if (run_dir / artifacts.CHECKPOINT_DIR / "checkpoint").is_file():
            again = ("The checkpoints in the run directory hold the last whole epoch; start "
                     f"every worker again with:\n  customkeras train --resume {shown} "
                     "--strategy multi-worker")
        else:
            again = "No epoch was checkpointed yet: start every worker again as before."
        raise CommandError(
            f"the multi-worker run stopped: {type(error).__name__}: {_reason(error)}\n"
            "Another worker has probably stopped (see its output) or did not answer within "
            f"--worker-timeout. {again}", exit_code=1) from None


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's message without its graph-node prefix, on one line."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message or str(error))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:2])[:400]
