"""Models with their own steps, for tests/test_training_custom_steps.py and _compiled.py.

Each builder seeds Keras first, so two calls give models with equal initial weights:
one is trained by `Trainer(model)`, the other by Keras `model.fit`, and the two runs
must agree. The steps follow the Keras guide "Customizing what happens in fit() with
TensorFlow" (keras.io/guides/custom_train_step_in_tensorflow).
"""

import keras
import numpy as np
import tensorflow as tf


def regression_data(n, n_features=4, seed=0):
    """Random float32 features and one float32 target column, `n` samples."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype("float32")
    y = (x[:, :1] - 0.5 * x[:, 1:2] + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def images(n, seed=0):
    """Fashion-MNIST-shaped random images in [0, 1]: float32, shape (n, 28, 28)."""
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


class GuideModel(keras.Model):
    """The guide's first example: its own `train_step` and `test_step`.

    `python_steps` counts how often the Python body of `train_step` runs: once per
    trace in graph mode, once per step when run eagerly.
    """

    def train_step(self, data):
        self.python_steps = getattr(self, "python_steps", 0) + 1
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply(gradients, trainable_vars)
        return self._update_metrics(loss, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=False)
        return self._update_metrics(loss, y, y_pred, sample_weight)

    def _update_metrics(self, loss, y, y_pred, sample_weight):
        # As in the guide: `self.metrics` holds the loss tracker and the compiled
        # metrics (a container whose result is a dict: Keras flattens it in the logs).
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}


class GuidePredictModel(GuideModel):
    """A `GuideModel` whose `predict_step` returns a dict: the output and its double."""

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        return {"prediction": y_pred, "double": 2.0 * y_pred}


def guide_model(seed=0, n_features=4, cls=GuideModel, compile=True, **compile_kwargs):
    """A small functional `cls` (Dense(8, relu) -> Dense(1)), compiled for regression."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_features,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = cls(inputs, keras.layers.Dense(1)(hidden))
    if compile:
        options = dict(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        options.update(compile_kwargs)
        model.compile(**options)
    return model


class Autoencoder(keras.Model):
    """Trains on `x` alone: `fit(x)` passes the batch itself (no tuple) as `data`."""

    def train_step(self, data):
        x = data
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(self(x, training=True) - x))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.reconstruction.update_state(loss)
        return {"reconstruction": self.reconstruction.result()}

    @property
    def metrics(self):
        return [self.reconstruction]


def autoencoder(seed=0, n_features=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_features,))
    code = keras.layers.Dense(2, activation="tanh")(inputs)
    model = Autoencoder(inputs, keras.layers.Dense(n_features)(code))
    model.reconstruction = keras.metrics.Mean(name="reconstruction")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


class LowLevelModel(keras.Model):
    """The guide's "going lower-level": its own loss, trackers and `metrics` property."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mae_metric = keras.metrics.MeanAbsoluteError(name="mae")

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = keras.losses.mean_squared_error(y, y_pred)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    @property
    def metrics(self):
        # Listed here, the trackers are reset at the start of each epoch.
        return [self.loss_tracker, self.mae_metric]


def low_level_model(seed=0, n_features=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_features,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = LowLevelModel(inputs, keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.005))  # no loss, no metrics
    return model


class GAN(keras.Model):
    """The guide's GAN: its own optimizers, set in an overridden `compile`.

    Each step first updates the discriminator on generated and real images, then the
    generator through the (fixed) discriminator. The noise comes from a
    `keras.random.SeedGenerator`, whose state is a variable: two GANs built alike
    draw the same noise step after step.
    """

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.seed_generator = keras.random.SeedGenerator(1337)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = tf.shape(real_images)[0]
        latent = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        generated = self.generator(latent)
        combined = tf.concat([generated, real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)

        latent = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = tf.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(misleading_labels, self.discriminator(self.generator(latent)))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_loss, weights), weights)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def gan(seed=0, latent_dim=8):
    """A small GAN on 28x28 images, compiled with Adam for each side."""
    keras.utils.set_random_seed(seed)
    discriminator = keras.Sequential([
        keras.Input((28, 28)), keras.layers.Flatten(),
        keras.layers.Dense(16, activation="leaky_relu"), keras.layers.Dense(1),
    ], name="discriminator")
    generator = keras.Sequential([
        keras.Input((latent_dim,)), keras.layers.Dense(28 * 28, activation="sigmoid"),
        keras.layers.Reshape((28, 28)),
    ], name="generator")
    model = GAN(discriminator, generator, latent_dim)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                  g_optimizer=keras.optimizers.Adam(1e-3),
                  loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def assert_same_run(history, expected, model, reference, initial=None, atol=1e-5):
    """Same history keys and values, same weights; with `initial`, weights that moved."""
    assert sorted(history.history) == sorted(expected.history)
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=0, atol=atol, err_msg=key)
    assert_same_weights(model, reference, atol=atol)
    if initial is not None:  # not a vacuous comparison: training changed the weights
        assert max(np.max(np.abs(a - b)) for a, b in zip(initial, model.get_weights())) > 1e-3


def assert_same_weights(model, reference, atol=1e-5):
    weights, expected = model.get_weights(), reference.get_weights()
    assert len(weights) == len(expected)
    for index, (a, b) in enumerate(zip(weights, expected)):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"weight {index}")


def assert_same_logs(logs, expected, atol=1e-5):
    """Two `evaluate`-style dicts: same keys, values to `atol`."""
    assert sorted(logs) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(logs[key], value, rtol=0, atol=atol, err_msg=key)


def assert_same_predictions(predictions, expected, atol=1e-5):
    """Same structure (array, list or dict) and values."""
    assert type(predictions) is type(expected)
    tf.nest.assert_same_structure(predictions, expected)
    for a, b in zip(tf.nest.flatten(predictions), tf.nest.flatten(expected)):
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
