"""The forecast call and quota attainment, read from a snapshot and shown as HTML.

The snapshot's ``forecast_call`` and ``attainment`` tables (made by
:mod:`crmkit.forecast.call`) for one :class:`~crmkit.apps.dashboard.Filter`: the forecast
categories' roll-ups beside the model and the manager's call, and each quota's attainment to
date and expected. A snapshot made before these tables existed gives None, shown as
:data:`NOT_IN_SNAPSHOT`.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from crmkit.apps.dashboard import Filter, snapshot_table
from crmkit.apps.section_html import (
    format_chance,
    format_share,
    format_text,
    format_when,
    table_cell,
)
from crmkit.plots.format import format_amount
from crmkit.store import Snapshot

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
    table = snapshot_table(snap, "forecast_call")
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
        t = snapshot_table(snap, name)
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
    table = snapshot_table(snap, "attainment")
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
        cells = [table_cell("period", str(r["period"]))]
        cells += [table_cell(c, format_amount(r[c])) for c in CATEGORY_ROLLUPS]
        cells += [
            table_cell("p50", format_amount(r["p50"])),
            table_cell("p10_p90", f"{format_amount(r['p10'])} – {format_amount(r['p90'])}"),
            table_cell("p_commit", format_chance(r["p_commit"])),
            table_cell("p_best_case", format_chance(r["p_best_case"])),
            table_cell("call", format_amount(r["call"])),
            table_cell("call_author", format_text(r["call_author"])),
            table_cell("call_at", format_when(r["call_at"])),
            table_cell("call_note", format_text(r["call_note"])),
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
            table_cell("period", str(r["period"])),
            table_cell("scope", SCOPE_LABELS.get(scope, scope)),
            table_cell("name", who),
            table_cell("quota", format_amount(r["quota"])),
            table_cell("closed_to_date", format_amount(r["closed_to_date"])),
            table_cell("attainment_to_date", format_share(r["attainment_to_date"])),
            table_cell("expected_attainment", format_share(r["expected_attainment"])),
            table_cell("att_range", f"{format_share(r['att_p10'])} – {format_share(r['att_p90'])}"),
            table_cell("p_attain", format_chance(r["p_attain"])),
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
