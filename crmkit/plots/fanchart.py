"""Forecast figures in matplotlib: the fan chart by period and source, and its two companions.

Every function takes the plain tables of :mod:`crmkit.apps.dashboard`, gets the numbers to draw
from :mod:`crmkit.plots.chart_data` and returns a new :class:`matplotlib.figure.Figure` without
touching pyplot's global state (the report and the notebooks). The manager app draws the
same numbers as SVG with :mod:`crmkit.plots.svg`.

Matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmkit.plots import chart_data as cd
from crmkit.plots.chart_data import SOURCE_COLORS
from crmkit.plots.format import amount_formatter

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "SOURCE_COLORS",
    "fan_chart",
    "segment_figure",
    "stage_rates_figure",
]


def _fan(ax: Axes, panel: cd.FanPanel, *, main: bool) -> None:
    """Draw one source's bands, median, actuals, won so far and target on an axis."""
    x = {p: i for i, p in enumerate(panel.periods)}
    if panel.actual_periods:
        ax.plot(
            [x[p] for p in panel.actual_periods], panel.actual, color=cd.ACTUAL_COLOR,
            marker="o", ms=3, lw=1.4, label=panel.actual_label,
        )  # fmt: skip
    if panel.forecast_periods:
        xs = np.array([x[p] for p in panel.forecast_periods])
        q = panel.quantiles
        for band in cd.BANDS:
            ax.fill_between(
                xs, q[band.lo], q[band.hi], color=panel.color, alpha=band.alpha, lw=0,
                label=band.label,
            )  # fmt: skip
        ax.plot(xs, q["p50"], color=panel.color, lw=2, marker="o", ms=3, label=cd.P50_LABEL)
        won = panel.won
        if won.any():
            ax.scatter(
                xs[won], panel.closed[won], marker="_", s=160, color=cd.ACTUAL_COLOR,
                label=cd.WON_LABEL, zorder=3,
            )  # fmt: skip
        if panel.target_periods:
            tx = np.array([x[p] for p in panel.target_periods])
            ax.hlines(
                panel.target, tx - 0.4, tx + 0.4, colors=cd.TARGET_COLOR, linestyles="--",
                lw=1.5, label=cd.TARGET_LABEL,
            )  # fmt: skip
            for xi, tv, text in zip(tx, panel.target, panel.target_labels, strict=True):
                if text:
                    ax.annotate(
                        text, (xi, tv), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=8, color=cd.TARGET_COLOR,
                    )  # fmt: skip
    ax.set_title(panel.title, fontsize=12 if main else 10)
    ax.yaxis.set_major_formatter(amount_formatter())
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)


def fan_chart(
    data: pd.DataFrame,
    *,
    title: str | None = None,
    sources: tuple[str, ...] = cd.PANEL_SOURCES,
    figsize: tuple[float, float] = (11.0, 5.2),
) -> Figure:
    """Draw the forecast as a fan chart: total on the left, one small chart per source.

    Parameters
    ----------
    data
        Output of :func:`crmkit.apps.dashboard.fan_data`: per (period, source) the actuals of past
        periods and P10 / P25 / P50 / P75 / P90 of forecast periods, with target and
        P(target).
    title
        Figure title.
    sources
        The sources drawn beside the total (those absent from ``data`` are skipped).
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    crmkit.plots.svg.fan_chart_svg : the same picture as SVG text.

    """
    from matplotlib.figure import Figure

    chart = cd.fan_chart_data(data, sources)
    fig = Figure(figsize=figsize, layout="constrained")
    grid = fig.add_gridspec(max(len(chart.panels), 1), 2, width_ratios=[2.2, 1.0])
    main = fig.add_subplot(grid[:, 0])
    _fan(main, chart.total, main=True)
    main.set_xticks(range(len(chart.periods)), chart.periods, rotation=45, ha="right")
    main.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
    own = chart.panel_periods
    for i, panel in enumerate(chart.panels):
        ax = fig.add_subplot(grid[i, 1])
        _fan(ax, panel, main=False)
        ax.set_xticks(range(len(own)), own, rotation=45, ha="right", fontsize=8)
        ax.tick_params(labelbottom=i == len(chart.panels) - 1)
    if title:
        fig.suptitle(title)
    return fig


def _hbars(chart: cd.BarChart, figsize: tuple[float, float], **bar_kw: object) -> Figure:
    """Draw a bar chart's series side by side per label (first label on top)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(chart.labels))
    n = len(chart.series)
    height = 0.8 / max(n, 1)
    for i, s in enumerate(chart.series):
        kw = dict(bar_kw)
        if s.lo is not None and s.hi is not None:
            kw.update(xerr=np.vstack([s.values - s.lo, s.hi - s.values]), capsize=3)
        offset = (n - 1) / 2 * height - i * height
        ax.barh(y + offset, s.values, height=height, color=s.color, label=s.name, **kw)
    ax.set_yticks(y, chart.labels)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(chart.tick_label))
    if chart.share:
        ax.set_xlim(0, chart.xmax)
    return fig


def stage_rates_figure(
    stages: pd.DataFrame, *, figsize: tuple[float, float] = (7.0, 3.6)
) -> Figure:
    """Compare configured and learned win rates by stage (learned with its P10–P90 range).

    Parameters
    ----------
    stages
        Output of :func:`crmkit.apps.dashboard.pipeline_by_stage`.
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    chart = cd.stage_rates_data(stages)
    fig = _hbars(chart, figsize)
    ax = fig.axes[0]
    ax.set_title(chart.title)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def segment_figure(segments: pd.DataFrame, *, figsize: tuple[float, float] = (7.0, 3.2)) -> Figure:
    """Draw each segment's revenue over the horizon: P50 bars with P10–P90 ranges.

    Parameters
    ----------
    segments
        Output of :func:`crmkit.apps.dashboard.segment_contributions`.
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    chart = cd.segment_data(segments)
    fig = _hbars(chart, figsize, alpha=0.8)
    fig.axes[0].set_title(f"{chart.title} (P50, P10–P90)")
    return fig
