"""The HTML of the dashboard's sections, shared by the manager app and the report.

Amounts, shares and chances formatted for people (:func:`format_share`,
:func:`format_chance`), the headline table, small tables with formatted columns and the
table cells that tests find by column. Every text is escaped.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from crmkit.apps.dashboard import Filter
from crmkit.forecast.axes import SOURCE_NAMES
from crmkit.plots.format import format_amount


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


def _num(value: float, *, source: str, q: str) -> str:
    """Wrap an amount in a span that tests can find by source and quantile."""
    return (
        f'<span class="crmkit-num" data-source="{source}" data-q="{q}">'
        f"{format_amount(value)}</span>"
    )


def headline_html(head: pd.DataFrame, flt: Filter, currency: str | None = None) -> str:
    """Render the headline table: P50 with P10-P90 per source, won so far, P(target).

    ``currency`` (the snapshot's code, :func:`crmkit.apps.dashboard.snapshot_currency`) is
    named in the heading; None for a snapshot saved before currencies.
    """
    what = "whole company" if flt.dimension == "all" else f"{flt.dimension} {flt.value}"
    code = html.escape(currency) if currency else ""
    unit = f" in {code}" if code else ""
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
        f'<div class="crmkit-headline" data-group="{html.escape(flt.group)}" '
        f'data-currency="{code}">'
        f"<h3>Revenue over the horizon{unit} — {html.escape(what)}</h3>"
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


def table_cell(col: str, text: str, *, css: str = "") -> str:
    """Render a table cell that tests can find by its column (``data-col``).

    Parameters
    ----------
    col
        The column's name, written as ``data-col``.
    text
        The cell's text (escaped).
    css
        CSS classes of the cell, if any.

    Returns
    -------
    str
        ``<td data-col=..>text</td>``.

    """
    cls = f' class="{css}"' if css else ""
    return f'<td data-col="{col}"{cls}>{html.escape(text)}</td>'


def format_when(value: object) -> str:
    """Format a time as ``YYYY-MM-DD HH:MM``.

    Parameters
    ----------
    value
        A time, its text, or None/NaN.

    Returns
    -------
    str
        The time; ``–`` when missing, the text as given when it is not a time.

    """
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    try:
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"
    except (ValueError, TypeError):
        return str(value)


def format_text(value: object) -> str:
    """Format free text of a record.

    Parameters
    ----------
    value
        The text, or None/NaN.

    Returns
    -------
    str
        The text; ``–`` when missing.

    """
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return str(value)
