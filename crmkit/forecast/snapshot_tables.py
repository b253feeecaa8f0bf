"""Extra tables a forecast snapshot carries for the manager app and the report.

A snapshot stores small tables as records in ``parameters["tables"]`` (see the contract in
:mod:`crmkit.forecast.snapshot`, ``docs/architecture.md``). This module computes three of them
from the store's tables and the forecast's open deals, as of the forecast's day:

* ``pipeline_by_stage``: open deals by pipeline, stage, team, owner and segment, with
  their amount and expected revenue at the learned win rate of their stage;
* ``campaign_roi``: each campaign's cost, deals and projected revenue and ROI with their
  P10 / P50 / P90 (from :func:`crmkit.models.mmm.campaigns.campaign_results`);
* ``actuals``: revenue of past periods by source (won deals, repeat orders and their
  total), for the whole company and for each team, owner and segment, which the fan
  chart draws before the forecast. It is the one table of past revenue: the forecast's
  sources compare with it (``total`` with ``total``, ``repeat`` with ``repeat``; won
  deals are what ``pipeline`` and ``new_business`` become).

:func:`extra_tables` computes all three in one call. Nothing here samples a model.

A report that refits with a backtest also stores its summary as the ``backtest`` table,
the run-rate verdict's columns included: :func:`backtest_records` writes it,
:func:`backtest_frame` reads it back (a table saved before the verdict was stored simply
lacks its columns).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import snapshot_calendar
from crmkit.store.fiscal import FiscalCalendar

#: Label of a missing team, owner or segment.
NONE = "(none)"
#: Group dimensions of the tables, as in the snapshot's roll-up.
DIMENSIONS = ("team", "owner", "segment")


def _label(values: pd.Series) -> pd.Series:
    """Text labels with missing values as :data:`NONE`."""
    return values.astype(object).where(values.notna(), NONE).astype(str)


def pipeline_by_stage(
    open_deals: pd.DataFrame, stage_probabilities: pd.DataFrame | list[dict]
) -> list[dict]:
    """Open deals by stage and owner, with the expected revenue at the learned win rates.

    Parameters
    ----------
    open_deals
        The deals open on the forecast's day: ``stage``, ``amount``, ``owner``, ``team`` and,
        if known, ``segment`` and ``pipeline`` (a forecast's ``result["deals"]``).
    stage_probabilities
        Win rates by stage: ``stage``, ``learned_mean`` and optionally ``pipeline`` (the
        snapshot's ``stage_probabilities`` table). Its row order is the stages' order.

    Returns
    -------
    list of dict
        One record per (pipeline, stage, team, owner, segment) with open deals:
        ``pipeline``, ``stage``, ``stage_order``, ``team``, ``owner``, ``segment``,
        ``n_deals``, ``amount`` (open amount) and ``expected`` (amount times the stage's
        learned win rate; NaN for a stage without one).

    """
    need = {"stage", "amount", "owner"} - set(open_deals.columns)
    if need:
        raise CrmkitError(f"open deals lack column(s) {sorted(need)}")
    rates = pd.DataFrame(stage_probabilities)
    if len(rates) and not {"stage", "learned_mean"} <= set(rates.columns):
        raise CrmkitError("stage_probabilities needs the columns stage and learned_mean")
    cols = ["pipeline", "stage", "stage_order", *DIMENSIONS, "n_deals", "amount", "expected"]
    if open_deals.empty:
        return []
    d = pd.DataFrame(
        {
            "stage": open_deals["stage"].astype(str).to_numpy(),
            "amount": pd.to_numeric(open_deals["amount"], errors="coerce").fillna(0.0).to_numpy(),
        }
    )
    for c in DIMENSIONS:
        d[c] = _label(open_deals[c]).to_numpy() if c in open_deals else NONE
    stages = rates["stage"].astype(str).tolist() if len(rates) else []
    order = {s: i for i, s in enumerate(stages)}
    rate = dict(zip(stages, rates["learned_mean"].astype(float), strict=True)) if stages else {}
    pipes = (
        dict(zip(stages, rates["pipeline"].astype(str), strict=True)) if "pipeline" in rates else {}
    )
    if "pipeline" in open_deals:
        d["pipeline"] = _label(open_deals["pipeline"]).to_numpy()
    else:
        d["pipeline"] = d["stage"].map(pipes).fillna("default")
    d["stage_order"] = d["stage"].map(order).fillna(len(order)).astype(int)
    d["expected"] = d["amount"] * d["stage"].map(rate).astype(float)
    keys = ["pipeline", "stage", "stage_order", *DIMENSIONS]
    out = (
        d.groupby(keys, sort=True)
        .agg(
            n_deals=("amount", "size"),
            amount=("amount", "sum"),
            expected=("expected", lambda s: s.sum(min_count=1)),
        )
        .reset_index()
        .sort_values(["pipeline", "stage_order", "team", "owner", "segment"], kind="stable")
    )
    return _records(out[cols])


def _records(df: pd.DataFrame) -> list[dict]:
    """JSON-ready records: Python scalars, NaN as None."""
    out = df.astype(object).where(df.notna(), None)
    recs = out.to_dict("records")
    for r in recs:
        for k, v in r.items():
            if isinstance(v, np.generic):
                r[k] = v.item()
    return recs


#: The float columns of a stored ``backtest`` table (``origins`` is a count, the rest text).
BACKTEST_NUMBERS = (
    "crps", "mae_median", "cover50", "cover80", "cover95",
    "crps_diff", "crps_diff_lo", "crps_diff_hi",
)  # fmt: skip


def backtest_records(summary: pd.DataFrame) -> list[dict]:
    """A backtest's summary as the snapshot's ``backtest`` table, verdict columns included.

    Parameters
    ----------
    summary
        :func:`crmkit.forecast.backtest.recent_backtest` rows (one per lead and forecaster),
        with the run-rate comparison's :data:`crmkit.forecast.skill.VERDICT_COLUMNS`
        (``crps_diff``, ``crps_diff_lo``, ``crps_diff_hi``, ``vs_run_rate``) when it has them.

    Returns
    -------
    list of dict
        JSON-ready records of every column (NaN as None), for
        ``snap.parameters["tables"]["backtest"]``; :func:`backtest_frame` reads them back.
    """
    return _records(summary.reset_index(drop=True))


def backtest_frame(records: list[dict] | None) -> pd.DataFrame | None:
    """Read a snapshot's ``backtest`` records back as :func:`backtest_records` got them.

    Parameters
    ----------
    records
        The snapshot's ``parameters["tables"]["backtest"]`` (any version: a table saved
        before the verdict columns were stored simply lacks them).

    Returns
    -------
    pandas.DataFrame or None
        The table with :data:`BACKTEST_NUMBERS` as floats (None read back as NaN),
        ``origins`` as whole numbers and ``vs_run_rate`` and ``vs_run_rate_how`` as text or
        None; None when there are no records.
    """
    if not records:
        return None
    df = pd.DataFrame(records)
    for c in BACKTEST_NUMBERS:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    if "origins" in df.columns:
        df["origins"] = pd.to_numeric(df["origins"], errors="coerce").round().astype("Int64")
    for c in ("vs_run_rate", "vs_run_rate_how"):
        if c in df.columns:
            v = df[c].astype(object)
            df[c] = v.where(v.map(lambda x: isinstance(x, str) and x != ""), None)
    return df


def _as_of_state(deals: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Deals created by ``as_of``, those closed later counted as still open."""
    d = deals
    if "created_at" in d:
        d = d[pd.to_datetime(d["created_at"]) <= as_of]
    if "closed_at" in d:
        later = pd.to_datetime(d["closed_at"]) > as_of
        if later.any():
            d = d.copy()
            d.loc[later, "status"] = "open"
            d.loc[later, "closed_at"] = None
    return d


def campaign_roi(
    campaigns: pd.DataFrame,
    deals: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    *,
    as_of: object = None,
    n_draws: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """Campaign cost, deals and projected revenue and ROI with P10 / P50 / P90.

    Parameters
    ----------
    campaigns, deals, orders
        The store's tables (see :func:`crmkit.models.mmm.campaigns.campaign_results`).
    as_of
        Only what was known that day: deals created by then (those closed later count as
        open) and orders placed by then. None: everything.
    n_draws, seed
        Draws of the partially pooled win rates and revenue per deal.

    Returns
    -------
    list of dict
        One record per campaign: ``campaign_id``, ``name``, ``channel``, ``cost``,
        ``deals``, ``open``, ``won``, ``won_revenue``, ``win_rate``, ``revenue_p10``,
        ``revenue_p50``, ``revenue_p90`` (won revenue plus the open deals' expected value)
        and ``roi_p10``, ``roi_p50``, ``roi_p90`` (revenue over cost minus one; None
        without a cost). Empty without campaigns.

    """
    from crmkit.models.mmm.campaigns import campaign_results

    if campaigns is None or campaigns.empty:
        return []
    if as_of is not None:
        t = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        deals = _as_of_state(deals, t)
        if orders is not None and "ordered_at" in orders:
            orders = orders[pd.to_datetime(orders["ordered_at"]) <= t]
    res, draws = campaign_results(
        campaigns, deals, orders, n_draws=n_draws, seed=seed, return_draws=True
    )
    out = res.reindex(
        columns=["campaign_id", "name", "channel", "cost", "deals", "open", "won",
                 "won_revenue", "win_rate"]
    ).copy()  # fmt: skip
    for name, key in (("revenue", "projected_revenue"), ("roi", "roi")):
        arr = np.asarray(draws[key], dtype=float)
        ok = np.isfinite(arr).all(axis=1)
        safe = np.where(ok[:, None], arr, 0.0)
        for q in (10, 50, 90):
            out[f"{name}_p{q}"] = np.where(ok, np.quantile(safe, q / 100, axis=1), np.nan)
    return _records(out)


def _period_label(ts: pd.Series, period: str, calendar: FiscalCalendar | None = None) -> pd.Series:
    """Period labels of timestamps: ``2026-11`` (months) or ``2026-Q4`` (quarters).

    A fiscal ``calendar`` other than the default labels its own periods (``"FY27 Q1"``).
    """
    if calendar is not None and not calendar.is_default and period in ("M", "Q"):
        return calendar.labels(period, ts).set_axis(ts.index)
    t = pd.to_datetime(ts)
    if period == "M":
        return t.dt.strftime("%Y-%m")
    if period == "Q":
        return t.dt.year.astype(str) + "-Q" + t.dt.quarter.astype(str)
    raise CrmkitError(f"period must be 'M' or 'Q', not {period!r}")


def actuals(
    deals: pd.DataFrame,
    orders: pd.DataFrame | None,
    accounts: pd.DataFrame | None = None,
    *,
    as_of: object,
    period: str = "M",
    n_back: int = 12,
    calendar: FiscalCalendar | None = None,
) -> list[dict]:
    """Revenue of past periods by source, for the company and each team, owner and segment.

    Won deals count in the period of their ``closed_at``; repeat revenue is the orders not
    linked to a deal (as in the repeat-customer forecast), in the period of their
    ``ordered_at``. Orders are given the team, owner and segment of their account (the
    account's ``owner``, that owner's most frequent team on deals, and its ``segment``).

    Parameters
    ----------
    deals
        The store's deals (``status``, ``closed_at``, ``amount``, ``owner``, ``team``,
        ``account_id``).
    orders
        The store's orders, or None.
    accounts
        The store's accounts (``account_id``, ``owner``, ``segment``), or None.
    as_of
        The forecast's day: nothing later counts.
    period
        ``"M"`` or ``"Q"``.
    n_back
        Periods kept, up to and including the one holding ``as_of``.
    calendar
        The forecast's fiscal calendar (its periods and labels); None: calendar months and
        quarters.

    Returns
    -------
    list of dict
        Records ``group`` (``"all"``, ``"team=north"``, ``"owner=ann"``, ``"segment=SMB"``),
        ``period``, ``source`` (``"deals"``, ``"repeat"``, ``"total"``) and ``amount``; every
        group has a row per source and period (0 where nothing happened).

    """
    t = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    acc = accounts if accounts is not None else pd.DataFrame(columns=["account_id"])
    seg_of = acc.set_index("account_id")["segment"] if "segment" in acc else pd.Series(dtype=object)
    won = deals[deals["status"].eq("won") & deals["closed_at"].notna()]
    won = won[pd.to_datetime(won["closed_at"]) <= t]
    parts = [
        pd.DataFrame(
            {
                "period": _period_label(won["closed_at"], period, calendar).to_numpy(),
                "source": "deals",
                "amount": pd.to_numeric(won["amount"], errors="coerce").fillna(0.0).to_numpy(),
                "team": _label(won["team"]).to_numpy() if "team" in won else NONE,
                "owner": _label(won["owner"]).to_numpy(),
                "segment": _label(
                    won["segment"] if "segment" in won else won["account_id"].map(seg_of)
                ).to_numpy(),
            }
        )
    ]
    if orders is not None and len(orders):
        o = orders[orders["deal_id"].isna()] if "deal_id" in orders else orders
        o = o[pd.to_datetime(o["ordered_at"]) <= t]
        owner_of = acc.set_index("account_id")["owner"] if "owner" in acc else pd.Series()
        known = deals[deals["team"].notna()] if "team" in deals else deals.iloc[0:0]
        team_of = known.groupby("owner")["team"].agg(lambda s: s.mode().iloc[0])
        # summed per account and period before the account's owner, team and segment are
        # looked up: 10M orders are far fewer (account, period) sums; labels per distinct day
        codes, days = pd.factorize(pd.to_datetime(o["ordered_at"]).dt.normalize())
        per = (
            pd.DataFrame(
                {
                    "account_id": o["account_id"].to_numpy(),
                    "period": _period_label(pd.Series(days), period, calendar).to_numpy()[codes],
                    "amount": pd.to_numeric(o["amount"], errors="coerce").fillna(0.0).to_numpy(),
                }
            )
            .groupby(["account_id", "period"], sort=False, dropna=False)["amount"]
            .sum()
            .reset_index()
        )
        owner = per["account_id"].map(owner_of)
        parts.append(
            pd.DataFrame(
                {
                    "period": per["period"].to_numpy(),
                    "source": "repeat",
                    "amount": per["amount"].to_numpy(),
                    "team": _label(owner.map(team_of)).to_numpy(),
                    "owner": _label(owner).to_numpy(),
                    "segment": _label(per["account_id"].map(seg_of)).to_numpy(),
                }
            )
        )
    rev = pd.concat(parts, ignore_index=True)
    last = _period_label(pd.Series([t]), period, calendar).iloc[0]
    periods = sorted(p for p in rev["period"].unique() if p <= last)[-n_back:]
    if not periods:
        return []
    rev = rev[rev["period"].isin(periods)]
    frames = [rev.assign(group="all")]
    for dim in DIMENSIONS:
        frames.append(rev.assign(group=dim + "=" + rev[dim]))
    long = pd.concat(frames, ignore_index=True)
    sums = long.groupby(["group", "period", "source"])["amount"].sum()
    groups = ["all", *sorted(g for g in long["group"].unique() if g != "all")]
    full = sums.reindex(
        pd.MultiIndex.from_product([groups, periods, ["deals", "repeat"]]), fill_value=0.0
    ).unstack()
    full = full.reindex(columns=["deals", "repeat"], fill_value=0.0)
    full["total"] = full["deals"] + full["repeat"]
    out = full.stack().rename("amount").reset_index()
    out.columns = ["group", "period", "source", "amount"]
    return _records(out)


def extra_tables(
    snap,
    frames: Mapping[str, pd.DataFrame],
    *,
    open_deals: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
) -> dict[str, list[dict]]:
    """The extra tables of a forecast snapshot, ready for ``snap.parameters["tables"]``.

    Parameters
    ----------
    snap
        The forecast's :class:`~crmkit.store.Snapshot` (its ``as_of``, ``period`` and
        ``stage_probabilities`` table are used).
    frames
        The store's tables the forecast read: ``deals`` and, if present, ``orders`` and
        ``accounts``.
    open_deals
        The deals open on the forecast's day (the forecast's ``result["deals"]``).
    campaigns
        The store's campaigns; None or empty: no ``campaign_roi`` table.

    Returns
    -------
    dict
        ``{"pipeline_by_stage": [...], "actuals": [...]}`` and ``"campaign_roi"`` when
        there are campaigns.

    """
    tables = snap.parameters.get("tables", {})
    deals, orders = frames["deals"], frames.get("orders")
    out = {
        "pipeline_by_stage": pipeline_by_stage(open_deals, tables.get("stage_probabilities") or []),
        "actuals": actuals(
            deals,
            orders,
            frames.get("accounts"),
            as_of=snap.as_of,
            period=snap.period,
            calendar=snapshot_calendar(snap.parameters),
        ),
    }
    if campaigns is not None and len(campaigns):
        out["campaign_roi"] = campaign_roi(
            campaigns, deals, orders, as_of=snap.as_of, seed=int(snap.parameters.get("seed", 0))
        )
    return out
