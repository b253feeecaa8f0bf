"""Tests of crmkit.models.inference.grid: the Kalman filter over grid points, the prior grid.

The filter is checked against numbers worked out by hand, and against the brute-force
Gaussian of the whole series (the local-level model's multivariate normal, its conditionals
for the one-step predictions and the filtered last state).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf
from scipy.stats import multivariate_normal

from crmkit.models.inference.grid import (
    half_normal_log_grid,
    kalman_filter,
    posterior_weights,
)

Y = np.array([0.3, -0.2, 0.5, 0.1, -0.4, 0.6, 0.2])
OBS_VAR = np.array([0.2, 0.1, 0.3, 0.2, 0.25, 0.15, 0.1])


def _joint_cov(
    n: int, sig2: float, tau2: float, phi: float, v0: float, obs_var: np.ndarray, H=None, ev=0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: covariance of (level_0..level_{n-1}, effects, y_0..y_{n-1}) and its y rows."""
    k = 0 if H is None else H.shape[1]
    # level_t = phi^t level_0 + sum_{j=1..t} phi^(t-j) w_j: a linear map of independent terms
    A = np.zeros((n, n))  # level_t in terms of (level_0, w_1, ..., w_{n-1})
    for t in range(n):
        A[t, 0] = phi**t
        for j in range(1, t + 1):
            A[t, j] = phi ** (t - j)
    src_var = np.concatenate([[v0], np.full(n - 1, sig2)])
    cov_x = A @ np.diag(src_var) @ A.T
    cov_b = np.eye(k) * ev
    Hm = np.zeros((n, k)) if H is None else H
    cov_y = cov_x + Hm @ cov_b @ Hm.T + np.diag(obs_var + tau2)
    state = np.zeros((n + k, n + k))
    state[:n, :n] = cov_x
    state[n:, n:] = cov_b
    cross = np.vstack([cov_x, cov_b @ Hm.T])  # Cov(state, y)
    full = np.block([[state, cross], [cross.T, cov_y]])
    return full, cov_y


