"""Non-negative weights, the chapter's `my_positive_weights`.

After each optimizer step Keras replaces a constrained weight `w` by

```
max(w, 0)
```
"""

import keras
from keras import ops

__all__ = ["NonNegative", "non_negative"]


@keras.saving.register_keras_serializable(package="customkeras")
def non_negative(weights):
    """Clips weights at zero: returns `max(weights, 0)`.

    Args:
        weights: Weight tensor.

    Returns:
        Tensor of the same shape and dtype, with negative entries replaced by 0.

    Example:

    >>> keras.layers.Dense(10, kernel_constraint=non_negative)
    """
    # Keras passes the Variable itself; JAX's zeros_like needs a tensor.
    weights = ops.convert_to_tensor(weights)
    return ops.maximum(weights, ops.zeros_like(weights))


@keras.saving.register_keras_serializable(package="customkeras")
class NonNegative(keras.constraints.Constraint):
    """Constraint keeping weights non-negative: `w <- max(w, 0)` after each update.

    Example:

    >>> keras.layers.Dense(10, kernel_constraint=NonNegative())
    """

    def __call__(self, weights):
        return non_negative(weights)

    def get_config(self):
        return {}
