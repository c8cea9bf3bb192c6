"""`customkeras trace FILE.py:FUNCTION --example '...'`: the tracing tools from a shell.

The function is named as `train` names an experiment: `FILE.py:FUNCTION` or
`MODULE:FUNCTION` (a module found from the current directory too); the part after the
colon may be dotted (`steps.py:Model.call`).

Each `--example` is a Python argument list (with `tf` and `np` available), e.g.
`--example 'tf.constant([1., 2.]), n=3'`. The function is called on each example in
order through `customkeras.tracing.count_traces`; then the trace count and signatures,
the `describe` report for the last example, the graph's operations and (with
`--autograph`) the AutoGraph code are printed.

Exit status: 0; 1 when the function traced more than `--max-traces`, or failed on an
example; 2 when MODULE:FUNCTION cannot be loaded or an example is not valid Python.
"""

import argparse
import pathlib
import sys
from collections.abc import Callable, Sequence

from customkeras.cli import custom

DESCRIPTION = (
    "Trace a Python function or tf.function on example arguments and show how often it "
    "traced, with which signatures, what would retrace it, and its graph's operations."
)
EPILOG = """\
examples:
  customkeras trace mysteps.py:cube --example 'tf.constant(2.0)' --example 'tf.constant(3.0)'
  customkeras trace mypackage.steps:train_step --example 'tf.ones((32, 8))' --max-traces 1
"""


def _load_function(target: str) -> Callable:
    source, _, attribute = target.rpartition(":")
    if not source or not attribute:
        raise ValueError(f"expected FILE.py:FUNCTION or MODULE:FUNCTION, received: {target!r}")
    if source.endswith(".py") and not pathlib.Path(source).is_file():
        raise ValueError(f"the file {source} does not exist")
    obj = custom.import_source(source)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def _parse_example(expression: str) -> tuple[tuple, dict]:
    # The user's own command-line expression, evaluated like `python -c` would.
    import numpy as np
    import tensorflow as tf

    def collect(*args, **kwargs):
        return args, kwargs

    namespace = {"tf": tf, "np": np, "_collect": collect}
    return eval(f"_collect({expression})", namespace)  # noqa: S307


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="FILE.py:FUNCTION",
                        help="the function to trace: FILE.py:FUNCTION (e.g. mysteps.py:cube) "
                             "or MODULE:FUNCTION (e.g. mypackage.steps:train_step)")
    parser.add_argument("--example", action="append", required=True,
                        help="arguments of one call, as Python (tf and np available); repeatable")
    parser.add_argument("--max-traces", type=int, default=None,
                        help="exit with status 1 if the function traces more than this")
    parser.add_argument("--autograph", action="store_true", help="print the AutoGraph code")
    parser.set_defaults(handler=handle)


def add_parser(subparsers) -> None:
    """Adds the `trace` sub-command to the `customkeras` parser."""
    parser = subparsers.add_parser("trace", help="trace a function and report its retracing",
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)


def run(argv: Sequence[str] | None = None) -> int:
    """`customkeras trace` with its own parser (`argv`: the arguments after `trace`)."""
    parser = argparse.ArgumentParser(prog="customkeras trace", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return handle(parser.parse_args(argv))


def _error(message: str, status: int) -> int:
    print(f"customkeras trace: error: {message}", file=sys.stderr)
    return status


def handle(options: argparse.Namespace) -> int:
    """Runs `customkeras trace`; returns the exit status."""
    from customkeras.cli import load_components

    source, _, attribute = options.target.rpartition(":")
    if not source or not attribute:  # checked before TensorFlow starts
        return _error(f"cannot load {options.target!r}: expected FILE.py:FUNCTION or "
                      "MODULE:FUNCTION (e.g. mysteps.py:cube)", 2)
    load_components()
    from customkeras.tracing import autograph_source, count_traces, describe, graph_ops

    try:
        fn = _load_function(options.target)
    except (ValueError, ImportError, AttributeError) as error:
        return _error(f"cannot load {options.target!r}: {error}", 2)
    except Exception as error:  # the user's module failing as it is imported
        return _error(f"cannot load {options.target!r}: {_one_line(error)}", 2)
    examples = []
    for expression in options.example:
        try:
            examples.append(_parse_example(expression))
        except Exception as error:  # the user's expression: any failure is a usage error
            return _error(f"cannot evaluate --example {expression!r}: {_one_line(error)}", 2)
    counter = count_traces(fn)
    try:
        for args, kwargs in examples:
            counter.function(*args, **kwargs)
    except Exception as error:  # the user's function failing on their example
        return _error(f"{options.target} failed on an example: {_one_line(error)}", 1)
    print(f"{counter.count} trace(s) for {len(examples)} call(s):")
    for signature in counter.signatures:
        print(f"  {signature}")
    args, kwargs = examples[-1]
    print(describe(counter.function, *args, **kwargs))
    print("graph operations (last example):")
    for op in graph_ops(counter.function, *args, **kwargs):
        inputs = ", ".join(t.name for t in op.inputs)
        print(f"  {op.name} [{op.type}]({inputs})")
    if options.autograph:
        print(autograph_source(counter.function))
    if options.max_traces is not None and counter.count > options.max_traces:
        print(f"retracing: {counter.count} traces > --max-traces {options.max_traces}",
              file=sys.stderr)
        return 1
    return 0
