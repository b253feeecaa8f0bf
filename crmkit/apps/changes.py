"""What changed between two forecasts: the horizon totals side by side, and the waterfall.

:func:`changes_since` puts two snapshots' headline figures by source side by side;
:func:`change_steps` (through :func:`what_changed` and :func:`page_changes`) lays out the
waterfall from the previous forecast's expected revenue to this one's, one step per reason
of :func:`crmkit.forecast.compare.compare_snapshots`; :func:`waterfall_note` is the
sentence above it.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from crmkit.apps.dashboard import Filter, headline
from crmkit.forecast.compare import compare_snapshots, previous_snapshot
from crmkit.store import Snapshot, Store


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
