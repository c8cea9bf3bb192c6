"""The benchmarks' Keras models, built the same way in every contender's process.

`mlp` and `cnn` run on either Keras backend; `guide_model` and `gan` write their own
`train_step` with `tf.GradientTape`, as the Keras guide "Customizing what happens in
fit() with TensorFlow" does, so they are TensorFlow-only.
"""

from _harness import LEARNING_RATE, SEED

LOSS = "sparse_categorical_crossentropy"
LATENT_DIM = 30


def set_random_seed(seed):
    """`keras.utils.set_random_seed`, without importing TensorFlow on the JAX backend.

    Keras seeds TensorFlow too whenever it is installed, which imports it (~600 MB of
    resident memory) into a Keras-on-JAX process that a JAX user's machine would not have.
    """
    import random

    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        keras.utils.set_random_seed(seed)
        return
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def mlp():
    """Exercise 13a's model: Flatten -> Dense(100, relu) -> Dense(10, softmax)."""
    import keras

    set_random_seed(SEED)  # the same initial weights in every process of a backend
    return keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def cnn():
    """A small CNN, where the step's arithmetic, not its dispatch, takes the time."""
    import keras

    set_random_seed(SEED)
    return keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def resnet(width=32, blocks_per_stage=2, image_shape=(32, 32, 3), classes=10, stages=3):
    """A small ResNet-style CNN (a stem, `stages` stages of residual blocks of two 3x3
    convolutions with batch normalization, of `width`, 2x, 4x ... filters, each stage
    after the first halving the resolution; global average pooling): a step dominated
    by convolutions, for a compute-bound benchmark."""
    import keras

    set_random_seed(SEED)
    layers = keras.layers
    inputs = keras.Input(image_shape)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    for stage in range(stages):
        filters = width * 2 ** stage
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
            y = layers.Activation("relu")(layers.BatchNormalization()(y))
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
            y = layers.BatchNormalization()(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
                shortcut = layers.BatchNormalization()(shortcut)
            x = layers.Activation("relu")(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


def nadam():
    import keras

    return keras.optimizers.Nadam(learning_rate=LEARNING_RATE)


def guide_model():
    """The MLP as a `keras.Model` subclass with the guide's hand-written `train_step`."""
    import keras
    import tensorflow as tf

    class GuideModel(keras.Model):
        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(y=y, y_pred=y_pred)
            gradients = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(gradients, self.trainable_variables)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {metric.name: metric.result() for metric in self.metrics}

    layers = mlp().layers  # the same layers and initial weights as the default step's model
    inputs = keras.Input((28, 28))
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs)
    return GuideModel(inputs, outputs)


def gan():
    """An uncompiled Fashion-MNIST GAN (the book's chapter 17 dense models), the guide's GAN step.

    Two optimizers set in an overridden `compile`; each step trains the discriminator on
    a half-fake, half-real batch, then the generator through the frozen discriminator.
    """
    import keras
    import tensorflow as tf

    class GAN(keras.Model):
        def __init__(self, discriminator, generator):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.seed_generator = keras.random.SeedGenerator(SEED)
            self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
            self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

        def compile(self, d_optimizer, g_optimizer, loss_fn, **options):
            super().compile(**options)
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def train_step(self, data):
            real = data[0] if isinstance(data, tuple) else data
            batch = tf.shape(real)[0]
            codings = keras.random.normal((batch, LATENT_DIM), seed=self.seed_generator)
            images = tf.concat([self.generator(codings), real], axis=0)
            labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
            labels += 0.05 * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                d_loss = self.loss_fn(labels, self.discriminator(images))
            weights = self.discriminator.trainable_weights
            self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)
            codings = keras.random.normal((batch, LATENT_DIM), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                fooled = self.discriminator(self.generator(codings))
                g_loss = self.loss_fn(tf.zeros((batch, 1)), fooled)
            weights = self.generator.trainable_weights
            self.g_optimizer.apply(tape.gradient(g_loss, weights), weights)
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(),
                    "g_loss": self.g_loss_tracker.result()}

    keras.utils.set_random_seed(SEED)
    generator = keras.Sequential([
        keras.Input((LATENT_DIM,)),
        keras.layers.Dense(100, activation="selu"),
        keras.layers.Dense(150, activation="selu"),
        keras.layers.Dense(28 * 28, activation="sigmoid"),
        keras.layers.Reshape((28, 28)),
    ])
    discriminator = keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(150, activation="selu"),
        keras.layers.Dense(100, activation="selu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    return GAN(discriminator, generator)


def compile_gan(model, **options):
    """The GAN's own `compile`; `options` go to `keras.Model.compile` (steps_per_execution...)."""
    import keras

    model.compile(d_optimizer=keras.optimizers.RMSprop(1e-3),
                  g_optimizer=keras.optimizers.RMSprop(1e-3),
                  loss_fn=keras.losses.BinaryCrossentropy(), **options)
