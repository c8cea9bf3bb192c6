"""The divergence guard: the last finite state, to fall back to when training diverges.

After every execution whose losses and weights were all finite, the loop copies the
training state (model and optimizer variables) into backup variables, in-graph. When
an execution produces a NaN or an infinity, the controller puts the backup back and
raises `TrainingDivergedError`: the model keeps the weights of the last finite
execution, not half-updated ones.
"""

import tensorflow as tf


class DivergenceGuard:
    """Backups of the training state, refreshed after every finite execution.

    Args:
        model: the model whose trainable weights are checked for finiteness.
        state: every variable that training changes (model and optimizers).
        strategy: the strategy the backups are created under.
    """

    def __init__(self, model, state, strategy):
        self.model = model
        self._state = list(state)
        with strategy.scope():
            self._backups = [
                tf.Variable(v.value, trainable=False, name="backup") for v in self._state
            ]

    def weights_finite(self):
        """A boolean tensor: whether every trainable weight is finite."""
        checks = [tf.reduce_all(tf.math.is_finite(v)) for v in self.model.trainable_variables
                  if "float" in str(v.dtype)]
        return tf.reduce_all(checks) if checks else tf.constant(True)

    def refresh_if(self, condition):
        """In-graph: refreshes the backup when `condition` holds."""
        tf.cond(condition, self._refresh, lambda: False)

    def _refresh(self):
        for backup, variable in zip(self._backups, self._state):
            backup.assign(variable.value)
        return True

    def refresh(self):
        """Records the current state as the last finite one."""
        self._refresh()

    def restore(self):
        """Puts back the state recorded by the last refresh."""
        for backup, variable in zip(self._backups, self._state):
            variable.assign(backup)
