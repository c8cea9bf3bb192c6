"""`DatasetSource`: a tf.data pipeline, a generator or a PyDataset, streamed.

The data is read through Keras's own data adapters, so `fit`'s conventions hold: a
dataset yields `x`, `(x, y)` or `(x, y, sample_weight)` batches; an epoch is one pass,
or `steps_per_epoch` steps of an iterator that then carries on into the next epoch
(for a repeated dataset or a generator); `shuffle` is ignored with a warning; a
`PyDataset`'s `workers` / `use_multiprocessing` and `on_epoch_end` work as under `fit`.
The iterator is consumed inside the traced loop (a `feeds.IteratorFeed`).

One `get_next` inside a traced loop costs more than the chapter's whole MLP step, so a
training pass can read *super-batches* instead (`use_super_batches`): the user's batches
`k` at a time with each batch's length beside them (`super_batches.py`), one `get_next`
per `k` steps; the loop (a `feeds.SuperBatchFeed`) runs the `k` steps of a super-batch
in one XLA call. The batches, their order and the reshuffling pipeline's orders are
those of the user's dataset (its iterators are made the same way, from one dataset).

Under a strategy the dataset is distributed with
`strategy.experimental_distribute_dataset`: the batches it yields are global batches,
each replica gets its slice, and under `MultiWorkerMirroredStrategy` each worker reads
only its shard (TensorFlow's auto-sharding: by file where the pipeline reads files,
by data otherwise).
"""

import inspect
import warnings
import weakref

import tensorflow as tf
from keras.utils import PyDataset

from customkeras.training import compat
from customkeras import _checks
from customkeras.training.sources.feeds import IteratorFeed, SuperBatchFeed
from customkeras.training.sources.iterator_release import release_later
from customkeras.training.sources.super_batches import super_batched


def is_dataset_like(x):
    """Whether `x` is streamed data: a tf.data dataset, a generator or a PyDataset."""
    return isinstance(x, (tf.data.Dataset, PyDataset)) or inspect.isgenerator(x)


# How many iterators each tf.data pipeline has given in this process: a seeded pipeline
# that reshuffles at each iteration draws its order from that count.
_ITERATORS_MADE = weakref.WeakKeyDictionary()

# How many batches a super-batch holds at most, and its bytes per sample of a batch
# (1 MiB: a super-batch of 32-sample batches stays under 32 MiB). Beyond that a step
# costs far more than its `get_next`, and super-batches would only take memory.
SUPER_BATCH = 32
SUPER_BATCH_BYTES_PER_SAMPLE = 1 << 20
_MIN_SUPER_BATCH = 8


def _kind(x):
    if isinstance(x, tf.data.Dataset):
        return "a tf.data.Dataset"
    return "a keras.utils.PyDataset" if isinstance(x, PyDataset) else "a generator"


def _owned_copies(dataset):
    """`dataset` with every element copied into buffers of TensorFlow's own.

    A generator's or a PyDataset's NumPy batches enter TensorFlow (`from_generator`)
    in tensors that share the NumPy arrays' memory. Under a strategy each replica's
    share of such a batch is a slice of it, and an op of the step can write its result
    into a slice's buffer (the loss's product with the sample weights did): into the
    caller's arrays (Keras `evaluate` on the same data did not, in six tries).
    """
    whole_tuple = isinstance(dataset.element_spec, tuple)

    def copy(*element):  # tf.data passes a tuple's items as arguments
        copied = tf.nest.map_structure(lambda t: tf.raw_ops.DeepCopy(x=t), element)
        return copied if whole_tuple else copied[0]

    return dataset.map(copy)


