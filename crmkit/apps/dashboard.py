"""What the manager app and the report show, computed from a saved forecast snapshot.

Plain functions: a :class:`~crmkit.store.Snapshot` (and a :class:`Filter`) in, a DataFrame
out. Nothing here samples or imports the modelling stack, so a page that calls these
functions opens in about a second.

How the snapshot is read (the contract is in :mod:`crmkit.forecast.snapshot` and
``docs/architecture.md``): the labelled draws ``snap.revenue`` (sample, period, source, group),
selected by name, and the quantiles describe revenue still to come after the as-of day;
``closed_to_date`` is revenue already won in a period. A period's revenue is therefore
``closed_to_date + forecast``, and every range shown adds the closed amount to the
forecast's quantiles.

The sections' HTML is in :mod:`crmkit.apps.section_html`, the forecast call and quota
attainment in :mod:`crmkit.apps.call_views`, and what changed between two forecasts in
:mod:`crmkit.apps.changes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError, NotFoundError
from crmkit.forecast.axes import SOURCES
from crmkit.forecast.snapshot_tables import backtest_frame
from crmkit.plots.format import format_amount
from crmkit.store import Snapshot, Store

#: The dimensions a view can be filtered by.
FILTER_DIMENSIONS = ("team", "owner", "segment")
_BAND = {"p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9}


@dataclass(frozen=True)
class Filter:
    """Which part of the company to show: one team, one owner, one segment, or all.

    A snapshot rolls its draws up along one dimension at a time, so at most one of the
    fields may be set.

    Parameters
    ----------
    team, owner, segment
        The value to keep, or None for all.

    """

    team: str | None = None
    owner: str | None = None
    segment: str | None = None

    def __post_init__(self) -> None:
        set_ = [d for d in FILTER_DIMENSIONS if getattr(self, d) not in (None, "")]
        if len(set_) > 1:
            raise CrmkitError(
                f"filter by one of team, owner or segment at a time, got {', '.join(set_)}"
            )

    @property
    def dimension(self) -> str:
        """``"all"``, ``"team"``, ``"owner"`` or ``"segment"``."""
        for d in FILTER_DIMENSIONS:
            if getattr(self, d) not in (None, ""):
                return d
        return "all"

    @property
    def value(self) -> str:
        """The kept value (``"all"`` when nothing is filtered)."""
        d = self.dimension
        return "all" if d == "all" else str(getattr(self, d))

    @property
    def group(self) -> str:
        """The snapshot's group label: ``"all"``, ``"team=north"``, ..."""
        d = self.dimension
        return "all" if d == "all" else f"{d}={self.value}"

    @classmethod
    def from_mapping(cls, filters: dict | None) -> Filter:
        """Build a filter from ``{"team": "north"}`` (empty values and ``"All"`` mean all)."""
        filters = dict(filters or {})
        unknown = set(filters) - set(FILTER_DIMENSIONS)
        if unknown:
            raise CrmkitError(f"unknown filter {sorted(unknown)}; use team, owner or segment")
        clean = {k: v for k, v in filters.items() if v not in (None, "", "All", "all")}
        return cls(**clean)


def latest_snapshot(store: Store, snapshot_id: int | None = None) -> Snapshot | None:
    """Return the newest saved snapshot (or the one asked for), or None if there is none.

    Parameters
    ----------
    store
        The database.
    snapshot_id
        A particular snapshot; None for the newest.

    Returns
    -------
    Snapshot or None

    """
    try:
        return store.load_snapshot(snapshot_id)
    except NotFoundError:
        if snapshot_id is not None:
            raise
        return None


def no_snapshot_message(store_url: str) -> str:
    """Explain that there is no forecast yet and how to make one.

    Parameters
    ----------
    store_url
        The database the app reads (shown in the message).

    Returns
    -------
    str

    """
    return (
        f"No forecast yet: the database {store_url} holds no forecast snapshot. "
        "Make one with `crmkit report --as-of YYYY-MM-DD --horizon 6` (it fits the models, "
        "saves a snapshot and writes the report), or in a notebook with "
        "`crmkit.forecast.engine.run_forecast(store, as_of=..., horizon=...)`; "
        "then reload this page."
    )


#: Longest name a viewer may give for the deal history.
MAX_VIEWER_NAME = 60


def viewer_name(text: object) -> str:
    """Check the name a viewer gives before editing; it is recorded as ``changed_by``.

    Parameters
    ----------
    text
        What the viewer typed (or ``crmkit app --user``).

    Returns
    -------
    str
        The name, trimmed, inner white space collapsed.

    Raises
    ------
    CrmkitError
        If it is empty, longer than :data:`MAX_VIEWER_NAME` characters or holds control
        characters.

    """
    name = " ".join(str(text if text is not None else "").split())
    if not name:
        raise CrmkitError("type your name before editing: every change is recorded under it")
    if len(name) > MAX_VIEWER_NAME:
        raise CrmkitError(
            f"a name has at most {MAX_VIEWER_NAME} characters, got {len(name)} ({name[:20]!r}...)"
        )
    if any(not ch.isprintable() for ch in name):
        raise CrmkitError(f"a name cannot hold control characters, got {name[:40]!r}")
    return name


def _quantile_rows(snap: Snapshot, flt: Filter) -> pd.DataFrame:
    """Return the quantile table's rows of one group."""
    q = snap.quantiles
    rows = q[(q["group_by"] == flt.dimension) & (q["group"].astype(str) == flt.value)]
    if rows.empty:
        raise NotFoundError(f"the forecast has no figures for {flt.dimension} {flt.value!r}")
    return rows


def filter_options(snap: Snapshot) -> dict[str, list[str]]:
    """List the values each filter can take in this snapshot.

    Parameters
    ----------
    snap
        The snapshot.

    Returns
    -------
    dict
        ``{"team": [...], "owner": [...], "segment": [...]}``, sorted.

    """
    q = snap.quantiles
    return {
        d: sorted(q.loc[q["group_by"] == d, "group"].astype(str).unique().tolist())
        for d in FILTER_DIMENSIONS
    }


def snapshot_currency(snap: Snapshot) -> str | None:
    """Return the currency code of a snapshot's amounts (None for one saved before currencies)."""
    code = (snap.parameters or {}).get("currency")
    return str(code) if code else None


def headline(snap: Snapshot, flt: Filter | None = None) -> pd.DataFrame:
    """Revenue over the whole horizon by source, with its range and the chance of the target.

    Parameters
    ----------
    snap
        The snapshot.
    flt
        The part of the company to show (default: all).

    Returns
    -------
    pandas.DataFrame
        Indexed by source (``pipeline``, ``new_business``, ``repeat``, ``total``), columns
        ``closed_to_date``, ``mean``, ``p10``, ``p50``, ``p90`` (closed plus forecast),
        ``target`` (sum of the period targets, NaN unless every period has one) and
        ``p_target`` (the share of draws reaching it).

    """
    flt = flt or Filter()
    rev = snap.revenue
    if flt.group not in rev.coords["group"].values:
        raise NotFoundError(f"the forecast has no draws for {flt.dimension} {flt.value!r}")
    rows = _quantile_rows(snap, flt)
    rev = rev.sel(group=flt.group)
    out = []
    for s in SOURCES:
        if s not in rev.coords["source"].values:
            continue
        r = rows[rows["source"] == s]
        closed = float(r["closed_to_date"].fillna(0.0).sum())
        sums = rev.sel(source=s).sum("period", skipna=False).to_numpy() + closed
        targets = r["target"].astype(float)
        target = float(targets.sum()) if len(targets) and targets.notna().all() else np.nan
        out.append(
            {
                "source": s,
                "closed_to_date": closed,
                "mean": float(sums.mean()),
                **{k: float(np.quantile(sums, _BAND[k])) for k in ("p10", "p50", "p90")},
                "target": target,
                "p_target": float(np.mean(sums >= target)) if np.isfinite(target) else np.nan,
            }
        )
    return pd.DataFrame(out).set_index("source")


