"""The data room: where the batches of a `fit`, `evaluate` or `predict` call come from.

* `ArraySource`: in-memory arrays (NumPy, tensors, or tuples / lists / dicts of them),
  copied once to the device and gathered in-graph in a per-epoch order that depends
  only on `(seed, epoch)`; the fast path, and the one that resumes exactly;
* `DatasetSource`: a `tf.data.Dataset`, a Python generator or a
  `keras.utils.PyDataset`, read through Keras's data adapters (so the conventions are
  `fit`'s), consumed by an iterator inside the traced loop.

`make_source` picks one; adding a kind of data touches this room only.
"""

from customkeras.training.sources.arrays import ArrayCache, ArraySource, epoch_order
from customkeras.training.sources.datasets import DatasetSource, is_dataset_like


def make_source(x, y, sample_weight, *, batch_size, steps, names, cache, shuffle=False,
                purpose="fit"):
    """Returns the `ArraySource` or `DatasetSource` for one call's data.

    Args:
        x, y, sample_weight: what the user passed (`y` and `sample_weight` must be
            None for a dataset, a generator or a `PyDataset`, which yield them).
        batch_size: samples per step for arrays (None: 32); must be None otherwise.
        steps: `steps_per_epoch` / `validation_steps` / `steps`, or None.
        names: the argument names used in messages, e.g. `("x", "y", "sample_weight")`.
        cache: the Trainer's `ArrayCache`.
        shuffle: whether `fit` shuffles (ignored, with a warning, for datasets).
        purpose: `"fit"`, `"evaluate"` or `"predict"` (for messages).
    """
    if is_dataset_like(x):
        return DatasetSource(x, y, sample_weight, batch_size=batch_size, steps=steps,
                             shuffle=shuffle, names=names)
    return ArraySource(x, y, sample_weight, batch_size=32 if batch_size is None else batch_size,
                       steps=steps, names=names, cache=cache, purpose=purpose)


__all__ = ["ArrayCache", "ArraySource", "DatasetSource", "epoch_order", "make_source"]
