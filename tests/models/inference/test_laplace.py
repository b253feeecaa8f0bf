"""Tests for the shared Laplace approximation."""

import numpy as np
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.inference.laplace import LaplaceError, laplace_draws, numeric_hessian


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


# ---------------------------------------------- no approximation: one line naming parameters
def test_laplace_draws_of_a_hessian_with_nan_rows_name_those_parameters_in_one_line():
    hess = np.full((3, 3), np.nan)  # what the Gamma-Gamma MAP fit of i.i.d. spend had
    with pytest.raises(LaplaceError) as err:
        laplace_draws(np.zeros(3), hess, 10, seed=0, names=["p", "q", "gamma"])
    msg = str(err.value)
    assert msg == (
        "Laplace approximation failed: the posterior is flat or not finite in p, q, gamma "
        "(the data do not identify them)"
    )
    assert "\n" not in msg


def test_laplace_draws_name_only_the_rows_that_are_not_finite():
    # q's row is NaN; symmetrised, so is q's column, in every other row
    hess = np.array([[2.0, np.nan, 0.0], [np.nan, np.nan, np.nan], [0.0, np.nan, 1.0]])
    with pytest.raises(LaplaceError, match=r"not finite in q \(the data"):
        laplace_draws(np.zeros(3), hess, 10, seed=0, names=["p", "q", "gamma"])
    with pytest.raises(LaplaceError, match=r"not finite in gamma \(the data"):
        laplace_draws(np.zeros(3), np.diag([2.0, 3.0, np.inf]), 10, seed=0,
                      names=["p", "q", "gamma"])  # fmt: skip


def test_laplace_draws_of_a_mode_that_is_not_finite_name_that_parameter():
    with pytest.raises(LaplaceError, match=r"not finite in gamma \(the data"):
        laplace_draws(np.array([1.0, np.nan]), np.eye(2), 10, seed=0, names=["p", "gamma"])


def test_laplace_draws_without_names_number_the_coordinates():
    with pytest.raises(LaplaceError, match=r"not finite in x\[1\] \(the data"):
        laplace_draws(np.zeros(2), np.diag([1.0, np.nan]), 10, seed=0)


def test_laplace_draws_cut_a_long_list_of_parameters():
    names = [f"beta[{i}]" for i in range(12)]
    with pytest.raises(LaplaceError) as err:
        laplace_draws(np.zeros(12), np.full((12, 12), np.nan), 10, seed=0, names=names)
    assert "beta[7] and 4 more (the data do not identify them)" in str(err.value)
    assert "beta[8]" not in str(err.value)


def test_laplace_error_is_a_crmkit_error_and_the_linalg_error_it_replaces():
    with pytest.raises(LaplaceError) as err:
        laplace_draws(np.zeros(2), np.full((2, 2), np.nan), 10, seed=0)
    assert isinstance(err.value, CrmkitError)
    assert isinstance(err.value, np.linalg.LinAlgError)


def test_laplace_draws_with_names_are_the_draws_without():
    hess = np.array([[4.0, 1.0], [1.0, 2.0]])
    a = laplace_draws(np.array([1.0, -3.0]), hess, 50, seed=4)
    b = laplace_draws(np.array([1.0, -3.0]), hess, 50, seed=4, names=["r", "alpha"])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] is b[2] is True


def test_laplace_draws_of_a_curvature_below_float_range_floor_it_as_if_singular():
    # 1 / 1e-320 overflows: before, the covariance held inf and the draws were not finite
    draws, cov, ok = laplace_draws(np.zeros(2), np.diag([1e-320, 2.0]), 1000, seed=3)
    assert not ok
    np.testing.assert_allclose(cov, np.diag([1e6, 0.5]))
    assert np.all(np.isfinite(draws))
