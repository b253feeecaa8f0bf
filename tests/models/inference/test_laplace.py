"""Tests for the shared Laplace approximation."""

import numpy as np

from crmkit.models.inference.laplace import laplace_draws, numeric_hessian


def test_numeric_hessian_of_a_quadratic_is_its_matrix():
    a = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, -0.4], [0.0, -0.4, 1.0]])
    grad = lambda x: a @ x  # noqa: E731  gradient of x'Ax/2
    h = numeric_hessian(grad, np.array([0.3, -2.0, 5.0]))
    np.testing.assert_allclose(h, a, atol=1e-6)


def test_numeric_hessian_of_a_non_quadratic_function():
    # f(x, y) = exp(x) * y**2: Hessian [[e^x y^2, 2 e^x y], [2 e^x y, 2 e^x]]
    grad = lambda z: np.array([np.exp(z[0]) * z[1] ** 2, 2 * np.exp(z[0]) * z[1]])  # noqa: E731
    x, y = 0.4, 1.5
    want = np.exp(x) * np.array([[y**2, 2 * y], [2 * y, 2.0]])
    np.testing.assert_allclose(numeric_hessian(grad, np.array([x, y])), want, rtol=1e-6)


def test_laplace_draws_have_the_inverse_hessian_as_covariance():
    hess = np.array([[4.0, 1.0], [1.0, 2.0]])
    mode = np.array([1.0, -3.0])
    draws, cov, ok = laplace_draws(mode, hess, 40_000, seed=1)
    assert ok
    np.testing.assert_allclose(cov, np.linalg.inv(hess))
    np.testing.assert_allclose(draws.mean(axis=0), mode, atol=0.02)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.05, atol=0.005)


def test_laplace_draws_flag_a_hessian_that_is_not_positive_definite():
    hess = np.array([[1.0, 0.0], [0.0, -2.0]])
    draws, cov, ok = laplace_draws(np.zeros(2), hess, 100, seed=0)
    assert not ok
    assert np.all(np.isfinite(draws))
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_laplace_draws_are_reproducible_with_a_seed():
    hess = np.eye(3)
    a, _, _ = laplace_draws(np.zeros(3), hess, 10, seed=7)
    b, _, _ = laplace_draws(np.zeros(3), hess, 10, seed=7)
    np.testing.assert_array_equal(a, b)


def test_laplace_draws_floor_the_eigenvalues_of_a_singular_hessian():
    # Singular: the first direction is known (variance 1/2), the second not at all; the floor
    # (1e-6) gives it variance 1e6 and keeps the draws finite.
    draws, cov, ok = laplace_draws(np.array([1.0, 2.0]), np.diag([2.0, 0.0]), 20_000, seed=3)
    assert not ok
    np.testing.assert_allclose(cov, np.diag([0.5, 1e6]))
    assert np.all(np.isfinite(draws))
    np.testing.assert_allclose(draws.std(axis=0), [np.sqrt(0.5), 1000.0], rtol=0.03)
    np.testing.assert_allclose(draws[:, 0].mean(), 1.0, atol=0.02)
