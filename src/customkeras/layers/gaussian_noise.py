"""`GaussianNoise`: adds zero-mean Gaussian noise, in training only (the chapter's
`MyGaussianNoise`)."""

import keras

from customkeras._checks import non_negative_float, optional_seed


@keras.saving.register_keras_serializable(package="customkeras")
class GaussianNoise(keras.layers.Layer):
    """Adds `N(0, stddev**2)` noise when `training=True`; the identity otherwise.

    Formula: `outputs = inputs + stddev * N(0, 1)` in training, `outputs = inputs` at
    inference.

    Args:
        stddev: Float >= 0, the noise's standard deviation.
        seed: Optional integer seed of the noise. Defaults to `None`.
        **kwargs: Base `keras.layers.Layer` arguments.

    Example:

    >>> layer = GaussianNoise(0.1, seed=42)
    >>> layer(x, training=True)   # x plus noise
    >>> layer(x)                  # x unchanged
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = non_negative_float("stddev", stddev)
        self.seed = optional_seed("seed", seed)
        # A SeedGenerator advances on every call, so each batch gets fresh noise while
        # a fixed seed still makes a run reproducible.
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.stddev == 0:
            return inputs
        noise = keras.random.normal(
            keras.ops.shape(inputs),
            stddev=self.stddev,
            dtype=inputs.dtype,
            seed=self.seed_generator,
        )
        return inputs + noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
