"""Figures for segments and cohorts, built on :class:`matplotlib.figure.Figure`.

Every function returns a new Figure without touching pyplot's global state, so the
figures work under any backend (Agg in reports and tests, inline in JupyterLab, Voilà).
Importing this module inside an IPython kernel registers a PNG display for Figures,
so a Figure returned as a cell's value, or passed to ``display()`` inside an ipywidgets
``Output``, renders even when pyplot was never imported.
:func:`crmkit.plots.format.figure_png` gives the bytes for HTML reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from crmkit.plots.format import amount_formatter, figure_png, format_amount
from crmkit.segments.rfm import SEGMENT_RULES

#: Default figure size in inches (fits a notebook or a Voilà page).
FIGSIZE = (9.0, 4.8)


def _register_display() -> None:
    """Make IPython show Figures as PNG even when pyplot's inline backend is not loaded."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        return
    ip = get_ipython()
    if ip is None:
        return
    png = ip.display_formatter.formatters["image/png"]
    if not _has_type(png, Figure):
        png.for_type(Figure, figure_png)


def _has_type(formatter: object, typ: type) -> bool:
    """Tell whether an IPython formatter already has a printer for ``typ``."""
    try:
        formatter.lookup_by_type(typ)  # type: ignore[attr-defined]
    except KeyError:
        return False
    return True


def cohort_heatmap(
    table: pd.DataFrame,
    *,
    title: str | None = None,
    cmap: str | Colormap = "Blues",
    annotate: bool | None = None,
    max_periods: int | None = None,
) -> Figure:
    """Draw a cohort table as a heat-map: cohorts down, periods since first purchase across.

    Parameters
    ----------
    table
        Output of :func:`crmkit.segments.cohort_table` (its ``attrs`` pick the title and
        number format: percentages for rates).
    title
        Figure title (default from the table's ``attrs``).
    cmap
        Matplotlib colour map.
    annotate
        Write the value in every cell (default: when the table has at most 24 x 24 cells).
    max_periods
        Show only the first ``max_periods`` columns.

    Returns
    -------
    matplotlib.figure.Figure

    """
    data = table if max_periods is None else table.iloc[:, :max_periods]
    value = table.attrs.get("value", "customers")
    rate = bool(table.attrs.get("rate", False))
    per = {"M": "months", "Q": "quarters", "W": "weeks"}.get(table.attrs.get("period", "M"))
    n_rows, n_cols = data.shape
    height = min(max(3.0, 0.32 * n_rows + 1.6), 14.0)
    fig = Figure(figsize=(max(FIGSIZE[0], 0.45 * n_cols + 2.5), height), layout="constrained")
    ax = fig.add_subplot()
    values = data.to_numpy(dtype=np.float64)
    masked = np.ma.masked_invalid(values)
    vmax = 1.0 if rate and value == "customers" else None
    if rate and n_cols > 1 and vmax is None:
        rest = values[:, 1:]
        vmax = float(np.nanmax(rest)) if np.isfinite(rest).any() else 1.0
    image = ax.imshow(masked, aspect="auto", cmap=cmap, vmin=0, vmax=vmax)
    ax.set_xticks(range(n_cols), [str(c) for c in data.columns])
    ax.set_yticks(range(n_rows), [str(i) for i in data.index])
    ax.set_xlabel(f"{per} since first purchase")
    ax.set_ylabel("cohort (first purchase)")
    what = "retention rate" if rate and value == "customers" else value
    if rate and value == "revenue":
        what = "revenue relative to the first period"
    ax.set_title(title or f"Cohorts: {what}")
    fmt = PercentFormatter(1.0, decimals=0) if rate else amount_formatter()
    fig.colorbar(image, ax=ax, format=fmt, shrink=0.8)
    if annotate is None:
        annotate = n_rows <= 24 and n_cols <= 24
    if annotate and values.size:
        hi = np.nanmax(values) if np.isfinite(values).any() else 1.0
        for (i, j), v in np.ndenumerate(values):
            if np.isnan(v):
                continue
            text = f"{v:.0%}" if rate else format_amount(v, compact=True)
            dark = (vmax or hi) and v > 0.6 * (vmax or hi)
            ax.text(
                j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black"
            )
    return fig


