"""Loading the heavy parts once a command's arguments are checked.

A module of its own (not the package's `__init__`) so that the command modules, which the
package's `__init__` imports to build the parser, do not import their package back.
"""

import customkeras

__all__ = ["load_components"]


def load_components() -> None:
    """Imports TensorFlow (quietly) and every customkeras component, once.

    Handlers call it after their arguments are checked, before importing anything that
    imports TensorFlow or Keras (which would otherwise print TensorFlow's start-up lines).
    """
    customkeras._import_all()
