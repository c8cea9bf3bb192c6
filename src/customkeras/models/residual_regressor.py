"""`ResidualRegressor`: the chapter's subclassed model built from residual blocks."""

import keras

from customkeras._checks import positive_int
from customkeras.layers.residual_block import ResidualBlock

_UNITS = 30
_BLOCK1_REPEATS = 1 + 3  # the chapter applies block1 four times (shared weights)


@keras.saving.register_keras_serializable(package="customkeras")
class ResidualRegressor(keras.Model):
    """Regressor with a Dense(30) layer, residual blocks and a linear output.

    Architecture: `Dense(30, relu)` -> `block1` applied 4 times (the same weights
    each time) -> `block2` -> `Dense(output_dim)`, where both blocks are
    `ResidualBlock(2, 30)`.

    Args:
        output_dim: Integer >= 1, the number of outputs.
        **kwargs: Base `keras.Model` arguments (`name`, ...).

    Example:

    >>> model = ResidualRegressor(1)
    >>> model.compile(loss="mse", optimizer="nadam")
    >>> model.fit(X_train, y_train, epochs=2)
    """

    def __init__(self, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = positive_int("output_dim", output_dim)
        self.hidden1 = keras.layers.Dense(
            _UNITS, activation="relu", kernel_initializer="he_normal"
        )
        self.block1 = ResidualBlock(2, _UNITS)
        self.block2 = ResidualBlock(2, _UNITS)
        self.out = keras.layers.Dense(self.output_dim)

    def build(self, input_shape):
        self.hidden1.build(input_shape)
        hidden_shape = self.hidden1.compute_output_shape(input_shape)
        self.block1.build(hidden_shape)
        self.block2.build(hidden_shape)
        self.out.build(hidden_shape)

    def call(self, inputs):
        outputs = self.hidden1(inputs)
        for _ in range(_BLOCK1_REPEATS):
            outputs = self.block1(outputs)
        outputs = self.block2(outputs)
        return self.out(outputs)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim}
