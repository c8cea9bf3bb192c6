"""`Exponential`: applies `exp` element-wise (the chapter's `Lambda(tf.exp)` as a class)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="customkeras")
class Exponential(keras.layers.Layer):
    """Element-wise exponential: `outputs = exp(inputs)`.

    Useful as the output layer of a regressor whose targets are positive and span
    several orders of magnitude. Unlike a `Lambda` layer, it reloads in safe mode.

    Example:

    >>> Exponential()([-1.0, 0.0, 1.0])  # [0.36787945, 1.0, 2.7182817]
    """

    def call(self, inputs):
        return ops.exp(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
