"""Tools to look inside one's own TF Functions: traces, graphs, AutoGraph code.

A `tf.function` runs Python once per new *input signature* (a "trace") to build a graph,
then reuses that graph. Retracing too often is the most common TF Function performance bug
(a Python scalar that changes every step, a batch whose shape varies, ...). These tools make
it visible:

- `count_traces(fn)`: how often `fn` is traced, and for which signatures.
- `graph_ops(fn, *args)`: the operations of the graph traced for those arguments.
- `autograph_source(fn)`: the Python code AutoGraph generates from `fn`.
- `describe(fn, *example_args)`: input signature, concrete functions traced so far, and
  whether a new shape, dtype or Python value would trigger a retrace.
- `trace_command(argv)`: the same from the command line
  (`customkeras trace MODULE:FUNCTION --example '...'`).

Everything here traces functions but never executes their graphs, except `count_traces`,
whose wrapper calls the function as the user would.
"""

from customkeras._backend import require_tensorflow; require_tensorflow(__name__)  # noqa: E702

from customkeras.tracing.command import trace_command
from customkeras.tracing.counting import RetracingError, TraceCounter, count_traces
from customkeras.tracing.description import FunctionDescription, RetraceProbe, describe
from customkeras.tracing.graphs import GraphOp, GraphTensor, autograph_source, graph_ops

__all__ = [
    "FunctionDescription",
    "GraphOp",
    "GraphTensor",
    "RetraceProbe",
    "RetracingError",
    "TraceCounter",
    "autograph_source",
    "count_traces",
    "describe",
    "graph_ops",
    "trace_command",
]
