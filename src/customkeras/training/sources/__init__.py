"""The data room: where the batches of a `fit`, `evaluate` or `predict` call come from.

* `ArraySource`: in-memory arrays (NumPy, tensors, or tuples / lists / dicts of them),
  copied once to the device and gathered in-graph in a per-epoch order that depends
  only on `(seed, epoch)`; the fast path, and the one that resumes exactly;
* `DatasetSource`: a `tf.data.Dataset`, a Python generator or a
  `keras.utils.PyDataset`, read through Keras's data adapters (so the conventions are
  `fit`'s), consumed by an iterator inside the traced loop.

`make_source` picks one; an object of a `Source` subclass is used as it is, so a new
kind of data is one class (docs/architecture.md shows one).
"""

import numbers
from collections.abc import Mapping

from customkeras import _checks
from customkeras.training.sources.arrays import ArrayCache, ArraySource, epoch_order
from customkeras.training.sources.datasets import DatasetSource, is_dataset_like
from customkeras.training.sources.feeds import ArrayFeed, IteratorFeed, Source


def make_source(x, y, sample_weight, *, batch_size, steps, names, cache, shuffle=False,
                purpose="fit", class_weight=None):
    """Returns the `ArraySource` or `DatasetSource` for one call's data.

    Args:
        x, y, sample_weight: what the user passed (`y` and `sample_weight` must be
            None for a dataset, a generator or a `PyDataset`, which yield them).
        batch_size: samples per step for arrays (None: 32, or with `steps` the
            samples divided among them, as Keras's array adapter does); ignored for
            streamed data, as Keras ignores it.
        steps: `steps_per_epoch` / `validation_steps` / `steps`, or None.
        names: the argument names used in messages, e.g. `("x", "y", "sample_weight")`.
        cache: the Trainer's `ArrayCache`.
        shuffle: whether `fit` shuffles (ignored, with a warning, for datasets).
        purpose: `"fit"`, `"evaluate"` or `"predict"` (for messages).
        class_weight: `fit`'s `{class: weight}`, turned into sample weights (Keras's
            `class_weight_to_sample_weights`, or its adapters for streamed data), or
            None.
    """
    if isinstance(x, Source):  # a kind of data of the user's own: used as it is
        return x
    if class_weight is not None:
        check_class_weight(class_weight)
    if is_dataset_like(x):
        return DatasetSource(x, y, sample_weight, steps=steps, shuffle=shuffle, names=names,
                             class_weight=class_weight)
    return ArraySource(x, y, sample_weight, batch_size=batch_size, steps=steps, names=names,
                       cache=cache, purpose=purpose, class_weight=class_weight)


def check_class_weight(class_weight):
    """Checks `fit`'s `class_weight`: a dict of integer classes >= 0 to numbers >= 0."""
    if not isinstance(class_weight, Mapping):
        raise TypeError("`class_weight` must be a dict {class_index: weight}; received "
                        f"class_weight={class_weight!r} (of type {type(class_weight).__name__})")
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral):
            raise TypeError("`class_weight` keys must be class indices (integers >= 0); "
                            f"received class_weight={class_weight!r}, with the key {key!r}")
        if key < 0:
            raise ValueError("`class_weight` keys must be class indices (integers >= 0); "
                             f"received class_weight={class_weight!r}, with the key {key!r}")
        _checks.non_negative_float(f"class_weight[{key}]", value)


__all__ = ["ArrayCache", "ArrayFeed", "ArraySource", "DatasetSource", "IteratorFeed",
           "Source", "epoch_order", "make_source"]
