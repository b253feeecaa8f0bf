"""Model checks you can see: posterior predictive checks, rank and trace plots, LOO tables.

The figures draw the plain tables of :mod:`crmkit.forecast.checks` (stored in a snapshot's
``parameters["tables"]`` as ``model_checks`` and ``model_traces``), so the report and the
notebooks show them without the fitted models:

- :func:`ppc_figure`: one panel per check (monthly won revenue, wins per stage, new deals per
  month, repeat purchases per week), the observed values (dots) against the predicted P50
  with its P10–P90 and P5–P95 ranges; an observed value outside P5–P95 is a red dot.
- :func:`rank_figure`: per parameter, a histogram of the ranks of each chain's draws among
  all draws; chains that mix well give flat histograms at the dashed uniform line.
- :func:`trace_figure`: per parameter, each chain's draws in order.
- :func:`loo_table`: the LOO comparison of model variants, rounded and best first.

Every figure is a new :class:`matplotlib.figure.Figure` (pyplot's global state is not
touched); matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.plots.chart_data import ACTUAL_COLOR, SOURCE_COLORS, TARGET_COLOR
from crmkit.plots.format import amount_formatter, number_formatter

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "LOO_COLUMNS",
    "MISS_LABEL",
    "OBSERVED_LABEL",
    "PPC_COLUMNS",
    "TRACE_COLUMNS",
    "loo_table",
    "ppc_figure",
    "rank_counts",
    "rank_figure",
    "trace_figure",
]

#: Columns :func:`ppc_figure` reads
#: (:func:`crmkit.forecast.checks.posterior_predictive_checks`).
PPC_COLUMNS = ("check", "label", "observed", "p05", "p10", "p50", "p90", "p95", "inside90")
#: Columns :func:`rank_figure` and :func:`trace_figure` read
#: (:func:`crmkit.forecast.checks.trace_table`).
TRACE_COLUMNS = ("model", "parameter", "chain", "draw", "value")
#: Columns of :func:`crmkit.forecast.checks.compare_variants`, in the order shown.
LOO_COLUMNS = (
    "family", "variant", "elpd_loo", "se", "d_loo", "dse", "weight", "pareto_k_bad", "rank",
)  # fmt: skip
#: Legend label of observed values inside the predicted P5–P95 range.
OBSERVED_LABEL = "observed"
#: Legend label of observed values outside the predicted P5–P95 range (drawn red).
MISS_LABEL = "observed outside P5–P95"
#: Legend label of the predicted median.
P50_LABEL = "predicted P50"
#: Most x tick labels a panel writes (weeks and months beyond are thinned).
MAX_TICKS = 12
#: Panels per row of the rank and trace figures.
COLUMNS = 4
#: Colour of each chain, cycled.
CHAIN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_PREDICTED = SOURCE_COLORS["pipeline"]


def _require(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    """Raise a one-line error naming the columns ``table`` lacks, or when it has no rows."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CrmkitError(f"the {what} table lacks column(s) {', '.join(missing)}")
    if table.empty:
        raise CrmkitError(f"the {what} table is empty: nothing to draw")


