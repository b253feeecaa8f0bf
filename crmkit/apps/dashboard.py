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
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError, NotFoundError
from crmkit.forecast.axes import SOURCE_NAMES, SOURCES
from crmkit.forecast.compare import compare_snapshots, previous_snapshot
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


def _table(snap: Snapshot, name: str) -> pd.DataFrame:
    """One of the extra tables stored in ``parameters["tables"]`` (empty if absent)."""
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
    rates = _table(snap, "stage_probabilities")
    by_stage = _table(snap, "pipeline_by_stage")
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
    rates = _table(snap, "stage_probabilities")
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
    deals = _filter_rows(_table(snap, "at_risk_deals"), flt)
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
    df = _table(snap, "campaign_roi")
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
    """Return the backtest accuracy stored with the snapshot, or None."""
    df = _table(snap, "backtest")
    return None if df.empty else df


def changes_since(
    previous: Snapshot | None, current: Snapshot, flt: Filter | None = None
) -> pd.DataFrame:
    """Compare two forecasts: the horizon totals by source, side by side.

    Parameters
    ----------
    previous
        The earlier snapshot, or None (then only the current figures are given).
    current
        The newer snapshot.
    flt
        The part of the company to compare (default: all).

    Returns
    -------
    pandas.DataFrame
        Indexed by source: ``p50_before``, ``p50_now``, ``change``, ``p10_now``,
        ``p90_now``, ``p_target_before``, ``p_target_now``.

    """
    now = headline(current, flt)
    out = pd.DataFrame(
        {"p50_now": now["p50"], "p10_now": now["p10"], "p90_now": now["p90"]}, index=now.index
    )
    out["p_target_now"] = now["p_target"]
    if previous is None:
        out["p50_before"] = np.nan
        out["p_target_before"] = np.nan
    else:
        before = headline(previous, flt).reindex(now.index)
        out["p50_before"] = before["p50"]
        out["p_target_before"] = before["p_target"]
    out["change"] = out["p50_now"] - out["p50_before"]
    return out[
        ["p50_before", "p50_now", "change", "p10_now", "p90_now", "p_target_before", "p_target_now"]
    ]


# ---------------------------------------------------------------- the forecast call (issue #16)
#: The forecast categories' roll-ups as sales teams read them (each includes the one before).
CATEGORY_ROLLUPS = {
    "closed": "Closed",
    "commit": "Commit",
    "best_case": "Best Case",
    "pipeline": "Pipeline",
}
#: What a section says when its table is not in the snapshot (one made before issue #16).
NOT_IN_SNAPSHOT = "not in this snapshot"
_CALL_COLUMNS = [
    "period", *CATEGORY_ROLLUPS, "p10", "p50", "p90", "p_commit", "p_best_case",
    "call", "call_author", "call_at", "call_note",
]  # fmt: skip
_ATTAINMENT_COLUMNS = [
    "period", "scope", "name", "group", "quota", "closed_to_date", "attainment_to_date",
    "expected_attainment", "att_p10", "att_p50", "att_p90", "p_attain",
]  # fmt: skip
_SCOPE_ORDER = {"owner": 0, "team": 1, "company": 2}


def _period_order(snap: Snapshot, periods: pd.Series) -> pd.Series:
    """Position of each period label in the snapshot's periods (unknown ones last)."""
    order = {str(p): i for i, p in enumerate(snap.coords.get("period", []))}
    return periods.astype(str).map(order).fillna(len(order))