def fan_data(snap: Snapshot, flt: Filter | None = None) -> pd.DataFrame:
    """Return the fan chart's numbers: actual revenue of past periods and the forecast by period.

    Parameters
    ----------
    snap
        The snapshot.
    flt
        The part of the company to show (default: all).

    Returns
    -------
    pandas.DataFrame
        One row per (period, source): ``kind`` (``"actual"`` or ``"forecast"``),
        ``actual`` (past periods; NaN for forecast periods) and ``actual_label``
        (``"actual"``, or ``"won deals"`` when the snapshot records won deals only),
        ``closed_to_date``,
        ``p10`` ... ``p90`` (closed plus forecast), ``target`` and ``p_target``.
        Past actuals are the snapshot's ``actuals`` rows of the filtered group (sources
        ``repeat`` and ``total``; ``deals`` has no panel of its own).

    """
    flt = flt or Filter()
    rows = _quantile_rows(snap, flt).copy()
    closed = rows["closed_to_date"].fillna(0.0).astype(float)
    fc = pd.DataFrame(
        {
            "period": rows["period"].astype(str),
            "source": rows["source"].astype(str),
            "kind": "forecast",
            "actual": np.nan,
            "closed_to_date": closed,
        }
    )
    for k in _BAND:
        fc[k] = rows[k].astype(float) + closed
    fc["target"] = rows["target"].astype(float)
    fc["p_target"] = rows["p_target"].astype(float)
    actuals = pd.DataFrame(snap.parameters.get("tables", {}).get("actuals") or [])
    if not actuals.empty:
        actuals = actuals[actuals["group"].astype(str) == flt.group]
    if not actuals.empty:
        source = actuals["source"].astype(str)
        label = pd.Series("actual", index=actuals.index)
        if "total" not in set(source) and "deals" in set(source):
            # a version-1 snapshot recorded won deal revenue only: draw it on the total panel
            label = label.where(source != "deals", "won deals")
            source = source.replace("deals", "total")
        past = pd.DataFrame(
            {
                "period": actuals["period"].astype(str),
                "source": source,
                "kind": "actual",
                "actual": actuals["amount"].astype(float),
                "actual_label": label,
            }
        )
        past = past[past["source"].isin(SOURCES)]
        past = past[~past["period"].isin(set(fc["period"]))]
        fc = pd.concat([past, fc], ignore_index=True)
    order = {s: i for i, s in enumerate(SOURCES)}
    fc["_s"] = fc["source"].map(order).fillna(len(order))
    fc = fc.sort_values(["_s", "period"], kind="stable").drop(columns="_s")
    return fc.reset_index(drop=True)


def snapshot_table(snap: Snapshot, name: str) -> pd.DataFrame:
    """Return one of the extra tables stored in ``parameters["tables"]``.

    Parameters
    ----------
    snap
        The snapshot.
    name
        The table's name (``"at_risk_deals"``, ``"forecast_call"``, ...).

    Returns
    -------
    pandas.DataFrame
        Its records; empty when the snapshot has no such table.

    """
    return pd.DataFrame(snap.parameters.get("tables", {}).get(name) or [])


def _filter_rows(df: pd.DataFrame, flt: Filter) -> pd.DataFrame:
    """Keep the rows of a deal-level table that match the filter."""
    if flt.dimension == "all" or df.empty:
        return df
    if flt.dimension not in df.columns:
        return df.iloc[0:0]
    return df[df[flt.dimension].astype(str) == flt.value]


def pipeline_by_stage(snap: Snapshot, flt: Filter | None = None) -> pd.DataFrame:
    """Open pipeline by stage, with the configured and the learned win rates.

    Parameters
    ----------
    snap
        The snapshot.
    flt
        The part of the company to show (default: all).

    Returns
    -------
    pandas.DataFrame
        One row per (pipeline, stage): ``configured``, ``learned_mean``, ``learned_p10``,
        ``learned_p90`` and ``n_deals`` and ``amount`` of open deals matching the filter,
        from the snapshot's ``pipeline_by_stage`` table; without one, the whole company's
        open deals (with ``expected`` revenue) come from its per-deal arrays, and a filtered
        view shows the win rates only. Win rates are learned for the whole company.

    """
    flt = flt or Filter()
    rates = snapshot_table(snap, "stage_probabilities")
    by_stage = snapshot_table(snap, "pipeline_by_stage")
    if by_stage.empty and flt.dimension == "all":
        by_stage = _deal_stage_totals(snap)
    by_stage = _filter_rows(by_stage, flt)
    if rates.empty and by_stage.empty:
        return pd.DataFrame(columns=["pipeline", "stage", "configured", "learned_mean"])
    keys = ["pipeline", "stage"]
    if not by_stage.empty:
        cols = [c for c in ("n_deals", "amount", "expected") if c in by_stage.columns]
        by_stage = by_stage.assign(**{c: pd.to_numeric(by_stage[c]) for c in cols})
        if "stage_order" in by_stage.columns and rates.empty:
            keys_order = by_stage.groupby(keys, sort=False)["stage_order"].min().reset_index()
        else:
            keys_order = None
        sums = by_stage.groupby(keys, sort=False)[cols].sum(min_count=1).reset_index()
        if keys_order is not None:
            sums = sums.merge(keys_order, on=keys, how="left")
        rates = sums if rates.empty else rates.merge(sums, on=keys, how="left")
        rates[[c for c in cols if c != "expected"]] = rates[
            [c for c in cols if c != "expected"]
        ].fillna(0)
    order = [c for c in ("pipeline", "stage_order", "configured") if c in rates.columns]
    if order:  # stages in their order (the configured win rate rises along the pipeline)
        rates = rates.sort_values(order, kind="stable")
    return rates.reset_index(drop=True)


