"""The calendar effect on spend per purchase, and repeat revenue with both calendar effects.

:class:`SpendEffect` is :class:`crmkit.models.clv.calendar.CalendarEffect`'s state-space
model applied to the log of each period's repeat revenue against the Gamma-Gamma expected
spend of its purchases (observed with variance ``cv^2 / n_w``; the model and its grid
posterior are described in :mod:`crmkit.models.clv.calendar`). The revenue forecast uses
both effects: :func:`repeat_spend_by_period` gives the observed revenue and expected spend
per past period, :func:`fit_calendar_effects` fits the rate and the spend effect at a
cut-off, and :func:`adjust_revenue` multiplies the standard revenue draws by both
multipliers, draw by draw.
"""

from __future__ import annotations

import time
from typing import Any, Self

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError
from crmkit.models.clv import predictions as pred
from crmkit.models.clv.calendar import CalendarEffect, repeat_counts_by_period


class SpendEffect(CalendarEffect):
    """Common calendar-time multiplier of the mean spend per purchase.

    The mean spend of a purchase made in calendar period ``w`` is its customer's Gamma-Gamma
    expectation times ``s_w = exp(zeta_w)``; ``zeta`` is the same state-space process as
    :class:`CalendarEffect`'s (random walk, yearly seasonality once 12 months of history
    exist), learnt from the log ratio of each past period's repeat revenue to the sum of its
    purchases' expected spend, observed with variance ``cv^2 / n_w`` (``n_w`` purchases).
    Same settings and outputs as :class:`CalendarEffect`, with other defaults: the spend
    moves less than the rate, so the prior scale of the walk's step is half the rate's, the
    walk has no mean-reverting alternatives, and "no spend effect" (multiplier 1) has prior
    probability ``none_prior = 0.5``: a base whose spend per purchase does not move with the
    calendar (CDNOW) gets no extra spread from it, while a real basket season (the seasonal
    retailer's +30% in Nov-Dec) outweighs it by far (``benchmarks/results/clv_holdout.md``).
    """

    WHAT = "spend"
    ATTR = "spend_effect"

    def one_step_predictions(self) -> dict[str, np.ndarray]:
        """Not defined for the spend effect (the checks are the purchase-rate effect's)."""
        raise NotImplementedError(
            "one-step predictions, log-likelihood and posterior predictive are written for "
            "the purchase-rate effect (CalendarEffect), not for SpendEffect"
        )

    def add_log_likelihood(self) -> Self:
        """Not defined for the spend effect (see :meth:`one_step_predictions`)."""
        return self.one_step_predictions()  # raises

    def add_posterior_predictive(self, seed: int = 0) -> Self:
        """Not defined for the spend effect (see :meth:`one_step_predictions`)."""
        return self.one_step_predictions()  # raises

    def __init__(
        self,
        sigma_scale: float = 0.05,
        tau_scale: float = 0.5,
        level_sd: float = 0.25,
        half_lives: tuple[float, ...] = (),
        grid_size: int = 40,
        seasonality: str = "auto",
        season_sd: float = 0.25,
        walk_prior: float | None = 0.5,
        season_full: float = 0.0,
        none_prior: float = 0.5,
    ) -> None:
        super().__init__(
            sigma_scale=sigma_scale,
            tau_scale=tau_scale,
            level_sd=level_sd,
            half_lives=half_lives,
            grid_size=grid_size,
            seasonality=seasonality,
            season_sd=season_sd,
            walk_prior=walk_prior,
            season_full=season_full,
            none_prior=none_prior,
        )

    def fit(  # type: ignore[override]
        self,
        data: np.ndarray,
        method: str = "grid",
        *,
        purchases: np.ndarray,
        expected: np.ndarray,
        cv2: float = 1.0,
        time_unit: str = "W",
        period_length: float | None = None,
        cutoff: object | None = None,
    ) -> Self:
        """Estimate the spend multiplier's path and seasonality from past periods.

        Parameters
        ----------
        data
            Revenue of the repeat purchases per period before the cut-off, oldest first
            (see :func:`repeat_spend_by_period`).
        method
            ``"grid"`` (the only one).
        purchases
            Repeat purchases per period (the same periods).
        expected
            Sum over each period's purchases of their customer's Gamma-Gamma expected spend.
        cv2
            Squared coefficient of variation of a purchase's amount around its expectation.
        time_unit
            Time unit of ``period_length`` (the purchase model's).
        period_length
            Length of a period (default one week).
        cutoff
            Last day of the data (for the yearly seasonality).

        Returns
        -------
        Self
            The fitted effect.
        """
        started = time.perf_counter()
        self._check_method(method)
        rev, n, exp_ = (np.asarray(v, dtype=float) for v in (data, purchases, expected))
        if rev.ndim != 1 or not (len(rev) == len(n) == len(exp_)):
            raise CrmkitError("revenue, purchases and expected must be equal-length 1-d arrays")
        if not (np.all(np.isfinite(rev)) and np.all(np.isfinite(exp_))) or (rev < 0).any():
            raise CrmkitError("revenue per period must be finite and not negative")
        if not np.isfinite(cv2) or cv2 <= 0:
            raise CrmkitError(f"cv2 must be a positive number, not {cv2!r}")
        keep = (n > 0) & (exp_ > 0) & (rev > 0)
        if keep.sum() < 4:
            raise CrmkitError("spend effect: at least 4 periods with repeat purchases are needed")
        L = 7.0 / pred.TIME_UNITS[time_unit] if period_length is None else float(period_length)
        y = np.log(rev[keep] / exp_[keep])
        obs_var = float(cv2) / n[keep]
        self._fit_state(y, obs_var, keep, L, time_unit, cutoff)
        self.method_ = method
        self.idata_ = self._draws(rev, exp_)
        self._diagnose(method, started)
        return self


