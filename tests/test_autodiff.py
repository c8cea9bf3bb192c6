"""Autodiff helpers: the chapter's figures, analytic derivatives and finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from customkeras.autodiff import gradients, hessians, jacobians, numerical_gradients


def chapter_f(w1, w2):
    return 3 * w1**2 + 2 * w1 * w2


def as_numpy(nested):
    return np.array(tf.nest.map_structure(lambda t: np.asarray(t), nested), dtype=float)


@pytest.mark.parametrize(
    "points",
    [[5.0, 3.0], [tf.Variable(5.0), tf.Variable(3.0)], (tf.constant(5.0), 3)],
    ids=["floats", "variables", "constants"],
)
def test_chapter_gradients_and_hessians(points):
    np.testing.assert_allclose(as_numpy(gradients(chapter_f, points)), [36.0, 10.0])
    np.testing.assert_allclose(as_numpy(jacobians(chapter_f, points)), [36.0, 10.0])
    np.testing.assert_allclose(as_numpy(hessians(chapter_f, points)), [[6.0, 2.0], [2.0, 0.0]])


def test_unconnected_derivatives_are_zeros_not_none():
    # f ignores w2 entirely: its gradient and Hessian rows are zeros, never None.
    grads = gradients(lambda w1, w2: w1**3, [2.0, 7.0])
    hess = hessians(lambda w1, w2: w1**3, [2.0, 7.0])
    assert all(g is not None for g in grads)
    assert all(h is not None for row in hess for h in row)
    np.testing.assert_allclose(as_numpy(grads), [12.0, 0.0])
    np.testing.assert_allclose(as_numpy(hess), [[12.0, 0.0], [0.0, 0.0]])


def test_jacobians_of_a_vector_function():
    x, y = np.array([1.0, 2.0, 3.0], "float32"), np.float32(2.0)
    jx, jy = jacobians(lambda a, b: a**2 * b, [x, y])
    np.testing.assert_allclose(jx, np.diag(2 * x * y))
    np.testing.assert_allclose(jy, x**2)


def test_hessians_of_tensor_variables_have_block_shapes():
    a = np.array([1.0, 2.0], "float32")
    (haa, hab), (hba, hbb) = hessians(lambda a, b: tf.reduce_sum(a**3) * b, [a, 2.0])
    np.testing.assert_allclose(haa, np.diag(6 * a * 2.0))
    np.testing.assert_allclose(hab, 3 * a**2)
    np.testing.assert_allclose(hba, 3 * a**2)
    assert float(hbb) == 0.0


def test_numerical_gradients_chapter_figures():
    np.testing.assert_allclose(numerical_gradients(chapter_f, [5.0, 3.0]), [36.0, 10.0], atol=1e-5)


def test_numerical_gradients_agree_with_autodiff():
    def f(x, y):
        return tf.reduce_sum(tf.sin(x) * y**2) + tf.exp(tf.reduce_sum(x) * 0.1)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3,)), rng.normal(size=(3,))
    autodiff = gradients(f, [tf.constant(x), tf.constant(y)])  # float64 points
    numeric = numerical_gradients(lambda a, b: f(a, b).numpy(), [x, y])
    for exact, estimate in zip(autodiff, numeric):
        np.testing.assert_allclose(exact, estimate, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("function", [gradients, jacobians, hessians, numerical_gradients])
def test_invalid_arguments(function):
    with pytest.raises(TypeError, match="f=3"):
        function(3, [1.0])
    with pytest.raises(ValueError, match=r"\[\]"):
        function(chapter_f, [])
    with pytest.raises(TypeError, match="5.0"):
        function(chapter_f, 5.0)


def test_non_scalar_functions_are_rejected_where_a_scalar_is_needed():
    with pytest.raises(ValueError, match="scalar"):
        hessians(lambda a: a**2, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradients(lambda a: a**2, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="eps=0"):
        numerical_gradients(chapter_f, [1.0, 2.0], eps=0)
