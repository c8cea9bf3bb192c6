"""Glorot (Xavier) normal initialization, the chapter's `my_glorot_initializer`.

Weights are drawn from a normal distribution with

```
stddev = sqrt(2 / (fan_in + fan_out))
```

(a plain normal, as in the chapter; `keras.initializers.GlorotNormal` uses a truncated
normal instead).
"""

import math

import keras

from customkeras._checks import optional_seed

__all__ = ["GlorotNormal", "glorot_normal"]


def _fans(shape):
    """(fan_in, fan_out) of a kernel shape; convolution kernels count their window."""
    shape = tuple(int(dim) for dim in shape)
    if len(shape) < 2:
        raise ValueError(
            "`shape` must be a kernel shape with at least 2 dimensions (Glorot "
            f"initialization needs fan_in and fan_out); received shape={shape}"
        )
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _glorot_stddev(shape):
    fan_in, fan_out = _fans(shape)
    return math.sqrt(2.0 / (fan_in + fan_out))


@keras.saving.register_keras_serializable(package="customkeras")
def glorot_normal(shape, dtype=None):
    """Draws a Glorot-normal kernel: normal with stddev `sqrt(2 / (fan_in + fan_out))`.

    Args:
        shape: Kernel shape, at least 2 dimensions (`(fan_in, fan_out)` for Dense).
        dtype: Float dtype. Defaults to `keras.backend.floatx()`.

    Returns:
        A tensor of the given shape.

    Example:

    >>> keras.layers.Dense(10, kernel_initializer=glorot_normal)
    """
    return keras.random.normal(shape, stddev=_glorot_stddev(shape), dtype=dtype)


@keras.saving.register_keras_serializable(package="customkeras")
class GlorotNormal(keras.initializers.Initializer):
    """Glorot-normal initializer: normal with stddev `sqrt(2 / (fan_in + fan_out))`.

    Args:
        seed: Optional integer seed. With a seed, every call returns the same values
            (as Keras's own initializers do). Defaults to `None` (a new draw each call).

    Example:

    >>> keras.layers.Dense(10, kernel_initializer=GlorotNormal(seed=42))
    """

    def __init__(self, seed=None):
        self.seed = optional_seed("seed", seed)

    def __call__(self, shape, dtype=None):
        return keras.random.normal(
            shape, stddev=_glorot_stddev(shape), dtype=dtype, seed=self.seed
        )

    def get_config(self):
        return {"seed": self.seed}
