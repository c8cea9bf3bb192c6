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


_SUBMODULES = ("activations", "constraints", "datasets", "initializers", "layers", "losses",
               "metrics", "models", "optimizers", "regularizers")


def _import_all():
    """Imports TensorFlow (quietly) and every component, registering them with Keras.

    Run when the package is imported, except in the `customkeras` command, which calls it
    once its arguments are parsed and checked (see `_started_as_command`). Safe to call
    again.
    """
    import importlib

    # On every backend: TensorFlow is a dependency, and tf.data feeds fit on any backend.
    _import_tensorflow_quietly()
    _backend = importlib.import_module("customkeras._backend")

    for name in _SUBMODULES:
        importlib.import_module(f"customkeras.{name}")
    if _backend.backend() == "tensorflow":
        for name in _backend.TF_ONLY_PARTS:
            importlib.import_module(f"customkeras.{name}")


def _started_as_command():
    """Whether this process is the `customkeras` command (console script or `-m`).

    Then `import customkeras` defers TensorFlow, Keras and the components until the
    command has parsed its arguments: `customkeras --help` and usage errors answer at
    once instead of after TensorFlow's start-up. Every other import (scripts, notebooks,
    tests, the command's own child processes) imports everything at once, so
    `import customkeras` alone registers every component, as Keras loading needs.
    """
    script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    if script in ("customkeras", "customkeras.exe", "customkeras-script.py"):
        return True
    argv = getattr(_sys, "orig_argv", [])  # the interpreter's own arguments (Python 3.10+)
    return any(arg == "-m" and argv[i + 1:i + 2] == ["customkeras.cli"]
               for i, arg in enumerate(argv))


if not _started_as_command():
    _import_all()


def __getattr__(name):
    # A submodule not imported yet: the command before `_import_all`, or
    # `customkeras.training` on another backend (importing it lets its guard explain).
    # (`from customkeras import x` asks here first: only those names are imported.)
    if name in _SUBMODULES or name in ("training", "tracing", "autodiff"):
        import importlib

        _import_tensorflow_quietly()
        return importlib.import_module(f"customkeras.{name}")
    raise AttributeError(f"module 'customkeras' has no attribute {name!r}")


__version__ = "0.1.0"
