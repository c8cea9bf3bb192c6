"""The training engine: a fast custom training loop (chapter 12, exercise 13).

`Trainer` keeps the chapter's loop semantics (mean loss plus `model.losses`,
constraints after every step, streaming metrics reset per epoch, validation at each
epoch's end, per-group optimizers) and runs several steps per traced graph call, on
one device or, through `tf.distribute`, on several devices (`MirroredStrategy`) or
processes and machines (`MultiWorkerMirroredStrategy`, see `create_strategy`).

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
from customkeras.training.strategies import STRATEGIES, create_strategy, read_tf_config
from customkeras.training.trainer import Trainer

__all__ = [
    "STRATEGIES",
    "Trainer",
    "TrainingDivergedError",
    "create_strategy",
    "group_optimizer",
    "read_tf_config",
]
