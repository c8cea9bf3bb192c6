"""`DatasetSource`: a tf.data pipeline, a generator or a PyDataset, streamed.

The data is read through Keras's own data adapters, so `fit`'s conventions hold: a
dataset yields `x`, `(x, y)` or `(x, y, sample_weight)` batches; an epoch is one pass,
or `steps_per_epoch` steps of an iterator that then carries on into the next epoch
(for a repeated dataset or a generator); `shuffle` is ignored with a warning; a
`PyDataset`'s `workers` / `use_multiprocessing` and `on_epoch_end` work as under `fit`.
The iterator is consumed inside the traced loop (`loops.Loops.train_iterator`).

Under a strategy the dataset is distributed with
`strategy.experimental_distribute_dataset`: the batches it yields are global batches,
each replica gets its slice, and under `MultiWorkerMirroredStrategy` each worker reads
only its shard (TensorFlow's auto-sharding: by file where the pipeline reads files,
by data otherwise).
"""

import inspect
import warnings

import tensorflow as tf
from keras.src.trainers.data_adapters import get_data_adapter
from keras.utils import PyDataset

from customkeras import _checks


def is_dataset_like(x):
    """Whether `x` is streamed data: a tf.data dataset, a generator or a PyDataset."""
    return isinstance(x, (tf.data.Dataset, PyDataset)) or inspect.isgenerator(x)


def _kind(x):
    if isinstance(x, tf.data.Dataset):
        return "a tf.data.Dataset"
    return "a keras.utils.PyDataset" if isinstance(x, PyDataset) else "a generator"


class DatasetSource:
    """Streamed data for one call.

    Args:
        x: a `tf.data.Dataset`, a generator or a `keras.utils.PyDataset`.
        y, sample_weight: must be None (the data yields them).
        batch_size: must be None (the data is already batched).
        steps: steps per epoch / pass, or None for one whole pass.
        shuffle: `fit`'s `shuffle` (ignored, with Keras's warning).
        names: the argument names for messages.

    Attributes:
        dataset: the `tf.data.Dataset` of batches.
        element_spec: its element structure.
        steps_per_epoch: the steps per pass when known (`steps`, or the dataset's
            cardinality), else None until a first pass has ended.
    """

    kind = "iterator"

    def __init__(self, x, y, sample_weight, *, batch_size, steps, shuffle, names):
        x_name, y_name, w_name = names
        self.names = names
        kind = _kind(x)
        for value, name in ((y, y_name), (sample_weight, w_name)):
            if value is not None:
                raise ValueError(f"`{name}` must be None when `{x_name}` is {kind} (it "
                                 f"yields them); received {name} of type {type(value).__name__}")
        if batch_size is not None:
            raise ValueError(f"`batch_size` must be None when `{x_name}` is {kind}, which "
                             f"yields batches; received batch_size={batch_size!r}")
        self.steps = None if steps is None else _checks.integer("steps", steps, 1)
        with warnings.catch_warnings():
            if isinstance(x, tf.data.Dataset) and shuffle:
                warnings.warn(
                    "`shuffle=True` is ignored since `x` is a tf.data.Dataset: shuffle "
                    "the dataset itself (`dataset.shuffle(buffer_size)`).", stacklevel=4)
            warnings.simplefilter("ignore")  # Keras's own copy of that warning
            self.adapter = get_data_adapter(x, steps_per_epoch=self.steps,
                                            shuffle=shuffle if isinstance(x, PyDataset) else False)
        self.dataset = self.adapter.get_tf_dataset() if not isinstance(x, tf.data.Dataset) else x
        self.element_spec = self.dataset.element_spec
        self.name = x_name
        self.kind_name = kind
        cardinality = int(self.dataset.cardinality()) if isinstance(x, tf.data.Dataset) else -2
        if cardinality == 0:
            raise ValueError(f"`{x_name}` must yield at least one batch; received an empty "
                             "dataset (cardinality 0)")
        if cardinality == tf.data.INFINITE_CARDINALITY and self.steps is None:
            raise ValueError(
                f"`{x_name}` is an infinite (repeated) dataset: pass `steps_per_epoch` "
                "(or `validation_steps` / `steps`) to say how many batches make an epoch")
        if cardinality < 0 and not isinstance(x, tf.data.Dataset) and self.steps is None:
            cardinality = self.adapter.num_batches or -2
        known = cardinality if cardinality > 0 else None
        self.steps_per_epoch = self.steps or known
        self._persistent = self.steps is not None
        # A tf.data iterator's position can be saved in a tf.train.Checkpoint; a
        # generator's or a PyDataset's (wrapped in `from_generator`) cannot.
        self.checkpointable = isinstance(x, tf.data.Dataset)
        self._iterator = None
        self._distributed = None

    @property
    def iterator(self):
        """The current iterator (checkpointable for a tf.data pipeline), or None."""
        return self._iterator

    def epoch_iterator(self, strategy):
        """The iterator to read one epoch from: a new one per pass, or, with `steps`,
        the same one carried on across epochs (as Keras does)."""
        if self._iterator is None or not self._persistent:
            self._iterator = iter(self._dataset_for(strategy))
        return self._iterator

    def exhausted(self):
        """Called when a pass ended before `steps`: the next pass starts afresh."""
        self._iterator = None

    def _dataset_for(self, strategy):
        if strategy.num_replicas_in_sync == 1 and not isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return self.dataset
        if self._distributed is None:
            self._distributed = strategy.experimental_distribute_dataset(self.dataset)
        return self._distributed

    def on_epoch_begin(self):
        """Keras's adapter hook (a PyDataset's workers start)."""
        self.adapter.on_epoch_begin()

    def on_epoch_end(self):
        """Keras's adapter hook (a PyDataset's `on_epoch_end`)."""
        self.adapter.on_epoch_end()
