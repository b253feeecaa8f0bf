"""The SVG fan chart and companions draw the dashboard's numbers, without matplotlib."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from crmkit.apps import dashboard as db
from crmkit.plots import svg as fanchart_svg
from tests.snapshot_factory import make_fake_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _svg(text: str) -> ET.Element:
    """Parse SVG text (it must be well-formed XML)."""
    return ET.fromstring(text)


def _by_class(root: ET.Element, css: str) -> list[ET.Element]:
    return [e for e in root.iter() if css in (e.get("class") or "").split()]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def test_svg_fan_chart_draws_the_bands_median_actuals_and_target(fan) -> None:
    root = _svg(fanchart_svg.fan_chart_svg(fan, title="Revenue <by> period"))
    assert root.tag.endswith("svg")
    panels = {p.get("data-source"): p for p in _by_class(root, "crmkit-fan-panel")}
    assert list(panels) == ["total", "pipeline", "new_business", "repeat"]
    total = panels["total"]
    fc = fan[(fan["source"] == "total") & (fan["kind"] == "forecast")]
    p50 = _by_class(total, "crmkit-fan-p50")[0]
    np.testing.assert_allclose(_floats(p50.get("data-values")), fc["p50"], atol=0.01)
    bands = {b.get("data-band"): b for b in _by_class(total, "crmkit-fan-band")}
    np.testing.assert_allclose(_floats(bands["p10-p90"].get("data-lo")), fc["p10"], atol=0.01)
    np.testing.assert_allclose(_floats(bands["p10-p90"].get("data-hi")), fc["p90"], atol=0.01)
    np.testing.assert_allclose(_floats(bands["p25-p75"].get("data-hi")), fc["p75"], atol=0.01)
    past = fan[(fan["source"] == "total") & (fan["kind"] == "actual")]
    actual = _by_class(total, "crmkit-fan-actual")[0]
    np.testing.assert_allclose(_floats(actual.get("data-values")), past["actual"], atol=0.01)
    targets = _by_class(total, "crmkit-fan-target")
    np.testing.assert_allclose([float(t.get("data-value")) for t in targets], fc["target"])
    texts = [t.text for t in total.iter() if t.tag.endswith("text")]
    assert [f"{100 * p:.0f}%" for p in fc["p_target"]] == [t for t in texts if t and "%" in t]
    won = _by_class(total, "crmkit-fan-won")
    assert [float(w.get("data-value")) for w in won] == [
        pytest.approx(c) for c in fc["closed_to_date"] if c > 0
    ]
    # titles are escaped
    assert "Revenue &lt;by&gt; period" in fanchart_svg.fan_chart_svg(
        fan, title="Revenue <by> period"
    )
    # only the total panel has the target
    assert not _by_class(panels["pipeline"], "crmkit-fan-target")


def test_svg_fan_chart_y_axis_covers_the_data(fan) -> None:
    root = _svg(fanchart_svg.fan_chart_svg(fan))
    total = next(p for p in _by_class(root, "crmkit-fan-panel") if p.get("data-source") == "total")
    points = _by_class(total, "crmkit-fan-p50")[0].get("points").split()
    ys = [float(p.split(",")[1]) for p in points]
    fc = fan[(fan["source"] == "total") & (fan["kind"] == "forecast")]
    # larger values are drawn higher up (smaller y) and every point is inside the picture
    order = np.argsort(fc["p50"].to_numpy())
    assert all(np.diff(np.asarray(ys)[order]) <= 0)
    assert all(0 < y < 520 for y in ys)


def test_svg_without_target_or_actuals_and_the_nice_ticks(fan) -> None:
    bare = fan[fan["kind"] == "forecast"].assign(target=np.nan, p_target=np.nan)
    root = _svg(fanchart_svg.fan_chart_svg(bare))
    assert not _by_class(root, "crmkit-fan-target")
    assert not _by_class(root, "crmkit-fan-actual")
    assert fanchart_svg._nice_ticks(930.0, 5) == [0, 200, 400, 600, 800, 1000]
    assert fanchart_svg._nice_ticks(0.0) == [0.0, 1.0]


def test_svg_companion_figures_draw_the_table_values() -> None:
    snap = make_fake_snapshot()
    stages = db.pipeline_by_stage(snap)
    root = _svg(fanchart_svg.stage_rates_svg(stages))
    bars = _by_class(root, "crmkit-bar")
    conf = [float(b.get("data-value")) for b in bars if b.get("data-series") == "configured"]
    learned = [float(b.get("data-value")) for b in bars if b.get("data-series") != "configured"]
    np.testing.assert_allclose(conf, stages["configured"], atol=1e-4)
    np.testing.assert_allclose(learned, stages["learned_mean"], atol=1e-4)
    seg = db.segment_contributions(snap)
    seg_bars = _by_class(_svg(fanchart_svg.segment_svg(seg)), "crmkit-bar")
    assert [b.get("data-label") for b in seg_bars] == list(seg["segment"])
    np.testing.assert_allclose(
        [float(b.get("data-value")) for b in seg_bars], seg["p50"], atol=0.01
    )
    empty = _svg(fanchart_svg.segment_svg(seg.iloc[0:0]))
    assert not _by_class(empty, "crmkit-bar")


def test_svg_drawing_never_imports_matplotlib() -> None:
    code = (
        "import sys; sys.path.insert(0, '.')\n"
        "from tests.snapshot_factory import make_fake_snapshot\n"
        "from crmkit.apps import dashboard\nfrom crmkit.plots import svg as fanchart_svg\n"
        "s = make_fake_snapshot()\n"
        "fanchart_svg.fan_chart_svg(dashboard.fan_data(s))\n"
        "fanchart_svg.stage_rates_svg(dashboard.pipeline_by_stage(s))\n"
        "fanchart_svg.segment_svg(dashboard.segment_contributions(s))\n"
        "mods = ('matplotlib', 'crmkit.plots.fanchart', 'crmkit.plots.chart_data')\n"
        "print([m in sys.modules for m in mods])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    # neither matplotlib nor the matplotlib module; the shared numbers come from chart_data
    assert out.stdout.strip() == "[False, False, True]"
