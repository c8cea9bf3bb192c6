"""The graph a TF Function traced (`graph_ops`) and the code AutoGraph made (`autograph_source`)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import tensorflow as tf

from customkeras.tracing.counting import is_tf_function

__all__ = ["GraphOp", "GraphTensor", "autograph_source", "graph_ops"]


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
    function = fn if is_tf_function(fn) else tf.function(fn)
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
    if is_tf_function(fn):
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