def _numeric(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The frame with these columns (those present) as floats, missing values NaN."""
    return df.assign(
        **{c: pd.to_numeric(df[c], errors="coerce").astype(float) for c in columns if c in df}
    )


def forecast_call(snap: Snapshot, flt: Filter | None = None) -> pd.DataFrame | None:
    """The forecast call of one group: categories' roll-ups beside the model, and the call.

    Parameters
    ----------
    snap
        The snapshot.
    flt
        The part of the company (default: all). Segments have no forecast call.

    Returns
    -------
    pandas.DataFrame or None
        None when the snapshot has no ``forecast_call`` table (made before it existed).
        Else one row per period, in the snapshot's order: ``closed``, ``commit``,
        ``best_case``, ``pipeline`` (the roll-ups), ``p10``, ``p50``, ``p90`` (the model:
        closed to date plus forecast), ``p_commit``, ``p_best_case`` (the model's chance of
        reaching them), the latest manager's ``call`` made by the as-of day and its
        ``call_author``, ``call_at``, ``call_note`` (NaN and None without a call). Empty for
        a group the table does not hold.

    """
    flt = flt or Filter()
    table = _table(snap, "forecast_call")
    if table.empty:
        return None
    for c in _CALL_COLUMNS:
        if c not in table:
            table[c] = None
    rows = table[table["group"].astype(str) == flt.group]
    rows = rows.iloc[np.argsort(_period_order(snap, rows["period"]).to_numpy(), kind="stable")]
    money = [*CATEGORY_ROLLUPS, "p10", "p50", "p90", "call", "p_commit", "p_best_case"]
    rows = _numeric(rows[_CALL_COLUMNS], money)
    for c in ("call_author", "call_at", "call_note"):
        rows[c] = rows[c].astype(object).where(rows[c].notna(), None)
    return rows.reset_index(drop=True)


def owner_teams(snap: Snapshot) -> dict[str, str]:
    """Each owner's team, from the snapshot's deal tables (``{}`` when they do not say).

    Parameters
    ----------
    snap
        The snapshot.

    Returns
    -------
    dict
        ``{owner: team}``.

    """
    out: dict[str, str] = {}
    for name in ("pipeline_by_stage", "at_risk_deals"):
        t = _table(snap, name)
        if {"owner", "team"} <= set(t.columns):
            t = t.dropna(subset=["owner", "team"])
            out |= dict(zip(t["owner"].astype(str), t["team"].astype(str), strict=True))
    return out


def _scope_name(group: str) -> tuple[str, str]:
    """``("company", "all")``, ``("team", "north")`` or ``("owner", "ann")`` of a group."""
    if group == "all":
        return "company", "all"
    scope, _, name = group.partition("=")
    return scope, name


def attainment(snap: Snapshot, flt: Filter | None = None) -> pd.DataFrame | None:
    """Quota attainment per owner, team and the company: to date and expected, by period.

    Parameters
    ----------
    snap
        The snapshot.
    flt
        The part of the company (default: all). A team shows itself and its owners, an
        owner only itself; segments have no quotas.

    Returns
    -------
    pandas.DataFrame or None
        None when the snapshot has no ``attainment`` table (made before it existed). Else
        one row per (period, group with a quota): ``scope`` (``owner``, ``team``,
        ``company``), ``name``, ``group``, ``quota``, ``closed_to_date``,
        ``attainment_to_date``, ``expected_attainment`` with ``att_p10`` / ``att_p50`` /
        ``att_p90``, and ``p_attain`` = P(closed to date + forecast >= quota). Periods in
        order; in a period owners first, then teams, then the company, each sorted by
        ``p_attain``, highest first.

    """
    flt = flt or Filter()
    table = _table(snap, "attainment")
    if table.empty:
        return None
    for c in _ATTAINMENT_COLUMNS:
        if c not in table:
            table[c] = np.nan
    groups = table["group"].astype(str)
    sn = [_scope_name(g) for g in groups]
    table = table.assign(group=groups, scope=[s for s, _ in sn], name=[n for _, n in sn])
    if flt.dimension == "team":
        teams = owner_teams(snap)
        keep = (groups == flt.group) | (
            (table["scope"] == "owner") & (table["name"].map(teams) == flt.value)
        )
    elif flt.dimension == "owner":
        keep = groups == flt.group
    elif flt.dimension == "segment":
        keep = pd.Series(False, index=table.index)
    else:
        keep = pd.Series(True, index=table.index)
    money = ["quota", "closed_to_date", "attainment_to_date", "expected_attainment",
             "att_p10", "att_p50", "att_p90", "p_attain"]  # fmt: skip
    rows = _numeric(table[keep], money)
    rows = rows.assign(
        _p=_period_order(snap, rows["period"]), _s=rows["scope"].map(_SCOPE_ORDER).fillna(3)
    )
    rows = rows.sort_values(
        ["_p", "_s", "p_attain", "name"], ascending=[True, True, False, True], kind="stable",
        na_position="last",
    )  # fmt: skip
    return rows[_ATTAINMENT_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------- what changed, as a waterfall
#: The reasons of :func:`crmkit.forecast.compare.compare_snapshots`, in the waterfall's order,
#: with their labels; ``other`` is what they leave unexplained (periods entering or leaving
#: the horizon).
CHANGE_LABELS = {
    "added": "new deals",
    "won": "won",
    "lost": "lost",
    "closed": "closed (won or lost)",
    "slipped": "slipped out",
    "pulled in": "pulled in",
    "amount changed": "amount changes",
    "stage changed": "stage changes",
    "re-estimated": "re-estimation",
    "new_business": "new business (deals not yet created)",
    "repeat": "repeat orders",
    "other": "other (periods in or out of the horizon)",
}
#: Unexplained change (currency units) below which no ``other`` step is drawn.
CHANGE_TOLERANCE = 0.5


def expected_total(snap: Snapshot) -> float:
    """Expected revenue still to come over the snapshot's horizon, whole company."""
    return float(snap.revenue.sel(source="total", group="all").sum("period").mean())


def change_steps(previous: Snapshot, current: Snapshot, reasons: pd.DataFrame) -> pd.DataFrame:
    """The waterfall of what changed: the previous total, one step per reason, the new total.

    Parameters
    ----------
    previous, current
        The two snapshots.
    reasons
        ``compare_snapshots(previous, current, deals)["reasons"]`` (``reason``, ``deals``,
        ``delta_expected``).

    Returns
    -------
    pandas.DataFrame
        Columns ``step`` (``"before"``, a reason, ``"other"``, ``"now"``), ``label``,
        ``kind`` (``"total"`` or ``"change"``), ``deals`` and ``amount``: the expected
        revenue still to come over each snapshot's horizon (whole company) for the totals,
        the change for the steps. The steps add up from the first total to the last: a step
        ``other`` holds what the reasons leave unexplained (when more than
        :data:`CHANGE_TOLERANCE`). ``attrs`` hold ``previous_id`` and ``previous_as_of``.

    """
    start, end = expected_total(previous), expected_total(current)
    rows = [{"step": "before", "label": f"previous forecast ({previous.as_of})", "kind": "total",
             "deals": np.nan, "amount": start}]  # fmt: skip
    if reasons is not None and not reasons.empty:
        by = reasons.groupby(reasons["reason"].astype(str), sort=False)
        sums = by.agg(deals=("deals", "sum"), amount=("delta_expected", "sum"))
        order = [r for r in CHANGE_LABELS if r in sums.index]
        order += sorted(r for r in sums.index if r not in CHANGE_LABELS)
        for r in order:
            rows.append({"step": r, "label": CHANGE_LABELS.get(r, r), "kind": "change",
                         "deals": float(sums.loc[r, "deals"]),
                         "amount": float(sums.loc[r, "amount"])})  # fmt: skip
    explained = sum(r["amount"] for r in rows[1:])
    other = end - start - explained
    if abs(other) > CHANGE_TOLERANCE:
        rows.append({"step": "other", "label": CHANGE_LABELS["other"], "kind": "change",
                     "deals": np.nan, "amount": other})  # fmt: skip
    rows.append({"step": "now", "label": f"this forecast ({current.as_of})", "kind": "total",
                 "deals": np.nan, "amount": end})  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs = {"previous_id": previous.snapshot_id, "previous_as_of": str(previous.as_of)}
    return out


def what_changed(
    previous: Snapshot | None, current: Snapshot, deals: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """Compare two snapshots and return the waterfall's steps, or None without a previous one.

    Parameters
    ----------
    previous
        The earlier snapshot (None: nothing to compare).
    current
        The newer snapshot.
    deals
        Current deals (``deal_id``, ``status``) to tell won from lost.

    Returns
    -------
    pandas.DataFrame or None
        :func:`change_steps`.

    """
    if previous is None:
        return None
    reasons = compare_snapshots(previous, current, deals)["reasons"]
    return change_steps(previous, current, reasons)


def page_changes(store: Store, snap: Snapshot) -> pd.DataFrame | None:
    """The waterfall's steps of ``snap`` against the snapshot saved before it in ``store``.

    Parameters
    ----------
    store
        The database holding the snapshots and the deals.
    snap
        The snapshot shown.

    Returns
    -------
    pandas.DataFrame or None
        :func:`what_changed` (None when ``snap`` is the first snapshot).

    """
    previous = previous_snapshot(store, snap)
    if previous is None:
        return None
    return what_changed(previous, snap, store.read("deals", columns=["deal_id", "status"]))


def format_share(p: float) -> str:
    """Format a probability as a whole percentage (``73%``)."""
    return "–" if p is None or not np.isfinite(p) else f"{100 * float(p):.0f}%"


def format_chance(p: float | None) -> str:
    """Format a probability as a whole percentage that never rounds to a certainty.

    ``0.9975`` reads ``>99%`` and ``0.003`` reads ``<1%``: only exactly 1 and 0 (every draw,
    no draw) read ``100%`` and ``0%``.
    """
    if p is None or not np.isfinite(p):
        return "–"
    p = float(p)
    if 0.0 < p < 0.005:
        return "<1%"
    if 0.995 <= p < 1.0:
        return ">99%"
    return f"{100 * p:.0f}%"


# ---------------------------------------------------------------- HTML for the app and report
def _num(value: float, *, source: str, q: str) -> str:
    """Wrap an amount in a span that tests can find by source and quantile."""
    return (
        f'<span class="crmkit-num" data-source="{source}" data-q="{q}">'
        f"{format_amount(value)}</span>"
    )


def headline_html(head: pd.DataFrame, flt: Filter) -> str:
    """Render the headline table: P50 with P10-P90 per source, won so far, P(target)."""
    what = "whole company" if flt.dimension == "all" else f"{flt.dimension} {flt.value}"
    rows = []
    for source, r in head.iterrows():
        name = SOURCE_NAMES.get(str(source), str(source))
        bold = ("<b>", "</b>") if source == "total" else ("", "")
        rows.append(
            f"<tr><td>{bold[0]}{name}{bold[1]}</td>"
            f"<td>{bold[0]}{_num(r['p50'], source=str(source), q='p50')}{bold[1]}</td>"
            f"<td>{_num(r['p10'], source=str(source), q='p10')} – "
            f"{_num(r['p90'], source=str(source), q='p90')}</td>"
            f"<td>{_num(r['closed_to_date'], source=str(source), q='closed')}</td></tr>"
        )
    total = head.loc["total"] if "total" in head.index else None
    target = ""
    if total is not None and np.isfinite(total["target"]):
        target = (
            f'<p class="crmkit-target">Target {_num(total["target"], source="total", q="target")}'
            f': chance of reaching it <b><span class="crmkit-num" data-source="total" '
            f'data-q="p_target">{format_share(total["p_target"])}</span></b></p>'
        )
    return (
        f'<div class="crmkit-headline" data-group="{html.escape(flt.group)}">'
        f"<h3>Revenue over the horizon — {html.escape(what)}</h3>"
        "<table><tr><th>Source</th><th>P50</th><th>P10 – P90</th><th>Won so far</th></tr>"
        f"{''.join(rows)}</table>{target}</div>"
    )


#: Column headings of the tables shown to managers.
COLUMN_LABELS = {
    "deal_id": "deal",
    "expected_close_date": "expected close",
    "p_win": "P(win)",
    "p_slip": "P(slip)",
    "configured": "configured win rate",
    "learned_mean": "learned (mean)",
    "learned_p10": "learned P10",
    "learned_p90": "learned P90",
    "n_deals": "open deals",
    "expected": "expected revenue",
    "closed_to_date": "won so far",
    "delta_expected": "change of expected revenue",
}


def table_html(df: pd.DataFrame, *, css: str, money: tuple[str, ...] = (), shares=()) -> str:
    """Render a small table with amounts and percentages formatted."""
    if df is None or df.empty:
        return f'<p class="crmkit-note {css}">Nothing to show for this selection.</p>'
    out = df.copy()
    for c in out.columns:
        if c in money:
            out[c] = pd.to_numeric(out[c], errors="coerce").map(format_amount)
        elif c in shares:
            out[c] = pd.to_numeric(out[c], errors="coerce").map(format_share)
    out = out.rename(columns=lambda c: COLUMN_LABELS.get(c, c.replace("_", " ")))
    return out.to_html(index=False, classes=f"crmkit-table {css}", border=0, na_rep="–")


def _cell(col: str, text: str, *, css: str = "") -> str:
    """A table cell that tests can find by its column (``data-col``); ``text`` is escaped."""
    cls = f' class="{css}"' if css else ""
    return f'<td data-col="{col}"{cls}>{html.escape(text)}</td>'


def _when(value: object) -> str:
    """A call's time as ``YYYY-MM-DD HH:MM`` (the text as given when it is not a time)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    try:
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"
    except (ValueError, TypeError):
        return str(value)


def _text(value: object) -> str:
    """Free text of a record, ``–`` when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return str(value)


def forecast_call_html(calls: pd.DataFrame | None, flt: Filter) -> str:
    """Render the forecast call of one group: roll-ups, the model, the manager's call.

    Parameters
    ----------
    calls
        :func:`forecast_call` (None: the snapshot has no such table).
    flt
        The part of the company shown.

    Returns
    -------
    str
        HTML: a ``crmkit-call`` table, one ``<tr data-period=..>`` per period with cells
        ``data-col`` = each column of :func:`forecast_call`; every text is escaped.

    """
    what = "whole company" if flt.dimension == "all" else f"{flt.dimension} {flt.value}"
    head = f'<div class="crmkit-call" data-group="{html.escape(flt.group)}">'
    if calls is None:
        return (
            f'{head}<p class="crmkit-note crmkit-call-missing">Forecast call: '
            f"{NOT_IN_SNAPSHOT} (it was made before forecast categories were rolled up).</p></div>"
        )
    if calls.empty:
        why = "segments" if flt.dimension == "segment" else html.escape(what)
        return (
            f'{head}<p class="crmkit-note crmkit-call-missing">No forecast call for {why}: '
            "categories, calls and quotas are kept for the company, teams and owners.</p></div>"
        )
    rows = []
    for _, r in calls.iterrows():
        cells = [_cell("period", str(r["period"]))]
        cells += [_cell(c, format_amount(r[c])) for c in CATEGORY_ROLLUPS]
        cells += [
            _cell("p50", format_amount(r["p50"])),
            _cell("p10_p90", f"{format_amount(r['p10'])} – {format_amount(r['p90'])}"),
            _cell("p_commit", format_chance(r["p_commit"])),
            _cell("p_best_case", format_chance(r["p_best_case"])),
            _cell("call", format_amount(r["call"])),
            _cell("call_author", _text(r["call_author"])),
            _cell("call_at", _when(r["call_at"])),
            _cell("call_note", _text(r["call_note"])),
        ]
        rows.append(
            f'<tr class="crmkit-call-row" data-period="{html.escape(str(r["period"]))}">'
            f"{''.join(cells)}</tr>"
        )
    labels = "".join(f"<th>{v}</th>" for v in CATEGORY_ROLLUPS.values())
    return (
        f"{head}<h3>Forecast call — {html.escape(what)}</h3>"
        '<p class="crmkit-note">The forecast categories rolled up as sales teams do (Commit = '
        "Closed + Commit deals; Best Case = Commit + Best Case deals; Pipeline = Best Case + "
        "Pipeline deals; Omitted deals in none), beside the model's revenue of the period "
        "(won so far plus forecast) and its chance of reaching Commit and Best Case; the "
        "manager's call is the latest made by the forecast's as-of day.</p>"
        '<table class="crmkit-table crmkit-call-table"><tr><th>Period</th>'
        f"{labels}<th>Model P50</th><th>P10 – P90</th><th>P(Commit reached)</th>"
        "<th>P(Best Case reached)</th><th>Manager's call</th><th>by</th><th>at</th>"
        f"<th>note</th></tr>{''.join(rows)}</table></div>"
    )


#: How a scope is written in the quota table.
SCOPE_LABELS = {"owner": "owner", "team": "team", "company": "whole company"}


def attainment_html(att: pd.DataFrame | None, flt: Filter) -> str:
    """Render quota attainment: per period, owners and teams sorted by P(attain).

    Parameters
    ----------
    att
        :func:`attainment` (None: the snapshot has no such table).
    flt
        The part of the company shown.

    Returns
    -------
    str
        HTML: a ``crmkit-quotas`` table, one ``<tr data-group=.. data-period=..>`` per
        group and period, cells ``data-col`` = ``quota``, ``attainment_to_date``,
        ``expected_attainment``, ``att_range`` and ``p_attain``.

    """
    head = f'<div class="crmkit-quotas" data-group="{html.escape(flt.group)}"><h3>Quotas</h3>'
    if att is None:
        return (
            f'{head}<p class="crmkit-note crmkit-quotas-missing">Quota attainment: '
            f"{NOT_IN_SNAPSHOT} (it was made before quotas were forecast).</p></div>"
        )
    if att.empty:
        why = "segments have no quotas" if flt.dimension == "segment" else "no quota is set"
        return (
            f'{head}<p class="crmkit-note crmkit-quotas-missing">Nothing to show: {why} '
            "for this selection.</p></div>"
        )
    rows = []
    for _, r in att.iterrows():
        scope = str(r["scope"])
        who = "" if scope == "company" else str(r["name"])
        cells = [
            _cell("period", str(r["period"])),
            _cell("scope", SCOPE_LABELS.get(scope, scope)),
            _cell("name", who),
            _cell("quota", format_amount(r["quota"])),
            _cell("closed_to_date", format_amount(r["closed_to_date"])),
            _cell("attainment_to_date", format_share(r["attainment_to_date"])),
            _cell("expected_attainment", format_share(r["expected_attainment"])),
            _cell("att_range", f"{format_share(r['att_p10'])} – {format_share(r['att_p90'])}"),
            _cell("p_attain", format_chance(r["p_attain"])),
        ]
        rows.append(
            f'<tr class="crmkit-quota-row" data-group="{html.escape(str(r["group"]))}" '
            f'data-scope="{html.escape(scope)}" data-period="{html.escape(str(r["period"]))}">'
            f"{''.join(cells)}</tr>"
        )
    return (
        f'{head}<p class="crmkit-note">Each quota against revenue won so far and the model\'s '
        "expected attainment (P10–P90: in 8 of 10 outcomes it lands inside) with the chance "
        "of reaching 100%. Per period, owners then teams, most likely to attain first.</p>"
        '<table class="crmkit-table crmkit-quota-table"><tr><th>Period</th><th>Level</th>'
        "<th>Name</th><th>Quota</th><th>Won so far</th><th>Attained to date</th>"
        "<th>Expected attainment</th><th>P10 – P90</th><th>P(attain)</th></tr>"
        f"{''.join(rows)}</table></div>"
    )


def waterfall_note(steps: pd.DataFrame | None) -> str:
    """The sentence above the waterfall: what is compared, or why nothing is.

    Parameters
    ----------
    steps
        :func:`change_steps` (None: there is no earlier snapshot).

    Returns
    -------
    str
        HTML paragraph.

    """
    if steps is None:
        return (
            '<p class="crmkit-note crmkit-waterfall-none">This is the first saved forecast: '
            "nothing to compare.</p>"
        )
    a = steps.attrs
    return (
        f'<p class="crmkit-note crmkit-waterfall-note">Compared with snapshot '
        f"{html.escape(str(a.get('previous_id')))} (as of "
        f"{html.escape(str(a.get('previous_as_of')))}): the whole company's expected revenue "
        "still to come over each forecast's horizon, from the previous forecast to this one, "
        "by why each open deal's expected revenue moved.</p>"
    )
