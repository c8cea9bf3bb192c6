"""The training engine: a fast custom training loop (chapter 12, exercise 13), open.

`Trainer` runs Keras's default step (the compiled loss, metrics and optimizer, as
`fit`) or a model's own `train_step` (the Keras guide's override point: GANs,
gradient surgery, several models) in an in-graph multi-step loop, over in-memory
arrays or streamed data (tf.data, generators, `PyDataset`), on one device or, through
`tf.distribute`, on several devices (`MirroredStrategy`) or processes and machines
(`MultiWorkerMirroredStrategy`, see `create_strategy`). `run` holds run management:
exact resume, graceful Ctrl-C, one owner per run directory. See docs/architecture.md.

Example:

```python
from customkeras.training import Trainer
trainer = Trainer(model, "sparse_categorical_crossentropy", keras.optimizers.Nadam(),
                  metrics=["accuracy"])
history = trainer.fit(x_train, y_train, epochs=5, validation_data=(x_valid, y_valid))
```
"""

from customkeras._backend import require_tensorflow; require_tensorflow(__name__)  # noqa: E702

from customkeras.training.errors import TrainingDivergedError
from customkeras.training.optimizer_groups import group_optimizer
from customkeras.training.run import (
    CheckpointError,
    CheckpointWriteError,
    EpochCheckpoint,
    GracefulInterrupt,
    RunCheckpoint,
    RunError,
    RunLock,
    RunLockedError,
)
from customkeras.training.state import TrainingState
from customkeras.training.strategies import STRATEGIES, create_strategy, read_tf_config
from customkeras.training.trainer import Trainer
from customkeras.training.xla_choice import XlaDecisionWarning

__all__ = [
    "STRATEGIES",
    "CheckpointError",
    "CheckpointWriteError",
    "EpochCheckpoint",
    "GracefulInterrupt",
    "RunCheckpoint",
    "RunError",
    "RunLock",
    "RunLockedError",
    "Trainer",
    "TrainingDivergedError",
    "TrainingState",
    "XlaDecisionWarning",
    "create_strategy",
    "group_optimizer",
    "read_tf_config",
]