def _deal_stage_totals(snap: Snapshot) -> pd.DataFrame:
    """Open deals and amounts by stage from the snapshot's per-deal arrays (whole company)."""
    d = snap.draws
    if "deal_stage" not in d or "deal_amount" not in d:
        return pd.DataFrame()
    deals = pd.DataFrame(
        {"stage": np.asarray(d["deal_stage"]).astype(str), "n_deals": 1,
         "amount": np.asarray(d["deal_amount"], dtype=float)}
    )  # fmt: skip
    if "deal_expected" in d:
        deals["expected"] = np.asarray(d["deal_expected"], dtype=float)
    out = deals.groupby("stage", sort=False).sum().reset_index()
    rates = snapshot_table(snap, "stage_probabilities")
    pipes = dict(zip(rates.get("stage", []), rates.get("pipeline", []), strict=False))
    out.insert(0, "pipeline", out["stage"].map(pipes).fillna("default"))
    return out


def at_risk_deals(snap: Snapshot, flt: Filter | None = None, *, n: int = 10) -> pd.DataFrame:
    """Return the open deals most likely to slip past their expected close date.

    Parameters
    ----------
    snap
        The snapshot.
    flt
        The part of the company to show (default: all).
    n
        How many deals to return.

    Returns
    -------
    pandas.DataFrame
        The snapshot's ``at_risk_deals`` rows matching the filter, highest ``p_slip``
        first (ties: larger amount first).

    """
    flt = flt or Filter()
    deals = _filter_rows(snapshot_table(snap, "at_risk_deals"), flt)
    if deals.empty:
        return deals
    deals = deals.assign(
        p_slip=pd.to_numeric(deals["p_slip"], errors="coerce"),
        amount=pd.to_numeric(deals["amount"], errors="coerce"),
    )
    return (
        deals.sort_values(
            ["p_slip", "amount"], ascending=[False, False], kind="stable", na_position="last"
        )
        .head(n)
        .reset_index(drop=True)
    )


def segment_contributions(snap: Snapshot) -> pd.DataFrame:
    """Each segment's total revenue over the horizon, its range and its share.

    Parameters
    ----------
    snap
        The snapshot.

    Returns
    -------
    pandas.DataFrame
        One row per segment: ``closed_to_date``, ``p10``, ``p50``, ``p90`` and ``share``
        (the segment's P50 over the sum of the segments' P50), largest first.

    """
    rows = []
    for seg in filter_options(snap)["segment"]:
        h = headline(snap, Filter(segment=seg)).loc["total"]
        rows.append({"segment": seg, **h[["closed_to_date", "p10", "p50", "p90"]].to_dict()})
    df = pd.DataFrame(rows, columns=["segment", "closed_to_date", "p10", "p50", "p90"])
    total = df["p50"].sum()
    df["share"] = df["p50"] / total if total > 0 else np.nan
    return df.sort_values("p50", ascending=False, kind="stable").reset_index(drop=True)


def campaign_roi(snap: Snapshot) -> pd.DataFrame | None:
    """Return campaign return on investment when the forecast measured it, else None.

    Parameters
    ----------
    snap
        The snapshot.

    Returns
    -------
    pandas.DataFrame or None
        The ``campaign_roi`` table with ``roi_p10``, ``roi_p50``, ``roi_p90`` added
        (``revenue / cost - 1``) when it has ``revenue_p*`` and ``cost`` columns.

    """
    df = snapshot_table(snap, "campaign_roi")
    if df.empty:
        return None
    if "cost" in df.columns:
        cost = df["cost"].astype(float).where(df["cost"].astype(float) > 0)
        for k in ("p10", "p50", "p90"):
            if f"revenue_{k}" in df.columns and f"roi_{k}" not in df.columns:
                df[f"roi_{k}"] = df[f"revenue_{k}"].astype(float) / cost - 1.0
    return df


def diagnostics_table(snap: Snapshot) -> pd.DataFrame:
    """Return the model diagnostics as a table, one row per model.

    Parameters
    ----------
    snap
        The snapshot.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``method``, ``r_hat_max``, ``ess_bulk_min``, ``divergences``, ``ok``.

    """
    models = snap.diagnostics.get("models", {}) or {}
    cols = ["model", "method", "r_hat_max", "ess_bulk_min", "divergences", "ok"]
    return pd.DataFrame(
        [{"model": m, **{c: d.get(c) for c in cols[1:]}} for m, d in models.items()],
        columns=cols,
    )


