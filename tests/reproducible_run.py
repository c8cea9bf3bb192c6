"""A seeded `Trainer.fit` of 2,000 steps with Dropout, with Trainer's defaults
(`jit_compile="auto"`, adaptive `steps_per_execution`), run as a fresh process by
tests/test_training_reproducibility.py.

    python reproducible_run.py OUT.json [--data arrays|dataset] [--epochs N]
        [--checkpoint DIR] [--save-freq N] [--backup DIR] [--kill-in-epoch E]

Writes the history (of every epoch, restored ones included) and a SHA-256 of the final
weights' bytes to OUT.json. `--checkpoint` resumes from / saves to an `EpochCheckpoint`,
`--backup` a `keras.callbacks.BackupAndRestore`; `--save-freq N` makes the checkpoint
save every N steps too (`EpochCheckpoint(save_freq=N)`); `--kill-in-epoch E` SIGKILLs
the process at the first batch end of epoch E (0-based), before that epoch is saved
(with `--save-freq`, right after its first mid-epoch save).
"""

import argparse
import hashlib
import json
import os
import signal

import customkeras  # noqa: F401  (quiet TensorFlow start-up)
import keras
import numpy as np
import tensorflow as tf

from customkeras.training import Trainer
from customkeras.training.run import EpochCheckpoint

SAMPLES, FEATURES, BATCH, EPOCHS = 4000, 20, 32, 16  # 125 steps per epoch: 2,000 steps


class KillInEpoch(keras.callbacks.Callback):
    """SIGKILLs the process at the first batch end of an epoch (a crash, mid-epoch)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--data", choices=("arrays", "dataset"), default="arrays")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--checkpoint")
    parser.add_argument("--save-freq", type=int)
    parser.add_argument("--backup")
    parser.add_argument("--kill-in-epoch", type=int)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = (x[:, :3] @ rng.normal(size=(3,)) > 0).astype("int64") + (x[:, 3] > 1)
    keras.utils.set_random_seed(42)
    model = keras.Sequential([
        keras.Input((FEATURES,)), keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.2), keras.layers.Dense(3, activation="softmax")])
    trainer = Trainer(model, "sparse_categorical_crossentropy", keras.optimizers.Adam(1e-3),
                      metrics=["accuracy"])
    callbacks = []
    checkpoint = None
    if args.checkpoint:
        checkpoint = EpochCheckpoint(args.checkpoint, save_freq=args.save_freq or "epoch")
        callbacks.append(checkpoint)
    if args.backup:
        callbacks.append(keras.callbacks.BackupAndRestore(args.backup))
    if args.kill_in_epoch is not None:
        callbacks.append(KillInEpoch(args.kill_in_epoch))
    if args.data == "arrays":
        data, kwargs = (x, y), {"batch_size": BATCH, "seed": 7}
    else:  # a fixed order: TF does not checkpoint a reshuffled pass (tensorflow#48178)
        data, kwargs = (tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH),), {}
    history = trainer.fit(*data, epochs=args.epochs, validation_data=(x[:500], y[:500]),
                          callbacks=callbacks, verbose=0, **kwargs)
    logs = checkpoint.history if checkpoint is not None else history.history
    if args.backup:  # Keras's callback keeps no history: the epochs this process ran
        logs = history.history
    weights = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    with open(args.out, "w") as file:
        json.dump({"history": logs, "weights": weights,
                   "xla": {k: v[0] for k, v in trainer.xla_decisions.items()}}, file)


if __name__ == "__main__":
    main()
