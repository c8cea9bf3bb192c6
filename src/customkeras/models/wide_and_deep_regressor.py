"""`WideAndDeepRegressor`: the chapter's `MyModel`, inputs concatenated with a deep path."""

import keras

from customkeras._checks import positive_int
from customkeras.layers.simple_dense import SimpleDense


@keras.saving.register_keras_serializable(package="customkeras")
class WideAndDeepRegressor(keras.Model):
    """Wide & Deep regressor: the raw inputs (wide path) join two hidden layers (deep path).

    Formula:

    ```
    deep = dense2(dense1(inputs))            # SimpleDense(units, activation)
    outputs = output(concatenate([inputs, deep]))
    ```

    Args:
        output_dim: Integer >= 1, the number of outputs. Defaults to `1`.
        units: Integer >= 1, the units of each hidden layer. Defaults to `30`.
        activation: Activation of the hidden layers. Defaults to `"relu"`.

    Example:

    >>> model = WideAndDeepRegressor()
    >>> model.compile(loss="mse", optimizer="nadam")
    """

    def __init__(self, output_dim=1, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.output_dim = positive_int("output_dim", output_dim)
        self.units = positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.hidden1 = SimpleDense(self.units, activation=self.activation)
        self.hidden2 = SimpleDense(self.units, activation=self.activation)
        self.concat = keras.layers.Concatenate()
        self.output_layer = SimpleDense(self.output_dim)

    def build(self, input_shape):
        self.hidden1.build(input_shape)
        hidden_shape = self.hidden1.compute_output_shape(input_shape)
        self.hidden2.build(hidden_shape)
        self.output_layer.build((*input_shape[:-1], input_shape[-1] + self.units))

    def call(self, inputs):
        deep = self.hidden2(self.hidden1(inputs))
        return self.output_layer(self.concat([inputs, deep]))

    def get_config(self):
        return {
            **super().get_config(),
            "output_dim": self.output_dim,
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
        }
