"""customkeras: Chapter 12 of *Hands-On Machine Learning* (3rd ed.) as a library.

Importing the package registers every serializable component with Keras, so a model
saved with customkeras pieces reloads with ``keras.saving.load_model(path)`` in safe
mode and without ``custom_objects``.
"""

import os as _os

# TensorFlow's C++ start-up chatter hides our own messages; users can still override it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from customkeras import activations  # noqa: E402,F401
from customkeras import autodiff  # noqa: E402,F401
from customkeras import constraints  # noqa: E402,F401
from customkeras import datasets  # noqa: E402,F401
from customkeras import initializers  # noqa: E402,F401
from customkeras import layers  # noqa: E402,F401
from customkeras import losses  # noqa: E402,F401
from customkeras import metrics  # noqa: E402,F401
from customkeras import models  # noqa: E402,F401
from customkeras import optimizers  # noqa: E402,F401
from customkeras import regularizers  # noqa: E402,F401
from customkeras import tracing  # noqa: E402,F401
from customkeras import training  # noqa: E402,F401

__version__ = "0.1.0"