def repeat_spend_by_period(
    transactions: pd.DataFrame,
    summary: pd.DataFrame,
    spend_params: dict[str, float],
    cutoff: object,
    n_periods: int,
    period_days: float = 7.0,
) -> pd.DataFrame:
    """Repeat purchases, their revenue and expected spend per period before a cut-off.

    The expected spend of a purchase is its customer's Gamma-Gamma conditional mean given
    the customer's *other* repeat purchases (leave one out): given all of them, a customer
    whose few purchases fall in a big-basket month would explain part of that month's
    excess away.

    Parameters
    ----------
    transactions
        ``customer_id``, ``date`` (or ``ordered_at``) and ``amount``; same-day purchases
        are one purchase (amounts summed), as in the purchase summary.
    summary
        The purchase summary at ``cutoff``: ``customer_id``, ``frequency``,
        ``monetary_value``; other customers are left out.
    spend_params
        Gamma-Gamma ``p``, ``q``, ``gamma`` (e.g. a fitted GammaGamma's ``params_``).
    cutoff
        Last day of the calibration data (inclusive).
    n_periods
        Number of periods.
    period_days
        Period length in days.

    Returns
    -------
    pandas.DataFrame
        One row per period, oldest first: ``purchases``, ``revenue`` and ``expected`` (the
        sum of the purchases' expected spend); ``attrs["cv2"]``: the squared coefficient of
        variation of a purchase's amount around its expectation.
    """
    col = "date" if "date" in transactions else "ordered_at"
    tx = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"].to_numpy(),
            "day": pd.to_datetime(transactions[col]).dt.normalize().to_numpy(),
            "amount": pd.to_numeric(transactions["amount"]).to_numpy(dtype=float),
        }
    )
    summ = summary.set_index("customer_id")
    tx = tx[tx["customer_id"].isin(summ.index)]
    cut = pd.Timestamp(cutoff).normalize()
    tx = tx[tx["day"] <= cut].groupby(["customer_id", "day"], as_index=False)["amount"].sum()
    first = tx.groupby("customer_id")["day"].transform("min")
    rep = tx[tx["day"] > first]
    amt = rep["amount"].to_numpy(float)
    x = rep["customer_id"].map(summ["frequency"]).to_numpy(float)
    total = x * rep["customer_id"].map(summ["monetary_value"]).to_numpy(float)
    p, q, g = (float(spend_params[k]) for k in ("p", "q", "gamma"))
    denom = p * (x - 1.0) + q - 1.0
    e = p * (g + np.maximum(total - amt, 0.0)) / np.where(denom > 0, denom, 1.0)
    e = np.where(denom > 0, e, float(np.mean(amt)) if len(amt) else np.nan)
    back = (cut - rep["day"]).dt.days.to_numpy() / float(period_days)
    j = np.floor(back + 1e-9).astype(np.int64)
    ok = (j >= 0) & (j < n_periods) & np.isfinite(e) & (e > 0)
    out = pd.DataFrame(
        {
            "purchases": np.bincount(j[ok], minlength=n_periods)[::-1].astype(float),
            "revenue": np.bincount(j[ok], weights=amt[ok], minlength=n_periods)[::-1],
            "expected": np.bincount(j[ok], weights=e[ok], minlength=n_periods)[::-1],
        }
    )
    ratio = amt[ok] / e[ok]
    out.attrs["cv2"] = float(np.mean((ratio - 1.0) ** 2)) if ok.sum() > 1 else 1.0
    return out


