"""Rolling-origin backtests of the deal-revenue forecast against what happened, with baselines.

At each origin (a past month end) the models are refitted on what was known then (deal
states rebuilt from ``deal_history`` and the deals' dates,
:func:`crmkit.store.history.deals_as_of`),
the won revenue of the next periods is forecast, and compared with the revenue actually
won. Scores per origin and lead: interval hits (50 / 80 / 95%, central intervals from the
draws), CRPS from samples, and the error of the median. Targets: each single period
ahead (``lead`` 1..h) and the sum of the first ``h`` periods (``lead`` ``"1-h"``).

Baselines, each with a predictive distribution so CRPS and coverage compare fairly:

* ``weighted_pipeline``: each open deal's amount times its stage's configured probability,
  in the period of its expected close date, as CRMs compute it (deals already past their
  expected close date sit in past periods and are not counted); its distribution is that
  of the sum of independent Bernoulli(probability) wins of each deal's amount (the model
  the weighted pipeline's mean implies).
* ``run_rate``: the mean of the last ``k`` complete periods with revenue; its distribution is
  a Student-t with ``k - 1`` degrees of freedom, centre the mean and scale the periods'
  standard deviation times ``sqrt(1 + 1/k)`` (the predictive of a normal sample), floored
  at zero.

The forecast call (:func:`call_backtest`, "whose forecast to trust"): at each origin the
sales team's own numbers for the next period are rebuilt as they stood then (deal
categories, stages, amounts and expected close dates from ``deal_history``; the manager
calls made by that day, :func:`crmkit.store.calls.calls_as_of`) and scored with the model
against the won revenue of that period, per group (the company ``all``, each ``owner=..``
and ``team=..``). Point forecasters (``commit`` and ``best_case`` roll-ups,
``manager_call``, ``run_rate``) get an absolute error and a hit (the number was reached:
outcome >= point); the model gets the same for its P50, and CRPS and 80% / 50% coverage
from its draws. :func:`summarise_calls` averages them per forecaster (and per group on the
manager calls' own periods).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import PeriodAxis, deal_revenue, period_axis
from crmkit.forecast.call import category_rollups
from crmkit.forecast.engine import forecast_draws, load_frames
from crmkit.forecast.fitting import fit_models
from crmkit.forecast.skill import with_run_rate_verdict
from crmkit.models.pipeline.data import deal_frame, last_full_month
from crmkit.store.calls import calls_as_of, group_of, period_label
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.history import HistoryIndex, deals_as_of, end_of_day, month_end, month_index

LEVELS = (0.5, 0.8, 0.95)


def crps_samples(samples: np.ndarray, y: float) -> float:
    """CRPS of a sample-based predictive distribution at the outcome ``y``.

    Uses ``E|X - y| - E|X - X'| / 2`` with the sorted-sample formula for the second term.
    """
    x = np.sort(np.asarray(samples, float))
    n = len(x)
    term1 = np.mean(np.abs(x - y))
    i = np.arange(1, n + 1)
    term2 = 2.0 * np.sum((2 * i - n - 1) * x) / (n * n)
    return float(term1 - term2 / 2.0)


def score(samples: np.ndarray, y: float) -> dict[str, float]:
    """CRPS, median error and 50/80/95% interval hits of one forecast."""
    out = {
        "crps": crps_samples(samples, y),
        "median": float(np.median(samples)),
        "mean": float(np.mean(samples)),
        "actual": float(y),
    }
    out["median_error"] = out["median"] - y
    for lev in LEVELS:
        lo, hi = np.quantile(samples, [(1 - lev) / 2, (1 + lev) / 2])
        out[f"hit{int(lev * 100)}"] = float(lo <= y <= hi)
    return out


def period_index(
    months: np.ndarray | int, period: str, calendar: FiscalCalendar | None = None
) -> np.ndarray | int:
    """Period index of month indexes: the month itself, or its (fiscal) quarter for ``"Q"``.

    Fiscal quarters of a calendar-month fiscal year start ``(start_month - 1) % 3`` months
    after calendar quarters; consecutive quarters have consecutive indexes.
    """
    if period == "M":
        return months
    offset = 0 if calendar is None else (calendar.start_month - 1) % 3
    return (np.asarray(months) - offset) // 3


def actual_won(
    deals: pd.DataFrame, period: str = "M", calendar: FiscalCalendar | None = None
) -> pd.Series:
    """Won revenue per period index (:func:`period_index` of the close month)."""
    won = deals[deals["status"].eq("won") & deals["closed_at"].notna()]
    key = period_index(month_index(won["closed_at"]), period, calendar)
    return pd.Series(won["amount"].fillna(0.0).to_numpy(float)).groupby(key).sum()


def _calendar_of(store_or_frames: object, calendar: FiscalCalendar | None) -> FiscalCalendar:
    """The calendar given, else the store's, else calendar months."""
    if calendar is not None:
        return calendar
    if isinstance(store_or_frames, dict):
        return FiscalCalendar()
    return fiscal_calendar(store_or_frames)


