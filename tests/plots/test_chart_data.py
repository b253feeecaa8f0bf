"""The charts' numbers are computed once, and the matplotlib and SVG figures draw the same ones."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from crmkit.apps import dashboard as db
from crmkit.plots import chart_data as cd
from crmkit.plots import fanchart
from crmkit.plots import svg as fanchart_svg


def _rows(fan: pd.DataFrame, source: str, kind: str) -> pd.DataFrame:
    return fan[(fan["source"] == source) & (fan["kind"] == kind)]


# ------------------------------------------------------------------------------ the numbers
def test_fan_chart_data_takes_every_number_from_the_table(fan) -> None:
    chart = cd.fan_chart_data(fan)
    assert chart.periods == sorted(set(fan["period"]))
    assert [p.source for p in chart.panels] == ["pipeline", "new_business", "repeat"]
    assert chart.total.title == "Total" and chart.panels[0].title == "Open pipeline"
    assert chart.total.color == cd.SOURCE_COLORS["total"]
    fc = _rows(fan, "total", "forecast")
    assert chart.total.forecast_periods == list(fc["period"])
    for q in ("p10", "p25", "p50", "p75", "p90"):
        np.testing.assert_allclose(chart.total.quantiles[q], fc[q])
    np.testing.assert_allclose(chart.total.closed, fc["closed_to_date"])
    assert chart.total.won.tolist() == (fc["closed_to_date"] > 0).tolist()
    np.testing.assert_allclose(chart.total.target, fc["target"])
    np.testing.assert_allclose(chart.total.p_target, fc["p_target"])
    assert chart.total.target_labels == [f"{100 * p:.0f}%" for p in fc["p_target"]]
    past = _rows(fan, "total", "actual")
    assert chart.total.actual_periods == list(past["period"])
    np.testing.assert_allclose(chart.total.actual, past["actual"])
    assert chart.total.actual_label == "actual"
    top = max(fc["p90"].max(), past["actual"].max(), fc["target"].max())
    assert chart.total.ymax == pytest.approx(top)
    # the small panels share their periods and never show the target
    pipe = chart.panels[0]
    assert chart.panel_periods == pipe.periods == sorted(set(fan["period"]))
    assert pipe.target_periods == [] and pipe.target.size == 0
    np.testing.assert_allclose(pipe.quantiles["p50"], _rows(fan, "pipeline", "forecast")["p50"])


def test_fan_chart_data_sources_targets_and_won_deals(fan) -> None:
    chart = cd.fan_chart_data(fan, sources=("repeat", "nonexistent"))
    assert [p.source for p in chart.panels] == ["repeat"]
    only_fc = fan[fan["kind"] == "forecast"]
    chart = cd.fan_chart_data(only_fc.assign(target=np.nan))
    assert chart.total.target_periods == [] and chart.total.actual_periods == []
    assert chart.panel_periods == sorted(set(only_fc["period"]))
    # part of the targets missing, one P(reach) unknown
    fc = _rows(fan, "total", "forecast")
    part = fan.copy()
    part.loc[fc.index[0], "target"] = np.nan
    part.loc[fc.index[1], "p_target"] = np.nan
    total = cd.fan_chart_data(part).total
    assert total.target_periods == list(fc["period"].iloc[1:])
    assert total.target_labels[0] == "" and total.target_labels[1].endswith("%")
    # won deals recorded instead of actual revenue
    won = fan.assign(actual_label=fan["actual_label"].where(fan["kind"] != "actual", "won deals"))
    assert cd.fan_chart_data(won).total.actual_label == "won deals"
    # no rows at all: nothing drawn, no axis height
    empty = cd.fan_chart_data(fan.iloc[0:0])
    assert empty.periods == [] and empty.panels == [] and np.isnan(empty.total.ymax)


def test_stage_rates_data(snap) -> None:
    stages = db.pipeline_by_stage(snap)
    chart = cd.stage_rates_data(stages)
    assert chart.labels == list(stages["stage"]) and chart.share and chart.xmax == 1.0
    conf, learned = chart.series
    assert (conf.name, learned.name) == ("configured", "learned (P10–P90)")
    np.testing.assert_allclose(conf.values, stages["configured"])
    assert conf.lo is None and conf.hi is None
    np.testing.assert_allclose(learned.values, stages["learned_mean"])
    np.testing.assert_allclose(learned.lo, stages["learned_p10"])
    np.testing.assert_allclose(learned.hi, stages["learned_p90"])
    assert chart.tick_label(0.25) == "25%"
    # without P10 / P90 the range collapses to the mean; without learned rates one series
    bare = cd.stage_rates_data(stages.drop(columns=["learned_p10", "learned_p90"]))
    np.testing.assert_allclose(bare.series[1].lo, stages["learned_mean"])
    only = cd.stage_rates_data(stages[["stage", "configured"]])
    assert [s.name for s in only.series] == ["configured"]
    assert cd.stage_rates_data(pd.DataFrame()).series == []


def test_segment_data(snap) -> None:
    seg = db.segment_contributions(snap)
    chart = cd.segment_data(seg)
    assert chart.labels == list(seg["segment"]) and not chart.share
    (s,) = chart.series
    np.testing.assert_allclose(s.values, seg["p50"])
    np.testing.assert_allclose(s.lo, seg["p10"])
    np.testing.assert_allclose(s.hi, seg["p90"])
    assert chart.xmax == pytest.approx(seg["p90"].max())
    assert chart.tick_label(1_250_000) == "1.25M"
    empty = cd.segment_data(seg.iloc[0:0])
    assert empty.labels == [] and empty.series == [] and empty.xmax == 1.0


def test_share_labels() -> None:
    assert cd.share_label(0.734) == "73%" and cd.share_label(float("nan")) == ""


# ------------------------------------------------------- both renderers draw the same numbers
def _svg_panels(text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(text)
    return {g.get("data-source"): g for g in root.iter() if g.get("class") == "crmkit-fan-panel"}


def _svg_one(panel: ET.Element, css: str) -> ET.Element:
    return next(e for e in panel.iter() if e.get("class") == css)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def test_matplotlib_and_svg_fan_charts_draw_the_same_numbers(fan) -> None:
    chart = cd.fan_chart_data(fan)
    fig = fanchart.fan_chart(fan)
    svg = _svg_panels(fanchart_svg.fan_chart_svg(fan))
    panels = [chart.total, *chart.panels]
    assert [ax.get_title() for ax in fig.axes] == [p.title for p in panels]
    assert list(svg) == [p.source for p in panels]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == chart.periods
    for ax, panel in zip(fig.axes, panels, strict=True):
        lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        drawn = svg[panel.source]
        checks = [("P50", "crmkit-fan-p50", panel.quantiles["p50"])]
        if len(panel.actual):
            checks.append(("actual", "crmkit-fan-actual", panel.actual))
        else:  # a source without past revenue: neither rendering draws actuals
            assert "actual" not in lines
            assert not any(e.get("class") == "crmkit-fan-actual" for e in drawn.iter())
        for label, css, want in checks:
            np.testing.assert_allclose(lines[label], want)
            values = _floats(_svg_one(drawn, css).get("data-values"))
            np.testing.assert_allclose(values, want, atol=0.01)
    mpl_targets = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    mpl_t = [seg[0][1] for seg in mpl_targets[0].get_segments()]
    svg_t = [float(e.get("data-value")) for e in svg["total"].iter()
             if e.get("class") == "crmkit-fan-target"]  # fmt: skip
    np.testing.assert_allclose(mpl_t, chart.total.target)
    np.testing.assert_allclose(svg_t, chart.total.target, atol=0.01)
    assert [t.get_text() for t in fig.axes[0].texts] == chart.total.target_labels


def test_matplotlib_and_svg_bar_charts_draw_the_same_numbers(snap) -> None:
    for table, data, figure, svg in (
        (db.pipeline_by_stage(snap), cd.stage_rates_data, fanchart.stage_rates_figure,
         fanchart_svg.stage_rates_svg),
        (db.segment_contributions(snap), cd.segment_data, fanchart.segment_figure,
         fanchart_svg.segment_svg),
    ):  # fmt: skip
        chart = data(table)
        ax = figure(table).axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == chart.labels
        bars = [e for e in ET.fromstring(svg(table)).iter() if e.get("class") == "crmkit-bar"]
        n = len(chart.labels)
        for i, s in enumerate(chart.series):
            mpl = [p.get_width() for p in ax.patches[i * n : (i + 1) * n]]
            drawn = [float(b.get("data-value")) for b in bars if b.get("data-series") == s.name]
            np.testing.assert_allclose(mpl, s.values)
            np.testing.assert_allclose(drawn, s.values, atol=1e-4)


def test_both_renderers_draw_what_chart_data_returns(fan, snap, monkeypatch) -> None:
    """Change the numbers in chart_data only: both pictures follow, so neither computes its own."""
    real_fan = cd.fan_chart_data

    def doubled(data, sources=cd.PANEL_SOURCES):
        chart = real_fan(data, sources)
        q = {k: 2 * v for k, v in chart.total.quantiles.items()}
        return dataclasses.replace(chart, total=dataclasses.replace(chart.total, quantiles=q))

    monkeypatch.setattr(cd, "fan_chart_data", doubled)
    want = 2 * _rows(fan, "total", "forecast")["p50"].to_numpy()
    p50 = next(ln for ln in fanchart.fan_chart(fan).axes[0].get_lines() if ln.get_label() == "P50")
    np.testing.assert_allclose(p50.get_ydata(), want)
    svg = _svg_panels(fanchart_svg.fan_chart_svg(fan))["total"]
    np.testing.assert_allclose(
        _floats(_svg_one(svg, "crmkit-fan-p50").get("data-values")), want, atol=0.01
    )
    made = cd.BarChart(
        "made up", ["a", "b"], [cd.BarSeries("s", "#000000", np.array([0.3, 0.6]))],
        share=True, xmax=1.0,
    )  # fmt: skip
    for name in ("stage_rates_data", "segment_data"):
        monkeypatch.setattr(cd, name, lambda _table: made)
    stages = db.pipeline_by_stage(snap)
    segs = db.segment_contributions(snap)
    for fig in (fanchart.stage_rates_figure(stages), fanchart.segment_figure(segs)):
        np.testing.assert_allclose([p.get_width() for p in fig.axes[0].patches], [0.3, 0.6])
    for text in (fanchart_svg.stage_rates_svg(stages), fanchart_svg.segment_svg(segs)):
        bars = [e for e in ET.fromstring(text).iter() if e.get("class") == "crmkit-bar"]
        assert [(b.get("data-label"), float(b.get("data-value"))) for b in bars] == [
            ("a", 0.3), ("b", 0.6),
        ]  # fmt: skip
