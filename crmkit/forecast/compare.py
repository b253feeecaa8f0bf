"""How the forecast moved between two snapshots, and why.

:func:`compare_snapshots` reads two saved snapshots only (no refit): the change of the
total per period, and per open deal the reason its expected revenue moved (won, lost,
added, slipped, pulled in, amount or stage changed, re-estimated), plus the change of the
new-business and repeat sources. :func:`compare_with_previous` compares a snapshot with the
one saved before it in a store (the report and the forecast notebook both call it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.store.snapshots import Snapshot


def compare_snapshots(
    old: Snapshot, new: Snapshot, deals: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """How the forecast moved between two snapshots, and why.

    Parameters
    ----------
    old, new
        Two forecast snapshots (``old`` made earlier).
    deals
        Current deals (``store.read("deals")``), to tell won from lost among the deals that
        left the pipeline; without them they count as ``closed``.

    Returns
    -------
    dict of DataFrame
        ``"periods"``: per period in both, total mean and p50 before and after;
        ``"reasons"``: per reason (``won``, ``lost``, ``closed``, ``added``, ``slipped``,
        ``pulled in``, ``amount changed``, ``stage changed``, ``re-estimated``,
        ``new_business``, ``repeat``) the number of deals and the change of expected revenue;
        ``"deals"``: the per-deal changes.
    """
    a, b = _deal_table(old), _deal_table(new)
    j = a.merge(b, how="outer", left_index=True, right_index=True, suffixes=("_old", "_new"))
    status = deals.set_index("deal_id")["status"] if deals is not None else pd.Series(dtype=str)
    reasons = []
    for did, r in j.iterrows():
        if pd.isna(r["expected_new"]):
            st = status.get(did)
            reasons.append(st if st in ("won", "lost") else "closed")
        elif pd.isna(r["expected_old"]):
            reasons.append("added")
        elif r["month_new"] > r["month_old"]:
            reasons.append("slipped")
        elif r["month_new"] < r["month_old"]:
            reasons.append("pulled in")
        elif r["amount_new"] != r["amount_old"]:
            reasons.append("amount changed")
        elif r["stage_new"] != r["stage_old"]:
            reasons.append("stage changed")
        else:
            reasons.append("re-estimated")
    j["reason"] = reasons
    j["delta"] = j["expected_new"].fillna(0.0) - j["expected_old"].fillna(0.0)
    summary = (
        j.groupby("reason")
        .agg(deals=("delta", "size"), delta_expected=("delta", "sum"))
        .reset_index()
    )
    common = [p for p in old.coords["period"] if p in new.coords["period"]]
    rows = []
    for src in ("new_business", "repeat"):
        delta = 0.0
        for p in common:
            delta += _mean(new, p, src) - _mean(old, p, src)
        rows.append({"reason": src, "deals": 0, "delta_expected": delta})
    summary = pd.concat([summary, pd.DataFrame(rows)], ignore_index=True)
    periods = pd.DataFrame(
        [
            {
                "period": p,
                "mean_old": _mean(old, p, "total"),
                "mean_new": _mean(new, p, "total"),
                "p50_old": _q(old, p, "p50"),
                "p50_new": _q(new, p, "p50"),
            }
            for p in common
        ]
    )
    if len(periods):
        periods["change"] = periods["mean_new"] - periods["mean_old"]
    return {"periods": periods, "reasons": summary, "deals": j.reset_index()}


def previous_snapshot(store, snap: Snapshot) -> Snapshot | None:
    """The snapshot saved just before ``snap`` in ``store`` (a :class:`crmkit.Store`), or None."""
    listing = store.list_snapshots()
    older = listing[listing["snapshot_id"] < (snap.snapshot_id or 0)]
    if older.empty:
        return None
    return store.load_snapshot(int(older["snapshot_id"].max()))


def compare_with_previous(
    store, snap: Snapshot, previous: Snapshot | None = None
) -> dict[str, pd.DataFrame]:
    """Compare a snapshot with the one saved before it, through :func:`compare_snapshots`.

    Parameters
    ----------
    store
        The :class:`crmkit.Store` holding both snapshots (and the current deals).
    snap
        The newer snapshot.
    previous
        The snapshot to compare with; by default the one saved just before ``snap``
        (:func:`previous_snapshot`).

    Returns
    -------
    dict of DataFrame
        :func:`compare_snapshots` output plus ``"previous"`` (one row with the previous
        snapshot's ``snapshot_id`` and ``as_of``); empty frames when there is no earlier
        snapshot.
    """
    previous = previous or previous_snapshot(store, snap)
    if previous is None:
        empty = pd.DataFrame()
        return {"previous": empty, "periods": empty, "reasons": empty, "deals": empty}
    deals = store.read("deals", columns=["deal_id", "status"])
    out = compare_snapshots(previous, snap, deals)
    out["previous"] = pd.DataFrame(
        [{"snapshot_id": previous.snapshot_id, "as_of": str(previous.as_of)}]
    )
    return out


def _deal_table(s: Snapshot) -> pd.DataFrame:
    """The snapshot's open deals: expected revenue, amount, expected month and stage."""
    d = s.draws
    return pd.DataFrame(
        {
            "deal_id": s.coords.get("deal_id", []),
            "expected": d.get("deal_expected", np.array([])),
            "amount": d.get("deal_amount", np.array([])),
            "month": d.get("deal_expected_month", np.array([], np.int64)),
            "stage": d.get("deal_stage", np.array([], str)),
        }
    ).set_index("deal_id")


def _mean(s: Snapshot, period: str, source: str) -> float:
    """Mean of one source for group all in one period."""
    return float(s.revenue.sel(period=period, source=source, group="all").to_numpy().mean())


def _q(s: Snapshot, period: str, col: str) -> float:
    """A quantile of the total for group all."""
    q = s.quantiles
    r = q[(q["group_by"] == "all") & (q["source"] == "total") & (q["period"] == period)]
    return float(r[col].iloc[0]) if len(r) else float("nan")


__all__ = ["compare_snapshots", "compare_with_previous", "previous_snapshot"]
