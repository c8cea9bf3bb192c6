"""`TrainingState`: what run-management callbacks see of a running `Trainer.fit`.

Resuming exactly needs more than weights: the position in the epoch, the shuffle
seed, the running metrics of the epoch so far, and, for a tf.data pipeline, the input
iterator's position. A callback that wants them defines
`set_training_state(state)`; the controller calls it before `on_train_begin`, keeps
`state.epoch` / `state.step` current before every batch and epoch hook, and a callback
may call `state.resume(...)` in `on_train_begin` to move the start. Keras's own
`BackupAndRestore` is served the same way (`keras_backup`).
"""


class TrainingState:
    """The position and resumable state of one `fit` call.

    Attributes:
        model: the model being trained.
        optimizers: every optimizer whose state training changes.
        seed: the shuffle seed of this call (array data).
        epoch: the current epoch (0-based).
        step: the number of steps of the current epoch already run.
        iterator: the input iterator of the current epoch (a tf.data iterator,
            checkpointable), or None for in-memory arrays.
        checkpointable_input: whether `iterator`'s position can be saved (False for
            generators and PyDataset, whose epochs replay from their start).
        persistent_input: whether one iterator carries on across epochs
            (`steps_per_epoch` with streamed data).
        logs: the logs (floats) after the last execution of the current epoch.
    """

    def __init__(self, model, optimizers, seed, checkpointable_input, persistent_input):
        self.model = model
        self.optimizers = list(optimizers)
        self.seed = seed
        self.epoch = 0
        self.step = 0
        self.iterator = None
        self.checkpointable_input = checkpointable_input
        self.persistent_input = persistent_input
        self.resume_point = None
        self.logs = {}

    @property
    def metrics_variables(self):
        """The variables of the running metrics (`model.metrics`)."""
        return [v for metric in self.model.metrics for v in metric.variables]

    @property
    def seed_states(self):
        """The model's seed-generator states (`Dropout`'s, `keras.random`'s): model
        variables that are not weights, so that a weights-only save misses them."""
        weights = {id(weight) for weight in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def resume(self, epoch, step=0, seed=None, restore=None):
        """Asks `fit` to start at step `step` of epoch `epoch` (call in `on_train_begin`).

        Args:
            epoch: the epoch to start in (0-based).
            step: the steps of that epoch already run. Defaults to 0.
            seed: the shuffle seed of the run being resumed, if known. Defaults to
                None (keep this call's).
            restore: a function called with this state once the epoch's metrics have
                been reset and its iterator exists, to put back the running metrics,
                the iterator's position and `logs`. Defaults to None.
        """
        self.resume_point = (int(epoch), int(step), seed, restore)


def training_state_callbacks(callbacks):
    """The callbacks that take a `TrainingState` (`set_training_state`)."""
    return [c for c in callbacks if callable(getattr(c, "set_training_state", None))]
