"""Tables read from forecast draws: quantiles, the chance of a target, the CLI's JSON.

Every figure here is computed from the labelled ``revenue`` draws ``(sample, period, source,
group)`` (or from a snapshot's quantile table made from them), selected by label, so a
roll-up's quantiles are quantiles of summed draws, never sums of quantiles.
``closed_to_date`` (won before ``as_of`` in the current period, on the ``total`` rows) is
kept apart from the forecast and added for ``p_target = P(closed_to_date + forecast >=
target)``. Past revenue (the snapshot's ``actuals`` table) is
:func:`crmkit.forecast.snapshot_tables.actuals`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import NotFoundError
from crmkit.forecast.axes import SOURCES
from crmkit.store.snapshots import REVENUE_DIMS, Snapshot

QUANTILES = {
    "p05": 0.05,
    "p10": 0.10,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p90": 0.90,
    "p95": 0.95,
}


def quantile_table(
    revenue: xr.DataArray, closed_to_date: xr.DataArray, target: object = None
) -> pd.DataFrame:
    """The snapshot's long quantile table from revenue draws ``(sample, period, source, group)``.

    ``target`` is a number (every period) or ``{period_label: amount}``; it applies to the
    ``total`` of group ``all``.

    Parameters
    ----------
    revenue
        Labelled revenue draws with dims ``sample``, ``period``, ``source``, ``group``.
    closed_to_date
        Labelled ``(period, group)`` revenue won before ``as_of`` (added on the ``total``
        rows).
    target
        None, a number, or ``{period_label: amount}``.

    Returns
    -------
    pandas.DataFrame
        One row per (group_by, group, source, period), in the order of the draws' group,
        source and period labels: ``mean``, the :data:`QUANTILES`, ``closed_to_date``,
        ``target`` and ``p_target`` (NaN without a target).
    """
    rev = revenue.transpose(*REVENUE_DIMS)
    labels = {d: [str(x) for x in rev.coords[d].values] for d in REVENUE_DIMS[1:]}
    ctd = closed_to_date.sel(period=labels["period"], group=labels["group"])
    stats = rev.mean("sample", skipna=False).to_series().rename("mean").to_frame()
    qs = rev.quantile(list(QUANTILES.values()), dim="sample", skipna=False)
    for name, q in QUANTILES.items():
        stats[name] = qs.sel(quantile=q).drop_vars("quantile").to_series()
    order = pd.MultiIndex.from_product(
        [labels["group"], labels["source"], labels["period"]], names=["group", "source", "period"]
    )
    stats = stats.reorder_levels(["group", "source", "period"]).reindex(order).reset_index()
    split = [("all", "all") if g == "all" else tuple(g.split("=", 1)) for g in stats["group"]]
    out = pd.DataFrame(
        {
            "group_by": [by for by, _ in split],
            "group": [value for _, value in split],
            "source": stats["source"].tolist(),
            "period": stats["period"].tolist(),
        }
    )
    out = pd.concat([out, stats[["mean", *QUANTILES]].astype(float)], axis=1)
    closed = ctd.to_series()
    total = stats["source"].eq("total")
    out["closed_to_date"] = np.where(
        total, closed.reindex(pd.MultiIndex.from_frame(stats[["period", "group"]])).to_numpy(), 0.0
    ).astype(float)
    out["target"] = np.nan
    out["p_target"] = np.nan
    for i in np.flatnonzero(total & stats["group"].eq("all")):
        p = stats.at[i, "period"]
        tgt = _target_for(target, p)
        if tgt is None:
            continue
        draws = rev.sel(period=p, source="total", group="all").to_numpy()
        out.at[i, "target"] = float(tgt)
        out.at[i, "p_target"] = float(np.mean(out.at[i, "closed_to_date"] + draws >= tgt))
    return out


def _target_for(target: object, period: str) -> float | None:
    """The target of one period, or None."""
    if target is None:
        return None
    if isinstance(target, dict):
        v = target.get(period)
        return None if v is None else float(v)
    return float(target)


def probability_of_target(
    snapshot: Snapshot,
    target: float,
    *,
    period: str | None = None,
    group: str = "all",
    source: str = "total",
) -> float:
    """P(closed to date + forecast >= target) from a snapshot's draws (no refit).

    Parameters
    ----------
    snapshot
        A forecast snapshot.
    target
        Revenue target.
    period
        A period label; None means the sum over all the snapshot's periods.
    group, source
        The group label and source whose draws are compared with the target.

    Returns
    -------
    float
        The share of draws reaching the target.
    """
    rev = snapshot.revenue
    for dim, label in (("source", source), ("group", group), ("period", period)):
        if label is not None and label not in rev.coords[dim].values:
            raise NotFoundError(f"the snapshot has no revenue draws for {dim} {label!r}")
    draws = rev.sel(source=source, group=group)
    q = snapshot.quantiles
    group_by, value = ("all", "all") if group == "all" else tuple(group.split("=", 1))
    # the requested group's and source's own revenue won so far (the table keeps it on
    # ``total`` rows only, so a single source adds none)
    sel = q[(q["source"] == source) & (q["group_by"] == group_by) & (q["group"] == value)]
    ctd = dict(zip(sel["period"], sel["closed_to_date"].fillna(0.0), strict=False))
    if period is None:
        total = draws.sum("period", skipna=False).to_numpy() + sum(ctd.values())
    else:
        total = draws.sel(period=period).to_numpy() + ctd.get(period, 0.0)
    return float(np.mean(total >= target))


#: The forecast call's tables in the CLI's JSON (``open_deals`` only when asked).
CALL_TABLES = ("forecast_call", "attainment")


#: Each model's diagnostics in the CLI's JSON (the one schema's figures).
#: ``message`` says what was done about a failed check (e.g. NUTS failed, MAP + Laplace used).
MODEL_DIAGNOSTICS = (
    "ok", "method", "r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "message"
)  # fmt: skip


def forecast_to_json(snapshot: Snapshot, *, open_deals: bool = False) -> dict[str, Any]:
    """The CLI's JSON: for each period, p10 / p50 / p90 per source and total, and P(target).

    Parameters
    ----------
    snapshot
        A forecast snapshot.
    open_deals
        Also give the ``open_deals`` table (one record per open deal; long).

    Returns
    -------
    dict
        ``{"as_of", "horizon", "period", "snapshot_id", "diagnostics_ok", "diagnostics" (per
        model: :data:`MODEL_DIAGNOSTICS`), "periods": [{"period",
        "pipeline": {"p10", "p50", "p90", "mean"}, "new_business": {...}, "repeat": {...},
        "total": {...}, "closed_to_date", ["target", "p_target"]}], "forecast_call": [...],
        "attainment": [...]}`` and ``"open_deals": [...]`` when asked: the snapshot's
        tables of the forecast call (:mod:`crmkit.forecast.call`; category roll-ups, the
        model's P10 / P50 / P90, ``p_commit``, ``p_best_case``, the manager's call; quotas
        with the expected attainment and ``p_attain``), probabilities as numbers in [0, 1],
        missing values null. A snapshot saved before these tables existed gives empty lists.
    """
    q = snapshot.quantiles
    q = q[(q["group_by"] == "all")]
    periods = []
    labels = snapshot.coords.get("period") or list(dict.fromkeys(q["period"]))
    for p in labels:
        entry: dict[str, Any] = {"period": p}
        rows = q[q["period"] == p].set_index("source")
        for s in SOURCES:
            r = rows.loc[s]
            entry[s] = {k: float(r[k]) for k in ("p10", "p50", "p90", "mean")}
        tot = rows.loc["total"]
        entry["closed_to_date"] = float(tot["closed_to_date"])
        if pd.notna(tot.get("target", np.nan)):
            entry["target"] = float(tot["target"])
            entry["p_target"] = float(tot["p_target"])
        periods.append(entry)
    tables = (snapshot.parameters or {}).get("tables") or {}
    out = {
        "as_of": str(snapshot.as_of),
        "horizon": int(snapshot.horizon),
        "period": snapshot.period,
        "snapshot_id": snapshot.snapshot_id,
        "diagnostics_ok": bool(snapshot.diagnostics.get("ok", False)),
        "diagnostics": {
            name: {k: d.get(k) for k in MODEL_DIAGNOSTICS}
            for name, d in (snapshot.diagnostics.get("models") or {}).items()
        },
        "periods": periods,
    }
    for name in (*CALL_TABLES, "open_deals") if open_deals else CALL_TABLES:
        out[name] = [dict(r) for r in tables.get(name) or []]
    return out


__all__ = [
    "CALL_TABLES",
    "QUANTILES",
    "forecast_to_json",
    "probability_of_target",
    "quantile_table",
]
