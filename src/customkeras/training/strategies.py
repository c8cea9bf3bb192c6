"""Creating the `tf.distribute` strategy a `Trainer` runs under, by name.

* `"default"`: TensorFlow's default strategy, one device, no distribution.
* `"mirrored"`: `tf.distribute.MirroredStrategy`, one replica per local GPU (or the
  CPU when there is none).
* `"multi-worker"`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per
  worker, set up by the `TF_CONFIG` environment variable; every worker runs the same
  program with its own `TF_CONFIG` (same `cluster`, its own `task`).

`TF_CONFIG` is checked here first, so that a typo gives a message saying what is
wrong instead of an error from deep inside TensorFlow's cluster set-up.

A `MultiWorkerMirroredStrategy` must be created before TensorFlow runs any operation
in the process (it configures the runtime's collective operations): create it first,
before loading data or building models.
"""

import dataclasses
import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")
# Jobs whose tasks train under MultiWorkerMirroredStrategy; task 0 of "chief" (or of
# "worker" when there is no chief) is the chief.
WORKER_JOBS = ("chief", "worker")
TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster that `TF_CONFIG` describes.

    Attributes:
        cluster: job name -> list of `"host:port"` addresses.
        task_type: this process's job, `"chief"` or `"worker"`.
        task_index: this process's index in its job.
    """

    cluster: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self):
        """Number of training processes (chief and workers)."""
        return sum(len(self.cluster.get(job, [])) for job in WORKER_JOBS)

    @property
    def worker_id(self):
        """0 for the chief, then 1, 2, ... as TensorFlow numbers the workers."""
        offset = len(self.cluster.get("chief", [])) if self.task_type == "worker" else 0
        return offset + self.task_index

    @property
    def is_chief(self):
        """Whether this process writes the run's files (checkpoints, logs, artifacts)."""
        return self.worker_id == 0

    @property
    def address(self):
        """This process's `"host:port"`."""
        return self.cluster[self.task_type][self.task_index]


def read_tf_config(environ=None):
    """Parses and checks the `TF_CONFIG` environment variable.

    Args:
        environ: the environment to read. Defaults to `os.environ`.

    Returns:
        A `ClusterTask`.

    Raises:
        ValueError: `TF_CONFIG` is missing, is not JSON, or does not describe this
            process as one of the cluster's chief or workers; the message says what
            is wrong and shows a valid example.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        raise ValueError(
            "multi-worker training needs the TF_CONFIG environment variable: the "
            "cluster's addresses and this process's task, e.g. " + TF_CONFIG_EXAMPLE
        )

    def bad(problem):
        return ValueError(f"TF_CONFIG is invalid: {problem}. Expected e.g. {TF_CONFIG_EXAMPLE}")

    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise bad(f"not JSON ({error}); received {text!r}") from None
    if not isinstance(document, dict):
        raise bad(f"it must be a JSON object; received {text!r}")
    cluster, task = document.get("cluster"), document.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise bad('"cluster" must map job names to lists of "host:port" addresses')
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            raise bad(f'"cluster" job {job!r} must be a list of "host:port"; received {addresses!r}')
    unsupported = sorted(set(cluster) - set(WORKER_JOBS))
    if unsupported:
        raise bad(
            f"only the jobs {WORKER_JOBS} take part in multi-worker training; "
            f"received {unsupported} (parameter servers and evaluators are not supported)"
        )
    if len(cluster.get("chief", [])) > 1:
        raise bad(f'"chief" must have one address; received {cluster["chief"]!r}')
    if not isinstance(task, dict):
        raise bad('"task" must be an object {"type": ..., "index": ...}')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise bad(f'"task" type must be one of the cluster\'s jobs {sorted(cluster)}; received {task_type!r}')
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise bad(
            f'"task" index must be an integer from 0 to {len(cluster[task_type]) - 1} '
            f"(the {task_type!r} job has {len(cluster[task_type])} address(es)); received {index!r}"
        )
    return ClusterTask({job: list(a) for job, a in cluster.items()}, task_type, index)


def create_strategy(name, *, timeout_seconds=None):
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: one of `STRATEGIES`: `"default"`, `"mirrored"` or `"multi-worker"`.
        timeout_seconds: multi-worker only: a collective operation (gradient
            all-reduce, metric read, ...) that waits longer than this for the other
            workers fails with `tf.errors.DeadlineExceededError` instead of hanging.
            None waits forever. A worker that dies is detected sooner anyway: its
            closed connection, or TensorFlow's coordination service (heartbeats
            every few seconds), aborts the collectives with `UnavailableError`.
            Defaults to None.

    Returns:
        The strategy. For `"default"`, `tf.distribute.get_strategy()`.

    Raises:
        ValueError: an unknown name, a bad `TF_CONFIG`, or a multi-worker strategy
            requested after TensorFlow has started running operations.

    Example:

    ```python
    strategy = create_strategy("multi-worker", timeout_seconds=600)  # first TF call
    with strategy.scope():
        model = build_model()
        optimizer = keras.optimizers.Nadam()
    Trainer(model, "mse", optimizer, strategy=strategy).fit(x, y, seed=42)
    ```
    """
    if name not in STRATEGIES:
        raise ValueError(f"`name` must be one of {STRATEGIES}; received {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    read_tf_config()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as error:
        if "startup" not in str(error):
            raise
        raise ValueError(
            "a multi-worker strategy must be created before TensorFlow runs any "
            "operation in the process; create it first (TensorFlow said: "
            f"{error})"
        ) from None