def backtest_table(snap: Snapshot) -> pd.DataFrame | None:
    """Return the backtest accuracy stored with the snapshot, or None.

    Parameters
    ----------
    snap
        The snapshot.

    Returns
    -------
    pandas.DataFrame or None
        Its ``backtest`` table (:func:`crmkit.forecast.snapshot_tables.backtest_frame`): one
        row per lead and forecaster, with the run-rate comparison's ``crps_diff``,
        ``crps_diff_lo``, ``crps_diff_hi``, ``vs_run_rate`` and ``vs_run_rate_how`` when it
        was saved with them (a snapshot saved before they were stored has the scores only);
        None without one.
    """
    return backtest_frame(snap.parameters.get("tables", {}).get("backtest"))


def _signed(x: float) -> str:
    """A compact amount with its sign: ``−3.7k``, ``+5k``, ``0``."""
    if x == 0:
        return "0"
    return ("−" if x < 0 else "+") + format_amount(abs(x), compact=True, digits=2)


#: Below this many origins a "not distinguishable" verdict says that only a large difference
#: would show: with 4 origins and a 3-month overlap the 90% interval's t quantile is about 15
#: (a difference of 2.3 sd per origin is called "better" 9% of the time; 64% at 7 origins).
FEW_COMPARE_ORIGINS = 7


def run_rate_verdict(row: dict | pd.Series) -> str | None:
    """Say in one line whether a forecaster beats the run rate beyond the noise.

    Parameters
    ----------
    row
        A row of :func:`crmkit.forecast.backtest.recent_backtest` (or of
        :func:`backtest_table`): ``vs_run_rate``, ``crps_diff``, ``crps_diff_lo``,
        ``crps_diff_hi`` and ``origins``.

    Returns
    -------
    str or None
        ``"better than run rate: yes / no / not distinguishable (CRPS difference −3.7k,
        90% interval −12k to +5k)"``, with "; with 5 origins only a large difference would
        show" after "not distinguishable" below :data:`FEW_COMPARE_ORIGINS` origins, or
        ``"... too few origins to tell (3 origins; at least 4 needed)"``; None when the row
        has no comparison (the run rate itself, an older table).
    """
    verdict = row.get("vs_run_rate")
    if not isinstance(verdict, str) or not verdict:
        return None
    n = row.get("origins")
    n = int(n) if n is not None and pd.notna(n) else None
    if verdict == "too few origins":
        from crmkit.forecast.skill import MIN_COMPARE_ORIGINS  # scipy: not at a page's load

        have = "" if n is None else f"{n} origin{'' if n == 1 else 's'}; "
        return (
            f"better than run rate: too few origins to tell ({have}at least "
            f"{MIN_COMPARE_ORIGINS} needed)"
        )
    answer = {"better": "yes", "worse": "no"}.get(verdict, "not distinguishable")
    line = (
        f"better than run rate: {answer} (CRPS difference {_signed(row['crps_diff'])}, 90% "
        f"interval {_signed(row['crps_diff_lo'])} to {_signed(row['crps_diff_hi'])})"
    )
    if answer == "not distinguishable" and n is not None and n < FEW_COMPARE_ORIGINS:
        line += f"; with {n} origins only a large difference would show"
    return line


def backtest_verdicts(bt: Snapshot | pd.DataFrame | None) -> pd.DataFrame:
    """The model's one-line verdict against the run rate, per lead of a backtest.

    Parameters
    ----------
    bt
        A snapshot (its stored :func:`backtest_table`) or a backtest table.

    Returns
    -------
    pandas.DataFrame
        ``lead``, ``what`` (``"next 3 periods"`` for lead ``1-3``, ``"period 2"`` for lead
        ``2``) and ``line`` (:func:`run_rate_verdict`), one row per lead of the model with
        a comparison; empty (same columns) without a backtest or for a table saved without
        the comparison.
    """
    table = backtest_table(bt) if isinstance(bt, Snapshot) else bt
    rows = []
    for r in [] if table is None else table.to_dict("records"):
        line = run_rate_verdict(r) if r.get("forecaster") == "model" else None
        if line:
            lead = str(r.get("lead", ""))
            what = f"next {lead.split('-')[-1]} periods" if "-" in lead else f"period {lead}"
            rows.append({"lead": lead, "what": what, "line": line})
    return pd.DataFrame(rows, columns=["lead", "what", "line"])
