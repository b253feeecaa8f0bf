"""Spend scenarios with a fitted marketing-mix model: outcome draws of a plan against a baseline.

* :func:`baseline_plan` -- the average spend of the last weeks, continued.
* :func:`predict_plan` -- outcome draws per week of a planned weekly spend per channel.
* :func:`scenario` -- a plan against a baseline plan over a horizon; the difference is
  computed draw by draw, so it carries the posterior spread.
* :func:`marketing_arrivals` -- the extra new deals per period a plan brings against the
  baseline plan (see ``docs/marketing.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.models.mmm.model import MarketingMixModel


def baseline_plan(mmm: MarketingMixModel, weeks: int, *, lookback: int = 13) -> pd.DataFrame:
    """Continue the average weekly spend of the last ``lookback`` fitted weeks.

    Parameters
    ----------
    mmm
        A fitted model.
    weeks
        Horizon in weeks (starting the week after the last fitted week).
    lookback
        Weeks averaged.

    Returns
    -------
    pandas.DataFrame
        ``date`` and one spend column per channel.

    """
    mmm.check_fitted()
    last = mmm.data_[mmm.channels].tail(lookback).mean()
    dates = pd.date_range(mmm.design_["dates"][-1] + pd.Timedelta(days=7), periods=weeks, freq="7D")
    out = pd.DataFrame({ch: np.full(weeks, float(last[ch])) for ch in mmm.channels})
    out.insert(0, "date", dates)
    return out


def _check_plan(mmm: MarketingMixModel, plan: pd.DataFrame) -> pd.DataFrame:
    """Validate a plan: a date column, one non-negative spend column per channel."""
    errors = [
        RowError(None, c, "missing column")
        for c in ["date", *mmm.channels]
        if c not in plan.columns
    ]
    if errors:
        raise ValidationError("spend plan", errors)
    for c in mmm.channels:
        v = pd.to_numeric(plan[c], errors="coerce").to_numpy(float)
        errors += [
            RowError(int(i) + 1, c, "spend must be a number >= 0", plan[c].iloc[i])
            for i in np.flatnonzero(~np.isfinite(v) | (v < 0))
        ]
    if errors:
        raise ValidationError("spend plan", errors)
    out = plan.reset_index(drop=True).copy()
    out["date"] = pd.to_datetime(out["date"])
    for c in mmm.channels:
        out[c] = out[c].astype(float)
    return out


def _future_design(mmm: MarketingMixModel, plan: pd.DataFrame) -> dict[str, np.ndarray]:
    """Design arrays for plan weeks; controls and events not in the plan are 0."""
    frame = plan.rename(columns={"date": mmm.date_column}).copy()
    for c in [*(mmm.controls or []), *(mmm.events or [])]:
        if c not in frame.columns:
            frame[c] = 0.0
    return mmm._design(frame)


def predict_plan(
    mmm: MarketingMixModel, plan: pd.DataFrame, *, n_draws: int = 500, noise: bool = True
) -> xr.DataArray:
    """Outcome draws for the weeks of a spend plan, dims ``(sample, date)``.

    The fitted weeks' spend carries over into the first plan weeks; trend and seasonality
    continue; controls and events absent from ``plan`` are taken as 0.

    Parameters
    ----------
    mmm
        A fitted model.
    plan
        ``date`` and one spend column per channel (controls / events optional).
    n_draws
        Posterior draws.
    noise
        Add the observation noise (a predictive draw) or give the mean only.

    Returns
    -------
    xarray.DataArray
        Outcome per plan week.

    """
    plan = _check_plan(mmm, plan)
    p = mmm.draws(n_draws)
    design = _future_design(mmm, plan)
    history = mmm.data_[mmm.channels].to_numpy(float)
    mu = mmm.baseline(design, p) + mmm.channel_response(
        plan[mmm.channels].to_numpy(float), p, history=history
    ).sum(axis=2)
    if noise:
        rng = np.random.default_rng(mmm.random_seed)
        mu = mu + rng.normal(0.0, 1.0, mu.shape) * p["sigma"][:, None] * mmm.scales_["y"]
    return xr.DataArray(mu, dims=("sample", "date"), coords={"date": design["dates"]})


def scenario(
    mmm: MarketingMixModel,
    plan: pd.DataFrame,
    baseline: pd.DataFrame | None = None,
    *,
    n_draws: int = 500,
    ci: float = 0.9,
) -> dict[str, Any]:
    """Outcome of a spend plan against a baseline plan, with intervals.

    The difference uses the same posterior draws for both plans and no observation
    noise, so it measures what the change in spend does, not week-to-week noise.

    Parameters
    ----------
    mmm
        A fitted model.
    plan
        Planned weekly spend: ``date`` and one column per channel.
    baseline
        The plan to compare with (same dates); by default :func:`baseline_plan`.
    n_draws
        Posterior draws.
    ci
        Credible-interval mass.

    Returns
    -------
    dict
        ``plan``, ``baseline`` and ``difference`` draws ``(sample, date)`` (the plan and
        baseline include observation noise), ``weekly`` (a DataFrame: date, spend_plan,
        spend_baseline, and mean / lo / hi of plan, baseline and difference) and ``total``
        (one-row DataFrame of the horizon sums).

    """
    plan = _check_plan(mmm, plan)
    if baseline is None:
        baseline = baseline_plan(mmm, len(plan))
        baseline["date"] = plan["date"].to_numpy()
    baseline = _check_plan(mmm, baseline)
    if len(baseline) != len(plan):
        raise CrmkitError(f"baseline has {len(baseline)} weeks, the plan {len(plan)}")
    y_plan = predict_plan(mmm, plan, n_draws=n_draws)
    y_base = predict_plan(mmm, baseline, n_draws=n_draws)
    diff = predict_plan(mmm, plan, n_draws=n_draws, noise=False) - predict_plan(
        mmm, baseline, n_draws=n_draws, noise=False
    )
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    weekly = pd.DataFrame(
        {
            "date": plan["date"],
            "spend_plan": plan[mmm.channels].sum(axis=1),
            "spend_baseline": baseline[mmm.channels].sum(axis=1),
        }
    )
    total = {
        "spend_plan": float(weekly["spend_plan"].sum()),
        "spend_baseline": float(weekly["spend_baseline"].sum()),
    }
    for name, arr in (("plan", y_plan), ("baseline", y_base), ("difference", diff)):
        a = arr.values
        weekly[f"{name}_mean"] = a.mean(axis=0)
        weekly[f"{name}_lo"] = np.quantile(a, lo, axis=0)
        weekly[f"{name}_hi"] = np.quantile(a, hi, axis=0)
        s = a.sum(axis=1)
        total.update(
            {
                f"{name}_mean": float(s.mean()),
                f"{name}_lo": float(np.quantile(s, lo)),
                f"{name}_hi": float(np.quantile(s, hi)),
            }
        )
    return {
        "plan": y_plan,
        "baseline": y_base,
        "difference": diff,
        "weekly": weekly,
        "total": pd.DataFrame([total]),
    }


def marketing_arrivals(
    mmm: MarketingMixModel,
    plan: pd.DataFrame,
    baseline: pd.DataFrame | None = None,
    *,
    period: str = "M",
    n_draws: int = 500,
) -> xr.DataArray:
    """Extra new deals per period that a spend plan brings against the baseline plan.

    The single place marketing enters the revenue forecast: fit the model with
    ``target="new_deals"`` (see :func:`crmkit.models.mmm.model.mmm_frame`); the new-business
    model already learned the arrivals that past spend produced, so only the *difference*
    between the plan and the baseline (past spend continued) is added to its monthly
    arrival means. Revenue then follows from the new-business win rates and amounts, so
    nothing is counted twice. Weeks are assigned to the period of their Monday.

    Parameters
    ----------
    mmm
        A model fitted on weekly new-deal counts.
    plan, baseline
        Weekly spend plans (see :func:`scenario`).
    period
        ``"M"`` or ``"Q"``.
    n_draws
        Posterior draws.

    Returns
    -------
    xarray.DataArray
        Dims ``(sample, period)``, period labels like ``"2026-01"``; can be negative when
        the plan spends less than the baseline.

    """
    if period not in ("M", "Q"):
        raise CrmkitError(f"period must be 'M' or 'Q', not {period!r}")
    diff = scenario(mmm, plan, baseline, n_draws=n_draws)["difference"]
    labels = pd.DatetimeIndex(diff["date"].values).to_period(period).astype(str)
    out = diff.assign_coords(period=("date", np.asarray(labels))).groupby("period").sum("date")
    return out.transpose("sample", "period")


__all__ = ["baseline_plan", "marketing_arrivals", "predict_plan", "scenario"]
