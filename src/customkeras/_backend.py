"""Which Keras backend is running, and the guard of the TensorFlow-only parts.

The components (`losses`, `metrics`, `activations`, `initializers`, `regularizers`,
`constraints`, `layers`, `models`, `optimizers`) are written with `keras.ops` and run on
every Keras backend. `training`, `tracing` and `autodiff` are built on `tf.function`,
`tf.GradientTape` and `tf.distribute`: they call `require_tensorflow` when imported, so
on another backend the import fails at once with an error saying what to do, instead of
failing later with a confusing message from deep inside TensorFlow.
"""

# Keras and NumPy are imported inside the functions, not here: the `customkeras` command
# reads `BACKENDS` to build its options without starting TensorFlow (see customkeras.cli).

__all__ = ["BACKENDS", "TF_ONLY_PARTS", "UnsupportedBackendError", "backend",
           "gradient_of_sum", "require_tensorflow"]

# The Keras backends customkeras's components are tested on (see the README).
BACKENDS = ("tensorflow", "jax", "torch")
# The parts built on TensorFlow itself, not on keras.ops.
TF_ONLY_PARTS = ("training", "tracing", "autodiff")
# The Python package each backend needs, for "pip install ..." hints.
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class UnsupportedBackendError(ImportError):
    """A TensorFlow-only part of customkeras was imported on another Keras backend.

    An `ImportError`, so code that treats a part as optional (`try: import ...`) keeps
    working.
    """


def backend():
    """Returns the name of the Keras backend in use (`keras.backend.backend()`)."""
    import keras

    return keras.backend.backend()


def require_tensorflow(part):
    """Raises `UnsupportedBackendError` unless Keras runs on the TensorFlow backend.

    Args:
        part: Name of the TensorFlow-only part, e.g. `"customkeras.training"`, used in
            the message.

    Raises:
        UnsupportedBackendError: Keras uses another backend (jax, torch, ...). The
            message names that backend and how to switch.

    Example:

    >>> require_tensorflow("customkeras.training")  # at the top of the package
    """
    current = backend()
    if current == "tensorflow":
        return
    raise UnsupportedBackendError(
        f"{part} runs on the TensorFlow backend only, and Keras is using the "
        f"{current!r} backend (KERAS_BACKEND={current}). To use it, set "
        "KERAS_BACKEND=tensorflow before Python starts (e.g. `KERAS_BACKEND=tensorflow "
        "python script.py`). The components (customkeras.losses, metrics, activations, "
        "initializers, regularizers, constraints, layers, models, optimizers) run on "
        f"{current} as they are; train them there with model.compile() and model.fit()."
    )


def gradient_of_sum(function, x):
    """Returns `(function(x), d sum(function(x)) / dx)` as NumPy arrays, on any backend.

    For an element-wise function the second array is its derivative at each point of
    `x`. It uses the backend's own autodiff (`tf.GradientTape`, `jax.grad`,
    `torch.autograd`), so a custom gradient (`keras.ops.custom_gradient`) is exercised
    as a training step would.

    Args:
        function: Callable taking and returning one tensor.
        x: Float array-like, the point.

    Returns:
        A `(value, gradient)` pair of NumPy arrays; the gradient has `x`'s shape.

    Example:

    >>> gradient_of_sum(customkeras.activations.softplus, [0.0, 1e3])  # sigmoid: [0.5, 1]
    """
    import numpy as np

    x = np.asarray(x)
    current = backend()
    if current == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = function(variable)
        gradient = tape.gradient(value, variable)
        return np.asarray(value), np.asarray(gradient)
    if current == "jax":
        import jax
        import keras

        def total(point):
            value = function(point)
            return keras.ops.sum(value), value

        (_, value), gradient = jax.value_and_grad(total, has_aux=True)(jax.numpy.asarray(x))
        return np.asarray(value), np.asarray(gradient)
    if current == "torch":
        import torch

        point = torch.tensor(x, requires_grad=True)
        value = function(point)
        value.sum().backward()
        return value.detach().cpu().numpy(), point.grad.detach().cpu().numpy()
    raise NotImplementedError(f"gradient_of_sum has no autodiff for backend {current!r}")
