"""`ResidualBlock`: a stack of Dense layers with a skip connection (the chapter's)."""

import keras

from customkeras._checks import positive_int


@keras.saving.register_keras_serializable(package="customkeras")
class ResidualBlock(keras.layers.Layer):
    """Dense layers with a skip connection: `outputs = inputs + dense_n(...dense_1(inputs))`.

    Each Dense layer has `n_units` ReLU units and He-normal initialization. The inputs'
    last dimension must equal `n_units`, so the sum is defined.

    Args:
        n_layers: Integer >= 1, the number of Dense layers.
        n_units: Integer >= 1, the units per Dense layer (and the input width).
        **kwargs: Base `keras.layers.Layer` arguments.

    Example:

    >>> block = ResidualBlock(2, 30)
    >>> block(np.zeros((4, 30))).shape
    (4, 30)
    """

    def __init__(self, n_layers, n_units, **kwargs):
        super().__init__(**kwargs)
        self.n_layers = positive_int("n_layers", n_layers)
        self.n_units = positive_int("n_units", n_units)
        self.hidden = [
            keras.layers.Dense(
                self.n_units, activation="relu", kernel_initializer="he_normal"
            )
            for _ in range(self.n_layers)
        ]

    def build(self, input_shape):
        if input_shape[-1] != self.n_units:
            raise ValueError(
                f"ResidualBlock with n_units={self.n_units} needs inputs whose last "
                f"dimension is {self.n_units}, to add them to its output. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs):
        outputs = inputs
        for layer in self.hidden:
            outputs = layer(outputs)
        return inputs + outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "n_layers": self.n_layers,
            "n_units": self.n_units,
        }
