"""The numbers each forecast figure draws, computed once for both of its renderings.

:mod:`crmkit.plots.fanchart` draws with matplotlib (the report, the notebooks) and
:mod:`crmkit.plots.svg` writes SVG by hand (the manager app). Both take the plain tables of
:mod:`crmkit.apps.dashboard`, pass them through the functions here and only draw what comes back:
which periods and panels, the quantile bands, actuals, revenue won so far, targets and
P(reach), the bars of the companion charts with their ranges, the labels, colours and how
amounts are written. So the two pictures of one table show the same numbers.

Only numpy and pandas are imported here, never matplotlib (the app page must stay light).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmkit.forecast.axes import SOURCE_NAMES
from crmkit.plots.format import format_amount

#: Colour of each revenue source.
SOURCE_COLORS = {
    "total": "#1f4e79",
    "pipeline": "#2a7f62",
    "new_business": "#b5651d",
    "repeat": "#6a3d9a",
}
#: Colour of a source without its own.
OTHER_COLOR = "#444444"
#: Colour of past actual revenue and of revenue won so far.
ACTUAL_COLOR = "#222222"
#: Colour of the target and its P(reach).
TARGET_COLOR = "#c0392b"
#: Colour of the configured win rates.
CONFIGURED_COLOR = "#b0b7c3"
#: The sources drawn in small panels beside the total, in order.
PANEL_SOURCES = ("pipeline", "new_business", "repeat")
#: Legend labels shared by both renderings.
P50_LABEL = "P50"
WON_LABEL = "won so far"
TARGET_LABEL = "target (% = P(reach))"


@dataclass(frozen=True)
class Band:
    """A quantile band of the fan: its columns, opacity and legend label."""

    lo: str
    hi: str
    alpha: float
    label: str

    @property
    def name(self) -> str:
        """Short ASCII name, e.g. ``"p10-p90"``."""
        return f"{self.lo}-{self.hi}"


#: The fan's bands, outer first.
BANDS = (Band("p10", "p90", 0.18, "P10–P90"), Band("p25", "p75", 0.32, "P25–P75"))
#: The quantile columns of a forecast row.
QUANTILES = ("p10", "p25", "p50", "p75", "p90")


def share_label(p: float, _pos: object = None) -> str:
    """Format a probability or rate as a whole percentage (``73%``); empty when not finite."""
    return f"{100 * p:.0f}%" if np.isfinite(p) else ""


def _floats(values: object) -> np.ndarray:
    """Numbers as a float array (text that is no number becomes NaN)."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


@dataclass(frozen=True)
class FanPanel:
    """What one source's panel of the fan chart shows.

    ``quantiles``, ``closed`` are aligned with ``forecast_periods``; ``target``,
    ``p_target`` and ``target_labels`` with ``target_periods``; ``actual`` with
    ``actual_periods``.
    """

    source: str
    title: str
    color: str
    periods: list[str]
    forecast_periods: list[str] = field(default_factory=list)
    quantiles: dict[str, np.ndarray] = field(default_factory=dict)
    closed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    target_periods: list[str] = field(default_factory=list)
    target: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_target: np.ndarray = field(default_factory=lambda: np.zeros(0))
    actual_periods: list[str] = field(default_factory=list)
    actual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    actual_label: str = "actual"

    @property
    def won(self) -> np.ndarray:
        """Which forecast periods already have revenue won (``closed > 0``)."""
        return np.isfinite(self.closed) & (self.closed > 0)

    @property
    def target_labels(self) -> list[str]:
        """P(reach) of each target as text (``"95%"``; empty when unknown)."""
        return [share_label(p) for p in self.p_target]

    @property
    def ymax(self) -> float:
        """Largest value drawn (P90, closed, actual, target), or NaN when there is none."""
        vals = np.concatenate([self.quantiles.get("p90", np.zeros(0)), self.closed,
                               self.actual, self.target])  # fmt: skip
        vals = vals[np.isfinite(vals)]
        return float(vals.max()) if vals.size else float("nan")


@dataclass(frozen=True)
class FanChart:
    """The fan chart: the total's panel over ``periods`` and one small panel per source."""

    periods: list[str]
    total: FanPanel
    panels: list[FanPanel]

    @property
    def panel_periods(self) -> list[str]:
        """The periods the small panels share (often the forecast periods only)."""
        return self.panels[0].periods if self.panels else []


