"""Tables read from forecast draws: quantiles, the chance of a target, actuals, the CLI's JSON.

Every figure here is computed from the draws ``(sample, period, source, group)`` (or from a
snapshot's quantile table made from them), so a roll-up's quantiles are quantiles of summed
draws, never sums of quantiles. ``closed_to_date`` (won before ``as_of`` in the current
period, on the ``total`` rows) is kept apart from the forecast and added for
``p_target = P(closed_to_date + forecast >= target)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmkit.forecast.axes import SOURCES
from crmkit.store.history import end_of_day, month_index, month_label
from crmkit.store.snapshots import Snapshot

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
    rollup: np.ndarray,
    labels: list[str],
    groups: list[str],
    closed_to_date: np.ndarray,
    target: object = None,
) -> pd.DataFrame:
    """Long quantile table of the contract from rollup draws ``(sample, period, source, group)``.

    ``target`` is a number (every period) or ``{period_label: amount}``; it applies to the
    ``total`` of group ``all``.

    Parameters
    ----------
    rollup
        Revenue draws ``(sample, period, source, group)``, sources in :data:`SOURCES` order.
    labels
        Period labels.
    groups
        Group labels (``"all"``, ``"team=north"``, ...).
    closed_to_date
        ``(period, group)`` revenue won before ``as_of`` (added on the ``total`` rows).
    target
        None, a number, or ``{period_label: amount}``.

    Returns
    -------
    pandas.DataFrame
        One row per (group_by, group, source, period): ``mean``, the :data:`QUANTILES`,
        ``closed_to_date``, ``target`` and ``p_target`` (NaN without a target).
    """
    qs = np.quantile(rollup, list(QUANTILES.values()), axis=0)  # (q, period, source, group)
    mean = rollup.mean(axis=0)
    rows = []
    for gi, g in enumerate(groups):
        group_by, value = ("all", "all") if g == "all" else tuple(g.split("=", 1))
        for si, s in enumerate(SOURCES):
            for pi, p in enumerate(labels):
                row = {
                    "group_by": group_by,
                    "group": value,
                    "source": s,
                    "period": p,
                    "mean": float(mean[pi, si, gi]),
                }
                for qi, name in enumerate(QUANTILES):
                    row[name] = float(qs[qi, pi, si, gi])
                ctd = float(closed_to_date[pi, gi]) if s == "total" else 0.0
                row["closed_to_date"] = ctd
                tgt = _target_for(target, p) if (g == "all" and s == "total") else None
                row["target"] = float("nan") if tgt is None else float(tgt)
                row["p_target"] = (
                    float("nan")
                    if tgt is None
                    else float(np.mean(ctd + rollup[:, pi, si, gi] >= tgt))
                )
                rows.append(row)
    return pd.DataFrame(rows)


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
    arr = snapshot.draws["rollup"]
    c = snapshot.coords
    si, gi = c["source"].index(source), c["group"].index(group)
    q = snapshot.quantiles
    group_by, value = ("all", "all") if group == "all" else tuple(group.split("=", 1))
    # the requested group's and source's own revenue won so far (the table keeps it on
    # ``total`` rows only, so a single source adds none)
    sel = q[(q["source"] == source) & (q["group_by"] == group_by) & (q["group"] == value)]
    ctd = dict(zip(sel["period"], sel["closed_to_date"].fillna(0.0), strict=False))
    if period is None:
        total = arr[:, :, si, gi].sum(axis=1) + sum(ctd.values())
    else:
        pi = c["period"].index(period)
        total = arr[:, pi, si, gi] + ctd.get(period, 0.0)
    return float(np.mean(total >= target))


def actuals_table(frame: pd.DataFrame, as_of: object, period: str, n_back: int = 12) -> list[dict]:
    """Won deal revenue per past period (``source`` ``deals``) for the fan chart.

    Parameters
    ----------
    frame
        Deals with ``status``, ``closed_at`` and ``amount``.
    as_of
        Deals closed after this day are left out.
    period
        ``"M"`` or ``"Q"``.
    n_back
        Number of most recent periods with won deals kept.

    Returns
    -------
    list of dict
        Records ``{"period", "source": "deals", "amount"}``, oldest first.
    """
    t = end_of_day(as_of)
    won = frame[
        frame["status"].eq("won")
        & frame["closed_at"].notna()
        & (pd.to_datetime(frame["closed_at"]) <= t)
    ]
    if won.empty:
        return []
    m = month_index(won["closed_at"])
    key = m if period == "M" else m // 3
    s = pd.Series(won["amount"].fillna(0).to_numpy(float)).groupby(key).sum().sort_index()
    s = s.iloc[-n_back:]
    lab = (
        (lambda k: month_label(int(k)))
        if period == "M"
        else (lambda k: f"{int(k) // 4:04d}-Q{int(k) % 4 + 1}")
    )
    return [{"period": lab(k), "source": "deals", "amount": float(v)} for k, v in s.items()]


def forecast_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The CLI's JSON: for each period, p10 / p50 / p90 per source and total, and P(target).

    Parameters
    ----------
    snapshot
        A forecast snapshot.

    Returns
    -------
    dict
        ``{"as_of", "horizon", "period", "snapshot_id", "diagnostics_ok", "periods": [{"period",
        "pipeline": {"p10", "p50", "p90", "mean"}, "new_business": {...}, "repeat": {...},
        "total": {...}, "closed_to_date", ["target", "p_target"]}]}``.
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
    return {
        "as_of": str(snapshot.as_of),
        "horizon": int(snapshot.horizon),
        "period": snapshot.period,
        "snapshot_id": snapshot.snapshot_id,
        "diagnostics_ok": bool(snapshot.diagnostics.get("ok", False)),
        "periods": periods,
    }


__all__ = [
    "QUANTILES",
    "actuals_table",
    "forecast_to_json",
    "probability_of_target",
    "quantile_table",
]
