"""`LayerNormalization`: normalizes each instance over its last axis (exercise 12)."""

import keras
from keras import ops

from customkeras._checks import positive_float


@keras.saving.register_keras_serializable(package="customkeras")
class LayerNormalization(keras.layers.Layer):
    """Normalizes each instance's features, then scales and shifts them.

    Formula, with mean `mu` and variance `var` over the last axis of each instance:

    ```
    outputs = alpha * (inputs - mu) / sqrt(var + epsilon) + beta
    ```

    Epsilon sits inside the square root, as in `keras.layers.LayerNormalization`, so
    the gradient stays finite when an instance's features are all equal.

    Args:
        epsilon: Float > 0, added to the variance. Defaults to `1e-3`.
        **kwargs: Base `keras.layers.Layer` arguments.

    Example:

    >>> layer = LayerNormalization()
    >>> layer(np.array([[1.0, 2.0, 3.0]]))  # about [[-1.2238, 0.0, 1.2238]]
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = positive_float("epsilon", epsilon)

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha", shape=input_shape[-1:], initializer="ones"
        )
        self.beta = self.add_weight(
            name="beta", shape=input_shape[-1:], initializer="zeros"
        )

    def call(self, inputs):
        mean, variance = ops.moments(inputs, axes=[-1], keepdims=True)
        normalized = (inputs - mean) * ops.rsqrt(variance + self.epsilon)
        return self.alpha * normalized + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
