"""Ctrl-C during training: stop cleanly at the next step boundary instead of dying mid-write.

The first SIGINT only sets `model.stop_training`, which the `Trainer` checks between
executions (and Keras callbacks such as `EarlyStopping` use the same flag), so the running
step finishes and the checkpoint stays consistent. A second SIGINT aborts at once.
"""

import signal
import sys
import threading

import keras

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process killed by Ctrl-C


class GracefulInterrupt(keras.callbacks.Callback):
    """Turns the first Ctrl-C into `model.stop_training = True`; use as context manager.

    It is also a callback: passed to `fit`, it re-raises the stop request at the start of
    training and of each epoch, because trainers reset `stop_training` when they start.
    Outside the main thread signals cannot be caught; it then does nothing.

    Example:
    >>> with GracefulInterrupt(model) as interrupt:
    ...     trainer.fit(x, y, callbacks=[interrupt])
    >>> interrupt.requested
    False
    """

    def __init__(self, model: keras.Model, stream=None):
        super().__init__()
        self._model_to_stop = model
        self._stream = stream
        self._previous = None
        self.requested = False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._model_to_stop.stop_training = True
        print("\nInterrupted: finishing the current step, then saving the run "
              "(press Ctrl-C again to abort at once).", file=self._stream or sys.stderr,
              flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _reassert(self):
        if self.requested:
            self._model_to_stop.stop_training = True

    def on_train_begin(self, logs=None):
        self._reassert()

    def on_epoch_begin(self, epoch, logs=None):
        self._reassert()

    def on_train_batch_end(self, batch, logs=None):
        self._reassert()
