"""Laplace (normal) approximation around a posterior mode, shared by the MAP fits.

A MAP fit finds the mode of the log-posterior in the unconstrained space; the Laplace
approximation takes the inverse of the negative log-density's Hessian there as the
covariance of a normal posterior. When the Hessian is not positive definite (a flat or
ridge-shaped posterior), its eigenvalues are floored so draws can still be made, and the
fit says so (``pd_ok`` False), so callers can mark the result as unreliable. A Hessian (or
mode) that is not finite, or one no decomposition can handle, gives no approximation at all:
:class:`LaplaceError`, one line naming the parameters concerned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from crmkit.errors import CrmkitError

__all__ = ["LaplaceError", "laplace_draws", "numeric_hessian"]

#: Parameters named in a :class:`LaplaceError` before "and N more".
NAMES_SHOWN = 8


class LaplaceError(CrmkitError, np.linalg.LinAlgError):
    """No Laplace approximation: the posterior is flat or not finite at the mode.

    A :class:`~crmkit.errors.CrmkitError` (one line for users) and a
    ``numpy.linalg.LinAlgError`` (what the approximation raised before it said why).
    """


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


def _labels(names: Sequence[str] | None, k: int) -> list[str]:
    """One label per coordinate: ``names`` when they fit, else ``x[i]``."""
    if names is not None and len(names) == k:
        return [str(n) for n in names]
    return [f"x[{i}]" for i in range(k)]


def _not_finite_rows(m: np.ndarray) -> np.ndarray:
    """Rows with a non-finite diagonal entry, else rows with any non-finite entry.

    A symmetrised Hessian spreads one parameter's NaN row to every row's entry in its
    column; the diagonal says whose row it was.
    """
    diag = ~np.isfinite(np.diag(m))
    return diag if diag.any() else ~np.all(np.isfinite(m), axis=1)


def _flat_rows(hess: np.ndarray) -> np.ndarray:
    """Rows of a finite Hessian without curvature (every entry ~0 against the largest)."""
    scale = float(np.max(np.abs(hess))) if hess.size else 0.0
    flat = np.all(np.abs(hess) <= 1e-12 * max(scale, 1e-300), axis=1)
    return flat if flat.any() else np.ones(len(hess), dtype=bool)


def _failure(labels: list[str], rows: np.ndarray) -> LaplaceError:
    """The one-line error naming the parameters of ``rows``."""
    bad = [labels[i] for i in np.flatnonzero(rows)]
    more = len(bad) - NAMES_SHOWN
    shown = ", ".join(bad[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
    return LaplaceError(
        f"Laplace approximation failed: the posterior is flat or not finite in {shown} "
        "(the data do not identify them)"
    )


def laplace_draws(
    mode: np.ndarray,
    hess: np.ndarray,
    n_draws: int,
    seed: int | None,
    names: Sequence[str] | None = None,
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
    names
        Name of each coordinate, shape (k,), for the error; ``x[i]`` when not given.

    Returns
    -------
    draws : numpy.ndarray
        Shape (n_draws, k).
    cov : numpy.ndarray
        The covariance used, shape (k, k).
    pd_ok : bool
        Whether the Hessian was positive definite; when it was not, its eigenvalues were
        floored at 1e-6 and the draws are only indicative.

    Raises
    ------
    LaplaceError
        The mode or a row of the Hessian is not finite, or the Hessian cannot be
        decomposed; one line naming the parameters concerned (non-finite rows, else rows
        without curvature, else all).
    """
    mode = np.asarray(mode, dtype=float)
    hess = np.asarray(hess, dtype=float)
    labels = _labels(names, len(mode))
    bad = ~np.isfinite(mode)
    if hess.shape == (len(mode), len(mode)):
        bad = bad | _not_finite_rows(hess)
    if bad.any():
        raise _failure(labels, bad)
    try:
        cov = np.linalg.inv(hess)
        if not np.all(np.isfinite(cov)):  # curvature below float range: as if singular
            raise np.linalg.LinAlgError("the inverse Hessian is not finite")
        np.linalg.cholesky(cov)
        pd_ok = True
    except np.linalg.LinAlgError:
        try:
            w, v = np.linalg.eigh(hess)
        except np.linalg.LinAlgError:
            raise _failure(labels, _flat_rows(hess)) from None
        cov = (v / np.maximum(w, 1e-6)) @ v.T
        pd_ok = False
    rng = np.random.default_rng(seed)
    try:
        draws = rng.multivariate_normal(mode, cov, size=n_draws, method="eigh")
    except np.linalg.LinAlgError:
        inf = _not_finite_rows(cov)
        raise _failure(labels, inf if inf.any() else _flat_rows(hess)) from None
    return draws, cov, pd_ok
