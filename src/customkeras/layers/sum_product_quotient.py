"""`SumProductQuotient`: a two-input, three-output layer (the chapter's `MyMultiLayer`)."""

import keras


def _broadcast_shape(first, second):
    """NumPy broadcasting of two shapes that may contain `None` (unknown) dimensions."""
    rank = max(len(first), len(second))
    first = (1,) * (rank - len(first)) + first
    second = (1,) * (rank - len(second)) + second
    shape = []
    for a, b in zip(first, second):
        if a == 1 or a is None and b not in (1, None):
            shape.append(b)
        elif b == 1 or b is None or a == b:
            shape.append(a)
        else:
            raise ValueError(
                f"SumProductQuotient inputs must have broadcastable shapes. "
                f"Received: shapes {first} and {second}"
            )
    return tuple(shape)


@keras.saving.register_keras_serializable(package="customkeras")
class SumProductQuotient(keras.layers.Layer):
    """Takes two tensors and returns their element-wise sum, product and quotient.

    Formula: `(a + b, a * b, a / b)` for inputs `(a, b)` of broadcastable shapes.

    Example:

    >>> a, b = np.array([[3.0, 6.0]]), np.array([[6.0, 12.0]])
    >>> SumProductQuotient()((a, b))  # ([[9, 18]], [[18, 72]], [[0.5, 0.5]])
    """

    def call(self, inputs):
        first, second = self._unpack(inputs)
        return first + second, first * second, first / second

    def compute_output_shape(self, input_shape):
        first, second = self._unpack(input_shape)
        shape = _broadcast_shape(tuple(first), tuple(second))
        return shape, shape, shape

    @staticmethod
    def _unpack(pair):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(
                "SumProductQuotient expects a pair of inputs (a, b). "
                f"Received: inputs={pair!r}"
            )
        return pair
