"""Which callbacks need their batch hooks called at every batch.

Keras `fit` (with its default `steps_per_execution=1`) calls `on_train_batch_begin` /
`on_train_batch_end` at every batch, with that batch's logs; the Trainer's loops run
many steps per graph call and call the hooks once per call. A callback that does
something per batch (prints the loss, counts batches, saves every N batches) must see
every batch, so a pass whose callbacks include one runs executions of one step
(`per_batch`), unless the user fixed `steps_per_execution` (then, as Keras does with
it, once per execution). Callbacks that use only epoch hooks keep the fast path.

A callback overrides a batch hook when its class's method is not
`keras.callbacks.Callback`'s (Keras 3 has no `_implements_train_batch_hooks`), or when
the instance sets one (`keras.callbacks.LambdaCallback`). Not counted: `History` and
`ProgbarLogger` (a display), `TerminateOnNaN` (the divergence guard stops at the
step in-graph, first), Keras's own callbacks whose batch hooks do nothing in their
configuration (`ModelCheckpoint` / `BackupAndRestore` saving per epoch,
`TensorBoard` with `update_freq="epoch"` and no profile still to take: before its
`profile_batch` range ends it is called at every batch, after it not), and callbacks
whose class
sets `batch_hooks_per_execution = True` (they only need to know where an execution
ended, as `EpochCheckpoint` and `GracefulInterrupt`).
"""

import keras

from customkeras.training import compat

BATCH_HOOKS = {
    # `Callback.on_train_batch_*` call `on_batch_*`: those are training hooks too.
    "train": ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin",
              "on_batch_end"),
    "test": ("on_test_batch_begin", "on_test_batch_end"),
    "predict": ("on_predict_batch_begin", "on_predict_batch_end"),
}


def as_callbacks(callbacks, name="callbacks"):
    """The callbacks as a list, as Keras takes them: None, one callback, a list (or
    nested lists) of them, or a `keras.callbacks.CallbackList`.

    Raises:
        TypeError: an element is not a `keras.callbacks.Callback`.
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"`{name}` must be a keras.callbacks.Callback or a list of them; "
                        f"received {name}={callbacks!r} (of type {type(callbacks).__name__})")
    flat = keras.tree.flatten(list(callbacks))
    for callback in flat:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(f"`{name}` must hold keras.callbacks.Callback objects; received "
                            f"an element {callback!r} (of type {type(callback).__name__})")
    return flat


def _defined_by(callback, hook):
    """The class whose method `hook` the callback's class uses."""
    for cls in type(callback).__mro__:
        if hook in vars(cls):
            return cls
    return None


def _idle(callback, cls, kind):
    """Whether Keras's `cls`'s batch hooks do nothing for `callback`'s configuration."""
    if cls in (keras.callbacks.History, keras.callbacks.ProgbarLogger):
        return True
    if cls is keras.callbacks.TerminateOnNaN:
        # The Trainer's divergence guard stops at the exact step (in-graph), before
        # any callback could see the NaN: one-step executions would buy nothing.
        return True
    if cls in (keras.callbacks.ModelCheckpoint, keras.callbacks.BackupAndRestore):
        return callback.save_freq in ("epoch", False)
    if cls is keras.callbacks.TensorBoard:
        if callback.update_freq != "epoch":
            return False
        return kind != "train" or not (callback.write_steps_per_second
                                       or compat.tensorboard_profile_ahead(callback))
    return False


def needs_every_batch(callback, kind):
    """Whether `callback` does something in a batch hook of `kind` ("train", "test" or
    "predict") and so must be called at every batch."""
    if getattr(type(callback), "batch_hooks_per_execution", False):
        return False
    for hook in BATCH_HOOKS[kind]:
        if hook in vars(callback):  # set on the instance (LambdaCallback)
            return True
        cls = _defined_by(callback, hook)
        if cls is keras.callbacks.Callback or cls is None:
            continue
        if not _idle(callback, cls, kind):
            return True
    return False


def per_batch(callbacks, kind):
    """Whether any of `callbacks` (a list or a `CallbackList`) must be called at every
    batch of a `kind` pass."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    return any(needs_every_batch(callback, kind) for callback in callbacks)
