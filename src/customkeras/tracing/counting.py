"""`count_traces`: how often a TF Function is traced, and for which signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["RetracingError", "TraceCounter", "count_traces"]


class RetracingError(RuntimeError):
    """Raised by a `TraceCounter` whose function was traced more than `max_traces` times."""


def is_tf_function(fn: Any) -> bool:
    # tf.function objects (polymorphic functions) are the only callables with this method.
    return callable(getattr(fn, "experimental_get_tracing_count", None))


def concrete_functions(function) -> list:
    # No public API lists a tf.function's cache; this private one has been stable since
    # TF 2.0. Without it we still count traces exactly, only without signatures.
    lister = getattr(function, "_list_all_concrete_functions", None)
    return list(lister()) if lister is not None else []


def signature_text(concrete) -> str:
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
        self._known = {id(c) for c in concrete_functions(self.function)}

    @property
    def count(self) -> int:
        """Number of traces since counting started."""
        return self.function.experimental_get_tracing_count() - self._baseline

    @property
    def signatures(self) -> list[str]:
        """Input signatures of the concrete functions traced since counting started."""
        return [
            signature_text(c)
            for c in concrete_functions(self.function)
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
    if is_tf_function(fn):
        if tf_function_kwargs:
            raise ValueError(
                "tf_function_kwargs apply only to a plain Python function, but fn is already "
                f"a tf.function; received: {sorted(tf_function_kwargs)}"
            )
        return TraceCounter(fn, max_traces)
    if not callable(fn):
        raise ValueError(f"fn must be callable, received: {fn!r}")
    return TraceCounter(tf.function(fn, **tf_function_kwargs), max_traces)
