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

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "GraphOp",
    "GraphTensor",
    "FunctionDescription",
    "RetraceProbe",
    "RetracingError",
    "TraceCounter",
    "add_parser",
    "autograph_source",
    "count_traces",
    "describe",
    "graph_ops",
    "trace_command",
]


class RetracingError(RuntimeError):
    """Raised by a `TraceCounter` whose function was traced more than `max_traces` times."""


def _is_tf_function(fn: Any) -> bool:
    # tf.function objects (polymorphic functions) are the only callables with this method.
    return callable(getattr(fn, "experimental_get_tracing_count", None))


def _concrete_functions(function) -> list:
    # No public API lists a tf.function's cache; this private one has been stable since
    # TF 2.0. Without it we still count traces exactly, only without signatures.
    lister = getattr(function, "_list_all_concrete_functions", None)
    return list(lister()) if lister is not None else []


def _signature_text(concrete) -> str:
    args, kwargs = concrete.structured_input_signature
    parts = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
    return "(" + ", ".join(parts) + ")"


class TraceCounter:
    """Counts the traces of a `tf.function`, as a wrapper or as a context manager.

    Build it with `count_traces`. The count is TensorFlow's own
    `experimental_get_tracing_count()` minus its value when counting started, so it is
    exact whoever calls the function. Note that a function creating variables on its first
    call is traced twice by that call (TensorFlow retraces it without variable creation).

    Attributes:
        function: The `tf.function` being observed (call it directly or through the counter).
        max_traces: Raise `RetracingError` once the count exceeds it (`None`: never).
    """

    def __init__(self, function, max_traces: int | None = None):
        if max_traces is not None and (not isinstance(max_traces, int) or max_traces < 1):
            raise ValueError(
                f"max_traces must be a positive integer or None, received: {max_traces!r}"
            )
        self.function = function
        self.max_traces = max_traces
        self._start()

    def _start(self) -> None:
        self._baseline = self.function.experimental_get_tracing_count()
        self._known = {id(c) for c in _concrete_functions(self.function)}

    @property
    def count(self) -> int:
        """Number of traces since counting started."""
        return self.function.experimental_get_tracing_count() - self._baseline

    @property
    def signatures(self) -> list[str]:
        """Input signatures of the concrete functions traced since counting started."""
        return [
            _signature_text(c)
            for c in _concrete_functions(self.function)
            if id(c) not in self._known
        ]

    def check(self) -> None:
        """Raise `RetracingError` if the function was traced more than `max_traces` times."""
        if self.max_traces is not None and self.count > self.max_traces:
            listing = "\n  ".join(self.signatures) or "(signatures unavailable)"
            raise RetracingError(
                f"{self.function.name} was traced {self.count} times, more than "
                f"max_traces={self.max_traces}. Signatures traced:\n  {listing}\n"
                "Pass tensors instead of Python values that change, or give the function "
                "an input_signature / reduce_retracing=True for varying shapes."
            )

    def __call__(self, *args, **kwargs):
        result = self.function(*args, **kwargs)
        self.check()
        return result

    def __enter__(self) -> TraceCounter:
        self._start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.check()

    def __repr__(self) -> str:
        return f"<TraceCounter {self.function.name}: {self.count} trace(s)>"


def count_traces(fn: Callable, *, max_traces: int | None = None, **tf_function_kwargs):
    """Counts how often a function is traced, and with which signatures.

    With a plain Python function, `fn` is wrapped in `tf.function(fn, **tf_function_kwargs)`
    and the returned counter is the function to call. With an existing `tf.function`, the
    counter observes that very object, so code that calls it directly (a training loop, a
    Keras step) is counted too; use it as a context manager to count within a block.

    Args:
        fn: A Python function or a `tf.function`.
        max_traces: If given, raise `RetracingError` as soon as the count exceeds it (on the
            call that retraced, or when the `with` block exits). Defaults to `None`.
        **tf_function_kwargs: Options for `tf.function` (`input_signature`,
            `reduce_retracing`, `jit_compile`, ...); only for a plain Python function.

    Returns:
        A `TraceCounter` with `count`, `signatures` and `function`.

    Example:

    >>> square = count_traces(lambda x: x ** 2)
    >>> _ = square(tf.constant(2.0)); _ = square(tf.constant(3.0)); _ = square(2.0)
    >>> square.count   # a new Python value is a new signature
    2
    """
    if _is_tf_function(fn):
        if tf_function_kwargs:
            raise ValueError(
                "tf_function_kwargs apply only to a plain Python function, but fn is already "
                f"a tf.function; received: {sorted(tf_function_kwargs)}"
            )
        return TraceCounter(fn, max_traces)
    if not callable(fn):
        raise ValueError(f"fn must be callable, received: {fn!r}")
    return TraceCounter(tf.function(fn, **tf_function_kwargs), max_traces)


