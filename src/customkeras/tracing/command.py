"""`trace_command(argv)`: `customkeras trace FILE.py:FUNCTION --example '...'` from Python.

The command itself lives here, with the tools it reports on; the `customkeras` CLI plugs
it in as its `trace` sub-command (`customkeras.cli.trace`). Its usage (description,
arguments) is `customkeras._trace_usage`, which the CLI reads without importing this
package, so `customkeras trace --help` answers before TensorFlow starts.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable, Sequence

from customkeras import _trace_usage as usage
from customkeras._user_code import import_source
from customkeras.tracing.counting import count_traces
from customkeras.tracing.description import describe
from customkeras.tracing.graphs import autograph_source, graph_ops

__all__ = ["run", "trace_command"]


def trace_command(argv: Sequence[str] | None = None) -> int:
    """`customkeras trace MODULE:FUNCTION --example '...'`: trace a function, report.

    Each `--example` is a Python argument list (with `tf` and `np` available), e.g.
    `--example 'tf.constant([1., 2.]), n=3'`. The function is called on each example in
    order through `count_traces`; then the trace count and signatures, the `describe`
    report for the last example, the graph's operations and (with `--autograph`) the
    AutoGraph code are printed.

    Args:
        argv: the arguments after `trace`. Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: 0; 1 with `--max-traces N` when the function traced more, or
        when it failed on an example; 2 when MODULE:FUNCTION cannot be loaded or an
        example is not valid Python.
    """
    parser = argparse.ArgumentParser(prog=usage.PROG, description=usage.DESCRIPTION,
                                     epilog=usage.EPILOG, formatter_class=usage.FORMATTER)
    usage.add_arguments(parser)
    options = parser.parse_args(argv)
    problem = usage.target_problem(options.target)
    if problem is not None:
        return usage.error(problem, 2)
    return run(options)


def _load_function(target: str) -> Callable:
    source, _, attribute = target.rpartition(":")
    if source.endswith(".py") and not pathlib.Path(source).is_file():
        raise ValueError(f"the file {source} does not exist")
    obj = import_source(source)
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


def run(options: argparse.Namespace) -> int:
    """Runs the command on parsed arguments (`usage.add_arguments`'s, with a target whose
    shape `usage.target_problem` accepted); returns the exit status."""
    try:
        fn = _load_function(options.target)
    except (ValueError, ImportError, AttributeError) as error:
        return usage.error(f"cannot load {options.target!r}: {error}", 2)
    except Exception as error:  # the user's module failing as it is imported
        return usage.error(f"cannot load {options.target!r}: {_one_line(error)}", 2)
    examples = []
    for expression in options.example:
        try:
            examples.append(_parse_example(expression))
        except Exception as error:  # the user's expression: any failure is a usage error
            return usage.error(f"cannot evaluate --example {expression!r}: "
                               f"{_one_line(error)}", 2)
    counter = count_traces(fn)
    try:
        for args, kwargs in examples:
            counter.function(*args, **kwargs)
    except Exception as error:  # the user's function failing on their example
        return usage.error(f"{options.target} failed on an example: {_one_line(error)}", 1)
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
