"""Planning with a fitted marketing-mix model: spend scenarios, budget allocation, forecast input.

* :func:`scenario` -- planned weekly spend per channel over a horizon gives outcome draws per
  week, against a baseline plan (by default: the average spend of the last weeks, continued);
  the difference is computed draw by draw, so it carries the posterior spread.
* :func:`optimize_budget` -- split a weekly budget across channels to maximise the expected
  (posterior-mean) steady-state response, then evaluate the posterior draws at the optimum.
* :func:`marketing_arrivals` -- the single place marketing enters the revenue forecast: the
  extra new deals per month a plan brings against the baseline plan (see ``docs/marketing.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.models.marketing import MarketingMixModel


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
    mmm._check_fitted()
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


def steady_response(
    mmm: MarketingMixModel, weekly_spend: np.ndarray, p: dict[str, np.ndarray]
) -> np.ndarray:
    """Weekly contribution per channel once a constant spend has built up, (sample, channel)."""
    carry = (p["decay"][:, None, :] ** np.arange(mmm.l_max)[None, :, None]).sum(axis=1)
    a = np.asarray(weekly_spend, float)[None, None, :] / mmm.scales_["x"] * carry[:, None, :]
    return (mmm.saturate(a, p) * p["beta"][:, None, :])[:, 0, :] * mmm.scales_["y"]


def optimize_budget(
    mmm: MarketingMixModel,
    weekly_budget: float,
    *,
    bounds: dict[str, tuple[float, float]] | None = None,
    current: dict[str, float] | None = None,
    n_draws: int = 500,
    ci: float = 0.9,
) -> dict[str, Any]:
    """Split a weekly budget across channels to maximise the expected weekly outcome.

    The objective is the posterior mean of the steady-state response (the mean over draws
    of each draw's response, not the response at mean parameters), maximised with SLSQP
    under ``sum(spend) == weekly_budget`` and per-channel bounds. The posterior draws are
    then evaluated at the optimum and at ``current`` (default: the last 13 weeks' average
    split scaled to the budget), so the gain carries its uncertainty.

    Parameters
    ----------
    mmm
        A fitted model.
    weekly_budget
        Total spend per week.
    bounds
        ``{channel: (min, max)}`` weekly spend; default ``(0, weekly_budget)``.
    current
        The allocation to compare with.
    n_draws
        Posterior draws.
    ci
        Credible-interval mass.

    Returns
    -------
    dict
        ``allocation`` (DataFrame: channel, current, optimal, response mean / lo / hi at the
        optimum), ``optimal_draws`` and ``current_draws`` (total weekly response per draw),
        ``gain`` (dict: mean, lo, hi, probability the optimum beats current) and ``success``.

    """
    if not np.isfinite(weekly_budget) or weekly_budget <= 0:
        raise ValidationError(
            "budget", [RowError(None, "weekly_budget", "must be > 0", weekly_budget)]
        )
    p = mmm.draws(n_draws)
    chans = mmm.channels
    b = bounds or {}
    unknown = sorted(set(b) - set(chans))
    if unknown:
        raise CrmkitError(f"bounds name unknown channel(s) {unknown}; fitted: {chans}")
    lims = [tuple(b.get(c, (0.0, weekly_budget))) for c in chans]
    if sum(lo for lo, _ in lims) > weekly_budget or sum(hi for _, hi in lims) < weekly_budget:
        raise CrmkitError("the bounds cannot add up to the weekly budget")
    if current is None:
        last = mmm.data_[chans].tail(13).mean().to_numpy(float)
        last = last if last.sum() > 0 else np.ones(len(chans))
        cur = last / last.sum() * weekly_budget
    else:
        cur = np.array([float(current.get(c, 0.0)) for c in chans])
    scale = weekly_budget

    def neg(u: np.ndarray) -> float:
        return -float(steady_response(mmm, u * scale, p).sum(axis=1).mean()) / scale

    x0 = np.clip(cur, [lo for lo, _ in lims], [hi for _, hi in lims]) / scale
    res = optimize.minimize(
        neg,
        x0,
        method="SLSQP",
        bounds=[(lo / scale, hi / scale) for lo, hi in lims],
        constraints=[{"type": "eq", "fun": lambda u: u.sum() - 1.0}],
        options={"maxiter": 500, "ftol": 1e-10},
    )
    best = np.clip(res.x, 0, None) * scale
    r_best = steady_response(mmm, best, p)
    tot_best = r_best.sum(axis=1)
    tot_cur = steady_response(mmm, cur, p).sum(axis=1)
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    alloc = pd.DataFrame(
        {
            "channel": chans,
            "current": cur,
            "optimal": best,
            "response_mean": r_best.mean(axis=0),
            "response_lo": np.quantile(r_best, lo, axis=0),
            "response_hi": np.quantile(r_best, hi, axis=0),
        }
    )
    gain = tot_best - tot_cur
    return {
        "allocation": alloc,
        "optimal_draws": tot_best,
        "current_draws": tot_cur,
        "gain": {
            "mean": float(gain.mean()),
            "lo": float(np.quantile(gain, lo)),
            "hi": float(np.quantile(gain, hi)),
            "p_better": float((gain > 0).mean()),
        },
        "success": bool(res.success),
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
    ``target="new_deals"`` (see :func:`crmkit.models.marketing.mmm_frame`); the new-business
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


# ---------------------------------------------------------------------- the forecast's input
PLAN_LONG_COLUMNS = ("channel", "week_start", "spend")


def horizon_weeks(mmm: MarketingMixModel, end: object) -> pd.DatetimeIndex:
    """Weeks of the model's calendar from the one after the fitted data up to ``end``."""
    mmm._check_fitted()
    first = mmm.design_["dates"][-1] + pd.Timedelta(days=7)
    n = max(int((pd.Timestamp(end) - first).days // 7) + 1, 0)
    return pd.date_range(first, periods=n, freq="7D")


def plan_overrides(mmm: MarketingMixModel, plan: pd.DataFrame) -> pd.DataFrame:
    """Planned spend as long rows ``(week_start, channel, spend)``, validated.

    ``plan`` is either long -- ``channel``, ``week_start``, ``spend`` like the store's
    ``channel_spend`` table -- or wide -- a ``date`` column and one column per channel (the
    format of :func:`scenario`; channels left out of a wide plan are not planned). Every
    week must be one of the model's future weeks (7 days apart from the fitted ones, after
    them). A :class:`ValidationError` names each bad row (1-based) and field.
    """
    mmm._check_fitted()
    if not isinstance(plan, pd.DataFrame):
        raise CrmkitError(f"a spend plan must be a DataFrame, not {type(plan).__name__}")
    long = set(PLAN_LONG_COLUMNS) <= set(plan.columns)
    if long:
        frame = plan.reset_index(drop=True)
        rows = pd.DataFrame(
            {
                "row": np.arange(len(frame)) + 1,
                "week_start": frame["week_start"],
                "channel": frame["channel"],
                "spend": frame["spend"],
            }
        )
        date_field = "week_start"
    elif "date" in plan.columns:
        frame = plan.reset_index(drop=True)
        other = {*(mmm.controls or []), *(mmm.events or [])}
        chans = [c for c in frame.columns if c != "date" and c not in other]
        rows = frame.assign(row=np.arange(len(frame)) + 1).melt(
            id_vars=["row", "date"], value_vars=chans, var_name="channel", value_name="spend"
        )
        rows = rows.rename(columns={"date": "week_start"})
        date_field = "date"
    else:
        raise ValidationError(
            "spend plan",
            [
                RowError(None, c, "missing column (a plan is channel, week_start, spend)")
                for c in PLAN_LONG_COLUMNS
                if c not in plan.columns
            ],
        )
    errors: list[RowError] = []
    first = mmm.design_["dates"][-1] + pd.Timedelta(days=7)
    when = pd.to_datetime(rows["week_start"], errors="coerce")
    spend = pd.to_numeric(rows["spend"], errors="coerce")
    seen: set[tuple] = set()
    for i in range(len(rows)):
        r = int(rows["row"].iloc[i])
        ch, w, v = rows["channel"].iloc[i], when.iloc[i], spend.iloc[i]
        field_ch = "channel" if long else str(ch)
        if str(ch) not in mmm.channels:
            errors.append(
                RowError(r, field_ch, f"unknown channel; the model has {mmm.channels}", ch)
            )
        if pd.isna(w):
            errors.append(RowError(r, date_field, "not a date", rows["week_start"].iloc[i]))
        elif w < first:
            errors.append(
                RowError(
                    r,
                    date_field,
                    f"week is not after the model's data (plan weeks start {first.date()})",
                    str(w.date()),
                )
            )
        elif (w - first).days % 7:
            errors.append(
                RowError(
                    r,
                    date_field,
                    f"not a week start of the model (weeks start on {first.day_name()}s)",
                    str(w.date()),
                )
            )
        elif (str(ch), w) in seen:
            errors.append(RowError(r, date_field, "a second row for this channel and week"))
        seen.add((str(ch), w))
        if not (np.isfinite(v) and v >= 0):
            errors.append(
                RowError(r, "spend" if long else str(ch), "spend must be a number >= 0", v)
            )
    if errors:
        raise ValidationError("spend plan", errors)
    out = pd.DataFrame(
        {"week_start": when, "channel": rows["channel"].astype(str), "spend": spend.astype(float)}
    )
    return out.reset_index(drop=True)


def plan_from_campaigns(
    mmm: MarketingMixModel, campaigns: pd.DataFrame, end: object
) -> pd.DataFrame:
    """Planned spend from the store's campaigns over the model's future weeks up to ``end``.

    Each campaign that runs in those weeks spends its ``budget`` (its ``cost`` when no
    budget is set) evenly over the weeks it runs (``start_date`` to ``end_date``; one week
    when there is no end date). A channel with at least one such campaign is planned from
    its campaigns in every week (0 where none runs); a channel with none is not planned, so
    it follows the baseline.

    Returns
    -------
    pandas.DataFrame
        Long rows ``channel``, ``week_start``, ``spend`` for :func:`plan_overrides`.

    """
    weeks = horizon_weeks(mmm, end)
    out = []
    if len(weeks) == 0 or campaigns is None or campaigns.empty:
        return pd.DataFrame(columns=list(PLAN_LONG_COLUMNS))
    c = campaigns[campaigns["channel"].astype(str).isin(mmm.channels)]
    start = pd.to_datetime(c["start_date"])
    stop = pd.to_datetime(c["end_date"]).fillna(start + pd.Timedelta(days=6))
    money = c["budget"].astype(float).fillna(c["cost"].astype(float)).fillna(0.0)
    wk = weeks.to_numpy()
    for ch in mmm.channels:
        spend = np.zeros(len(weeks))
        planned = False
        for s, e, m in zip(
            start[c["channel"] == ch],
            stop[c["channel"] == ch],
            money[c["channel"] == ch],
            strict=True,
        ):
            run = (wk <= np.datetime64(e)) & (wk + np.timedelta64(6, "D") >= np.datetime64(s))
            if not run.any():
                continue
            n_weeks = max(int((e - s).days) // 7 + 1, 1)
            spend[run] += m / n_weeks
            planned = True
        if planned:
            out.append(pd.DataFrame({"channel": ch, "week_start": weeks, "spend": spend}))
    if not out:
        return pd.DataFrame(columns=list(PLAN_LONG_COLUMNS))
    return pd.concat(out, ignore_index=True)


def horizon_plans(
    mmm: MarketingMixModel, plan: pd.DataFrame, end: object, *, lookback: int = 13
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plan and baseline over every future week up to ``end`` (wide, for :func:`scenario`).

    The baseline continues the last ``lookback`` weeks' average spend; the plan is the
    baseline with the weeks and channels that ``plan`` names replaced (weeks after ``end``
    are dropped). So an empty plan, or one equal to the baseline, changes nothing.
    """
    over = plan_overrides(mmm, plan)
    weeks = horizon_weeks(mmm, end)
    base = baseline_plan(mmm, len(weeks), lookback=lookback)
    full = base.set_index("date")
    over = over[over["week_start"] <= (weeks[-1] if len(weeks) else pd.Timestamp.min)]
    for row in over.itertuples(index=False):
        full.loc[row.week_start, row.channel] = row.spend
    return full.reset_index(), base


def extra_arrivals_by_month(
    mmm: MarketingMixModel,
    plan: pd.DataFrame,
    *,
    as_of: object,
    first_month: int,
    months: int,
    n_draws: int,
) -> np.ndarray:
    """Extra new deals per forecast month from a plan against the baseline, ``(n_draws, months)``.

    The forecast's entry point (see :func:`marketing_arrivals` and ``docs/marketing.md``):
    the plan-minus-baseline outcome of each future week, posterior draw by draw, spread
    evenly over the week's seven days; days on or before ``as_of`` are dropped and the rest
    summed by calendar month (month index ``year * 12 + month - 1``, starting at
    ``first_month``). With fewer posterior draws than ``n_draws`` they are repeated.
    """
    end_month = first_month + months  # exclusive
    end = pd.Timestamp(year=end_month // 12, month=end_month % 12 + 1, day=1) - pd.Timedelta(days=1)
    full, base = horizon_plans(mmm, plan, end)
    out = np.zeros((n_draws, months))
    if full.empty:
        return out
    diff = (
        predict_plan(mmm, full, n_draws=n_draws, noise=False).values
        - predict_plan(mmm, base, n_draws=n_draws, noise=False).values
    )
    diff = diff[np.arange(n_draws) % diff.shape[0]]
    days = pd.DatetimeIndex(full["date"]).repeat(7) + pd.to_timedelta(
        np.tile(np.arange(7), len(full)), unit="D"
    )
    k = (days.year * 12 + days.month - 1).to_numpy() - first_month
    keep = (days > pd.Timestamp(as_of).normalize()) & (k >= 0) & (k < months)
    weight = np.zeros((len(full), months))
    np.add.at(weight, (np.repeat(np.arange(len(full)), 7)[keep], k[keep]), 1.0 / 7.0)
    return diff @ weight
