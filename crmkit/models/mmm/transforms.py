"""Transforms of the marketing-mix model, in numpy: carry-over, saturation and seasonality.

The PyMC model (:class:`crmkit.models.mmm.model.MarketingMixModel`) builds the same curves in
pytensor; the posterior computations (contributions, ROAS, response curves, scenarios) use
these functions on the posterior draws, so what they report is what the model fitted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "YEAR_DAYS",
    "fourier_terms",
    "geometric_adstock",
    "hill_saturation",
    "logistic_saturation",
]

#: Days per year used for trend and Fourier terms.
YEAR_DAYS = 365.25


def geometric_adstock(x: np.ndarray, decay: np.ndarray | float, l_max: int = 12) -> np.ndarray:
    """Geometric carry-over along the time axis (the first axis of ``x``).

    ``A_t = sum_{l=0}^{l_max-1} decay^l * x_{t-l}``: this week's spend counts fully, last
    week's ``decay`` times, and so on; truncated after ``l_max`` weeks.

    Parameters
    ----------
    x
        Spend, shape ``(time,)`` or ``(time, channel)``.
    decay
        Carry-over rate in [0, 1): a scalar, one per channel ``(channel,)`` or posterior
        draws ``(sample, channel)``.
    l_max
        Number of weeks an effect lasts at most.

    Returns
    -------
    numpy.ndarray
        Adstocked spend: shape of ``x`` for a scalar decay, else
        ``decay.shape[:-1] + (time, channel)``.

    """
    x = np.asarray(x, dtype=float)
    x2 = x[:, None] if x.ndim == 1 else x
    n_t = x2.shape[0]
    lags = np.stack([np.pad(x2, [(lag, 0), (0, 0)])[:n_t] for lag in range(l_max)], axis=-1)
    d = np.asarray(decay, dtype=float)
    weights = d[..., None] ** np.arange(l_max)
    if d.ndim == 0:
        out = lags @ weights
        return out[:, 0] if x.ndim == 1 else out
    return np.einsum("tcl,...cl->...tc", lags, weights)


def logistic_saturation(a: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
    """Logistic saturation ``(1 - exp(-lam a)) / (1 + exp(-lam a))``: 0 at 0, tends to 1.

    Parameters
    ----------
    a
        Adstocked spend (non-negative).
    lam
        Steepness: the curve reaches ``tanh(lam * a / 2)``.

    Returns
    -------
    numpy.ndarray

    """
    z = np.asarray(lam, dtype=float) * np.asarray(a, dtype=float)
    return np.tanh(z / 2.0)


def hill_saturation(
    a: np.ndarray, half: np.ndarray | float, slope: np.ndarray | float
) -> np.ndarray:
    """Hill curve ``a^slope / (a^slope + half^slope)``: 0 at 0, 1/2 at ``half``, tends to 1.

    Parameters
    ----------
    a
        Adstocked spend (non-negative).
    half
        Half-saturation point, in the units of ``a``.
    slope
        Steepness (1: Michaelis-Menten).

    Returns
    -------
    numpy.ndarray

    """
    a = np.maximum(np.asarray(a, dtype=float), 0.0)
    half = np.asarray(half, dtype=float)
    slope = np.asarray(slope, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(a > 0, (half / np.where(a > 0, a, 1.0)) ** slope, np.inf)
    return 1.0 / (1.0 + r)


def fourier_terms(dates: pd.DatetimeIndex | pd.Series, order: int) -> np.ndarray:
    """Yearly Fourier features ``sin, cos(2 pi k doy / 365.25)``, k = 1..order: (n, 2 order)."""
    d = pd.DatetimeIndex(dates)
    doy = d.day_of_year.to_numpy(float)
    cols = []
    for k in range(1, order + 1):
        ang = 2 * np.pi * k * doy / YEAR_DAYS
        cols += [np.sin(ang), np.cos(ang)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(d), 0))