def weighted_pipeline_draws(
    state: pd.DataFrame, stages: pd.DataFrame, axis, n_draws: int, seed: int = 0
) -> np.ndarray:
    """Baseline draws ``(draw, period)``: Bernoulli(configured probability) x amount per deal."""
    prob = dict(zip(stages["stage"].astype(str), stages["probability"].astype(float), strict=False))
    open_ = state[state["status"].eq("open")]
    p = open_["stage"].astype(str).map(prob).fillna(0.0).to_numpy(float)
    em = month_index(open_["expected_close_date"])
    k = np.where(em < 0, -1, em - axis.first_month)  # overdue deals sit in past periods
    per = np.where(
        (k >= 0) & (k < axis.months), axis.period_of_k[np.clip(k, 0, axis.months - 1)], -1
    )
    amount = open_["amount"].fillna(0.0).to_numpy(float)
    rng = np.random.default_rng(seed)
    out = np.zeros((n_draws, len(axis.labels)))
    for j in range(len(axis.labels)):
        sel = per == j
        if sel.any():
            wins = rng.random((n_draws, int(sel.sum()))) < p[sel]
            out[:, j] = wins @ amount[sel]
    return out


def run_rate_draws(
    history: pd.Series, n_periods: int, n_draws: int, k: int = 3, seed: int = 0
) -> np.ndarray:
    """Baseline draws ``(draw, period)`` from the last ``k`` periods' revenue (Student-t)."""
    vals = history.to_numpy(float)[-k:]
    rng = np.random.default_rng(seed)
    if len(vals) == 0:
        return np.zeros((n_draws, n_periods))
    mean = vals.mean()
    if len(vals) >= 2:
        sd = vals.std(ddof=1) * np.sqrt(1 + 1 / len(vals))
        t = rng.standard_t(len(vals) - 1, size=(n_draws, n_periods))
    else:
        sd, t = 0.5 * mean, rng.standard_normal((n_draws, n_periods))
    return np.maximum(mean + sd * t, 0.0)


