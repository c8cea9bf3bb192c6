"""`trace_command(argv)`: `customkeras trace` from Python (the command lives in the CLI)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["trace_command"]


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
    from customkeras.cli import trace  # the command-line layer, imported only when used

    return trace.run(argv)