def _grid(n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels in rows of ``ncols`` (unused cells hidden)."""
    from matplotlib.figure import Figure

    cols = max(1, min(ncols, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _thin_ticks(ax: Axes, labels: list[str]) -> None:
    """Label at most :data:`MAX_TICKS` evenly spaced x positions."""
    step = max(1, math.ceil(len(labels) / MAX_TICKS))
    pos = list(range(0, len(labels), step))
    ax.set_xticks(pos, [labels[i] for i in pos], rotation=45, ha="right", fontsize=8)


def _ppc_panel(ax: Axes, check: str, rows: pd.DataFrame) -> None:
    """Draw one check: P5–P95 and P10–P90 bars, the P50 and the observed dots."""
    x = np.arange(len(rows), dtype=float)
    p50 = rows["p50"].to_numpy(float)
    for lo, hi, width, label in (("p05", "p95", 1.2, "P5–P95"), ("p10", "p90", 4.0, "P10–P90")):
        err = [p50 - rows[lo].to_numpy(float), rows[hi].to_numpy(float) - p50]
        ax.errorbar(
            x, p50, yerr=err, fmt="none", ecolor=_PREDICTED, elinewidth=width,
            alpha=0.35 if lo == "p05" else 0.6, label=label,
        )  # fmt: skip
    ax.scatter(x, p50, marker="_", s=90, color=_PREDICTED, label=P50_LABEL, zorder=3)
    observed = rows["observed"].to_numpy(float)
    miss = ~rows["inside90"].astype(bool).to_numpy()
    ax.scatter(x[~miss], observed[~miss], s=18, color=ACTUAL_COLOR, label=OBSERVED_LABEL, zorder=4)
    if miss.any():
        ax.scatter(
            x[miss], observed[miss], s=40, color=TARGET_COLOR, edgecolors="black",
            linewidths=0.6, label=MISS_LABEL, zorder=5,
        )  # fmt: skip
    n_miss = int(miss.sum())
    ax.set_title(f"{check}: {n_miss} of {len(rows)} outside P5–P95", fontsize=10,
                 color=TARGET_COLOR if n_miss else "black")  # fmt: skip
    _thin_ticks(ax, [str(v) for v in rows["label"]])
    money = "revenue" in check
    ax.yaxis.set_major_formatter(amount_formatter() if money else number_formatter())
    ax.grid(axis="y", alpha=0.3)


def ppc_figure(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Draw the posterior predictive checks: observed against predicted, one panel per check.

    Parameters
    ----------
    table
        :func:`crmkit.forecast.checks.posterior_predictive_checks` (or the snapshot's
        ``model_checks`` records as a DataFrame): one row per check and label with
        ``observed``, ``p05``, ``p10``, ``p50``, ``p90``, ``p95`` and ``inside90``.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per check, in the order the checks first appear: the predicted P50 (a
        dash) with its P10–P90 (thick) and P5–P95 (thin) bars, and the observed values as
        dots, red (legend :data:`MISS_LABEL`) where they fall outside P5–P95. Each panel's
        title counts its misses.

    Raises
    ------
    CrmkitError
        The table lacks a column or has no rows.
    """
    _require(table, PPC_COLUMNS, "posterior predictive checks")
    checks = list(dict.fromkeys(table["check"]))
    fig, axes = _grid(len(checks), 2, (6.0, 3.4))
    for ax, check in zip(axes, checks, strict=True):
        _ppc_panel(ax, str(check), table[table["check"] == check])
    legend: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _parameters(traces: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, parameter) pairs in the order they first appear."""
    return list(dict.fromkeys(zip(traces["model"], traces["parameter"], strict=True)))


def rank_counts(values: np.ndarray, chains: np.ndarray, *, bins: int) -> dict:
    """Histogram of each chain's ranks among all draws of one parameter.

    Parameters
    ----------
    values, chains
        The draws and the chain of each (same length).
    bins
        Number of equal-width rank bins.

    Returns
    -------
    dict
        ``{chain: counts}`` (counts sum to the chain's draws) and ``"edges"``: the bins'
        edges on the rank scale ``0 .. len(values)``.
    """
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(len(values), dtype=float)
    edges = np.linspace(0, len(values), bins + 1)
    out: dict = {"edges": edges}
    for chain in sorted(set(chains.tolist())):
        out[chain] = np.histogram(ranks[chains == chain], bins=edges)[0]
    return out


def rank_figure(traces: pd.DataFrame, *, bins: int = 20, title: str | None = None) -> Figure:
    """Draw rank histograms per chain for each parameter: flat when the chains mix.

    Parameters
    ----------
    traces
        :func:`crmkit.forecast.checks.trace_table` (or the snapshot's ``model_traces``):
        ``model``, ``parameter``, ``chain``, ``draw``, ``value``.
    bins
        Rank bins per histogram.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (model, parameter) titled ``"<model>: <parameter>"``: a step
        histogram per chain (legend ``chain <c>``) of the ranks of its draws among all the
        parameter's draws, and a dashed line at the count a uniform histogram would have.
        A single chain (MAP + Laplace, ADVI) gives a flat histogram by construction.

    Raises
    ------
    CrmkitError
        The table lacks a column or has no rows.
    """
    _require(traces, TRACE_COLUMNS, "trace")
    pairs = _parameters(traces)
    fig, axes = _grid(len(pairs), COLUMNS, (3.2, 2.4))
    for ax, (model, param) in zip(axes, pairs, strict=True):
        rows = traces[(traces["model"] == model) & (traces["parameter"] == param)]
        chains = rows["chain"].to_numpy()
        counts = rank_counts(rows["value"].to_numpy(float), chains, bins=bins)
        edges = counts.pop("edges")
        for i, (chain, c) in enumerate(counts.items()):
            ax.stairs(c, edges, color=CHAIN_COLORS[i % len(CHAIN_COLORS)], label=f"chain {chain}")
        per_chain = len(rows) / max(len(counts), 1) / bins
        ax.axhline(per_chain, color="grey", ls="--", lw=1)
        ax.set_title(f"{model}: {param}", fontsize=9)
        ax.set_yticks([])
        ax.set_xlabel("rank", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=6, fontsize=8, frameon=False)
    several = traces["chain"].nunique() > 1
    default = (
        "Rank plots (flat when the chains agree)"
        if several
        else "Rank plots of one chain: flat by construction, no chains to compare"
    )
    fig.suptitle(title or default)
    return fig


def trace_figure(traces: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Draw each chain's draws in order for each parameter.

    Parameters
    ----------
    traces
        :func:`crmkit.forecast.checks.trace_table`: ``model``, ``parameter``, ``chain``,
        ``draw``, ``value``.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (model, parameter) titled ``"<model>: <parameter>"``, a line per
        chain (label ``chain <c>``) of its values by draw.

    Raises
    ------
    CrmkitError
        The table lacks a column or has no rows.
    """
    _require(traces, TRACE_COLUMNS, "trace")
    pairs = _parameters(traces)
    fig, axes = _grid(len(pairs), COLUMNS, (3.2, 2.2))
    for ax, (model, param) in zip(axes, pairs, strict=True):
        rows = traces[(traces["model"] == model) & (traces["parameter"] == param)]
        for i, (chain, part) in enumerate(rows.sort_values("draw").groupby("chain", sort=True)):
            ax.plot(
                part["draw"].to_numpy(), part["value"].to_numpy(float), lw=0.7, alpha=0.8,
                color=CHAIN_COLORS[i % len(CHAIN_COLORS)], label=f"chain {chain}",
            )  # fmt: skip
        ax.set_title(f"{model}: {param}", fontsize=9)
        ax.yaxis.set_major_formatter(number_formatter())
        ax.set_xlabel("draw", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=6, fontsize=8, frameon=False)
    fig.suptitle(title or "Traces (chains overlapping, no trend, when they agree)")
    return fig


def loo_table(compare: pd.DataFrame) -> pd.DataFrame:
    """The LOO comparison of model variants, ready to show: best variant of each family first.

    Parameters
    ----------
    compare
        :func:`crmkit.forecast.checks.compare_variants`: ``family``, ``variant``,
        ``elpd_loo``, ``se``, ``d_loo``, ``dse``, ``weight``, ``pareto_k_bad``, ``rank``.

    Returns
    -------
    pandas.DataFrame
        The same columns (in that order); families in the order they first appear, each
        sorted by ``elpd_loo`` (higher is better) from best to worst; ``elpd_loo``, ``se``,
        ``d_loo`` and ``dse`` rounded to 1 decimal, ``weight`` to 2, ``pareto_k_bad`` and
        ``rank`` whole numbers.

    Raises
    ------
    CrmkitError
        The table lacks a column.
    """
    missing = [c for c in LOO_COLUMNS if c not in compare.columns]
    if missing:
        raise CrmkitError(f"the LOO comparison table lacks column(s) {', '.join(missing)}")
    out = compare.loc[:, list(LOO_COLUMNS)].copy()
    order = {f: i for i, f in enumerate(dict.fromkeys(out["family"]))}
    out["_family"] = out["family"].map(order)
    out = out.sort_values(["_family", "elpd_loo"], ascending=[True, False], kind="stable")
    out = out.drop(columns="_family").reset_index(drop=True)
    for col in ("elpd_loo", "se", "d_loo", "dse"):
        out[col] = out[col].astype(float).round(1)
    out["weight"] = out["weight"].astype(float).round(2)
    for col in ("pareto_k_bad", "rank"):
        out[col] = out[col].astype("Int64")
    return out
