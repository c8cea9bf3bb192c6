"""Derivatives with TensorFlow's reverse-mode autodiff, and finite differences to check them.

All functions take `f` and the list of points to differentiate at, and call
`f(*variables)`, as the chapter's `f(w1, w2)` examples do. The variables may be
`tf.Variable`s or anything convertible to a float tensor (constants are watched).

Example (the chapter's figures):

>>> f = lambda w1, w2: 3 * w1 ** 2 + 2 * w1 * w2
>>> gradients(f, [5.0, 3.0])          # [36.0, 10.0]
>>> hessians(f, [5.0, 3.0])           # [[6.0, 2.0], [2.0, 0.0]]
>>> numerical_gradients(f, [5.0, 3.0])  # [36.0, 10.0] up to finite-difference error
"""

# TensorFlow-only (tf.GradientTape): on another backend, say so at import.
from customkeras._backend import require_tensorflow; require_tensorflow(__name__)  # noqa: E702

import keras
import numpy as np
import tensorflow as tf

from customkeras._checks import positive_float

__all__ = ["gradients", "hessians", "jacobians", "numerical_gradients"]


def _check_function(f):
    if not callable(f):
        raise TypeError(f"`f` must be a callable; received f={f!r}")


def _as_watchable(variables):
    """Validates `variables` and returns them as float Variables or tensors."""
    if not isinstance(variables, (list, tuple)):
        raise TypeError(
            "`variables` must be a non-empty list or tuple of the points to "
            f"differentiate at (one per argument of f); received variables={variables!r}")
    if len(variables) == 0:
        raise ValueError(
            "`variables` must be a non-empty list or tuple of the points to "
            f"differentiate at (one per argument of f); received variables={variables!r}")
    watchable = []
    for variable in variables:
        if not isinstance(variable, tf.Variable):
            variable = tf.convert_to_tensor(variable)
            if not variable.dtype.is_floating:
                variable = tf.cast(variable, keras.backend.floatx())
        if not variable.dtype.is_floating:
            raise ValueError(
                "Every variable must have a float dtype to be differentiated. "
                f"Received: variables containing dtype {variable.dtype.name}"
            )
        watchable.append(variable)
    return watchable


def _derivative(tape, target, source):
    """`d target / d source` of shape `target.shape + source.shape`, zeros if unconnected."""
    zero = tf.UnconnectedGradients.ZERO
    if target.shape.rank == 0:
        # A scalar needs no vectorized jacobian (pfor), which is slower and retraces.
        return tape.gradient(target, source, unconnected_gradients=zero)
    return tape.jacobian(target, source, unconnected_gradients=zero)


def gradients(f, variables):
    """Gradient of a scalar function: `[df/dv for v in variables]`.

    A non-scalar output is summed first (as `tf.GradientTape.gradient` does); an
    argument that `f` does not depend on gets a zero gradient, not `None`.

    Args:
        f: Callable `f(*variables)` returning a tensor.
        variables: Non-empty list of the points (Variables, tensors or numbers).

    Returns:
        List of tensors, one per variable, each of that variable's shape.

    Example:

    >>> gradients(lambda w1, w2: 3 * w1 ** 2 + 2 * w1 * w2, [5.0, 3.0])  # [36., 10.]
    """
    _check_function(f)
    variables = _as_watchable(variables)
    with tf.GradientTape() as tape:
        tape.watch(variables)
        value = f(*variables)
    return tape.gradient(
        value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )


def jacobians(f, variables):
    """Jacobians of a (possibly vector-valued) function, one per variable.

    Args:
        f: Callable `f(*variables)` returning a tensor of shape `S`.
        variables: Non-empty list of the points (Variables, tensors or numbers).

    Returns:
        List of tensors, one per variable `v`, of shape `S + v.shape`: entry
        `[i..., j...]` is `d f[i...] / d v[j...]`. Zeros where `f` ignores `v`.

    Example:

    >>> jacobians(lambda x: x ** 2, [[1.0, 2.0]])  # [[[2., 0.], [0., 4.]]]
    """
    _check_function(f)
    variables = _as_watchable(variables)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(variables)
        value = f(*variables)
    try:
        return [_derivative(tape, value, variable) for variable in variables]
    finally:
        del tape


def hessians(f, variables):
    """Second derivatives of a scalar function: row `i` holds `d/dv_j (df/dv_i)`.

    Args:
        f: Callable `f(*variables)` returning a scalar tensor.
        variables: Non-empty list of the points (Variables, tensors or numbers).

    Returns:
        A list with one row per variable; row `i` is a list with one tensor per
        variable `j`, of shape `v_i.shape + v_j.shape`. Unconnected second derivatives
        are zeros (the chapter's notebook shows `None` there).

    Example:

    >>> hessians(lambda w1, w2: 3 * w1 ** 2 + 2 * w1 * w2, [5.0, 3.0])
    [[6.0, 2.0], [2.0, 0.0]]
    """
    _check_function(f)
    variables = _as_watchable(variables)
    with tf.GradientTape(persistent=True) as outer_tape:
        outer_tape.watch(variables)
        with tf.GradientTape() as inner_tape:
            inner_tape.watch(variables)
            value = f(*variables)
        if value.shape.rank != 0:
            raise ValueError(
                "hessians needs a scalar function. "
                f"Received: f returning shape {value.shape}"
            )
        first = inner_tape.gradient(
            value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
    try:
        return [
            [_derivative(outer_tape, gradient, variable) for variable in variables]
            for gradient in first
        ]
    finally:
        del outer_tape


def numerical_gradients(f, values, eps=1e-6):
    """Central finite-difference gradient of a scalar function, in float64.

    Formula, for each entry `x` of each value:
    `(f(..., x + eps, ...) - f(..., x - eps, ...)) / (2 * eps)`; error O(eps**2).

    Args:
        f: Callable `f(*values)` returning a scalar (NumPy or TensorFlow; it receives
            float64 NumPy arrays).
        values: Non-empty list of the points (numbers or arrays).
        eps: Positive float, the step. Defaults to `1e-6`.

    Returns:
        List of float64 NumPy arrays, one per value, each of that value's shape.

    Example:

    >>> numerical_gradients(lambda w1, w2: 3 * w1 ** 2 + 2 * w1 * w2, [5.0, 3.0])
    [array(36.), array(10.)]
    """
    _check_function(f)
    eps = positive_float("eps", eps)
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"`values` must be a non-empty list or tuple; received values={values!r}")
    if len(values) == 0:
        raise ValueError(f"`values` must be a non-empty list or tuple; received values={values!r}")
    points = [np.array(value, dtype=np.float64) for value in values]

    def evaluate(arguments):
        result = np.asarray(f(*arguments), dtype=np.float64)
        if result.shape != ():
            raise ValueError(
                "numerical_gradients needs a scalar function. "
                f"Received: f returning shape {result.shape}"
            )
        return float(result)

    grads = []
    for index, point in enumerate(points):
        grad = np.zeros_like(point)
        for position in np.ndindex(point.shape):
            shifted = [p.copy() for p in points]
            shifted[index][position] = point[position] + eps
            upper = evaluate(shifted)
            shifted[index][position] = point[position] - eps
            lower = evaluate(shifted)
            grad[position] = (upper - lower) / (2 * eps)
        grads.append(grad)
    return grads