def test_filter_matches_a_hand_computation_on_three_steps() -> None:
    # random walk, sigma^2 = 1, tau = 0, start variance 1, observation variance 1
    # t=0: F = 2, e = 1, K = 1/2 -> m = 0.5, P = 0.5
    # t=1: P = 1.5, F = 2.5, e = -0.5, K = 0.6 -> m = 0.2, P = 0.6
    # t=2: P = 1.6, F = 2.6, e = 1.8, K = 8/13 -> m = 17/13, P = 8/13
    y = np.array([1.0, 0.0, 2.0])
    kf = kalman_filter(y, np.ones(3), 1.0, 0.0, 1.0, 1.0, predictions=True)
    np.testing.assert_allclose(kf.pred_mean, [[0.0, 0.5, 0.2]], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(kf.pred_var, [[2.0, 2.5, 2.6]], rtol=1e-14)
    loglik = -0.5 * (
        np.log(2 * np.pi * 2.0)
        + 1.0 / 2.0
        + np.log(2 * np.pi * 2.5)
        + 0.25 / 2.5
        + np.log(2 * np.pi * 2.6)
        + 1.8**2 / 2.6
    )
    np.testing.assert_allclose(kf.loglik, [loglik], rtol=1e-14)
    np.testing.assert_allclose(kf.mean, [[17 / 13]], rtol=1e-14)
    np.testing.assert_allclose(kf.cov, [[[8 / 13]]], rtol=1e-14)


def test_filter_log_likelihood_is_the_multivariate_normal_of_the_whole_series() -> None:
    sig2 = np.array([0.01, 0.2, 0.5, 0.05])
    tau2 = np.array([0.0, 0.1, 0.02, 0.3])
    phi = np.array([1.0, 0.5, 0.9, 1.0])
    v0 = 0.3
    kf = kalman_filter(Y, OBS_VAR, sig2, tau2, phi, v0, predictions=True)
    for g in range(len(sig2)):
        _, cov_y = _joint_cov(len(Y), sig2[g], tau2[g], phi[g], v0, OBS_VAR)
        brute = multivariate_normal(np.zeros(len(Y)), cov_y).logpdf(Y)
        np.testing.assert_allclose(kf.loglik[g], brute, rtol=1e-10)
        # the one-step predictions are the conditionals of y_t given the steps before it
        for t in range(1, len(Y)):
            s12 = cov_y[t, :t]
            w = np.linalg.solve(cov_y[:t, :t], s12)
            np.testing.assert_allclose(kf.pred_mean[g, t], w @ Y[:t], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(kf.pred_var[g, t], cov_y[t, t] - s12 @ w, rtol=1e-9)
    pred_ll = -0.5 * (np.log(2 * np.pi * kf.pred_var) + (Y - kf.pred_mean) ** 2 / kf.pred_var)
    np.testing.assert_allclose(pred_ll.sum(axis=1), kf.loglik, rtol=1e-12)


def test_filter_with_fixed_effects_matches_the_brute_force_gaussian_and_last_state() -> None:
    rng = np.random.default_rng(3)
    n, k = len(Y), 3
    H = rng.dirichlet(np.ones(k), size=n)  # shares of each step in k "months"
    ev = np.array([0.04, 0.09, 0.01])
    sig2, tau2, phi, v0 = 0.1, 0.05, 0.8, 0.5
    kf = kalman_filter(Y, OBS_VAR, [sig2], tau2, phi, v0, H, ev)
    full, cov_y = _joint_cov(n, sig2, tau2, phi, v0, OBS_VAR, H, ev)
    brute = multivariate_normal(np.zeros(n), cov_y).logpdf(Y)
    np.testing.assert_allclose(kf.loglik, [brute], rtol=1e-10)
    # filtered state at the last step: (level_{n-1}, effects) given all of y
    idx = [n - 1, *range(n, n + k)]
    cross = full[idx][:, n + k :]
    post_mean = cross @ np.linalg.solve(cov_y, Y)
    post_cov = full[np.ix_(idx, idx)] - cross @ np.linalg.solve(cov_y, cross.T)
    np.testing.assert_allclose(kf.mean[0], post_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kf.cov[0], post_cov, rtol=1e-9, atol=1e-12)


def test_ar1_without_persistence_makes_steps_independent_normals() -> None:
    # phi = 0: every step's level is a fresh N(0, sig2) (the first: N(0, start_var))
    sig2, tau2, v0 = 0.4, 0.1, 0.7
    kf = kalman_filter(Y, OBS_VAR, sig2, tau2, 0.0, v0, predictions=True)
    var = np.concatenate([[v0], np.full(len(Y) - 1, sig2)]) + OBS_VAR + tau2
    np.testing.assert_allclose(kf.pred_mean, 0.0, atol=1e-15)
    np.testing.assert_allclose(kf.pred_var[0], var, rtol=1e-14)
    expect = -0.5 * np.sum(np.log(2 * np.pi * var) + Y**2 / var)
    np.testing.assert_allclose(kf.loglik, [expect], rtol=1e-13)


def test_ar1_persistence_pulls_the_prediction_back_by_phi_each_step() -> None:
    # no noise and a tight start: the level is known after step 0; then it decays by phi
    y = np.array([1.0, 0.0, 0.0, 0.0])
    obs = np.array([1e-12, 1e9, 1e9, 1e9])  # step 0 exact, the others say nothing
    kf = kalman_filter(y, obs, 0.0, 0.0, np.array([0.5, 0.9, 1.0]), 1.0, predictions=True)
    np.testing.assert_allclose(kf.pred_mean[:, 1], [0.5, 0.9, 1.0], rtol=1e-9)
    np.testing.assert_allclose(kf.pred_mean[:, 2], [0.25, 0.81, 1.0], rtol=1e-8)
    np.testing.assert_allclose(kf.mean[:, 0], [0.125, 0.729, 1.0], rtol=1e-8)  # phi^3
    np.testing.assert_allclose(kf.pred_var[:, 1], 1e9, rtol=1e-9)  # the level itself is known


def test_start_variance_per_grid_point_is_each_points_own() -> None:
    sig2 = np.array([0.1, 0.1, 0.3])
    phi = np.array([0.5, 1.0, 0.8])
    v0 = np.array([0.1 / 0.75, 1.2, 0.0])  # stationary, 12 months of walk, none
    kf = kalman_filter(Y, OBS_VAR, sig2, 0.05, phi, v0, predictions=True)
    for g in range(3):
        one = kalman_filter(Y, OBS_VAR, sig2[g], 0.05, phi[g], float(v0[g]), predictions=True)
        np.testing.assert_array_equal(kf.loglik[g], one.loglik[0])
        np.testing.assert_array_equal(kf.cov[g], one.cov[0])
        _, cov_y = _joint_cov(len(Y), sig2[g], 0.05, phi[g], v0[g], OBS_VAR)
        brute = multivariate_normal(np.zeros(len(Y)), cov_y).logpdf(Y)
        np.testing.assert_allclose(kf.loglik[g], brute, rtol=1e-10)
    assert kf.pred_var[2, 0] == OBS_VAR[0] + 0.05  # no start variance at the third point
    assert kf.pred_var[0, 0] != kf.pred_var[1, 0]


def test_zero_start_and_step_variance_leave_only_the_observation_noise() -> None:
    kf = kalman_filter(Y, OBS_VAR, np.zeros(2), np.array([0.1, 0.4]), 1.0, np.zeros(2))
    var = OBS_VAR[None, :] + np.array([[0.1], [0.4]])
    expect = -0.5 * np.sum(np.log(2 * np.pi * var) + Y**2 / var, axis=1)
    np.testing.assert_allclose(kf.loglik, expect, rtol=1e-14)
    np.testing.assert_array_equal(kf.mean, 0.0)


def test_fixed_effect_variance_per_grid_point_zero_keeps_them_at_zero() -> None:
    H = np.tile([0.5, 0.5], (len(Y), 1))
    ev = np.array([[0.0, 0.0], [0.1, 0.1]])
    kf = kalman_filter(Y, OBS_VAR, [0.1, 0.1], 0.05, 1.0, 0.2, H, ev)
    np.testing.assert_array_equal(kf.mean[0, 1:], 0.0)
    np.testing.assert_array_equal(kf.cov[0, 1:, 1:], 0.0)
    assert np.all(np.abs(kf.mean[1, 1:]) > 0)
    plain = kalman_filter(Y, OBS_VAR, 0.1, 0.05, 1.0, 0.2)
    np.testing.assert_allclose(kf.loglik[0], plain.loglik[0], rtol=1e-14)


def test_filter_flattens_a_broadcast_grid_and_predictions_are_optional() -> None:
    s2, t2, ph = np.meshgrid([0.01, 0.1], [0.0, 0.2, 0.4], [0.5, 1.0], indexing="ij")
    kf = kalman_filter(Y, OBS_VAR, s2, t2, ph, 0.3)
    assert kf.loglik.shape == (12,) and kf.mean.shape == (12, 1) and kf.cov.shape == (12, 1, 1)
    assert kf.pred_mean is None and kf.pred_var is None
    g = 2 * 3 * 2 - 1  # the last point: sig2 0.1, tau2 0.4, phi 1
    one = kalman_filter(Y, OBS_VAR, 0.1, 0.4, 1.0, 0.3)
    np.testing.assert_array_equal(kf.loglik[g], one.loglik[0])


def test_half_normal_grid_is_log_spaced_and_normalizes_to_the_half_normal() -> None:
    scale = 0.1
    v, logw = half_normal_log_grid(scale, 1e-5, 1.0, 400)
    np.testing.assert_allclose(v[[0, -1]], [1e-5, 1.0], rtol=1e-12)
    dlog = np.diff(np.log(v))
    np.testing.assert_allclose(dlog, dlog[0], rtol=1e-9)
    # cell masses in log space: density of log v = p(v) v; they add up to the half-normal's
    # probability of [lo, hi] (all but P(v < 1e-5) = erf(1e-5 / (0.1 sqrt 2)), about 8e-5)
    density_const = np.sqrt(2.0 / np.pi) / scale
    cells = np.exp(logw)
    mass = (cells.sum() - (cells[0] + cells[-1]) / 2) * dlog[0] * density_const  # trapezoid
    inside = erf(1.0 / (scale * np.sqrt(2))) - erf(1e-5 / (scale * np.sqrt(2)))
    np.testing.assert_allclose(mass, inside, rtol=1e-7)
    assert abs(mass - 1.0) > 5e-5  # the mass below the grid is really left out
    w = posterior_weights(logw)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-14)
    np.testing.assert_allclose(w @ v, scale * np.sqrt(2.0 / np.pi), rtol=1e-4)  # E|N(0, s)|
    np.testing.assert_allclose(w @ v**2, scale**2, rtol=1e-4)


def test_posterior_weights_sum_to_one_without_overflow() -> None:
    w = posterior_weights(np.array([1000.0, 1000.0 + np.log(3.0), -np.inf]))
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0], rtol=1e-12)