@dataclasses.dataclass(frozen=True)
class GraphTensor:
    """A tensor of a graph: its name (`op:index`), dtype and static shape (`None`: unknown)."""

    name: str
    dtype: str
    shape: tuple | None


@dataclasses.dataclass(frozen=True)
class GraphOp:
    """One operation of a graph: its name, type (e.g. `"AddV2"`), inputs and outputs."""

    name: str
    type: str
    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]


def _graph_tensor(tensor) -> GraphTensor:
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(shape.as_list())
    return GraphTensor(tensor.name, tensor.dtype.name, dims)


def _concrete_function_for(fn, args, kwargs):
    if isinstance(fn, tf.types.experimental.ConcreteFunction):
        return fn
    function = fn if _is_tf_function(fn) else tf.function(fn)
    return function.get_concrete_function(*args, **kwargs)


def graph_ops(fn: Callable, *args, **kwargs) -> list[GraphOp]:
    """Lists the operations of the graph traced for the given arguments.

    The graph is the concrete function `fn.get_concrete_function(*args, **kwargs)`: tracing
    runs if that signature is new, the graph itself is not executed. Loops and conditionals
    converted by AutoGraph appear as one `While` / `If` op (their bodies are separate
    functions), while a Python loop is unrolled into the graph.

    Args:
        fn: A `tf.function`, a concrete function, or a Python function (wrapped in a new
            `tf.function`).
        *args: Example arguments (tensors, `tf.TensorSpec`s or Python values).
        **kwargs: Example keyword arguments.

    Returns:
        A list of `GraphOp`, in graph order.

    Example:

    >>> [op.type for op in graph_ops(lambda x: x ** 3, tf.constant(2.0))]
    ['Placeholder', 'Const', 'Pow', 'Identity']
    """
    concrete = _concrete_function_for(fn, args, kwargs)
    return [
        GraphOp(
            name=op.name,
            type=op.type,
            inputs=tuple(_graph_tensor(t) for t in op.inputs),
            outputs=tuple(_graph_tensor(t) for t in op.outputs),
        )
        for op in concrete.graph.get_operations()
    ]


def _python_function(fn: Callable) -> Callable:
    if _is_tf_function(fn):
        fn = fn.python_function
    fn = inspect.unwrap(fn)
    # A tf.function used as a method wraps a bound method of a private target object.
    return getattr(fn, "__func__", fn)


def autograph_source(fn: Callable, recursive: bool = True) -> str:
    """Returns the Python source AutoGraph generates from a function.

    This is what `tf.function` really traces: `for`/`while`/`if` on tensors become calls
    to `ag__.for_stmt`, `ag__.while_stmt`, `ag__.if_stmt`, which build graph control flow.

    Args:
        fn: A Python function or a `tf.function` (its Python function is converted).
        recursive: Whether AutoGraph would also convert the functions `fn` calls.
            Defaults to `True`.

    Returns:
        The generated source code, as a string.
    """
    return tf.autograph.to_code(_python_function(fn), recursive=recursive)


@dataclasses.dataclass(frozen=True)
class RetraceProbe:
    """What happened when a copy of the function met changed arguments.

    Attributes:
        change: `"shape"`, `"dtype"` or `"python value"`.
        example: A short description of the two changed arguments tried.
        traces: New traces caused by the first and by the second changed call.
        error: The error raised instead of tracing (e.g. an input signature mismatch).
    """

    change: str
    example: str
    traces: tuple[int, ...]
    error: str | None = None

    @property
    def retraces(self) -> bool:
        """Whether the first changed call traced a new graph."""
        return bool(self.traces) and self.traces[0] > 0


@dataclasses.dataclass(frozen=True)
class FunctionDescription:
    """What `describe` found out about a `tf.function`."""

    name: str
    input_signature: tuple | None
    reduce_retracing: bool | None
    jit_compile: bool | None
    tracing_count: int
    concrete_signatures: tuple[str, ...]
    probes: tuple[RetraceProbe, ...]

    def __str__(self) -> str:
        lines = [
            f"function: {self.name}",
            f"input_signature: {self.input_signature}",
            f"reduce_retracing: {self.reduce_retracing}   jit_compile: {self.jit_compile}",
            f"traced {self.tracing_count} time(s); concrete functions:",
            *(f"  {s}" for s in self.concrete_signatures),
        ]
        for probe in self.probes:
            outcome = (
                f"error: {probe.error}" if probe.error
                else f"new traces per call: {list(probe.traces)}"
            )
            lines.append(f"new {probe.change} ({probe.example}): {outcome}")
        return "\n".join(lines)


def _is_tensor_like(value) -> bool:
    return isinstance(value, (tf.Tensor, np.ndarray, tf.Variable))


