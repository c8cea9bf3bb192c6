"""`MomentumSGD`: gradient descent with (Nesterov) momentum on the Keras 3 optimizer API.

The chapter leaves custom optimizers as "extra material" because the API changed in
Keras 3: an optimizer now creates its slot variables in `build()` and updates one
variable at a time in `update_step()`. Update rule, with velocity `v` (zeros at start):

```
v = momentum * v - learning_rate * g
w = w + v                                   (classical momentum)
w = w + momentum * v - learning_rate * g    (Nesterov momentum)
```

With `momentum=0` this is plain gradient descent, `w = w - learning_rate * g`.
"""

import keras
from keras import ops

from customkeras._checks import instance, probability

__all__ = ["MomentumSGD"]


@keras.saving.register_keras_serializable(package="customkeras")
class MomentumSGD(keras.optimizers.Optimizer):
    """Stochastic gradient descent with optional classical or Nesterov momentum.

    Formula, for a variable `w` with gradient `g` and velocity `v` (zeros at start):

    ```
    v = momentum * v - learning_rate * g
    w = w + v                                  if not nesterov
    w = w + momentum * v - learning_rate * g   if nesterov
    ```

    Args:
        learning_rate: Float, a `keras.optimizers.schedules.LearningRateSchedule`, or a
            callable returning the rate. Defaults to `0.01`.
        momentum: Float in [0, 1]. 0 is plain gradient descent. Defaults to `0.0`.
        nesterov: Whether to use Nesterov momentum. Defaults to `False`.
        **kwargs: Base `keras.optimizers.Optimizer` arguments (`name`, `clipnorm`,
            `weight_decay`, ...).

    Example:

    >>> model.compile(loss="mse", optimizer=MomentumSGD(0.01, momentum=0.9))
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        kwargs.setdefault("name", "momentum_sgd")
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = probability("momentum", momentum)
        self.nesterov = instance("nesterov", nesterov, bool, "True or False")

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Without momentum there is no velocity to keep: no slot variables at all.
        self.velocities = []
        if self.momentum > 0:
            self.velocities = [
                self.add_variable_from_reference(variable, name="velocity")
                for variable in variables
            ]

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.multiply(gradient, learning_rate)
        if self.momentum == 0:
            self.assign_sub(variable, step)
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        self.assign(velocity, ops.subtract(ops.multiply(velocity, momentum), step))
        if self.nesterov:
            self.assign_add(
                variable, ops.subtract(ops.multiply(velocity, momentum), step)
            )
        else:
            self.assign_add(variable, velocity)

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
        }
