"""The waterfall of what changed: its bars run from the old total to the new total."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from crmkit.apps.changes import what_changed
from crmkit.plots import chart_data as cd
from crmkit.plots.waterfall import waterfall_figure, waterfall_svg
from tests.snapshot_factory import make_fake_snapshot


@pytest.fixture(scope="module")
def steps() -> pd.DataFrame:
    """What changed between two fake snapshots with different open deals."""
    old = make_fake_snapshot(seed=3, scale=0.9, forecast_call=True)
    new = make_fake_snapshot(seed=4, forecast_call=True)
    return what_changed(old, new)


def _bars(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # well-formed XML
    return [e for e in root.iter() if e.get("class") == "crmkit-waterfall-bar"]


def test_waterfall_bars_sum_from_the_old_total_to_the_new_total(steps) -> None:
    old, new = steps["amount"].iloc[0], steps["amount"].iloc[-1]
    chart = cd.waterfall_data(steps)
    assert chart.kinds[0] == chart.kinds[-1] == "total"
    assert (chart.start[0], chart.end[0]) == (0.0, pytest.approx(old))
    for i in range(1, len(chart.labels) - 1):  # each change starts where the last one ended
        assert chart.start[i] == pytest.approx(chart.end[i - 1])
        assert chart.end[i] - chart.start[i] == pytest.approx(chart.values[i])
    assert chart.end[-2] == pytest.approx(new)  # the last change lands on the new total
    assert old + chart.values[1:-1].sum() == pytest.approx(new)
    bars = _bars(waterfall_svg(steps))
    assert len(bars) == len(steps)
    assert [b.get("data-step") for b in bars] == list(steps["step"])
    frm = [float(b.get("data-from")) for b in bars]
    to = [float(b.get("data-to")) for b in bars]
    np.testing.assert_allclose(frm[1:-1], to[:-2], atol=0.01)
    assert to[-2] == pytest.approx(to[-1], abs=0.01) == pytest.approx(new, abs=0.01)


def test_waterfall_labels_are_unique(steps) -> None:
    labels = [b.get("data-label") for b in _bars(waterfall_svg(steps))]
    assert len(labels) == len(set(labels))
    twice = pd.DataFrame({"label": ["a", "won", "won", "b"], "kind": ["total", "change",
                          "change", "total"], "amount": [10.0, 2.0, -1.0, 11.0]})  # fmt: skip
    assert cd.waterfall_data(twice).labels == ["a", "won", "won (2)", "b"]


def test_waterfall_colours_and_texts_tell_up_from_down() -> None:
    steps = pd.DataFrame({"step": ["before", "won", "lost", "now"],
                          "label": ["before", "won <big>", "lost", "now"],
                          "kind": ["total", "change", "change", "total"],
                          "amount": [1000.0, 250.0, -400.0, 850.0]})  # fmt: skip
    chart = cd.waterfall_data(steps)
    assert chart.value_labels == ["1,000", "+250", "-400", "850"]
    assert chart.colors[1] == cd.WATERFALL_COLORS["up"]
    assert chart.colors[2] == cd.WATERFALL_COLORS["down"]
    svg = waterfall_svg(steps, title="A & B")
    assert "won &lt;big&gt;" in svg and "A &amp; B" in svg
    texts = [
        t.text for t in ET.fromstring(svg).iter() if t.get("class") == "crmkit-waterfall-value"
    ]
    assert texts == chart.value_labels


def test_waterfall_figure_draws_the_same_bars(steps) -> None:
    fig = waterfall_figure(steps)
    ax = fig.axes[0]
    chart = cd.waterfall_data(steps)
    rects = ax.patches
    assert len(rects) == len(steps)
    np.testing.assert_allclose([r.get_x() for r in rects], np.minimum(chart.start, chart.end))
    np.testing.assert_allclose([r.get_width() for r in rects], np.abs(chart.end - chart.start))
    assert [t.get_text() for t in ax.get_yticklabels()] == chart.labels
