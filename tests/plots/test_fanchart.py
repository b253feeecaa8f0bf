"""The matplotlib fan chart draws the dashboard's numbers: bands, medians, actuals, target."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from crmkit.apps import dashboard as db
from crmkit.plots import fanchart
from crmkit.plots.format import figure_png
from tests.snapshot_factory import make_fake_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_fan_chart_has_total_and_one_panel_per_source(fan) -> None:
    fig = fanchart.fan_chart(fan, title="Forecast")
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Total", "Open pipeline", "New business", "Repeat customers"]
    assert fig.get_suptitle() == "Forecast"


def test_median_line_and_bands_follow_the_data(fan) -> None:
    fig = fanchart.fan_chart(fan)
    main = fig.axes[0]
    fc = fan[(fan["source"] == "total") & (fan["kind"] == "forecast")]
    np.testing.assert_allclose(_line(main, "P50").get_ydata(), fc["p50"])
    past = fan[(fan["source"] == "total") & (fan["kind"] == "actual")]
    np.testing.assert_allclose(_line(main, "actual").get_ydata(), past["actual"])
    bands = [c for c in main.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # P10-P90 and P25-P75
    outer = bands[0].get_paths()[0].vertices[:, 1]
    assert outer.max() == pytest.approx(fc["p90"].max())
    assert main.get_ylim()[1] >= fc["p90"].max()
    labels = [t.get_text() for t in main.get_xticklabels()]
    assert labels == list(dict.fromkeys(sorted(fan["period"])))


def test_target_line_and_probability_labels(fan) -> None:
    main = fanchart.fan_chart(fan).axes[0]
    targets = [c for c in main.collections if isinstance(c, LineCollection)]
    assert len(targets) == 1
    fc = fan[(fan["source"] == "total") & (fan["kind"] == "forecast")]
    ys = [seg[0][1] for seg in targets[0].get_segments()]
    np.testing.assert_allclose(ys, fc["target"])
    texts = [t.get_text() for t in main.texts]
    assert texts == [f"{100 * p:.0f}%" for p in fc["p_target"]]


def test_without_target_or_actuals(fan) -> None:
    bare = fan[fan["kind"] == "forecast"].assign(target=np.nan, p_target=np.nan)
    main = fanchart.fan_chart(bare).axes[0]
    assert not [c for c in main.collections if isinstance(c, LineCollection)]
    assert "actual" not in [line.get_label() for line in main.get_lines()]


def test_png_and_companion_figures() -> None:
    snap = make_fake_snapshot()
    stages = db.pipeline_by_stage(snap)
    fig = fanchart.stage_rates_figure(stages)
    bars = fig.axes[0].patches
    widths = sorted(round(b.get_width(), 6) for b in bars)
    expected = sorted([*stages["configured"], *stages["learned_mean"]])
    np.testing.assert_allclose(widths, expected)
    seg = db.segment_contributions(snap)
    seg_fig = fanchart.segment_figure(seg)
    np.testing.assert_allclose([b.get_width() for b in seg_fig.axes[0].patches], seg["p50"])
    assert figure_png(seg_fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_drawing_does_not_touch_pyplot() -> None:
    code = (
        "import sys; sys.path.insert(0, '.')\n"
        "from tests.snapshot_factory import make_fake_snapshot\n"
        "from crmkit.apps import dashboard\nfrom crmkit.plots import fanchart\n"
        "from crmkit.plots.format import figure_png\n"
        "figure_png(fanchart.fan_chart(dashboard.fan_data(make_fake_snapshot())))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