class DatasetSource:
    """Streamed data for one call.

    Args:
        x: a `tf.data.Dataset`, a generator or a `keras.utils.PyDataset`.
        y, sample_weight: must be None (the data yields them).
        steps: steps per epoch / pass, or None for one whole pass.
        shuffle: `fit`'s `shuffle` (ignored, with Keras's warning).
        names: the argument names for messages.
        class_weight: `fit`'s `{class: weight}`, or None: Keras's adapters add the
            weights to a dataset's or a `PyDataset`'s batches, and refuse it for a
            generator. Defaults to None.

    Attributes:
        dataset: the `tf.data.Dataset` of batches.
        element_spec: its element structure.
        steps_per_epoch: the steps per pass when known (`steps`, or the dataset's
            cardinality), else None until a first pass has ended.
    """

    sliced = False  # a distributed dataset hands each replica its share
    fingerprint = ()  # streamed data is per worker: nothing to compare

    def __init__(self, x, y, sample_weight, *, steps, shuffle, names, class_weight=None):
        x_name, y_name, w_name = names
        self.names = names
        kind = _kind(x)
        for value, name in ((y, y_name), (sample_weight, w_name)):
            if value is not None:
                raise ValueError(f"`{name}` must be None when `{x_name}` is {kind} (it "
                                 f"yields them); received {name} of type {type(value).__name__}")
        self.steps = None if steps is None else _checks.integer("steps", steps, 1)
        with warnings.catch_warnings():
            if isinstance(x, tf.data.Dataset) and shuffle:
                warnings.warn(
                    "`shuffle=True` is ignored since `x` is a tf.data.Dataset: shuffle "
                    "the dataset itself (`dataset.shuffle(buffer_size)`).", stacklevel=4)
            warnings.simplefilter("ignore")  # Keras's own copy of that warning
            self.adapter = compat.data_adapter(x, steps_per_epoch=self.steps,
                                            shuffle=shuffle if isinstance(x, PyDataset) else False,
                                            class_weight=class_weight)
        # A dataset is used as it is (its type tells whether its batches have one size,
        # `super_batches`), or as Keras's adapter maps it to add class weights.
        self.dataset = self.adapter.get_tf_dataset() if not isinstance(
            x, tf.data.Dataset) or class_weight is not None else x
        # The user's pipeline holds a reshuffling seed's state: iterators are counted
        # on it, whether or not class weights are mapped over it.
        self._counted = x if isinstance(x, tf.data.Dataset) else self.dataset
        self.element_spec = self.dataset.element_spec
        self.name = x_name
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
        self.num_batches = known
        self.steps_per_epoch = self.steps or known
        self._steps_seen = 0
        # A tf.data iterator's position can be saved in a tf.train.Checkpoint; a
        # generator's or a PyDataset's (wrapped in `from_generator`) cannot.
        self.checkpointable = isinstance(x, tf.data.Dataset)
        self._from_generator = not isinstance(x, tf.data.Dataset)
        self._iterator = None
        # The dataset distributed (Keras's way), by super-batch size (None: plain).
        self._datasets = {}
        self._already_made = 0
        self.super_batch = None

    @property
    def persistent_input(self):
        """Whether one iterator carries on across epochs (`steps_per_epoch`)."""
        return self.steps is not None

    # ---- feeds (`feeds`): the source protocol the controller uses ----------------------

    def _feed(self, iterator, total, super_batch):
        if super_batch:
            return SuperBatchFeed(iterator, self.element_spec, total, super_batch)
        return IteratorFeed(iterator, self.element_spec, total)

    def prepare_fit(self, start_epoch, strategy, super_batches, steps_per_execution):
        """Before a `fit`'s first epoch: whether training reads super-batches
        (`super_batches`: the controller allows them), and the iterators of the
        epochs before `start_epoch` (a resumed run)."""
        self.use_super_batches(self.super_batch_size(
            steps_per_execution=steps_per_execution) if super_batches else None)
        if start_epoch > 0:
            self.fast_forward(start_epoch, strategy)

    def epoch_feed(self, epoch, seed, shuffle, strategy):
        """The feed of a training epoch (Keras's iterator rules: `begin_epoch`)."""
        self.on_epoch_begin()
        iterator = self.begin_epoch(strategy)
        return self._feed(iterator, self.steps_this_epoch(), self.super_batch)

    def finish_epoch(self, feed, steps_run, ran_out, stopped, strategy):
        """After a training epoch of `steps_run` steps (`ran_out`: the data ended;
        `stopped`: `model.stop_training` cut it, and its iterator stays where it is).
        Returns whether it ended short of `steps_per_epoch`."""
        self.on_epoch_end()
        if stopped:
            return False
        if steps_run == 0:
            raise ValueError(f"`{self.name}` yielded no batch: it must yield at least one "
                             "per epoch (is it empty, or exhausted?)")
        return self.end_epoch(steps_run, ran_out, strategy)

    def pass_feed(self, kind, strategy, super_batches=False, steps_per_execution=None):
        """The feed of one evaluation or prediction pass: a new iterator, of
        super-batches where allowed and they apply (evaluation only)."""
        self.on_epoch_begin()
        size = self.super_batch_size(purpose="test", steps_per_execution=steps_per_execution
                                     ) if super_batches and kind.carries_logs else None
        # A known length (`steps`, or the data's) bounds the pass, as in Keras.
        return self._feed(self.pass_iterator(strategy, size), self.steps_per_epoch, size)

    def finish_pass(self, feed):
        """After an evaluation or prediction pass: lets go of its iterator."""
        self.on_epoch_end()
        self.end_pass(feed.iterator)

    def super_batch_size(self, wanted=SUPER_BATCH, purpose="train",
                         steps_per_execution=None):
        """How many batches a super-batch can hold (at most `wanted`), or None where
        super-batches do not apply.

        They apply to dense tensors whose every dimension but the batch one is known
        (padding would change the batches otherwise), where a sample is small
        (`SUPER_BATCH_BYTES_PER_SAMPLE`), and to passes that read nothing beyond
        their end: training epochs of one pass (no `steps`, so that no epoch ends
        inside a super-batch), and evaluation passes (`purpose="test"`) of one pass
        or of `steps` batches of a tf.data pipeline, whose iterator is dropped after
        the pass (a generator's would lose the batches read ahead). With a fixed
        `steps_per_execution`, the size divides it, so that the batch callbacks still
        come where the user asked.
        """
        if self.steps is not None and (purpose == "train" or not self.checkpointable):
            return None
        sample_bytes = 0
        for spec in tf.nest.flatten(self.element_spec):
            if (type(spec) is not tf.TensorSpec or spec.shape.rank in (None, 0)
                    or not spec.shape[1:].is_fully_defined() or spec.dtype == tf.string):
                return None
            sample_bytes += spec.shape[1:].num_elements() * spec.dtype.size
        size = min(wanted, SUPER_BATCH_BYTES_PER_SAMPLE // max(sample_bytes, 1))
        if steps_per_execution is not None:
            size = max(d for d in range(1, size + 1) if steps_per_execution % d == 0)
        return size if size >= _MIN_SUPER_BATCH else None

    def use_super_batches(self, size):
        """Makes training iterators yield `(batches, lengths)`: `size` batches stacked
        (`super_batches.super_batched`) and each one's length; None: plain batches."""
        if size != self.super_batch:
            self.super_batch = size
            self._set_iterator(None)

    @property
    def iterator(self):
        """The current iterator (checkpointable for a tf.data pipeline), or None."""
        return self._iterator

    # Keras `fit`'s iterator rules (keras/src/trainers/epoch_iterator.py), followed
    # exactly: a pipeline that reshuffles at each iteration (`shuffle(...,
    # reshuffle_each_iteration=True)`) draws its order from how many iterators were
    # made before, so matching `fit` (and resuming exactly) means making the same ones.

    def begin_epoch(self, strategy):
        """The iterator of a training epoch: a new one, or with `steps` the one that
        carries on."""
        if self._iterator is None or self.steps is None:
            self._new_iterator(strategy)
        return self._iterator

    def steps_this_epoch(self):
        """How many steps the epoch runs at most (None: until the data ends)."""
        if self.steps is None:
            return self.num_batches
        if self.num_batches is None:
            return self.steps
        return max(min(self.steps, self.num_batches - self._steps_seen), 0)

    def end_epoch(self, steps_run, ran_out, strategy):
        """Records a training epoch's steps; returns whether it ended short of `steps`."""
        self._steps_seen += steps_run
        short = self.steps is not None and steps_run < self.steps
        if ran_out:
            if self.num_batches is None:
                self.num_batches = self._steps_seen
            self._set_iterator(None)
        elif self.num_batches and self._steps_seen >= self.num_batches:
            self._new_iterator(strategy)  # a finished pass: Keras starts the next one
        if self.steps is None and self.num_batches:
            self.steps_per_epoch = self.num_batches
        return short

    def fast_forward(self, epochs, strategy):
        """Makes the iterators that `epochs` whole epochs would have made (a resumed
        run), but for those this process has already made of the same tf.data
        pipeline (repeated `fit(..., initial_epoch=e)` calls continue from them, as
        under Keras); the position of one that carries on comes from a checkpoint."""
        self._already_made = _ITERATORS_MADE.get(self._counted, 0) if self.checkpointable else 0
        try:
            self._fast_forward(epochs, strategy)
        finally:
            self._already_made = 0

    def _fast_forward(self, epochs, strategy):
        for _ in range(epochs):
            self.begin_epoch(strategy)
            steps = self.steps_this_epoch()
            if steps is None:
                return  # an unknown length: only reading the data would tell
            self.end_epoch(steps, False, strategy)

    def pass_iterator(self, strategy, super_batch=None):
        """A new iterator for one evaluation or prediction pass: of plain batches, or
        of super-batches of `super_batch` (see `use_super_batches`)."""
        return self._iter(self._dataset_for(strategy, super_batch))

    def end_pass(self, iterator):
        """Lets go of a pass's iterator (`pass_iterator`), off the calling thread."""
        release_later(iterator)

    def _new_iterator(self, strategy):
        self._steps_seen = 0
        if self._already_made:  # fast-forwarding past iterators made before
            self._already_made -= 1
            self._set_iterator(None)
            return
        self._set_iterator(self._iter(self._dataset_for(strategy, self.super_batch)))

    def _set_iterator(self, iterator):
        release_later(self._iterator)  # a finished one's threads are joined elsewhere
        self._iterator = iterator

    def _iter(self, dataset):
        if self.checkpointable:
            _ITERATORS_MADE[self._counted] = _ITERATORS_MADE.get(self._counted, 0) + 1
        return iter(dataset)

    def _dataset_for(self, strategy, super_batch):
        if super_batch not in self._datasets:
            if super_batch is None:
                # Keras distributes the dataset under every strategy, the default one
                # too; it changes how a seeded shuffle draws its orders, so do the same.
                dataset = self.dataset
                if self._from_generator and strategy.num_replicas_in_sync > 1:
                    dataset = _owned_copies(dataset)
                dataset = strategy.experimental_distribute_dataset(dataset)
            else:  # no strategy: the "distributed" dataset is the dataset
                dataset = super_batched(self._dataset_for(strategy, None), super_batch,
                                        self.element_spec)
            self._datasets[super_batch] = dataset
        return self._datasets[super_batch]

    def on_epoch_begin(self):
        """Keras's adapter hook (a PyDataset's workers start)."""
        self.adapter.on_epoch_begin()

    def on_epoch_end(self):
        """Keras's adapter hook (a PyDataset's `on_epoch_end`)."""
        self.adapter.on_epoch_end()

