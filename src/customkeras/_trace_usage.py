"""The `trace` command's usage: its description, arguments, target check and error line.

Shared by the `customkeras trace` sub-command (`customkeras.cli.trace`) and
`customkeras.tracing.trace_command`, and kept outside both: the CLI builds its parser from
it without importing `customkeras.tracing` (which starts TensorFlow: `--help` must answer
at once), and the tracing package reads it without importing the CLI (the CLI imports
tracing, never the other way). Imports nothing heavy.
"""

import argparse
import sys

__all__ = ["DESCRIPTION", "EPILOG", "PROG", "add_arguments", "error", "target_problem"]

PROG = "customkeras trace"
DESCRIPTION = (
    "Trace a Python function or tf.function on example arguments and show how often it "
    "traced, with which signatures, what would retrace it, and its graph's operations."
)
EPILOG = """\
examples:
  customkeras trace mysteps.py:cube --example 'tf.constant(2.0)' --example 'tf.constant(3.0)'
  customkeras trace mypackage.steps:train_step --example 'tf.ones((32, 8))' --max-traces 1
"""
FORMATTER = argparse.RawDescriptionHelpFormatter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the command's arguments to `parser`."""
    parser.add_argument("target", metavar="FILE.py:FUNCTION",
                        help="the function to trace: FILE.py:FUNCTION (e.g. mysteps.py:cube) "
                             "or MODULE:FUNCTION (e.g. mypackage.steps:train_step)")
    parser.add_argument("--example", action="append", required=True,
                        help="arguments of one call, as Python (tf and np available); repeatable")
    parser.add_argument("--max-traces", type=int, default=None,
                        help="exit with status 1 if the function traces more than this")
    parser.add_argument("--autograph", action="store_true", help="print the AutoGraph code")


def target_problem(target: str) -> str | None:
    """What is wrong with the shape of `target` (checked before TensorFlow starts), or None."""
    source, _, attribute = target.rpartition(":")
    if not source or not attribute:
        return (f"cannot load {target!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION "
                "(e.g. mysteps.py:cube)")
    return None


def error(message: str, status: int) -> int:
    """Prints the command's one-line error to stderr; returns `status`."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status
