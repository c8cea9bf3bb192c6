"""Argument checks shared by the components: each raises a ValueError naming the
argument, the value received and what was expected."""

import math
import numbers

__all__ = [
    "non_negative_float",
    "optional_seed",
    "positive_float",
    "positive_int",
    "probability",
]


def _is_real(value):
    # bool is an Integral: reject it, `threshold=True` is always a mistake.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_float(name, value):
    """Returns `float(value)` if it is a finite number > 0, else raises ValueError."""
    if not _is_real(value) or not (0 < value < math.inf):
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value!r}"
        )
    return float(value)


def non_negative_float(name, value):
    """Returns `float(value)` if it is a finite number >= 0, else raises ValueError."""
    if not _is_real(value) or not (0 <= value < math.inf):
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value!r}"
        )
    return float(value)


def probability(name, value):
    """Returns `float(value)` if it is a number in [0, 1], else raises ValueError."""
    if not _is_real(value) or not (0 <= value <= 1):
        raise ValueError(
            f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


def positive_int(name, value):
    """Returns `int(value)` if it is an integer >= 1, else raises ValueError."""
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be an integer >= 1. Received: {name}={value!r}"
        )
    return int(value)


def optional_seed(name, value):
    """Returns `value` if it is None or an integer, else raises ValueError."""
    if value is not None and (
        not isinstance(value, numbers.Integral) or isinstance(value, bool)
    ):
        raise ValueError(
            f"`{name}` must be an integer or None. Received: {name}={value!r}"
        )
    return value
