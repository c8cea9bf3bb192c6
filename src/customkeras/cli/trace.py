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

The command is `customkeras.tracing.command`'s; this module plugs it into the
`customkeras` parser from its TensorFlow-free usage (`customkeras._trace_usage`), and
imports the tracing package only to run it.
"""

import argparse

from customkeras import _trace_usage as usage


def add_parser(subparsers) -> None:
    """Adds the `trace` sub-command to the `customkeras` parser."""
    parser = subparsers.add_parser("trace", help="trace a function and report its retracing",
                                   description=usage.DESCRIPTION, epilog=usage.EPILOG,
                                   formatter_class=usage.FORMATTER)
    usage.add_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(options: argparse.Namespace) -> int:
    """Runs `customkeras trace`; returns the exit status."""
    from customkeras.cli.startup import load_components

    problem = usage.target_problem(options.target)
    if problem is not None:  # checked before TensorFlow starts
        return usage.error(problem, 2)
    load_components()
    from customkeras.tracing.command import run

    return run(options)
