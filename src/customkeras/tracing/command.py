"""`customkeras trace MODULE:FUNCTION --example '...'`: the tracing tools from a shell."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from customkeras.tracing.counting import count_traces
from customkeras.tracing.description import describe
from customkeras.tracing.graphs import autograph_source, graph_ops

__all__ = ["add_parser", "trace_command"]


def _load_function(target: str) -> Callable:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected MODULE:FUNCTION, received: {target!r}")
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def _parse_example(expression: str) -> tuple[tuple, dict]:
    # The user's own command-line expression, evaluated like `python -c` would.
    def collect(*args, **kwargs):
        return args, kwargs

    namespace = {"tf": tf, "np": np, "_collect": collect}
    return eval(f"_collect({expression})", namespace)  # noqa: S307


_TRACE_DESCRIPTION = (
    "Trace a Python function or tf.function on example arguments and show how often it "
    "traced, with which signatures, what would retrace it, and its graph's operations."
)


def _add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="MODULE:FUNCTION, e.g. mypackage.steps:train_step")
    parser.add_argument("--example", action="append", required=True,
                        help="arguments of one call, as Python (tf and np available); repeatable")
    parser.add_argument("--max-traces", type=int, default=None,
                        help="exit with status 1 if the function traces more than this")
    parser.add_argument("--autograph", action="store_true", help="print the AutoGraph code")
    parser.set_defaults(handler=_run_trace)


def add_parser(subparsers) -> None:
    """Adds the `trace` sub-command to the `customkeras` parser (`handler` default set)."""
    parser = subparsers.add_parser("trace", help="trace a function and report its retracing",
                                   description=_TRACE_DESCRIPTION)
    _add_trace_arguments(parser)


def trace_command(argv: Sequence[str] | None = None) -> int:
    """`customkeras trace MODULE:FUNCTION --example '...'`: trace a function, report.

    Each `--example` is a Python argument list (with `tf` and `np` available), e.g.
    `--example 'tf.constant([1., 2.]), n=3'`. The function is called on each example in
    order through `count_traces`; then the trace count and signatures, the `describe`
    report for the last example, the graph's operations and (with `--autograph`) the
    AutoGraph code are printed.

    Returns:
        The exit status: 0; 1 with `--max-traces N` when the function traced more; 2 when
        MODULE:FUNCTION cannot be loaded.
    """
    parser = argparse.ArgumentParser(prog="customkeras trace", description=_TRACE_DESCRIPTION)
    _add_trace_arguments(parser)
    options = parser.parse_args(argv)
    return options.handler(options)


def _run_trace(options: argparse.Namespace) -> int:
    if "" not in sys.path:
        sys.path.insert(0, "")  # so MODULE can be a file in the current directory
    try:
        fn = _load_function(options.target)
    except (ValueError, ImportError, AttributeError) as error:
        print(f"customkeras trace: error: cannot load {options.target!r}: {error}",
              file=sys.stderr)
        return 2
    counter = count_traces(fn)
    examples = [_parse_example(expression) for expression in options.example]
    for args, kwargs in examples:
        counter.function(*args, **kwargs)
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
