"""Finished tf.data iterators are dropped off the training thread.

Destroying a tf.data iterator joins its pipeline's threads, and the autotuning thread
only notices at its next wake-up, whose period doubles as the iterator lives: the
thread that drops the last reference to an iterator of a few seconds' pass can wait
that long, up to a second and more (Keras's `fit` does, at every epoch). A finished
iterator is therefore handed to one daemon thread, which drops it once nobody else
holds it; TensorFlow releases the GIL while it waits. Measured necessary
(`benchmarks/bench_iterator_release.py`, `benchmarks/results/iterator_release.json`):
dropping the iterator of a pass of a few seconds kept the dropping thread waiting for
most of the autotuner's period, while `release_later` returns at once. The thread polls
only while an iterator waits for its other holders (the pass's feed, the fit loop's
position) to let go, which they do within the epoch's end.
"""

import atexit
import queue
import sys
import threading
import time

# How often the releasing thread looks whether the others have let go of an
# iterator, and how long it waits for that before dropping its own reference anyway.
_POLL_SECONDS = 0.005
_WAIT_SECONDS = 30.0

_finished = queue.SimpleQueue()
_lock = threading.Lock()
_thread = None
_exiting = threading.Event()
_STOP = object()


def release_later(iterator):
    """Drops `iterator` (if not None) on the releasing thread, once the caller and
    everybody else have let go of it."""
    global _thread
    if iterator is None:
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            if _thread is None:
                atexit.register(_finish)
            _thread = threading.Thread(target=_release_forever, daemon=True,
                                       name="customkeras-iterator-release")
            _thread.start()
    _finished.put(iterator)


def _release_forever():
    while True:
        iterator = _finished.get()
        if iterator is _STOP:
            return
        deadline = time.monotonic() + _WAIT_SECONDS
        # Two references when this frame holds the last one: its name, and the call's.
        while (sys.getrefcount(iterator) > 2 and time.monotonic() < deadline
               and not _exiting.is_set()):
            time.sleep(_POLL_SECONDS)
        del iterator  # the pipeline's threads are joined here, off the training thread


def _finish():
    # At exit, before TensorFlow's own teardown: no iterator may be half-destroyed on
    # a daemon thread then. The queued ones are dropped now, whoever still holds them.
    _exiting.set()
    _finished.put(_STOP)
    if _thread is not None:
        _thread.join(timeout=_WAIT_SECONDS)
