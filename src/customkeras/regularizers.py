"""L1 weight regularization, the chapter's `my_l1_regularizer` and `MyL1Regularizer`.

```
penalty = factor * sum(|w|)
```

Keras adds the penalty of every regularized weight to `model.losses`.
"""

import keras
from keras import ops

from customkeras._checks import non_negative_float

__all__ = ["L1", "l1"]


def _l1_penalty(weights, factor):
    return factor * ops.sum(ops.abs(weights))


@keras.saving.register_keras_serializable(package="customkeras")
def l1(weights):
    """L1 penalty with factor 0.01: `0.01 * sum(|weights|)`.

    Args:
        weights: Weight tensor.

    Returns:
        Scalar tensor.

    Example:

    >>> keras.layers.Dense(10, kernel_regularizer=l1)
    """
    return _l1_penalty(weights, 0.01)


@keras.saving.register_keras_serializable(package="customkeras")
class L1(keras.regularizers.Regularizer):
    """L1 regularizer: `factor * sum(|weights|)`.

    Args:
        factor: Finite float >= 0, the penalty's weight. Defaults to `0.01`.

    Example:

    >>> keras.layers.Dense(10, kernel_regularizer=L1(0.01))
    """

    def __init__(self, factor=0.01):
        self.factor = non_negative_float("factor", factor)

    def __call__(self, weights):
        return _l1_penalty(weights, self.factor)

    def get_config(self):
        return {"factor": self.factor}
