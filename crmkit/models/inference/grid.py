r"""Grid posteriors of local-level models: one Kalman filter over many grid points.

A local-level (AR(1)) state-space model of a series ``y_t``::

    x_t = phi x_{t-1} + N(0, sigma^2)                 (the level; phi = 1: a random walk)
    y_t = x_t + h_t . beta + N(0, obs_var_t + tau^2)  (beta: optional fixed effects)

whose hyperparameters ``(sigma, tau, phi)`` are few is fitted on a grid: the Kalman filter
gives the exact log-likelihood of the whole series at every grid point at once (the grid
points are the leading axis of every array), the prior weights come from log-spaced
half-normal grids (:func:`half_normal_log_grid`), and :func:`posterior_weights` turns their
sum into the grid posterior. The filtered state at the last step (its mean and covariance
per grid point) is what a forecast walks on from.

Used by the calendar effects of :mod:`crmkit.models.clv.calendar` (level plus 12 monthly
effects ``beta``) and the common monthly shocks of :mod:`crmkit.models.pipeline.shocks`
(the level only, started at each grid point's own variance).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class KalmanResult(NamedTuple):
    """What :func:`kalman_filter` returns; ``G`` grid points, ``d`` states, ``n`` steps.

    Attributes
    ----------
    loglik
        ``(G,)`` log-likelihood of the whole series at each grid point.
    mean, cov
        ``(G, d)`` and ``(G, d, d)``: the filtered state after the last step (element 0 is
        the level, then the fixed effects).
    pred_mean, pred_var
        ``(G, n)`` one-step-ahead predictive normal of each ``y_t`` given the steps before
        it (its log densities sum to ``loglik``); None unless asked for.
    """

    loglik: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    pred_mean: np.ndarray | None
    pred_var: np.ndarray | None


def kalman_filter(
    y: np.ndarray,
    obs_var: np.ndarray,
    sig2: np.ndarray | float,
    tau2: np.ndarray | float,
    phi: np.ndarray | float,
    start_var: np.ndarray | float,
    H: np.ndarray | None = None,
    effect_var: np.ndarray | float = 0.0,
    *,
    predictions: bool = False,
) -> KalmanResult:
    """Kalman filter of a local-level / AR(1) model at every grid point at once.

    The level starts at mean 0 with variance ``start_var``, the fixed effects (when ``H``
    is given) at mean 0 with variance ``effect_var``, independent. Between steps the level
    is multiplied by ``phi`` and gets ``N(0, sig2)`` added; the first observation is of the
    starting state.

    Parameters
    ----------
    y
        ``(n,)`` observations, oldest first.
    obs_var
        ``(n,)`` known observation variance of each step.
    sig2, tau2, phi
        The grid: step variance of the level, extra observation variance and AR(1)
        coefficient (1.0: a random walk). Broadcast together with ``start_var`` and
        flattened into ``G`` grid points.
    start_var
        Variance of the level at the first step: a number, or one per grid point (e.g. the
        stationary variance ``sig2 / (1 - phi^2)`` of each point).
    H
        ``(n, k)`` loadings of ``k`` fixed effects on each step (e.g. the share of a
        period's days in each calendar month), or None for the level alone.
    effect_var
        Prior variance of the fixed effects: a number, one per effect ``(k,)``, or
        ``(G, k)`` per grid point and effect.
    predictions
        Also return each step's one-step-ahead predictive mean and variance.

    Returns
    -------
    KalmanResult
        ``loglik`` ``(G,)``, the last filtered state ``mean`` ``(G, d)`` and ``cov``
        ``(G, d, d)`` with ``d = 1 + k``, and ``pred_mean``, ``pred_var`` ``(G, n)`` (None
        unless ``predictions``).
    """
    grid = np.broadcast_arrays(sig2, tau2, phi, start_var)
    sig2, tau2, phi, v0 = (np.ravel(v).astype(float) for v in grid)
    G = sig2.size
    d = 1 if H is None else 1 + H.shape[1]
    m = np.zeros((G, d))
    P = np.zeros((G, d, d))
    P[:, 0, 0] = v0
    if d > 1:
        idx = np.arange(1, d)
        P[:, idx, idx] = np.broadcast_to(effect_var, (G, d - 1))
    n = len(y)
    pred_mean = np.empty((G, n)) if predictions else None
    pred_var = np.empty((G, n)) if predictions else None
    ll = np.zeros(G)
    for t in range(n):
        if t > 0:
            m[:, 0] *= phi
            P[:, 0, :] *= phi[:, None]
            P[:, :, 0] *= phi[:, None]
            P[:, 0, 0] += sig2
        h = np.ones(1) if H is None else np.concatenate([[1.0], H[t]])
        Ph = P @ h
        F = Ph @ h + obs_var[t] + tau2
        mu = m @ h
        e = y[t] - mu
        ll += -0.5 * (np.log(2 * np.pi * F) + e * e / F)
        if predictions:
            pred_mean[:, t] = mu
            pred_var[:, t] = F
        K = Ph / F[:, None]
        m += K * e[:, None]
        P -= K[:, :, None] * Ph[:, None, :]
    return KalmanResult(ll, m, P, pred_mean, pred_var)


def half_normal_log_grid(
    scale: float, lo: float, hi: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced grid of a scale parameter and its half-normal log prior weights.

    The weights are of the grid's cells in log space: the half-normal density times the
    Jacobian ``v`` (``log p(v) + log v``), up to a constant. Normalized (e.g. by
    :func:`posterior_weights`), they approximate the half-normal's probability of each
    cell when ``[lo, hi]`` holds most of its mass.

    Parameters
    ----------
    scale
        Scale of the half-normal prior.
    lo, hi
        First and last grid value (positive).
    n
        Number of grid values.

    Returns
    -------
    tuple of numpy.ndarray
        The values ``(n,)`` and their log prior weights ``(n,)`` (not normalized).
    """
    v = np.exp(np.linspace(np.log(lo), np.log(hi), n))
    return v, -0.5 * (v / scale) ** 2 + np.log(v)


def posterior_weights(log_post: np.ndarray) -> np.ndarray:
    """Grid posterior weights (summing to one) from unnormalized log posteriors.

    Parameters
    ----------
    log_post
        Log-likelihood plus log prior weight of each grid point.

    Returns
    -------
    numpy.ndarray
        ``exp(log_post)`` normalized to sum to one (computed without overflow).
    """
    w = np.exp(log_post - log_post.max())
    return w / w.sum()


__all__ = ["KalmanResult", "half_normal_log_grid", "kalman_filter", "posterior_weights"]
