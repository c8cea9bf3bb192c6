"""Host-side rules for running the Trainer under a `tf.distribute.Strategy`.

The per-replica work itself (each replica's slice of the global batch, its share of
the global loss) lives in `steps`; these are the checks around it, and the agreement
between the processes of a multi-worker run.

Under `MultiWorkerMirroredStrategy` every worker runs the same host loop, and every
collective operation (a gradient all-reduce, a metric read) must be entered by all of
them in the same order, or they wait for each other forever. Host-side decisions
therefore have to be identical on every worker: the number of steps per execution
(timed locally, it would differ), `model.stop_training` (a Ctrl-C reaches one
process), the shuffle seed and the data. `WorkerCoordinator` makes them identical,
each time with one small all-gather (`WorkerAgreement`).
"""

import zlib

import numpy as np
import tensorflow as tf

from customkeras.training import compat


def is_distributed(strategy):
    """Whether `strategy` is a real distribution strategy (not TF's default one).

    Also true when the Trainer is created inside some strategy's scope.
    """
    return tf.distribute.has_strategy() or strategy is not tf.distribute.get_strategy()


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` (even of one worker)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """Whether this process should write checkpoints, logs and artifacts.

    True except on the non-chief workers of a multi-worker run.
    """
    return bool(strategy.extended.should_checkpoint)


def check_created_in_scope(model, optimizer, strategy, metrics=()):
    """Raises `ValueError` unless the model, optimizers and metrics belong to `strategy`.

    Keras requires them to be created inside `strategy.scope()`; otherwise the run
    fails deep inside the first step with an obscure message (or, for metrics,
    silently reports one replica's share).

    Args:
        model: the built model.
        optimizer: the optimizer, or a `MultiOptimizer` with `.optimizers`.
        strategy: the `tf.distribute.Strategy` the Trainer runs under.
        metrics: metric objects. Defaults to none.
    """
    outside = [
        v.path for v in [*model.variables, *(v for m in metrics for v in m.variables)]
        if not isinstance(v.value, tf.distribute.DistributedValues)
    ]
    optimizers = getattr(optimizer, "optimizers", [optimizer])
    # Keras's TensorFlow optimizers remember the strategy they were created under.
    foreign = [
        o.name for o in optimizers
        if compat.optimizer_strategy(o, strategy) is not strategy
    ]
    if outside or foreign:
        raise ValueError(
            "with `strategy`, create the model, its optimizers and metric objects inside "
            "`with strategy.scope():`; created outside it: "
            f"variables {outside[:5]}{'...' if len(outside) > 5 else ''}, "
            f"optimizers {foreign}"
        )


class WorkerAgreement:
    """Makes host-side values identical on every worker of a multi-worker run.

    Each call is one all-gather of a few float64 numbers (about 4 ms between two
    processes on one machine): every worker must make the same calls in the same
    order, which holds when they run the same program on the same data.

    Args:
        strategy: a `tf.distribute.MultiWorkerMirroredStrategy`.
    """

    def __init__(self, strategy):
        self.strategy = strategy

        def gather(values):
            # One row per replica; replica 0 is on the chief.
            rows = strategy.run(lambda v: tf.expand_dims(tf.identity(v), 0), args=(values,))
            return strategy.gather(rows, axis=0)

        self._gather = tf.function(gather, input_signature=[tf.TensorSpec([None], tf.float64)])

    def gather(self, values):
        """Returns a `(num_replicas, len(values))` array: every replica's `values`."""
        return self._gather(tf.constant(np.asarray(values, dtype=np.float64))).numpy()

    def from_chief(self, value):
        """The chief's `value` (a number that float64 holds exactly), on every worker."""
        return self.gather([value])[0, 0]

    def any(self, flag):
        """Whether `flag` is true on any worker."""
        return bool(self.gather([float(bool(flag))]).max() > 0)

    def check_same(self, values):
        """Raises `ValueError` on every worker unless `values` are equal on all.

        Args:
            values: `{name: number}`, e.g. the number of samples and the batch size.
        """
        names = list(values)
        rows = self.gather([values[name] for name in names])
        differing = [
            f"{name}: {sorted(set(rows[:, i].tolist()))}"
            for i, name in enumerate(names) if np.any(rows[:, i] != rows[0, i])
        ]
        if differing:
            raise ValueError(
                "the workers of a multi-worker run must train on the same data with "
                "the same settings; they differ in " + "; ".join(differing)
            )


def fingerprint(data):
    """A CRC-32 of a data set's tensors: workers compare it to prove they hold the same."""
    crc = 0
    for tensor in tf.nest.flatten(data):
        crc = zlib.crc32(np.ascontiguousarray(tensor.numpy()).data, crc)
    return crc


def make_coordinator(strategy, model):
    """The Trainer's host-side decisions for `strategy`: local, or agreed by workers."""
    if is_multi_worker(strategy):
        return WorkerCoordinator(strategy, model)
    return LocalCoordinator(model)


class LocalCoordinator:
    """Host-side decisions of a single process: made locally, at no cost.

    Args:
        model: the model whose `stop_training` flag stops training.
    """

    agree_between_executions = None  # for `ExecutionPlanner(agree=...)`: nothing to agree

    def __init__(self, model):
        self.model = model

    def start(self):
        """Called when `fit` starts: clears `model.stop_training`."""
        self.model.stop_training = False

    def should_stop(self):
        """Whether to stop before the next execution."""
        return self.model.stop_training

    def agree_to_stop(self):
        """Whether to stop after an epoch."""
        return self.model.stop_training

    def agree_on_fit(self, train, validation, seed, **settings):
        """Returns the shuffle seed: `seed`, or a draw from NumPy's global generator."""
        return int(np.random.randint(2**31 - 1)) if seed is None else seed

    def agree_on_evaluation(self, data, batch_size):
        """Nothing to check in a single process."""


class WorkerCoordinator(LocalCoordinator):
    """Host-side decisions shared by every worker of a multi-worker run.

    Args:
        strategy: the `MultiWorkerMirroredStrategy`.
        model: the model whose `stop_training` flag stops training.
    """

    def __init__(self, strategy, model):
        super().__init__(model)
        self._agreement = WorkerAgreement(strategy)
        self._stop = False

    def start(self):
        super().start()
        self._stop = False

    def should_stop(self):
        # The flag as agreed after the last execution, not the live one: a Ctrl-C
        # landing since then is seen by one worker only, and counts at the next
        # agreement.
        return self._stop

    def agree_to_stop(self):
        self._note_stop(self._agreement.any(self.model.stop_training))
        return self._stop

    def agree_between_executions(self, steps):
        """The chief's plan of steps per execution; also shares any stop request."""
        rows = self._agreement.gather([float(self.model.stop_training), steps])
        self._note_stop(bool(rows[:, 0].max() > 0))
        return int(rows[0, 1])

    def _note_stop(self, stop):
        # A stop requested on any worker stops them all after the same step;
        # callbacks then see it in `model.stop_training`.
        self._stop = stop
        if stop:
            self.model.stop_training = True

    def agree_on_fit(self, train, validation, seed, **settings):
        """Checks that every worker has the same data and settings; returns the seed.

        Without an explicit seed, every worker uses the chief's draw.
        """
        self._agreement.check_same({
            "training data (CRC-32)": fingerprint(train),
            "validation data (CRC-32, -1 for none)": (
                -1 if validation is None else fingerprint(validation)
            ),
            "seed (-1 for None)": -1 if seed is None else seed,
            **{name: float(value) for name, value in settings.items()},
        })
        return int(self._agreement.from_chief(super().agree_on_fit(train, validation, seed)))

    def agree_on_evaluation(self, data, batch_size):
        """Checks that every worker evaluates the same data in the same batches."""
        self._agreement.check_same({"data (CRC-32)": fingerprint(data), "batch_size": batch_size})
