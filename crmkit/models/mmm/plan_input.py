"""A spend plan as the revenue forecast takes it: weeks, validation, campaigns, extra arrivals.

The single place marketing enters the revenue forecast (``docs/marketing.md``): a plan --
long rows ``channel, week_start, spend`` like the store's ``channel_spend`` table, or wide
(a ``date`` column and one per channel), or made from the store's campaigns -- replaces the
baseline spend in the weeks and channels it names (:func:`horizon_plans`), and
:func:`extra_arrivals_by_month` turns the plan-minus-baseline outcome into extra new deals
per forecast month, draw by draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.models.mmm.model import MarketingMixModel
from crmkit.models.mmm.scenario import baseline_plan, predict_plan

PLAN_LONG_COLUMNS = ("channel", "week_start", "spend")


def horizon_weeks(mmm: MarketingMixModel, end: object) -> pd.DatetimeIndex:
    """Weeks of the model's calendar from the one after the fitted data up to ``end``."""
    mmm.check_fitted()
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
    mmm.check_fitted()
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


__all__ = [
    "PLAN_LONG_COLUMNS",
    "extra_arrivals_by_month",
    "horizon_plans",
    "horizon_weeks",
    "plan_from_campaigns",
    "plan_overrides",
]
