"""Importing the user's own code named on a command line: `FILE.py` or `MODULE`.

Shared by the CLI (`train MODULE:FUNCTION`) and `customkeras.tracing` (`trace_command`),
outside both so that neither imports the other for it.
"""

import importlib
import importlib.util
import pathlib
import sys

__all__ = ["import_source"]


def import_source(source: str):
    """Imports `source`: a `FILE.py` path, or a dotted module name (found from the current
    directory too). Exceptions raised by the module's code propagate."""
    if source.endswith(".py"):
        spec = importlib.util.spec_from_file_location(pathlib.Path(source).stem, source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # so MODULE can be a file in the current directory
    return importlib.import_module(source)
