"""Weekly frames for the marketing-mix model: built from the store, simulated, checked.

:func:`mmm_frame` turns the store's ``channel_spend`` and ``deals`` or ``orders`` into one row
per week (spend per channel and an outcome); :func:`simulate_mmm` draws such a frame from known
adstock, saturation and effects, for parameter-recovery checks; :func:`weekly_row_errors`
names every row and column at fault in a weekly frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError, RowError
from crmkit.models.mmm.transforms import YEAR_DAYS, geometric_adstock, logistic_saturation

__all__ = ["mmm_frame", "simulate_mmm", "weekly_row_errors"]


def mmm_frame(
    channel_spend: pd.DataFrame,
    deals: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    *,
    target: str = "new_deals",
) -> pd.DataFrame:
    """Weekly frame for the marketing-mix model: spend per channel and an outcome.

    Parameters
    ----------
    channel_spend
        The store's ``channel_spend`` (channel, week_start, spend).
    deals
        The store's ``deals`` (for ``target`` ``"new_deals"`` or ``"new_deal_value"``).
    orders
        The store's ``orders`` (for ``target="revenue"``).
    target
        ``"new_deals"`` (deals created per week), ``"new_deal_value"`` (their listed amount)
        or ``"revenue"`` (order amount per week).

    Returns
    -------
    pandas.DataFrame
        ``date`` (Monday of the week), one column per channel, and ``y``; the weeks of
        ``channel_spend`` only.

    """
    spend = channel_spend.assign(week_start=pd.to_datetime(channel_spend["week_start"]))
    wide = spend.pivot_table(
        index="week_start", columns="channel", values="spend", aggfunc="sum", fill_value=0.0
    )
    wide.columns = [str(c) for c in wide.columns]
    weeks = wide.index
    if target in ("new_deals", "new_deal_value"):
        if deals is None:
            raise CrmkitError(f"target {target!r} needs the deals table")
        when = pd.to_datetime(deals["created_at"]).dt.normalize()
        wk = when - pd.to_timedelta(when.dt.day_of_week, unit="D")
        val = (
            pd.Series(1.0, index=deals.index)
            if target == "new_deals"
            else deals["amount"].astype(float).fillna(0.0)
        )
    elif target == "revenue":
        if orders is None:
            raise CrmkitError("target 'revenue' needs the orders table")
        when = pd.to_datetime(orders["ordered_at"]).dt.normalize()
        wk = when - pd.to_timedelta(when.dt.day_of_week, unit="D")
        val = orders["amount"].astype(float)
    else:
        raise CrmkitError(f"target must be new_deals, new_deal_value or revenue, not {target!r}")
    y = val.groupby(wk.to_numpy()).sum().reindex(weeks, fill_value=0.0)
    out = wide.reset_index(names="date")
    out["y"] = y.to_numpy(float)
    return out


def simulate_mmm(
    n_weeks: int = 156,
    *,
    decay: list[float] | None = None,
    lam: list[float] | None = None,
    beta: list[float] | None = None,
    mean_spend: list[float] | None = None,
    intercept: float = 1000.0,
    trend_per_year: float = 50.0,
    season_amplitude: float = 100.0,
    noise: float = 40.0,
    l_max: int = 12,
    start: str = "2022-01-03",
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Weekly data from known adstock, logistic saturation and effects, for recovery checks.

    Spend of channel ``c`` is on-off flighted lognormal noise around ``mean_spend[c]``;
    ``lam`` is the saturation steepness per unit of spend divided by the channel's largest
    weekly spend (the model's scale), ``beta`` the most a channel adds per week.

    Returns
    -------
    (pandas.DataFrame, dict)
        ``date``, ``x1..xC``, ``y``; and the truth: parameters, contributions ``(time,
        channel)`` and ROAS per channel.

    """
    rng = np.random.default_rng(seed)
    decay = decay or [0.3, 0.6]
    lam = lam or [2.0, 3.0]
    beta = beta or [300.0, 200.0]
    n_c = len(decay)
    mean_spend = mean_spend or [1000.0 * (c + 1) for c in range(n_c)]
    on = rng.random((n_weeks, n_c)) < 0.7
    x = on * rng.lognormal(0.0, 0.5, (n_weeks, n_c)) * np.asarray(mean_spend)
    x = np.round(x, 2)
    scale = x.max(axis=0)
    a = geometric_adstock(x / scale, np.asarray(decay), l_max)
    contrib = logistic_saturation(a, np.asarray(lam)) * np.asarray(beta)
    dates = pd.date_range(start, periods=n_weeks, freq="7D")
    years = np.arange(n_weeks) * 7 / YEAR_DAYS
    season = season_amplitude * np.sin(2 * np.pi * dates.day_of_year.to_numpy() / YEAR_DAYS)
    y = intercept + trend_per_year * years + season + contrib.sum(axis=1)
    y = y + rng.normal(0.0, noise, n_weeks)
    names = [f"x{c + 1}" for c in range(n_c)]
    df = pd.DataFrame(x, columns=names)
    df.insert(0, "date", dates)
    df["y"] = y
    truth = {
        "channels": names,
        "decay": list(decay),
        "lam": list(lam),
        "beta": list(beta),
        "contributions": contrib,
        "roas": dict(zip(names, contrib.sum(axis=0) / x.sum(axis=0), strict=True)),
        "x_scale": scale,
    }
    return df, truth


def weekly_row_errors(
    df: pd.DataFrame, date_column: str, numeric: list[str], spend: list[str]
) -> list[RowError]:
    """Row problems of a weekly frame: too short, bad dates, irregular weeks, bad numbers.

    Parameters
    ----------
    df
        One row per week; every column named below must be present.
    date_column
        The week column: dates 7 days apart, sorted.
    numeric
        Columns that must hold finite numbers.
    spend
        Those of ``numeric`` that must also be non-negative (channel spend).

    Returns
    -------
    list of crmkit.errors.RowError
        Rows numbered from 1; empty when the frame is fine.
    """
    errors = []
    if len(df) < 2:
        errors.append(RowError(None, None, "need at least two weeks of data", len(df)))
    dates = pd.to_datetime(df[date_column], errors="coerce")
    for i in np.flatnonzero(dates.isna().to_numpy()):
        errors.append(RowError(int(i) + 1, date_column, "not a date", df[date_column].iloc[i]))
    gaps = dates.diff().dt.days.to_numpy()[1:]
    for i in np.flatnonzero(np.isfinite(gaps) & (gaps != 7)):
        errors.append(
            RowError(
                int(i) + 2,
                date_column,
                "weeks must be consecutive (7 days apart, sorted)",
                df[date_column].iloc[i + 1],
            )
        )
    for c in numeric:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        for i in np.flatnonzero(~np.isfinite(v)):
            errors.append(RowError(int(i) + 1, c, "missing or not a number", df[c].iloc[i]))
        if c in spend:
            for i in np.flatnonzero(v < 0):
                errors.append(RowError(int(i) + 1, c, "spend must be >= 0", v[i]))
    return errors