def fan_panel(data: pd.DataFrame, source: str, periods: list[str], *, target: bool) -> FanPanel:
    """Collect one source's numbers from :func:`crmkit.apps.dashboard.fan_data` output.

    Parameters
    ----------
    data
        Output of :func:`crmkit.apps.dashboard.fan_data`.
    source
        The source (``"total"``, ``"pipeline"``, ...).
    periods
        The panel's periods in drawing order; rows of other periods are left out.
    target
        Whether the panel shows the target and P(reach) (the total's does).

    Returns
    -------
    FanPanel

    """
    d = data[(data["source"] == source) & data["period"].astype(str).isin(periods)]
    fc = d[d["kind"] == "forecast"]
    past = d[d["kind"] == "actual"] if "actual" in d else d.iloc[0:0]
    fc_periods = fc["period"].astype(str).tolist()
    kw: dict = {
        "forecast_periods": fc_periods,
        "quantiles": {q: _floats(fc[q]) for q in QUANTILES},
        "closed": _floats(fc["closed_to_date"]) if "closed_to_date" in fc else np.zeros(len(fc)),
        "actual_periods": past["period"].astype(str).tolist(),
        "actual": _floats(past["actual"]) if "actual" in past else np.zeros(0),
    }
    if "actual_label" in past and not past.empty:
        kw["actual_label"] = str(past["actual_label"].iloc[0])
    if target and "target" in fc:
        tv = _floats(fc["target"])
        has = np.isfinite(tv)
        pt = _floats(fc["p_target"]) if "p_target" in fc else np.full(len(fc), np.nan)
        kw.update(
            target_periods=[p for p, h in zip(fc_periods, has, strict=True) if h],
            target=tv[has],
            p_target=pt[has],
        )
    return FanPanel(
        source=source,
        title=SOURCE_NAMES.get(source, source),
        color=SOURCE_COLORS.get(source, OTHER_COLOR),
        periods=list(periods),
        **kw,
    )


def fan_chart_data(data: pd.DataFrame, sources: tuple[str, ...] = PANEL_SOURCES) -> FanChart:
    """Collect what the fan chart draws: the total over every period and the sources' panels.

    Parameters
    ----------
    data
        Output of :func:`crmkit.apps.dashboard.fan_data`: per (period, source) the actuals of past
        periods and P10 / P25 / P50 / P75 / P90 of forecast periods, with target and
        P(target).
    sources
        The sources drawn beside the total (those absent from ``data`` are skipped).

    Returns
    -------
    FanChart
        Periods sorted; the total's panel with the target; one panel per present source,
        over the periods those sources have rows for.

    """
    present = [s for s in sources if s in set(data["source"])]
    periods = sorted(set(data["period"].astype(str)))
    own = sorted(set(data.loc[data["source"].isin(present), "period"].astype(str)))
    return FanChart(
        periods=periods,
        total=fan_panel(data, "total", periods, target=True),
        panels=[fan_panel(data, s, own, target=False) for s in present],
    )


@dataclass(frozen=True)
class BarSeries:
    """One series of horizontal bars: a value per label and an optional range."""

    name: str
    color: str
    values: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart: labels top to bottom, series per label, the axis' kind."""

    title: str
    labels: list[str]
    series: list[BarSeries]
    #: ``True``: values are rates from 0 to 1, shown as percentages; else amounts.
    share: bool
    #: The largest value the axis must reach.
    xmax: float

    def tick_label(self, v: float, _pos: object = None) -> str:
        """Axis and tooltip text of a value."""
        return share_label(v) if self.share else format_amount(v, compact=True)


def stage_rates_data(stages: pd.DataFrame) -> BarChart:
    """Collect the configured and learned win rates by stage (learned with P10–P90).

    Parameters
    ----------
    stages
        Output of :func:`crmkit.apps.dashboard.pipeline_by_stage` (stages in its order).

    Returns
    -------
    BarChart
        Series ``configured`` and ``learned (P10–P90)`` (the latter's range from
        ``learned_p10`` / ``learned_p90``, or the mean when absent), each when its column is.

    """
    labels = [str(s) for s in stages["stage"]] if "stage" in stages else []
    series = []
    if labels and "configured" in stages:
        series.append(BarSeries("configured", CONFIGURED_COLOR, _floats(stages["configured"])))
    if labels and "learned_mean" in stages:
        mean = _floats(stages["learned_mean"])
        lo = _floats(stages["learned_p10"]) if "learned_p10" in stages else mean
        hi = _floats(stages["learned_p90"]) if "learned_p90" in stages else mean
        series.append(BarSeries("learned (P10–P90)", SOURCE_COLORS["pipeline"], mean, lo=lo, hi=hi))
    return BarChart("Win rate by stage", labels, series, share=True, xmax=1.0)


