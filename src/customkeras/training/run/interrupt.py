"""Ctrl-C during training: stop cleanly at the next step boundary instead of dying mid-write.

The first SIGINT only sets `model.stop_training`, which the `Trainer` (and Keras `fit`)
checks between executions, so the running step finishes and the checkpoint stays
consistent. A second SIGINT aborts at once with `KeyboardInterrupt`.
"""

import signal
import sys
import threading

import keras

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process killed by Ctrl-C


class GracefulInterrupt(keras.callbacks.Callback):
    """Turns the first Ctrl-C into `model.stop_training = True`; use as context manager.

    It is also a callback: passed to `fit`, it re-raises the stop request at the start of
    training, of each epoch and after each batch, because trainers reset `stop_training`
    when they start. Outside the main thread signals cannot be caught; it then does
    nothing.

    Args:
        model: the model whose training to stop.
        stream: where to say that training will stop. Defaults to `sys.stderr`.

    Example:

    >>> import keras, numpy as np
    >>> from customkeras.training import Trainer
    >>> from customkeras.training.run import GracefulInterrupt
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> trainer = Trainer(model, "mse", keras.optimizers.SGD(0.1))
    >>> with GracefulInterrupt(model) as interrupt:
    ...     history = trainer.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=2,
    ...                           callbacks=[interrupt], verbose=0)
    >>> interrupt.requested  # True after a Ctrl-C: the run stopped between two steps
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

    # Its batch hook only needs where an execution ended: the Trainer keeps its fast
    # path (one call per execution) for it (`training.callback_hooks`).
    batch_hooks_per_execution = True

    def _reassert(self):
        if self.requested:
            self._model_to_stop.stop_training = True

    def on_train_begin(self, logs=None):
        self._reassert()

    def on_epoch_begin(self, epoch, logs=None):
        self._reassert()

    def on_train_batch_end(self, batch, logs=None):
        self._reassert()
