"""customkeras: Chapter 12 of *Hands-On Machine Learning* (3rd ed.) as a library.

Importing the package registers every serializable component with Keras, so a model
saved with customkeras pieces reloads with ``keras.saving.load_model(path)`` in safe
mode and without ``custom_objects``.

The components run on every Keras backend (TensorFlow, JAX, PyTorch); ``training``,
``tracing`` and ``autodiff`` are TensorFlow-only: on another backend they are not
imported with the package, and importing them raises an error saying how to switch.
"""

import os as _os
import sys as _sys

# TensorFlow's C++ start-up chatter hides our own messages; users can still override it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up lines hidden when the user asked for that.

    TF 2.21 prints its oneDNN / CUDA / absl start-up lines to file descriptor 2 before its
    logging honours ``TF_CPP_MIN_LOG_LEVEL``, so the variable alone no longer hides them.
    With the level at 1 or more (our default is 2), stderr is pointed at /dev/null for the
    duration of the import only; Python errors still propagate as exceptions.
    """
    if "tensorflow" in _sys.modules or _os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("", "0"):
        return
    try:
        stderr_fd = _sys.stderr.fileno()
        _sys.stderr.flush()
        saved_fd = _os.dup(stderr_fd)
    except (AttributeError, OSError, ValueError):  # no real stderr (some notebooks)
        return
    try:
        with open(_os.devnull, "w") as devnull:
            _os.dup2(devnull.fileno(), stderr_fd)
        import tensorflow

        # Listing devices loads the platforms now (its "failed call to cuInit" line on
        # machines without a GPU lands here) without initialising the runtime, so
        # logical devices and tf.distribute strategies can still be configured after.
        tensorflow.config.list_physical_devices()
    finally:
        _os.dup2(saved_fd, stderr_fd)
        _os.close(saved_fd)


# On every backend: TensorFlow is a dependency, and tf.data feeds fit on any backend.
_import_tensorflow_quietly()

from customkeras import _backend  # noqa: E402
from customkeras import activations  # noqa: E402,F401
from customkeras import constraints  # noqa: E402,F401
from customkeras import datasets  # noqa: E402,F401
from customkeras import initializers  # noqa: E402,F401
from customkeras import layers  # noqa: E402,F401
from customkeras import losses  # noqa: E402,F401
from customkeras import metrics  # noqa: E402,F401
from customkeras import models  # noqa: E402,F401
from customkeras import optimizers  # noqa: E402,F401
from customkeras import regularizers  # noqa: E402,F401

if _backend.backend() == "tensorflow":
    from customkeras import autodiff  # noqa: E402,F401
    from customkeras import tracing  # noqa: E402,F401
    from customkeras import training  # noqa: E402,F401


def __getattr__(name):
    # `customkeras.training` on another backend: import it, so its guard explains.
    if name in _backend.TF_ONLY_PARTS:
        import importlib

        return importlib.import_module(f"customkeras.{name}")
    raise AttributeError(f"module 'customkeras' has no attribute {name!r}")


__version__ = "0.1.0"
