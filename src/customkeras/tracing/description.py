"""`describe`: a TF Function's signature, traces, and what would make it retrace."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from customkeras.tracing.counting import concrete_functions, is_tf_function, signature_text

__all__ = ["FunctionDescription", "RetraceProbe", "describe"]


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
    function = fn if is_tf_function(fn) else tf.function(fn)
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
        concrete_signatures=tuple(signature_text(c) for c in concrete_functions(function)),
        probes=probes,
    )
