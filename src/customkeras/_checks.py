"""Argument checks used everywhere in customkeras, with one message style.

Each check returns the value (converted to a plain `int` / `float`) or raises, as Keras
does, a `TypeError` when the value has the wrong type and a `ValueError` when it has
the right type but a wrong value. Every message names the argument, the value received
and what was expected:

    `batch_size` must be an integer >= 1; received batch_size=0

`bool` is never accepted as a number (`threshold=True` is always a mistake), and NaN or
infinity never pass as a finite number.
"""

import math
import numbers

__all__ = [
    "finite_float",
    "instance",
    "integer",
    "non_negative_float",
    "one_of",
    "optional_seed",
    "positive_float",
    "positive_int",
    "probability",
    "seed",
    "SEED_MAX",
]

# Seeds feed NumPy's and TensorFlow's generators, which take unsigned 32-bit seeds.
SEED_MAX = 2**32 - 1


def _received(name, value):
    return f"received {name}={value!r}"


def _bounds(minimum, maximum, min_inclusive=True, max_inclusive=True):
    parts = []
    if minimum is not None:
        parts.append(f"{'>=' if min_inclusive else '>'} {minimum:g}" if isinstance(minimum, float)
                     else f"{'>=' if min_inclusive else '>'} {minimum}")
    if maximum is not None:
        parts.append(f"{'<=' if max_inclusive else '<'} {maximum:g}" if isinstance(maximum, float)
                     else f"{'<=' if max_inclusive else '<'} {maximum}")
    return " and ".join(parts)


def instance(name, value, types, expected):
    """Returns `value` if it is an instance of `types`, else raises `TypeError`.

    Args:
        name: the argument's name, as the caller wrote it.
        value: the value received.
        types: a type or a tuple of types.
        expected: what was expected, in words, e.g. `"a keras.Model"`.
    """
    if not isinstance(value, types):
        raise TypeError(f"`{name}` must be {expected}; {_received(name, value)} "
                        f"(of type {type(value).__name__})")
    return value


def integer(name, value, minimum=None, maximum=None, *, alternative=None):
    """Returns `int(value)` if it is an integer within `[minimum, maximum]`.

    Args:
        name, value: the argument and the value received.
        minimum, maximum: the bounds (inclusive), or None.
        alternative: another accepted value, named in the message (the caller
            checks it first), e.g. `"'auto'"`.

    Raises:
        TypeError: `value` is not an integer (a `bool` is not one).
        ValueError: `value` is out of range.
    """
    bounds = _bounds(minimum, maximum)
    expected = f"an integer {bounds}" if bounds else "an integer"
    if alternative is not None:
        expected = f"{expected} or {alternative}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be {expected}; {_received(name, value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be {expected}; {_received(name, value)}")
    return int(value)


def finite_float(name, value, minimum=None, maximum=None, *, min_inclusive=True,
                 max_inclusive=True):
    """Returns `float(value)` if it is a finite number within the bounds.

    Raises:
        TypeError: `value` is not a real number (a `bool` is not one).
        ValueError: `value` is NaN, infinite or out of range.
    """
    bounds = _bounds(minimum, maximum, min_inclusive, max_inclusive)
    expected = f"a finite number {bounds}" if bounds else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be {expected}; {_received(name, value)}")
    value = float(value)
    low_ok = minimum is None or (value >= minimum if min_inclusive else value > minimum)
    high_ok = maximum is None or (value <= maximum if max_inclusive else value < maximum)
    if not (math.isfinite(value) and low_ok and high_ok):
        raise ValueError(f"`{name}` must be {expected}; {_received(name, value)}")
    return value


def one_of(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises `ValueError`."""
    # `True == 1`: keep bools apart from integer choices.
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; {_received(name, value)}")
    return value


def positive_float(name, value):
    """Returns `float(value)` if it is a finite number > 0."""
    return finite_float(name, value, 0, min_inclusive=False)


def non_negative_float(name, value):
    """Returns `float(value)` if it is a finite number >= 0."""
    return finite_float(name, value, 0)


def probability(name, value):
    """Returns `float(value)` if it is a number in [0, 1]."""
    return finite_float(name, value, 0, 1)


def positive_int(name, value):
    """Returns `int(value)` if it is an integer >= 1."""
    return integer(name, value, 1)


def seed(name, value):
    """Returns `int(value)` if it is an integer seed in [0, 2**32 - 1]."""
    return integer(name, value, 0, SEED_MAX)


def optional_seed(name, value):
    """Returns None, or `int(value)` for an integer seed in [0, 2**32 - 1]."""
    return None if value is None else seed(name, value)
