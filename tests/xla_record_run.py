"""A small checkpointed run whose `jit_compile="auto"` decision depends on the device:
a convolution (plain on a CPU, XLA on a GPU) and `Dropout` (whose draws on a CPU differ
under XLA), so that the two decisions give other bits.

Run as a script (a fresh process, as a resume on another machine would be):

    python xla_record_run.py DIRECTORY EPOCHS DEVICE JIT_COMPILE STOP_STEP OUTPUT.npz

`DEVICE` is "gpu" (the run plays a GPU machine through `XlaChoice.accelerator`, the
policy's device fact) or "cpu" (this machine as it is); `STOP_STEP` stops the run after
that many steps of its first epoch (0: no stop). It writes the weights and prints the
XLA decisions and the `XlaDecisionWarning`s as JSON.
"""

import json
import sys
import warnings

import keras
import numpy as np

from customkeras.training import Trainer, XlaDecisionWarning
from customkeras.training.run import EpochCheckpoint

RNG = np.random.default_rng(5)
X = RNG.normal(size=(96, 8, 1)).astype("float32")
Y = RNG.integers(0, 3, size=96)
SAVE_FREQ = 2


def model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((8, 1)), keras.layers.Conv1D(4, 3, activation="relu"),
        keras.layers.Dropout(0.3), keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax")])


class PlayDevice(keras.callbacks.Callback):
    """Makes the XLA policy see a GPU (or a CPU) instead of this machine's device."""

    def __init__(self, accelerator):
        super().__init__()
        self.accelerator = accelerator

    def set_training_state(self, state):
        state.xla.accelerator = self.accelerator


class StopAt(keras.callbacks.Callback):
    """Stops the first epoch after `step` steps, as a killed or timed-out run would."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 >= self.step:
            self.model.stop_training = True


def run(directory, epochs, device="cpu", jit_compile="auto", stop_step=0, callbacks=()):
    """Trains (resuming from `directory` if it has checkpoints); returns
    `(weights, trainer, XlaDecisionWarning messages)`."""
    net = model()
    trainer = Trainer(net, "sparse_categorical_crossentropy", "adam",
                      jit_compile=jit_compile)
    extra = [PlayDevice(True)] if device == "gpu" else []
    if stop_step:
        extra.append(StopAt(stop_step))
    if directory is not None:
        extra.append(EpochCheckpoint(directory, save_freq=SAVE_FREQ))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", XlaDecisionWarning)
        trainer.fit(X, Y, batch_size=16, epochs=epochs, seed=3, verbose=0,
                    callbacks=[*extra, *callbacks])
    messages = [str(w.message) for w in caught if issubclass(w.category, XlaDecisionWarning)]
    return [np.array(w) for w in net.get_weights()], trainer, messages


def main(directory, epochs, device, jit_compile, stop_step, output):
    jit_compile = {"auto": "auto", "true": True, "false": False}[jit_compile]
    weights, trainer, messages = run(directory, int(epochs), device, jit_compile,
                                     int(stop_step))
    np.savez(output, *weights)
    print(json.dumps({"decisions": trainer.xla_decisions, "warnings": messages}))


if __name__ == "__main__":
    main(*sys.argv[1:])
