"""A numerically stable softplus with a custom gradient (the chapter's `my_softplus`).

`log(1 + exp(z))` overflows for large `z` (`exp(1000.)` is `inf` in float32) and its
automatic gradient `exp(z) / (1 + exp(z))` becomes `inf / inf = nan`. The stable forms
used here are

```
softplus(z)  = log(1 + exp(-|z|)) + max(z, 0)
softplus'(z) = sigmoid(z)
```

which stay finite for every finite float32 input. The gradient is defined with
`keras.ops.custom_gradient`, so it is used on the TensorFlow, JAX and PyTorch backends.
"""

import keras
from keras import ops

__all__ = ["softplus"]


@ops.custom_gradient
def _softplus_with_stable_gradient(z):
    value = ops.log1p(ops.exp(-ops.abs(z))) + ops.maximum(z, 0.0)

    def gradient(*args, upstream=None):
        # TensorFlow and JAX pass the upstream gradient positionally; PyTorch passes
        # it as `upstream=`, after the inputs.
        if upstream is None:
            (upstream,) = args
        return upstream * ops.sigmoid(z)

    return value, gradient


# Registered as a plain function: a registered custom-gradient function would be saved
# as class `Bind` and fail to load.
@keras.saving.register_keras_serializable(package="customkeras")
def softplus(x):
    """Softplus activation, stable for any finite input, with a stable custom gradient.

    Formula:

    ```
    softplus(x) = log(1 + exp(x)) = log(1 + exp(-|x|)) + max(x, 0)
    d softplus(x) / dx = sigmoid(x)
    ```

    Args:
        x: Input tensor (integers are cast to `keras.backend.floatx()`).

    Returns:
        Tensor of the same shape as `x`, always positive.

    Example:

    >>> softplus([-1e30, 0.0, 1e30])  # [0.0, 0.6931472, 1e30]
    >>> keras.layers.Dense(1, activation=softplus)
    """
    x = ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = ops.cast(x, keras.backend.floatx())
    return _softplus_with_stable_gradient(x)
