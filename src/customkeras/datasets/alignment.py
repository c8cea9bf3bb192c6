"""Allocation of NumPy arrays that TensorFlow can import without copying.

NumPy's allocator only guarantees 16-byte alignment, while TensorFlow's zero-copy (DLPack)
import checks for its own, larger alignment and aborts the whole process
(`Check failed: IsAligned()`) when it is not met. Every array the loaders return comes
from here: 64-byte aligned (enough for any SIMD width TensorFlow is built for),
C-contiguous, writeable, and not sharing memory with any other returned array.
"""

import math

import numpy as np

ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """Return an uninitialised C-contiguous array whose data starts on a 64-byte boundary.

    The array is a view into a private, slightly larger byte buffer (so `flags.owndata`
    is False), which nothing else references.

    Args:
        shape: Int or tuple of ints, the array's shape.
        dtype: The array's data type.

    Example:

    >>> array = aligned_empty((3, 28, 28), "float32")
    >>> array.ctypes.data % 64
    0
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = -buffer.ctypes.data % ALIGNMENT
    return buffer[offset : offset + nbytes].view(dtype).reshape(shape)


def aligned_copy(array, dtype=None):
    """Return a 64-byte aligned, C-contiguous copy of `array`, cast to `dtype`.

    Args:
        array: Array-like to copy.
        dtype: Data type of the copy. Defaults to the array's own data type.

    Example:

    >>> copy = aligned_copy(np.arange(5.0), "float32")
    >>> copy.dtype, copy.ctypes.data % 64
    (dtype('float32'), 0)
    """
    array = np.asarray(array)
    out = aligned_empty(array.shape, array.dtype if dtype is None else dtype)
    np.copyto(out, array, casting="same_kind")
    return out