def segment_data(segments: pd.DataFrame) -> BarChart:
    """Collect each segment's revenue over the horizon: P50 with its P10–P90 range.

    Parameters
    ----------
    segments
        Output of :func:`crmkit.apps.dashboard.segment_contributions` (largest first).

    Returns
    -------
    BarChart
        One series ``P50 (P10–P90)`` (none when there are no segments); ``xmax`` is the
        largest finite P90 (1 without one).

    """
    labels = [str(s) for s in segments.get("segment", [])]
    series = []
    xmax = 1.0
    if labels:
        p90 = _floats(segments["p90"])
        series.append(
            BarSeries(
                "P50 (P10–P90)", SOURCE_COLORS["total"], _floats(segments["p50"]),
                lo=_floats(segments["p10"]), hi=p90,
            )
        )  # fmt: skip
        finite = p90[np.isfinite(p90)]
        xmax = float(finite.max()) if finite.size else 1.0
    return BarChart("Revenue by segment over the horizon", labels, series, share=False, xmax=xmax)


#: Colours of the waterfall's totals, increases and decreases.
WATERFALL_COLORS = {"total": SOURCE_COLORS["total"], "up": "#2a7f62", "down": "#c0392b"}


@dataclass(frozen=True)
class Waterfall:
    """A waterfall's bars, top to bottom: each from ``lo`` to ``hi`` (totals start at 0)."""

    title: str
    #: What each bar is (unique).
    labels: list[str]
    #: ``"total"`` or ``"change"`` per bar.
    kinds: list[str]
    #: The total, or the change, of each bar.
    values: np.ndarray
    #: Where each bar starts and ends: a change runs from the running total before it to
    #: the one after it.
    start: np.ndarray
    end: np.ndarray
    #: Number of deals of each change (NaN when not counted).
    deals: np.ndarray

    @property
    def colors(self) -> list[str]:
        """Colour of each bar: totals, increases, decreases."""
        return [
            WATERFALL_COLORS["total"] if k == "total"
            else WATERFALL_COLORS["up" if v >= 0 else "down"]
            for k, v in zip(self.kinds, self.values, strict=True)
        ]  # fmt: skip

    @property
    def value_labels(self) -> list[str]:
        """Text of each bar's value: totals as amounts, changes signed (``+12,345``)."""
        return [
            format_amount(v) if k == "total" else ("+" if v > 0 else "") + format_amount(v)
            for k, v in zip(self.kinds, self.values, strict=True)
        ]

    @property
    def xmin(self) -> float:
        """Smallest value the axis must reach (0 or below)."""
        lows = np.minimum(self.start, self.end)
        return float(min(0.0, np.nanmin(lows))) if len(lows) else 0.0

    @property
    def xmax(self) -> float:
        """Largest value the axis must reach (1 at least)."""
        highs = np.maximum(self.start, self.end)
        return float(max(1.0, np.nanmax(highs))) if len(highs) else 1.0


def waterfall_data(steps: pd.DataFrame, *, title: str = "What changed") -> Waterfall:
    """Lay out a waterfall: totals from zero, each change from the running total.

    Parameters
    ----------
    steps
        :func:`crmkit.apps.changes.change_steps`: ``label``, ``kind`` (``"total"`` or
        ``"change"``), ``amount`` and optionally ``deals``, in order.
    title
        The chart's title.

    Returns
    -------
    Waterfall
        A total resets the running total to its amount; a change adds to it. Repeated
        labels get a number (``"other (2)"``) so that each bar is told apart.

    """
    labels, seen = [], {}
    for lab in steps.get("label", pd.Series(dtype=str)).astype(str):
        seen[lab] = seen.get(lab, 0) + 1
        labels.append(lab if seen[lab] == 1 else f"{lab} ({seen[lab]})")
    kinds = [str(k) for k in steps.get("kind", [])]
    values = _floats(steps.get("amount", []))
    start, end = np.zeros(len(values)), np.zeros(len(values))
    running = 0.0
    for i, (k, v) in enumerate(zip(kinds, values, strict=True)):
        if k == "total":
            start[i], end[i], running = 0.0, v, v
        else:
            start[i], end[i] = running, running + v
            running += v
    deals = _floats(steps["deals"]) if "deals" in steps else np.full(len(values), np.nan)
    return Waterfall(title, labels, kinds, values, start, end, deals)