def fit_calendar_effects(
    transactions: pd.DataFrame,
    summary: pd.DataFrame,
    purchase_model: Any,
    spend_model: Any | None,
    cutoff: object,
    *,
    n_periods: int | None = None,
    rate: CalendarEffect | None = None,
    spend: SpendEffect | None = None,
) -> tuple[CalendarEffect, SpendEffect | None]:
    """Fit the rate and spend effects on weekly residuals of fitted standard models.

    Parameters
    ----------
    transactions
        ``customer_id``, ``date`` (or ``ordered_at``), ``amount``.
    summary
        The purchase summary at ``cutoff`` (weeks) the models were fitted on.
    purchase_model
        Fitted BG/NBD or Pareto/NBD (time unit weeks).
    spend_model
        Fitted Gamma-Gamma, or None for the rate effect only.
    cutoff
        Last day of the data.
    n_periods
        Weeks of history used (default: from the first purchase in ``summary``).
    rate, spend
        Settings of the effects (default :class:`CalendarEffect` and :class:`SpendEffect`).

    Returns
    -------
    tuple
        The fitted rate effect and the fitted spend effect (None without a spend model).
    """
    if n_periods is None:
        n_periods = int(np.floor(float(summary["T"].max()) * pred.TIME_UNITS["W"] / 7.0))
    L = 7.0 / pred.TIME_UNITS[purchase_model.time_unit]
    past = repeat_counts_by_period(transactions, summary["customer_id"], cutoff, n_periods)
    r_eff = (rate or CalendarEffect()).fit(
        past, purchase_model=purchase_model, summary=summary, period_length=L, cutoff=cutoff
    )
    if spend_model is None:
        return r_eff, None
    by = repeat_spend_by_period(transactions, summary, spend_model.params_, cutoff, n_periods)
    s_eff = (spend or SpendEffect()).fit(
        by["revenue"].to_numpy(),
        purchases=by["purchases"].to_numpy(),
        expected=by["expected"].to_numpy(),
        cv2=by.attrs["cv2"],
        time_unit=purchase_model.time_unit,
        period_length=L,
        cutoff=cutoff,
    )
    return r_eff, s_eff


def adjust_revenue(
    revenue: xr.DataArray,
    rate: CalendarEffect | None,
    spend: SpendEffect | None,
    *,
    noise: bool | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """Revenue draws times the rate and spend multipliers, draw by draw.

    The rate multipliers are those :meth:`CalendarEffect.adjust` gives the purchase draws
    with the same ``seed`` (so purchases and revenue move together); the spend multipliers
    are drawn with ``seed + 1``.

    Parameters
    ----------
    revenue
        :func:`crmkit.models.clv.models.repeat_purchases` with a ``spend_model``.
    rate, spend
        Fitted effects (None: that multiplier is 1).
    noise
        Period shocks; default as the totals.
    seed
        Random seed.

    Returns
    -------
    xarray.DataArray
        The revenue draws times both multipliers, with ``calendar_effect`` and
        ``spend_effect`` attributes.
    """
    out = revenue if rate is None else rate.adjust(revenue, noise=noise, seed=seed)
    return out if spend is None else spend.adjust(out, noise=noise, seed=seed + 1)
