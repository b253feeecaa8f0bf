"""What changed between two forecasts, as a waterfall: SVG for the app, matplotlib for the report.

Both renderings take the steps of :func:`crmkit.apps.changes.change_steps` (the previous
total, one change per reason, the new total) and draw the bars laid out by
:func:`crmkit.plots.chart_data.waterfall_data`: horizontal bars top to bottom, totals from
zero, each change floating from the running total before it to the one after it (green up,
red down). The SVG writes each bar's numbers in ``data-`` attributes for tests to read back.

Matplotlib is imported only when the matplotlib figure is drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmkit.plots import chart_data as cd
from crmkit.plots.format import amount_formatter, format_amount
from crmkit.plots.svg import _esc, _nice_ticks, _svg_open

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["waterfall_figure", "waterfall_svg"]

_ROW = 24


def _ticks(chart: cd.Waterfall) -> list[float]:
    """Axis ticks covering the bars (below zero too when a running total dips there)."""
    ticks = _nice_ticks(chart.xmax, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    while ticks[0] > chart.xmin:
        ticks.insert(0, ticks[0] - step)
    return ticks


def waterfall_svg(steps: pd.DataFrame, *, title: str = "What changed", width: int = 760) -> str:
    """Draw what changed between two forecasts as an SVG waterfall.

    Parameters
    ----------
    steps
        :func:`crmkit.apps.changes.change_steps`.
    title
        The chart's title.
    width
        Width in pixels (the SVG scales to its container's width).

    Returns
    -------
    str
        An ``<svg class="crmkit-waterfall-svg">`` element; each bar is a ``<rect
        class="crmkit-waterfall-bar">`` with ``data-step``, ``data-label``, ``data-kind``,
        ``data-value``, ``data-from`` and ``data-to``.

    """
    chart = cd.waterfall_data(steps, title=title)
    steps_col = [str(s) for s in steps.get("step", chart.labels)]
    left, right, top = 250, 90, 30
    height = top + _ROW * max(len(chart.labels), 1) + 34
    pw = width - left - right
    ticks = _ticks(chart)
    lo, hi = ticks[0], ticks[-1] if ticks[-1] > ticks[0] else ticks[0] + 1.0

    def x(v: float) -> float:
        return left + pw * (float(v) - lo) / (hi - lo)

    out = [
        _svg_open("crmkit-waterfall-svg", width, height),
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="13">'
        f"{_esc(chart.title)}</text>",
    ]
    bottom = top + _ROW * len(chart.labels)
    for t in ticks:
        out.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top:.1f}" y2="{bottom:.1f}" '
            f'stroke="#e3e3e3"/><text x="{x(t):.1f}" y="{bottom + 14:.1f}" font-size="10" '
            f'text-anchor="middle">{format_amount(t, compact=True)}</text>'
        )
    colors, texts = chart.colors, chart.value_labels
    for i, lab in enumerate(chart.labels):
        y = top + i * _ROW
        a, b = chart.start[i], chart.end[i]
        x0, x1 = sorted((x(a), x(b)))
        deals = chart.deals[i]
        what = f"{_esc(lab)}: {texts[i]}" + (
            f" ({deals:.0f} deals)" if np.isfinite(deals) and deals > 0 else ""
        )
        bold = ' font-weight="bold"' if chart.kinds[i] == "total" else ""
        out.append(
            f'<text x="{left - 6}" y="{y + _ROW / 2 + 4:.1f}" text-anchor="end" font-size="11"'
            f"{bold}>{_esc(lab)}</text>"
            f'<rect class="crmkit-waterfall-bar" data-step="{_esc(steps_col[i])}" '
            f'data-label="{_esc(lab)}" data-kind="{chart.kinds[i]}" '
            f'data-value="{chart.values[i]:.2f}" data-from="{a:.2f}" data-to="{b:.2f}" '
            f'x="{x0:.1f}" y="{y + 4:.1f}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{_ROW - 8}" fill="{colors[i]}"><title>{what}</title></rect>'
            f'<text class="crmkit-waterfall-value" x="{x1 + 4:.1f}" y="{y + _ROW / 2 + 4:.1f}" '
            f'font-size="10">{_esc(texts[i])}</text>'
        )
        if i + 1 < len(chart.labels) and chart.kinds[i + 1] == "change":
            out.append(  # the running total carried to the next bar
                f'<line x1="{x(b):.1f}" x2="{x(b):.1f}" y1="{y + _ROW - 4:.1f}" '
                f'y2="{y + _ROW + 4:.1f}" stroke="#888" stroke-dasharray="2 2"/>'
            )
    out.append("</svg>")
    return "".join(out)


def waterfall_figure(steps: pd.DataFrame, *, title: str = "What changed") -> Figure:
    """Draw what changed between two forecasts as a matplotlib waterfall (the report's PNG).

    Parameters
    ----------
    steps
        :func:`crmkit.apps.changes.change_steps`.
    title
        The chart's title.

    Returns
    -------
    matplotlib.figure.Figure
        A new figure (pyplot's state untouched).

    """
    from matplotlib.figure import Figure

    chart = cd.waterfall_data(steps, title=title)
    n = max(len(chart.labels), 1)
    fig = Figure(figsize=(9.0, 0.9 + 0.36 * n), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(chart.labels))
    left = np.minimum(chart.start, chart.end)
    widths = np.abs(chart.end - chart.start)
    ax.barh(y, widths, left=left, color=chart.colors, height=0.6)
    for i, text in enumerate(chart.value_labels):
        ax.text(max(chart.start[i], chart.end[i]), i, " " + text, va="center", fontsize=8)
    for i in range(len(chart.labels) - 1):
        if chart.kinds[i + 1] == "change":
            ax.plot([chart.end[i]] * 2, [i + 0.3, i + 0.7], color="#888", lw=0.8, ls=":")
    ax.set_yticks(y, chart.labels, fontsize=9)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(amount_formatter())
    span = chart.xmax - chart.xmin
    ax.set_xlim(chart.xmin, chart.xmax + 0.15 * span)
    ax.set_title(chart.title, fontsize=11)
    ax.grid(axis="x", color="#e3e3e3")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig
