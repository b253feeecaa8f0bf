"""Laplace (normal) approximation around a posterior mode, shared by the MAP fits.

A MAP fit finds the mode of the log-posterior in the unconstrained space; the Laplace
approximation takes the inverse of the negative log-density's Hessian there as the
covariance of a normal posterior. When the Hessian is not positive definite (a flat or
ridge-shaped posterior), its eigenvalues are floored so draws can still be made, and the
fit says so (``pd_ok`` False), so callers can mark the result as unreliable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["laplace_draws", "numeric_hessian"]


def numeric_hessian(
    grad: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, eps: float = 1e-4
) -> np.ndarray:
    """Central-difference Hessian of a function, given its gradient.

    Parameters
    ----------
    grad
        Gradient of the function, ``x -> array of shape (k,)``.
    x0
        Point at which to take the Hessian.
    eps
        Relative step; each coordinate moves by ``eps * max(1, |x0[i]|)``.

    Returns
    -------
    numpy.ndarray
        Symmetrised Hessian, shape (k, k).
    """
    x0 = np.asarray(x0, dtype=float)
    k = len(x0)
    h = np.zeros((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = eps * max(1.0, abs(x0[i]))
        h[i] = (np.asarray(grad(x0 + step)) - np.asarray(grad(x0 - step))) / (2 * step[i])
    return (h + h.T) / 2


def laplace_draws(
    mode: np.ndarray, hess: np.ndarray, n_draws: int, seed: int | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Draws from the normal approximation at a mode of a negative log-density.

    Parameters
    ----------
    mode
        The mode, shape (k,).
    hess
        Hessian of the negative log-density at the mode, shape (k, k).
    n_draws
        Number of draws.
    seed
        Seed of the random generator.

    Returns
    -------
    draws : numpy.ndarray
        Shape (n_draws, k).
    cov : numpy.ndarray
        The covariance used, shape (k, k).
    pd_ok : bool
        Whether the Hessian was positive definite; when it was not, its eigenvalues were
        floored at 1e-6 and the draws are only indicative.
    """
    try:
        cov = np.linalg.inv(hess)
        np.linalg.cholesky(cov)
        pd_ok = True
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(hess)
        cov = (v / np.maximum(w, 1e-6)) @ v.T
        pd_ok = False
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(np.asarray(mode, dtype=float), cov, size=n_draws, method="eigh")
    return draws, cov, pd_ok