def backtest(
    frames: dict[str, pd.DataFrame],
    origins: Sequence[object],
    *,
    horizon: int = 3,
    period: str = "M",
    draws: int = 1000,
    method: str = "map",
    seed: int = 0,
    run_rate_k: int = 3,
    window_months: int = 24,
    progress: bool = False,
    calendar: FiscalCalendar | None = None,
    sources: bool = False,
) -> pd.DataFrame:
    """Rolling-origin backtest of the model and both baselines.

    Parameters
    ----------
    frames
        ``deals``, ``deal_history``, ``accounts``, ``stages`` (as the store gives them); the
        deals hold final outcomes, which are hidden from each origin's fit.
    origins
        Cut-off days (usually month ends).
    horizon
        Periods ahead.
    period
        ``"M"`` or ``"Q"``.
    draws
        Forecast draws.
    method
        Fit method of the models: MAP by default, since every origin refits them (``"auto"``
        is taken as ``"map"`` here; ask ``"nuts"`` to sample each origin).
    seed
        Random seed.
    run_rate_k
        Periods averaged by the run-rate baseline.
    window_months
        Training window of the models.
    progress
        Print one line per origin.
    calendar
        The company's fiscal calendar (:func:`crmkit.store.fiscal.fiscal_calendar`):
        quarters are its fiscal quarters; None: calendar months and quarters.
    sources
        Also score the model's two sources on their own (forecasters ``model:pipeline``,
        against the revenue of deals created by the origin, and ``model:new_business``,
        against that of deals created after it): where a miss comes from.

    Returns
    -------
    pandas.DataFrame
        One row per origin, lead (``1..h`` and ``"1-h"``) and forecaster (``model``,
        ``weighted_pipeline``, ``run_rate``; with ``sources``, ``model:pipeline`` and
        ``model:new_business``) with ``crps``, ``median``, ``mean``, ``actual``,
        ``median_error`` and ``hit50``, ``hit80``, ``hit95``.
    """
    method = "map" if method == "auto" else method  # many refits: MAP unless NUTS is asked
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    history = frames.get("deal_history")
    actual = actual_won(deals, period, calendar)
    rows: list[dict[str, Any]] = []
    for origin in origins:
        o = pd.Timestamp(origin)
        models = fit_models(
            {**frames, "deals": deals},
            as_of=o,
            method=method,
            seed=seed,
            window_months=window_months,
        )
        res = forecast_draws(
            models,
            frames,
            as_of=o,
            horizon=horizon,
            period=period,
            draws=draws,
            seed=seed,
            include_repeat=False,
            calendar=calendar,
        )
        axis = res["axis"]
        rev = res["revenue"].sel(group="all")
        model = deal_revenue(rev).to_numpy()
        state = deals_as_of(deals, history, o)
        wp = weighted_pipeline_draws(state, frames["stages"], axis, draws, seed)
        p0 = int(period_index(axis.first_month, period, calendar))
        won_then = actual_won(state, period, calendar)
        past = won_then[won_then.index < p0]
        past = past[past.index >= past.index.min()] if len(past) else past
        full = pd.Series(0.0, index=np.arange(past.index.min(), p0)) if len(past) else past
        if len(past):
            full.loc[past.index] = past.to_numpy()
        rr = run_rate_draws(full, horizon, draws, run_rate_k, seed)
        outcome = np.array([actual.get(p0 + j, 0.0) for j in range(horizon)])
        scored = [("model", model, outcome), ("weighted_pipeline", wp, outcome)]
        scored.append(("run_rate", rr, outcome))
        if sources:
            new = pd.to_datetime(deals["created_at"]) > end_of_day(o)
            for src, part in (("pipeline", ~new), ("new_business", new)):
                won = actual_won(deals[part], period, calendar)
                out = np.array([won.get(p0 + j, 0.0) for j in range(horizon)])
                scored.append((f"model:{src}", rev.sel(source=src).to_numpy(), out))
        for name, arr, y in scored:
            for j in range(horizon):
                rows.append(
                    {
                        "origin": o.date(),
                        "lead": str(j + 1),
                        "forecaster": name,
                        "period": axis.labels[j],
                        **score(arr[:, j], y[j]),
                    }
                )
            rows.append(
                {
                    "origin": o.date(),
                    "lead": f"1-{horizon}",
                    "forecaster": name,
                    "period": f"{axis.labels[0]}..{axis.labels[-1]}",
                    **score(arr.sum(axis=1), y.sum()),
                }
            )
        if progress:
            m1 = [r for r in rows[-len(scored) * (horizon + 1) :] if r["lead"] == "1"]
            print(o.date(), " ".join(f"{r['forecaster']}={r['crps']:.0f}" for r in m1), flush=True)
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean CRPS, mean absolute median error and interval coverage per lead and forecaster."""
    g = results.assign(abs_median_error=results["median_error"].abs()).groupby(
        ["lead", "forecaster"]
    )
    out = g.agg(
        origins=("crps", "size"),
        crps=("crps", "mean"),
        mae_median=("abs_median_error", "mean"),
        cover50=("hit50", "mean"),
        cover80=("hit80", "mean"),
        cover95=("hit95", "mean"),
    )
    return out.reset_index()


def month_ends(start: object, end: object) -> list[pd.Timestamp]:
    """Month-end days from ``start`` to ``end`` (inclusive)."""
    return list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="ME"))


def recent_backtest(
    store,
    *,
    as_of: object,
    origins: int,
    horizon: int = 3,
    period: str = "M",
    draws: int = 200,
    method: str = "map",
    seed: int = 0,
) -> pd.DataFrame:
    """Backtest from the last month ends whose outcomes are known by ``as_of``, summarised.

    The report and the forecast notebook both call this: the origins are the last
    ``origins`` month ends at least ``horizon`` periods before ``as_of``, so every scored
    period is over by ``as_of``.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    as_of
        The forecast day.
    origins
        Number of month-end origins (each refits the models).
    horizon
        Periods ahead scored.
    period
        ``"M"`` or ``"Q"``.
    draws
        Forecast draws per origin.
    method
        Fit method.
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        :func:`summarise` of the scores (per lead and forecaster), with the forecaster's CRPS
        against the run rate's (:func:`compare`'s Diebold-Mariano interval, the overlap the
        horizon's months, as origins are a month apart):
        ``crps_diff``, ``crps_diff_lo``, ``crps_diff_hi`` (mean paired difference and its 90%
        interval; negative is better) and ``vs_run_rate`` (``"better"``, ``"worse"``, ``"not
        distinguishable"`` or ``"too few origins"``); NaN / None on the run rate's own rows.

    Raises
    ------
    CrmkitError
        When ``origins`` or ``horizon`` is not a whole number of at least 1 (one line).
    """
    for name, value in (("origins", origins), ("horizon", horizon)):
        whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
        if not whole or value < 1:
            raise CrmkitError(
                f"backtest {name} must be a whole number of at least 1, not {value!r}"
            )
    months = int(horizon) * (1 if period == "M" else 3)
    # the last origin whose horizon ends by the last complete month (2026-11-30, 3 months:
    # 2026-08-31)
    last = month_end(last_full_month(as_of) - months)
    first = last - pd.DateOffset(months=int(origins) + 1)
    ends = month_ends(first, last)[-int(origins) :]
    scores = backtest(
        load_frames(store), ends, horizon=int(horizon), period=period, draws=int(draws),
        method=method, seed=int(seed), calendar=_calendar_of(store, None),
    )  # fmt: skip
    # origins are a month apart, so forecasts overlap by the horizon's months (not periods)
    return with_run_rate_verdict(summarise(scores), scores, block=months)


# ---------------------------------------------------------------------- the forecast call
#: The forecasters the call backtest scores, in the order the summaries list them.
CALL_FORECASTERS = ("model", "commit", "best_case", "manager_call", "run_rate")
#: The point forecasters (scored by absolute error and hit).
POINT_FORECASTERS = ("commit", "best_case", "manager_call", "run_rate")
#: The group bys of the call backtest besides the company: the scopes of quotas and calls.
CALL_GROUP_BYS = ("owner", "team")
#: The columns of :func:`call_backtest` (the first six are :func:`call_points`').
CALL_COLUMNS = (
    "origin", "group", "period", "forecaster", "outcome", "point",
    "error", "abs_error", "hit", "crps", "cover80", "cover50",
)  # fmt: skip


def first_period(axis: PeriodAxis, period: str) -> tuple[int, pd.Timestamp, pd.Timestamp]:
    """Index, first day and last instant of the first forecast period of ``axis``."""
    p0 = int(period_index(axis.first_month, period, axis.calendar))
    start, last = axis.bounds[0]
    return p0, pd.Timestamp(start), end_of_day(last)


def call_groups(deals: pd.DataFrame) -> list[str]:
    """``all``, then the ``owner=..`` and ``team=..`` groups of the deals (sorted)."""
    out = ["all"]
    for g in CALL_GROUP_BYS:
        vals = sorted(set(deals[g].dropna().astype(str)) - {"(none)", "", "None"})
        out += [f"{g}={v}" for v in vals]
    return out


def won_by_group(
    deals: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, groups: Sequence[str]
) -> dict[str, float]:
    """Won revenue with ``start <= closed_at <= end`` of each group (``all``, owner, team)."""
    c = pd.to_datetime(deals["closed_at"])
    won = deals[deals["status"].eq("won") & (c >= start) & (c <= end)]
    amount = won["amount"].fillna(0.0).astype(float)
    out = dict.fromkeys(groups, 0.0)
    out["all"] = float(amount.sum())
    for g in CALL_GROUP_BYS:
        for value, total in amount.groupby(won[g].astype(str)).sum().items():
            if f"{g}={value}" in out:
                out[f"{g}={value}"] = float(total)
    return out


def run_rate_points(
    state: pd.DataFrame,
    p0: int,
    period: str,
    groups: Sequence[str],
    k: int = 3,
    calendar: FiscalCalendar | None = None,
) -> dict[str, float]:
    """Mean won revenue of each group over the last ``k`` complete periods before ``p0``.

    The periods run from the company's first period with won revenue (periods without a
    win count as zero); a group without any counts zero.
    """
    won = state[state["status"].eq("won") & state["closed_at"].notna()]
    m = month_index(won["closed_at"])
    key = pd.Series(period_index(m, period, calendar), index=won.index)
    past = won[key < p0]
    key = key[key < p0]
    if past.empty:
        return dict.fromkeys(groups, 0.0)
    periods = np.arange(max(int(key.min()), p0 - int(k)), p0)
    amount = past["amount"].fillna(0.0).astype(float)

    def mean_of(mask: pd.Series) -> float:
        per = amount[mask].groupby(key[mask]).sum()
        return float(per.reindex(periods, fill_value=0.0).mean())

    out = {}
    for g in groups:
        if g == "all":
            out[g] = mean_of(pd.Series(True, index=past.index))
        else:
            by, value = g.split("=", 1)
            out[g] = mean_of(past[by].astype(str).eq(value))
    return out


def _call_points_at(
    deals: pd.DataFrame,
    index: HistoryIndex,
    calls: pd.DataFrame | None,
    origin: pd.Timestamp,
    axis: PeriodAxis,
    period: str,
    run_rate_k: int,
) -> pd.DataFrame:
    """The point forecasts and the outcome of the first period of ``axis`` (see call_points)."""
    p0, start, end = first_period(axis, period)
    label = axis.labels[0]
    state = deals_as_of(deals, index, origin)
    groups = call_groups(state)
    outcome = won_by_group(deals, start, end, groups)
    # the state already holds the day's categories: no history to apply again
    roll = category_rollups(state, as_of=origin, axis=axis, groups=groups)
    roll = roll[roll["period"].astype(str) == label].set_index("group")
    points: dict[str, dict[str, float]] = {
        "commit": roll["commit"].astype(float).to_dict(),
        "best_case": roll["best_case"].astype(float).to_dict(),
        "run_rate": run_rate_points(state, p0, period, groups, run_rate_k, axis.calendar),
        "manager_call": {},
    }
    if calls is not None and len(calls):
        for r in calls_as_of(calls, end_of_day(origin)).itertuples(index=False):
            if (
                r.period == period
                and period_label(r.period, r.period_start, axis.calendar) == label
            ):
                points["manager_call"][group_of(r.scope, r.name)] = float(r.amount)
    rows = []
    for g in groups:
        for name in POINT_FORECASTERS:
            if g in points[name]:
                rows.append(
                    {
                        "origin": origin.date(),
                        "group": g,
                        "period": label,
                        "forecaster": name,
                        "outcome": outcome[g],
                        "point": points[name][g],
                    }
                )
    return pd.DataFrame(rows, columns=list(CALL_COLUMNS[:6]))


def _frames_of(store_or_frames) -> dict[str, pd.DataFrame]:
    """The frames of a store (the forecast's and ``forecast_calls``), or the frames given."""
    if isinstance(store_or_frames, dict):
        return store_or_frames
    return {
        **load_frames(store_or_frames),
        "forecast_calls": store_or_frames.read("forecast_calls"),
    }


def call_points(
    store_or_frames,
    origins: Sequence[object],
    *,
    period: str = "M",
    run_rate_k: int = 3,
    calendar: FiscalCalendar | None = None,
) -> pd.DataFrame:
    """The sales team's numbers for the next period as they stood at each origin, and outcomes.

    No model is fitted: this is the part of :func:`call_backtest` rebuilt from the history.

    Parameters
    ----------
    store_or_frames
        A :class:`crmkit.Store`, or frames ``deals``, ``deal_history`` (and optionally
        ``accounts`` and ``forecast_calls``) as the store gives them.
    origins
        Cut-off days (usually month ends); the whole day counts.
    period
        ``"M"`` or ``"Q"``: the period forecast is the first after each origin (the one
        holding it unless the origin is its last day).
    run_rate_k
        Complete periods averaged by the run rate.
    calendar
        The fiscal calendar; None: the store's (calendar months for frames).

    Returns
    -------
    pandas.DataFrame
        One row per origin, group (``all``, ``owner=..``, ``team=..`` of the deals existing
        at the origin) and point forecaster: ``origin``, ``group``, ``period`` (label),
        ``forecaster`` (``commit``, ``best_case``: the categories' roll-ups of the deals as
        they stood, :func:`crmkit.forecast.call.category_rollups`; ``manager_call``: the
        latest call made by the origin for that group and period, only where there is
        one; ``run_rate``), ``outcome`` (won revenue of the group in the period, final
        deals), ``point`` and the scores of :func:`score_call` (``error``, ``abs_error``,
        ``hit``; ``crps``, ``cover80`` and ``cover50`` are NaN).
    """
    calendar = _calendar_of(store_or_frames, calendar)
    frames = _frames_of(store_or_frames)
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    index = HistoryIndex(deals, frames.get("deal_history"))
    out = []
    for origin in origins:
        o = pd.Timestamp(origin)
        axis = period_axis(o, 1, period, calendar)
        out.append(
            _call_points_at(deals, index, frames.get("forecast_calls"), o, axis, period, run_rate_k)
        )
    rows = [
        {**r, **score_call(r["outcome"], r["point"])}
        for part in out
        for r in part.to_dict("records")
    ]
    return pd.DataFrame(rows, columns=list(CALL_COLUMNS))


def score_call(outcome: float, point: float, samples: np.ndarray | None = None) -> dict[str, float]:
    """Scores of one forecast of one group and period.

    Parameters
    ----------
    outcome
        The revenue won.
    point
        The forecaster's number (the P50 for the model).
    samples
        The model's draws (closed to date plus forecast), or None for a point forecaster.

    Returns
    -------
    dict
        ``error`` (point - outcome), ``abs_error``, ``hit`` (1.0 when the number was
        reached: outcome >= point), and from ``samples`` ``crps``, ``cover80`` and
        ``cover50`` (1.0 when the outcome is inside the central 80% / 50% interval; NaN
        without samples).
    """
    out = {
        "error": float(point - outcome),
        "abs_error": float(abs(point - outcome)),
        "hit": float(outcome >= point),
        "crps": np.nan,
        "cover80": np.nan,
        "cover50": np.nan,
    }
    if samples is not None:
        s = score(samples, outcome)
        out.update(crps=s["crps"], cover80=s["hit80"], cover50=s["hit50"])
    return out


def call_backtest(
    store_or_frames,
    origins: Sequence[object],
    *,
    period: str = "M",
    draws: int = 500,
    method: str = "map",
    seed: int = 0,
    run_rate_k: int = 3,
    window_months: int = 24,
    progress: bool = False,
    calendar: FiscalCalendar | None = None,
) -> pd.DataFrame:
    """Whose forecast to trust: the model against the categories, the manager and the run rate.

    At each origin the models are refitted on what was known then and the next period's
    won deal revenue (pipeline and new business; closed to date included when the origin
    is inside the period) is drawn per group; the point forecasts are rebuilt as they
    stood (:func:`call_points`). All are scored against the same outcome.

    Parameters
    ----------
    store_or_frames
        A :class:`crmkit.Store`, or frames ``deals``, ``deal_history``, ``accounts``,
        ``stages`` and optionally ``forecast_calls`` as the store gives them.
    origins
        Cut-off days (usually month ends).
    period
        ``"M"`` or ``"Q"``.
    draws
        Forecast draws per origin.
    method
        Fit method of the models: MAP by default, since every origin refits them (``"auto"``
        is taken as ``"map"`` here; ask ``"nuts"`` to sample each origin).
    seed
        Random seed.
    run_rate_k
        Complete periods averaged by the run rate.
    window_months
        Training window of the models.
    progress
        Print one line per origin.
    calendar
        The fiscal calendar; None: the store's (calendar months for frames).

    Returns
    -------
    pandas.DataFrame
        One row per origin, group, period and forecaster (:data:`CALL_FORECASTERS`;
        ``manager_call`` only where a call had been made): ``outcome``, ``point`` (the P50
        for the model), ``error`` (point - outcome), ``abs_error``, ``hit`` (the number was
        reached: outcome >= point; a calibrated P50 is reached half the time, a commit
        should be most of the time), and for the model ``crps``, ``cover80`` and
        ``cover50`` (NaN for the point forecasters).
    """
    method = "map" if method == "auto" else method  # many refits: MAP unless NUTS is asked
    calendar = _calendar_of(store_or_frames, calendar)
    frames = _frames_of(store_or_frames)
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    index = HistoryIndex(deals, frames.get("deal_history"))
    rows: list[dict[str, Any]] = []
    for origin in origins:
        o = pd.Timestamp(origin)
        models = fit_models(
            {**frames, "deals": deals}, as_of=o, method=method, seed=seed,
            window_months=window_months,
        )  # fmt: skip
        res = forecast_draws(
            models, frames, as_of=o, horizon=1, period=period, draws=draws, seed=seed,
            include_repeat=False, calendar=calendar,
        )  # fmt: skip
        axis = res["axis"]
        label = axis.labels[0]
        pts = _call_points_at(
            deals, index, frames.get("forecast_calls"), o, axis, period, run_rate_k
        )
        rev = res["revenue"].sel(period=label)
        fc = deal_revenue(rev)
        closed = res["closed_to_date"].sel(period=label)
        known = set(fc["group"].to_numpy().tolist())
        outcome = pts.groupby("group")["outcome"].first()
        for g, y in outcome.items():
            if g not in known:
                continue
            samples = fc.sel(group=g).to_numpy() + float(closed.sel(group=g))
            p50 = float(np.median(samples))
            rows.append(
                {"origin": o.date(), "group": g, "period": label, "forecaster": "model",
                 "outcome": float(y), "point": p50, **score_call(float(y), p50, samples)}
            )  # fmt: skip
        for r in pts.to_dict("records"):
            rows.append({**r, **score_call(r["outcome"], r["point"])})
        if progress:
            head = [r for r in rows if r["origin"] == o.date() and r["group"] == "all"]
            print(o.date(), " ".join(f"{r['forecaster']}={r['abs_error']:.0f}" for r in head))
    out = pd.DataFrame(rows, columns=list(CALL_COLUMNS))
    order = {f: i for i, f in enumerate(CALL_FORECASTERS)}
    out = out.sort_values(
        ["origin", "group", "forecaster"],
        key=lambda c: c.map(order) if c.name == "forecaster" else c,
        kind="stable",
    )
    return out.reset_index(drop=True)


def summarise_calls(results: pd.DataFrame, *, by_group: bool = False) -> pd.DataFrame:
    """Mean scores of each forecaster of a :func:`call_backtest`.

    Parameters
    ----------
    results
        :func:`call_backtest` rows.
    by_group
        False: one row per forecaster over all its rows. True: one row per group and
        forecaster, on the manager calls' own origins, groups and periods only (every
        forecaster scored on the same outcomes as the manager; groups without a call are
        left out).

    Returns
    -------
    pandas.DataFrame
        ``forecaster`` (and ``group`` first when ``by_group``), ``n`` (forecasts scored),
        ``mae`` (mean absolute error of the point; the P50 for the model), ``bias`` (mean
        point - outcome: above zero is optimistic), ``hit_rate`` (share of points reached),
        ``crps``, ``cover80`` and ``cover50`` (the model's; NaN for point forecasters),
        forecasters in :data:`CALL_FORECASTERS` order.
    """
    df = results
    keys = ["forecaster"]
    if by_group:
        calls = df.loc[df["forecaster"].eq("manager_call"), ["origin", "group", "period"]]
        df = df.merge(calls.drop_duplicates(), on=["origin", "group", "period"])
        keys = ["group", "forecaster"]
    out = df.groupby(keys, sort=False).agg(
        n=("abs_error", "size"),
        mae=("abs_error", "mean"),
        bias=("error", "mean"),
        hit_rate=("hit", "mean"),
        crps=("crps", "mean"),
        cover80=("cover80", "mean"),
        cover50=("cover50", "mean"),
    )
    out = out.reset_index()
    order = {f: i for i, f in enumerate(CALL_FORECASTERS)}
    out["_o"] = out["forecaster"].map(order).fillna(len(order))
    out = out.sort_values([*keys[:-1], "_o"], kind="stable").drop(columns="_o")
    return out.reset_index(drop=True)


def recent_call_backtest(
    store,
    *,
    as_of: object,
    origins: int,
    period: str = "M",
    day: int | None = None,
    draws: int = 200,
    method: str = "map",
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`call_backtest` from the last days whose period's outcome is known by ``as_of``.

    Parameters
    ----------
    store
        A :class:`crmkit.Store` (or frames as :func:`call_backtest` takes them).
    as_of
        The forecast day.
    origins
        Number of origins, one a month (each refits the models).
    period
        ``"M"`` or ``"Q"``.
    day
        Day of the month of the origins (the period scored is then the one holding it,
        with what was won by then); None: month ends (the next period is scored). Managers
        call a period during it, so in-period origins (``day=20``) score their calls.
    draws
        Forecast draws per origin.
    method
        Fit method.
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        The :func:`call_backtest` rows (summarise them with :func:`summarise_calls`).
    """
    return call_backtest(
        store, call_origins(as_of, origins, period=period, day=day), period=period,
        draws=int(draws), method=method, seed=int(seed),
    )  # fmt: skip


def call_origins(
    as_of: object, origins: int, *, period: str = "M", day: int | None = None
) -> list[pd.Timestamp]:
    """The last ``origins`` days, one a month, whose scored period is over by ``as_of``.

    Month ends when ``day`` is None, else that day of each month (the month's last day when
    shorter), at least one period (a month, or three for quarters) before ``as_of``.
    """
    months = 1 if period == "M" else 3
    last = pd.Timestamp(as_of).normalize() - pd.DateOffset(months=months)
    first = last - pd.DateOffset(months=int(origins) + 2)
    if day is None:
        days = month_ends(first, last)
    else:
        ends = month_ends(first, last + pd.offsets.MonthEnd(0))
        days = [d.replace(day=min(int(day), d.day)) for d in ends]
        days = [d for d in days if d <= last]
    return days[-int(origins) :]


__all__ = [
    "CALL_FORECASTERS",
    "backtest",
    "call_backtest",
    "call_origins",
    "call_points",
    "crps_samples",
    "month_ends",
    "period_axis",
    "recent_backtest",
    "recent_call_backtest",
    "run_rate_draws",
    "run_rate_points",
    "score",
    "score_call",
    "summarise",
    "summarise_calls",
    "weighted_pipeline_draws",
]