def _segment_colors(names: Sequence[str]) -> list[tuple[float, float, float, float]]:
    """One colour per segment; RFM segments keep the same colour in every figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = list(SEGMENT_RULES["segment"])
    out = []
    extra = 0
    for name in names:
        if name in order:
            out.append(cmap(order.index(name) % 20))
        else:
            out.append(cmap((len(order) + extra) % 20))
            extra += 1
    return out


def segment_bars(summary: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Draw each segment's size and revenue share as two bar panels.

    Parameters
    ----------
    summary
        Output of :func:`crmkit.segments.segment_summary` (``segment``, ``customers``,
        ``customer_share``, ``revenue_share``).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    names = [str(s) for s in summary["segment"]]
    y = np.arange(len(names))
    colors = _segment_colors(names)
    fig = Figure(figsize=(FIGSIZE[0], max(3.0, 0.38 * len(names) + 1.4)), layout="constrained")
    ax_size, ax_rev = fig.subplots(1, 2, sharey=True)
    customers = summary["customers"].to_numpy(dtype=np.float64)
    ax_size.barh(y, customers, color=colors)
    ax_size.set_yticks(y, names)
    ax_size.invert_yaxis()
    ax_size.set_xlabel("customers")
    ax_size.set_title("Size")
    share = summary["customer_share"].to_numpy(dtype=np.float64)
    for yi, c, s in zip(y, customers, share, strict=True):
        ax_size.annotate(
            f" {format_amount(c, compact=True)} ({s:.0%})", (c, yi), va="center", fontsize=8
        )
    rev = summary["revenue_share"].fillna(0.0).to_numpy(dtype=np.float64)
    ax_rev.barh(y, rev, color=colors)
    ax_rev.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax_rev.set_xlabel("share of revenue")
    ax_rev.set_title("Revenue share")
    for yi, r in zip(y, rev, strict=True):
        ax_rev.annotate(f" {r:.1%}", (r, yi), va="center", fontsize=8)
    for ax, top in ((ax_size, customers), (ax_rev, rev)):
        m = float(np.max(top)) if len(top) else 1.0
        ax.set_xlim(0, (m or 1.0) * 1.3)
    if title:
        fig.suptitle(title)
    return fig


def segment_trend_chart(
    trend: pd.DataFrame,
    *,
    segments: Sequence[str] | None = None,
    title: str | None = None,
    ylabel: str = "revenue",
) -> Figure:
    """Draw each segment's revenue per period as lines.

    Parameters
    ----------
    trend
        Output of :func:`crmkit.segments.segment_trend` (periods down, segments across).
    segments
        Segments to show (default: all).
    title
        Figure title.
    ylabel
        Label of the value axis.

    Returns
    -------
    matplotlib.figure.Figure

    """
    data = trend if segments is None else trend[list(segments)]
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    x = data.index.to_timestamp() if isinstance(data.index, pd.PeriodIndex) else data.index
    for name, color in zip(
        data.columns, _segment_colors([str(c) for c in data.columns]), strict=True
    ):
        ax.plot(
            x,
            data[name].to_numpy(dtype=np.float64),
            marker="o",
            markersize=3,
            label=str(name),
            color=color,
        )
    ax.yaxis.set_major_formatter(amount_formatter())
    ax.set_ylabel(ylabel)
    ax.set_xlabel("period")
    ax.grid(alpha=0.3)
    if len(data.columns):
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title(title or f"{ylabel.capitalize()} by segment")
    return fig


def rfm_grid(rfm: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Draw customers per recency x frequency score, labelled with the named segments.

    Parameters
    ----------
    rfm
        Output of :func:`crmkit.segments.rfm_scores` (``r_score``, ``f_score``).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    counts = np.zeros((5, 5), dtype=np.int64)
    np.add.at(
        counts,
        (rfm["r_score"].to_numpy(dtype=np.int64) - 1, rfm["f_score"].to_numpy(dtype=np.int64) - 1),
        1,
    )
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(counts[::-1], cmap="Greens", vmin=0)
    ax.set_xticks(range(5), [str(i) for i in range(1, 6)])
    ax.set_yticks(range(5), [str(i) for i in range(5, 0, -1)])
    ax.set_xlabel("F score (frequency)")
    ax.set_ylabel("R score (recency)")
    total = counts.sum() or 1
    hi = counts.max() or 1
    for r in range(1, 6):
        for f in range(1, 6):
            name = _first_rule(r, f)
            n = counts[r - 1, f - 1]
            ax.text(
                f - 1,
                5 - r,
                f"{name}\n{n:,} ({n / total:.0%})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if n > 0.6 * hi else "black",
            )
    fig.colorbar(image, ax=ax, label="customers", shrink=0.8)
    ax.set_title(title or "RFM segments by recency and frequency score")
    return fig


def _first_rule(r: int, f: int) -> str:
    """Name of the first default rule matching R and F (any M)."""
    for row in SEGMENT_RULES.itertuples(index=False):
        if row.r_min <= r <= row.r_max and row.f_min <= f <= row.f_max:
            return str(row.segment)
    return ""


_register_display()
