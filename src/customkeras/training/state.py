"""`TrainingState`: what run-management callbacks see of a running `Trainer.fit`.

Resuming exactly needs more than weights: the position in the epoch, the shuffle
seed, the running metrics of the epoch so far, and, for a tf.data pipeline, the input
iterator's position. A callback that wants them defines
`set_training_state(state)`; the controller calls it before `on_train_begin`, keeps
`state.epoch` / `state.step` current before every batch and epoch hook, and a callback
may call `state.resume(...)` in `on_train_begin` to move the start. Keras's own
`BackupAndRestore` is served the same way (`keras_backup`).

In the style of Lightning's loops (`state_dict` / `load_state_dict`): the position is
`state_dict()` (JSON-able values) plus the TensorFlow objects of `trackables()` (the
running metrics, the input iterator, the seed generators' states), and a checkpoint
that saved both puts the run back with `load_state_dict(values, restore)`.

The values include the XLA decisions `jit_compile="auto"` made (`xla_choice`): they
depend on the machine, so a resume adopts the run's (`adopt_xla`) rather than letting
this machine decide again.
"""

import tensorflow as tf


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
        validation_logs: the logs (`val_*` keys) of the last validation, or {}.
        xla: the `Trainer`'s `xla_choice.XlaChoice`, or None (no XLA decision to record).
    """

    def __init__(self, model, optimizers, seed, checkpointable_input, persistent_input,
                 xla=None):
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
        self.validation_logs = {}
        self.xla = xla

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

    def state_dict(self):
        """The position as JSON-able values: `{"epoch", "step", "seed", "logs"}`, and
        `"xla"`: `{kind: bool}`, the XLA decisions made under `jit_compile="auto"` so
        far (only then, and only once one is made)."""
        values = {"epoch": self.epoch, "step": self.step, "seed": self.seed,
                  "logs": dict(self.logs)}
        recorded = self.xla.recorded() if self.xla is not None else {}
        if recorded:
            values["xla"] = recorded
        return values

    def adopt_xla(self, recorded):
        """Makes `jit_compile="auto"` follow the XLA decisions a resumed run recorded
        (`state_dict()["xla"]`) instead of deciding on this machine (call in
        `on_train_begin`; `load_state_dict` calls it). An explicit `jit_compile`
        ignores them.

        Args:
            recorded: `{kind: bool}`, or None (nothing recorded).
        """
        if self.xla is not None:
            self.xla.adopt(recorded)

    def trackables(self, with_iterator, with_metrics=True, with_seed_states=False):
        """A `tf.train.Checkpoint` of the position's TensorFlow objects: the running
        metrics (mid-epoch), the input iterator (`with_iterator`: the caller knows
        whether its position matters) and the seed generators' states."""
        items = {}
        if with_seed_states:
            items["seed_states"] = self.seed_states
        if with_metrics:
            items["metrics"] = self.metrics_variables
        if with_iterator:
            items["iterator"] = self.iterator
        return tf.train.Checkpoint(**items)

    def load_state_dict(self, values, read=None):
        """Asks `fit` to start at the position `values` (a `state_dict()`; call in
        `on_train_begin`). `read(state)`, if given, reads the saved `trackables` once
        the epoch's metrics have been reset and its iterator exists; the logs come
        back with it."""
        def restore(state):
            if read is not None:
                read(state)
            state.logs = dict(values.get("logs") or {})

        self.adopt_xla(values.get("xla"))
        self.resume(values["epoch"], values["step"], values.get("seed"), restore=restore)

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