def _grow_first_dim(tensor, extra: int):
    tensor = tf.convert_to_tensor(tensor)
    if tensor.shape.rank == 0:
        return tf.fill([extra], tensor)
    return tf.concat([tensor] + [tensor[:1]] * extra, axis=0)


_OTHER_DTYPE = {tf.float32: tf.float64, tf.float64: tf.float32, tf.int32: tf.int64,
                tf.int64: tf.int32, tf.float16: tf.float32}


def _changed_arguments(args: Sequence) -> list[tuple[str, int, list]]:
    """(change, position, [two replacement values]) for the first argument each change fits."""
    changes = []
    tensors = [i for i, a in enumerate(args) if _is_tensor_like(a)]
    if tensors:
        i = tensors[0]
        changes.append(("shape", i, [_grow_first_dim(args[i], 1), _grow_first_dim(args[i], 2)]))
        dtype = tf.convert_to_tensor(args[i]).dtype
        if dtype in _OTHER_DTYPE:
            changes.append(("dtype", i, [tf.cast(args[i], _OTHER_DTYPE[dtype])]))
    scalars = [i for i, a in enumerate(args) if isinstance(a, (bool, int, float, str))]
    if scalars:
        i = scalars[0]
        value = args[i]
        if isinstance(value, bool):
            new_values = [not value]
        elif isinstance(value, str):
            new_values = [value + "_", value + "__"]
        else:
            new_values = [value + 1, value + 2]
        changes.append(("python value", i, new_values))
    return changes


def _describe_value(value) -> str:
    if _is_tensor_like(value):
        tensor = tf.convert_to_tensor(value)
        return f"{tensor.dtype.name}{tensor.shape.as_list()}"
    return repr(value)


def _first_sentence(error: Exception) -> str:
    # TensorFlow's binding errors go on to dump every argument's value: keep the reason.
    return str(error).split(". Received args")[0].splitlines()[0]


def _probe(function, args, kwargs, change, position, new_values) -> RetraceProbe:
    # A fresh tf.function with the same options, so the user's function cache is untouched.
    copy = tf.function(
        function.python_function,
        input_signature=function.input_signature,
        reduce_retracing=bool(getattr(function, "_reduce_retracing", False)),
        jit_compile=getattr(function, "_jit_compile", None),
    )
    copy.get_concrete_function(*args, **kwargs)
    traces, example = [], []
    for value in new_values:
        changed = list(args)
        changed[position] = value
        example.append(_describe_value(value))
        before = copy.experimental_get_tracing_count()
        try:
            copy.get_concrete_function(*changed, **kwargs)
        except (TypeError, ValueError) as error:
            return RetraceProbe(change, ", ".join(example), tuple(traces),
                                f"{type(error).__name__}: {_first_sentence(error)}")
        traces.append(copy.experimental_get_tracing_count() - before)
    described = f"{_describe_value(args[position])} -> " + ", ".join(example)
    return RetraceProbe(change, described, tuple(traces))


def describe(fn: Callable, *example_args, **example_kwargs) -> FunctionDescription:
    """Describes a `tf.function`: its signature, its traces, and what would retrace it.

    The options (`input_signature`, `reduce_retracing`, `jit_compile`) and the concrete
    functions traced so far are read from `fn`. Whether a new shape, dtype or Python value
    would retrace cannot be read from the options alone (it depends on the function cache,
    and on which argument changes), so when example arguments are given, `describe` asks
    TensorFlow: it traces a *fresh copy* of the function with the same options on the
    example, then on changed arguments (first tensor argument: one then two more rows, and
    the other float/int width; first Python scalar: two other values), and counts the new
    traces. The copy is traced, never executed, and `fn` itself is not touched; trace-time
    Python side effects of the function do run.

    Args:
        fn: A `tf.function` or a Python function (described as `tf.function(fn)`).
        *example_args: Typical positional arguments. Defaults to none (no probes).
        **example_kwargs: Typical keyword arguments, kept unchanged in the probes.

    Returns:
        A `FunctionDescription`; `str()` of it is a readable report.
    """
    function = fn if _is_tf_function(fn) else tf.function(fn)
    probes = ()
    if example_args:
        probes = tuple(
            _probe(function, example_args, example_kwargs, change, position, values)
            for change, position, values in _changed_arguments(example_args)
        )
    signature = function.input_signature
    return FunctionDescription(
        name=function.name,
        input_signature=tuple(signature) if signature is not None else None,
        reduce_retracing=getattr(function, "_reduce_retracing", None),
        jit_compile=getattr(function, "_jit_compile", None),
        tracing_count=function.experimental_get_tracing_count(),
        concrete_signatures=tuple(_signature_text(c) for c in _concrete_functions(function)),
        probes=probes,
    )


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
