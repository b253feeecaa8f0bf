"""Marketing figures: contributions, ROAS, response curves, scenarios, allocation, campaigns.

Every function takes the DataFrame a crmkit function returned and gives a new
:class:`matplotlib.figure.Figure` without touching pyplot's global state, like
:mod:`crmkit.plots.segments`. Every model figure shows its credible interval. Axis ticks
come from :mod:`crmkit.plots.format` (never two equal labels); ``outcome`` names what the
marketing-mix model was fitted on (``"new deals"``, ``"revenue"``) in the axis labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crmkit.plots.format import amount_formatter, format_numbers, number_formatter, rate_scale
from crmkit.plots.segments import FIGSIZE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

#: Colour of each channel, cycled in the order the channels come.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _colors(names) -> dict[str, str]:
    """Channel -> colour, stable for a sorted set of names."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def _money(ax, axis: str = "y") -> None:
    """Compact number labels (12k, 1.2M) on an axis."""
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(amount_formatter())


def _axes(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """A new figure with one axis."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _mean_band(
    ax: Axes,
    x: ArrayLike,
    mean: ArrayLike,
    lo: ArrayLike,
    hi: ArrayLike,
    *,
    color: str,
    label: str,
) -> None:
    """A mean line with its credible band shaded around it."""
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)


def _err(mid: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> list[ArrayLike]:
    """Distances below and above the middle value, as matplotlib's ``xerr`` / ``yerr``."""
    return [mid - lo, hi - mid]


def contribution_chart(
    summary: pd.DataFrame, *, outcome: str = "outcome", title: str | None = None
) -> Figure:
    """Weekly contribution of each channel with its credible band.

    Parameters
    ----------
    summary
        :meth:`~crmkit.models.mmm.model.MarketingMixModel.contribution_summary` output.
    outcome
        What the model's target counts (``"new deals"``, ``"revenue"``), for the axis label.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig, ax = _axes()
    colors = _colors(summary["channel"])
    for ch, g in summary.groupby("channel", sort=True):
        _mean_band(ax, g["date"], g["mean"], g["lo"], g["hi"], color=colors[ch], label=str(ch))
    ax.set_ylabel(f"contribution: {outcome} per week")
    _money(ax)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title or "Channel contributions (mean and credible band)")
    fig.autofmt_xdate()
    return fig


def roas_chart(roas: pd.DataFrame, *, outcome: str = "outcome", title: str | None = None) -> Figure:
    """ROAS and marginal ROAS per channel with credible intervals.

    The axis fits the data: ROAS far below one (new deals per unit spent) are drawn per
    1k or 1M spent (:func:`crmkit.plots.format.rate_scale`), each bar is labelled with its
    mean, and the break-even line (ROAS 1) is drawn only when it falls near the data; else
    the axis label says where it is.

    Parameters
    ----------
    roas
        :meth:`~crmkit.models.mmm.model.MarketingMixModel.roas` output.
    outcome
        What the model's target counts (``"new deals"``, ``"revenue"``), for the axis label.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig, ax = _axes()
    y = np.arange(len(roas))
    cols = [f"{n}{k}" for n in ("roas", "mroas") for k in ("", "_lo", "_hi")]
    factor, per = rate_scale(roas[cols].to_numpy(float).ravel())
    means = np.concatenate([roas["roas"].to_numpy(float), roas["mroas"].to_numpy(float)])
    labels = format_numbers(means * factor)
    for i, (off, name, label) in enumerate(
        ((-0.18, "roas", "ROAS"), (0.18, "mroas", "marginal ROAS"))
    ):
        mid, lo, hi = (roas[f"{name}{k}"].to_numpy(float) * factor for k in ("", "_lo", "_hi"))
        ax.barh(
            y + off,
            mid,
            height=0.34,
            xerr=_err(mid, lo, hi),
            capsize=3,
            label=label,
            alpha=0.85 if name == "roas" else 0.5,
        )
        for yi, top, text in zip(y + off, hi, labels[i * len(y) : (i + 1) * len(y)], strict=True):
            ax.annotate(f" {text}", (top, yi), va="center", fontsize=7)
    top = float(np.nanmax(roas[cols].to_numpy(float) * factor, initial=0.0))
    top = top if top > 0 else 1.0
    breakeven = 1.0 * factor
    note = ""
    if breakeven <= 2.5 * top:
        ax.axvline(breakeven, color="grey", lw=0.8, ls="--")
        top = max(top, breakeven)
    else:
        note = f"; break-even ({breakeven:,.0f}) is {breakeven / top:,.0f}x the largest value"
    ax.set_xlim(min(0.0, ax.get_xlim()[0]), top * 1.25)
    ax.xaxis.set_major_formatter(number_formatter())
    ax.set_yticks(y, roas["channel"].astype(str))
    ax.set_xlabel(f"{outcome} per {per} spent{note}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "Return on ad spend (bars: mean; whiskers: credible interval)")
    return fig


def response_curve_chart(
    curves: pd.DataFrame, *, current: dict[str, float] | None = None, title: str | None = None
) -> Figure:
    """Steady-state weekly response against weekly spend, per channel, with bands.

    Parameters
    ----------
    curves
        :meth:`~crmkit.models.mmm.model.MarketingMixModel.response_curves` output.
    current
        ``{channel: weekly spend}`` marked on each curve.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig, ax = _axes()
    colors = _colors(curves["channel"])
    for ch, g in curves.groupby("channel", sort=True):
        _mean_band(ax, g["spend"], g["mean"], g["lo"], g["hi"], color=colors[ch], label=str(ch))
        if current and ch in current:
            ax.axvline(current[ch], color=colors[ch], ls=":", lw=1)
    ax.set_xlabel("weekly spend")
    ax.set_ylabel("weekly contribution")
    _money(ax)
    _money(ax, "x")
    ax.legend(fontsize="small")
    ax.set_title(title or "Response curves (diminishing returns)")
    return fig


def scenario_chart(
    weekly: pd.DataFrame, *, outcome: str = "outcome", title: str | None = None
) -> Figure:
    """Plan against baseline per week (top) and their difference (bottom), with bands.

    Parameters
    ----------
    weekly
        The ``weekly`` frame of :func:`crmkit.models.mmm.scenario.scenario`.
    outcome
        What the model's target counts (``"new deals"``, ``"revenue"``), for the axis labels.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * 1.3))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for name, color in (("baseline", "grey"), ("plan", "#1f77b4")):
        mean, lo, hi = (weekly[f"{name}_{k}"] for k in ("mean", "lo", "hi"))
        _mean_band(top, weekly["date"], mean, lo, hi, color=color, label=name)
    top.legend(fontsize="small")
    top.set_ylabel(f"{outcome} per week")
    _money(top)
    bottom.bar(weekly["date"], weekly["difference_mean"], width=5, color="#2ca02c")
    bottom.errorbar(
        weekly["date"],
        weekly["difference_mean"],
        yerr=_err(*(weekly[f"difference_{k}"] for k in ("mean", "lo", "hi"))),
        fmt="none",
        ecolor="black",
        capsize=2,
        lw=0.8,
    )
    bottom.axhline(0, color="grey", lw=0.8)
    bottom.set_ylabel("plan − baseline")
    _money(bottom)
    top.set_title(title or "Spend scenario: forecast with credible band")
    fig.autofmt_xdate()
    return fig


def plan_forecast_chart(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Total revenue per period for the baseline and the plan, with their ranges.

    Parameters
    ----------
    table
        :meth:`crmkit.forecast.plans.PlanForecast.summary` output.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig, ax = _axes()
    x = np.arange(len(table))
    for name, color, dx in (("baseline", "grey", -0.15), ("plan", "#1f77b4", 0.15)):
        mid = table[f"{name}_p50"]
        ax.errorbar(
            x + dx,
            mid,
            yerr=_err(mid, table[f"{name}_lo"], table[f"{name}_hi"]),
            fmt="o",
            color=color,
            capsize=3,
            label=f"{name} (median, range)",
        )
    ax.set_xticks(x, table["period"].astype(str))
    ax.set_ylabel("revenue per period (total forecast)")
    _money(ax)
    ax.legend(fontsize="small")
    ax.set_title(title or "Revenue forecast: spend plan against baseline")
    return fig


def allocation_chart(allocation: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Current and optimal weekly spend per channel.

    Parameters
    ----------
    allocation
        The ``allocation`` frame of :func:`crmkit.models.mmm.budget.optimize_budget`.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    fig, ax = _axes()
    x = np.arange(len(allocation))
    ax.bar(x - 0.2, allocation["current"], width=0.4, label="current", color="grey")
    ax.bar(x + 0.2, allocation["optimal"], width=0.4, label="optimal", color="#1f77b4")
    ax.set_xticks(x, allocation["channel"].astype(str))
    ax.set_ylabel("weekly spend")
    _money(ax)
    ax.legend(fontsize="small")
    ax.set_title(title or "Budget allocation")
    return fig


def campaign_chart(
    results: pd.DataFrame, *, metric: str = "expected_roi", top: int = 25, title: str | None = None
) -> Figure:
    """A campaign metric with its credible interval, one bar per campaign, coloured by channel.

    Parameters
    ----------
    results
        :func:`crmkit.models.mmm.campaigns.campaign_results` output, already filtered and sorted
        (e.g.
        by :func:`crmkit.models.mmm.campaigns.campaign_table`); rows are drawn top to bottom.
    metric
        A column with ``_lo`` / ``_hi`` companions (``expected_roi``, ``win_rate``, ...).
    top
        Draw at most this many campaigns.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    """
    rows = results.head(top).reset_index(drop=True)
    fig, ax = _axes((FIGSIZE[0], max(3.0, 0.28 * len(rows) + 1.2)))
    colors = _colors(results["channel"])
    y = np.arange(len(rows))[::-1]
    mid = rows[metric].to_numpy(float)
    err = np.vstack(_err(mid, *(rows[f"{metric}_{k}"].to_numpy(float) for k in ("lo", "hi"))))
    ax.barh(y, np.nan_to_num(mid), color=[colors[c] for c in rows["channel"]], alpha=0.8)
    ax.errorbar(
        np.nan_to_num(mid),
        y,
        xerr=np.nan_to_num(err),
        fmt="none",
        ecolor="black",
        capsize=2,
        lw=0.8,
    )
    ax.set_yticks(
        y,
        [f"{n} ({c})" for n, c in zip(rows["name"], rows["channel"], strict=True)],
        fontsize="small",
    )
    ax.axvline(0, color="grey", lw=0.8)
    ax.xaxis.set_major_formatter(number_formatter())
    ax.set_xlabel(metric.replace("_", " "))
    handles = [ax.bar(0, 0, color=c, label=ch) for ch, c in colors.items()]
    ax.legend(handles=handles, fontsize="small", loc="lower right")
    ax.set_title(title or f"Campaigns: {metric.replace('_', ' ')} (bar: mean; whisker: interval)")
    fig.tight_layout()
    return fig
