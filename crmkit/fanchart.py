"""Forecast figures: the fan chart by period and source, and its two companions.

Every function takes the plain tables of :mod:`crmkit.dashboard` and returns a new
:class:`matplotlib.figure.Figure` without touching pyplot's global state, so the figures
render the same under any backend (Agg in reports and tests, PNG images in Voilà).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

#: Colour of each revenue source.
SOURCE_COLORS = {
    "total": "#1f4e79",
    "pipeline": "#2a7f62",
    "new_business": "#b5651d",
    "repeat": "#6a3d9a",
}
_NAMES = {
    "pipeline": "Open pipeline",
    "new_business": "New business",
    "repeat": "Repeat customers",
    "total": "Total",
}
_ACTUAL_COLOR = "#222222"
_TARGET_COLOR = "#c0392b"


def short_amount(x: float, _pos: object = None) -> str:
    """Format an amount briefly for an axis: 950, 12k, 4.5M."""
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:.1f}B"
    if a >= 1e6:
        return f"{x / 1e6:.1f}M"
    if a >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes.

    Parameters
    ----------
    fig
        The figure.
    dpi
        Resolution in dots per inch.

    Returns
    -------
    bytes

    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fan(ax: Axes, data: pd.DataFrame, source: str, x: dict[str, int], *, target: bool) -> None:
    """Draw one source's bands, median, actuals and target on an axis."""
    color = SOURCE_COLORS.get(source, "#444444")
    d = data[data["source"] == source]
    fc = d[d["kind"] == "forecast"]
    past = d[d["kind"] == "actual"]
    if not past.empty:
        ax.plot(
            [x[p] for p in past["period"]],
            past["actual"],
            color=_ACTUAL_COLOR,
            marker="o",
            ms=3,
            lw=1.4,
            label=str(past["actual_label"].iloc[0]) if "actual_label" in past else "actual",
        )
    if not fc.empty:
        xs = np.array([x[p] for p in fc["period"]])
        ax.fill_between(xs, fc["p10"], fc["p90"], color=color, alpha=0.18, lw=0, label="P10–P90")
        ax.fill_between(xs, fc["p25"], fc["p75"], color=color, alpha=0.32, lw=0, label="P25–P75")
        ax.plot(xs, fc["p50"], color=color, lw=2, marker="o", ms=3, label="P50")
        closed = fc["closed_to_date"].to_numpy(dtype=float)
        if np.nansum(closed) > 0:
            ax.scatter(
                xs[closed > 0], closed[closed > 0], marker="_", s=160, color=_ACTUAL_COLOR,
                label="won so far", zorder=3,
            )  # fmt: skip
        if target and fc["target"].notna().any():
            t = fc[fc["target"].notna()]
            tx = np.array([x[p] for p in t["period"]])
            ax.hlines(
                t["target"], tx - 0.4, tx + 0.4, colors=_TARGET_COLOR, linestyles="--", lw=1.5,
                label="target (% = P(reach))",
            )  # fmt: skip
            for xi, (tv, pt) in zip(tx, zip(t["target"], t["p_target"], strict=True), strict=True):
                if np.isfinite(pt):
                    ax.annotate(
                        f"{100 * pt:.0f}%", (xi, tv), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, color=_TARGET_COLOR,
                    )  # fmt: skip
    ax.set_title(_NAMES.get(source, source), fontsize=10 if not target else 12)
    ax.yaxis.set_major_formatter(FuncFormatter(short_amount))
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)


def fan_chart(
    data: pd.DataFrame,
    *,
    title: str | None = None,
    sources: tuple[str, ...] = ("pipeline", "new_business", "repeat"),
    figsize: tuple[float, float] = (11.0, 5.2),
) -> Figure:
    """Draw the forecast as a fan chart: total on the left, one small chart per source.

    Parameters
    ----------
    data
        Output of :func:`crmkit.dashboard.fan_data`: per (period, source) the actuals of past
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

    """
    fig = Figure(figsize=figsize, layout="constrained")
    present = [s for s in sources if s in set(data["source"])]
    periods = list(dict.fromkeys(data.sort_values("period", kind="stable")["period"]))
    x = {p: i for i, p in enumerate(periods)}
    n_rows = max(len(present), 1)
    grid = fig.add_gridspec(n_rows, 2, width_ratios=[2.2, 1.0])
    main = fig.add_subplot(grid[:, 0])
    _fan(main, data, "total", x, target=True)
    main.set_xticks(range(len(periods)), periods, rotation=45, ha="right")
    main.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
    # the small panels share the periods they have data for (often the forecast only)
    own = sorted(set(data.loc[data["source"].isin(present), "period"]))
    for i, s in enumerate(present):
        ax = fig.add_subplot(grid[i, 1])
        _fan(ax, data, s, {p: j for j, p in enumerate(own)}, target=False)
        ax.set_xticks(range(len(own)), own, rotation=45, ha="right", fontsize=8)
        ax.tick_params(labelbottom=i == len(present) - 1)
    if title:
        fig.suptitle(title)
    return fig


def stage_rates_figure(
    stages: pd.DataFrame, *, figsize: tuple[float, float] = (7.0, 3.6)
) -> Figure:
    """Compare configured and learned win rates by stage (learned with its P10–P90 range).

    Parameters
    ----------
    stages
        Output of :func:`crmkit.dashboard.pipeline_by_stage`.
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    labels = [str(s) for s in stages["stage"]] if "stage" in stages else []
    y = np.arange(len(labels))
    if len(labels):
        ax.barh(y + 0.2, stages["configured"], height=0.4, color="#b0b7c3", label="configured")
        if "learned_mean" in stages:
            lo = stages["learned_mean"] - stages.get("learned_p10", stages["learned_mean"])
            hi = stages.get("learned_p90", stages["learned_mean"]) - stages["learned_mean"]
            ax.barh(
                y - 0.2, stages["learned_mean"], height=0.4, color=SOURCE_COLORS["pipeline"],
                xerr=np.vstack([lo, hi]), capsize=3, label="learned (P10–P90)",
            )  # fmt: skip
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title("Win rate by stage")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def segment_figure(segments: pd.DataFrame, *, figsize: tuple[float, float] = (7.0, 3.2)) -> Figure:
    """Draw each segment's revenue over the horizon: P50 bars with P10–P90 ranges.

    Parameters
    ----------
    segments
        Output of :func:`crmkit.dashboard.segment_contributions`.
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(segments))
    if len(segments):
        err = np.vstack([segments["p50"] - segments["p10"], segments["p90"] - segments["p50"]])
        ax.barh(y, segments["p50"], xerr=err, capsize=3, color=SOURCE_COLORS["total"], alpha=0.8)
    ax.set_yticks(y, [str(s) for s in segments.get("segment", [])])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(short_amount))
    ax.set_title("Revenue by segment over the horizon (P50, P10–P90)")
    return fig
