"""Segment and cohort figures: built without pyplot, labelled with the data they show."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from crmkit.plots import segments as plots
from crmkit.segments import SEGMENT_RULES, cohort_table, segment_summary, segment_trend
from tests.segments.test_cohorts import hand_orders


def test_cohort_heatmap_counts() -> None:
    table = cohort_table(hand_orders())
    fig = plots.cohort_heatmap(table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "2024-01",
        "2024-02",
        "2024-03",
        "2024-04",
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    assert ax.get_xlabel() == "months since first purchase"
    # one label per observed cell (NaN cells stay blank): 4 + 3 observed in the hand table
    assert sorted(t.get_text() for t in ax.texts) == sorted(["2", "1", "1", "0", "1", "0", "1"])
    assert len(fig.axes) == 2  # the heat-map and its colour bar


def test_cohort_heatmap_rates_are_percentages() -> None:
    fig = plots.cohort_heatmap(cohort_table(hand_orders(), rate=True), max_periods=2)
    ax = fig.axes[0]
    assert "retention rate" in ax.get_title()
    assert [t.get_text() for t in ax.texts] == ["100%", "50%", "100%", "0%"]
    assert len(plots.cohort_heatmap(cohort_table(hand_orders()), annotate=False).axes[0].texts) == 0


def summary_frame() -> pd.DataFrame:
    lab = pd.Series({"a": "Champions", "b": "Lost", "c": "Lost", "d": "Custom"})
    rev = pd.DataFrame({"customer_id": list("abcd"), "revenue": [300.0, 50.0, 50.0, 100.0]})
    return segment_summary(lab, rev)


def test_segment_bars() -> None:
    summ = summary_frame()
    fig = plots.segment_bars(summ, title="RFM")
    size, rev = fig.axes
    assert [t.get_text() for t in size.get_yticklabels()] == ["Champions", "Lost", "Custom"]
    assert [p.get_width() for p in size.patches] == [1.0, 2.0, 1.0]
    assert [p.get_width() for p in rev.patches] == pytest.approx([0.6, 0.2, 0.2])
    assert [t.get_text() for t in rev.texts] == [" 60.0%", " 20.0%", " 20.0%"]
    assert fig.get_suptitle() == "RFM"
    # RFM segments keep their colour across figures; the custom one gets another
    colors = [p.get_facecolor() for p in size.patches]
    assert colors[0] != colors[1] != colors[2]
    again = plots.segment_bars(summ.iloc[::-1])
    assert again.axes[0].patches[2].get_facecolor() == colors[0]


def test_segment_trend_chart() -> None:
    lab = pd.Series({"X": "Champions", "Y": "Lost", "Z": "Lost"})
    trend = segment_trend(lab, hand_orders())
    fig = plots.segment_trend_chart(trend, segments=["Lost"])
    ax = fig.axes[0]
    (line,) = ax.get_lines()
    assert line.get_label() == "Lost"
    # Y and Z: Jan 5, Feb 7 + 100, Mar 0, Apr 50
    assert line.get_ydata().tolist() == [5.0, 107.0, 0.0, 50.0]
    assert len(plots.segment_trend_chart(trend).axes[0].get_lines()) == 2


def test_rfm_grid_labels_every_cell_with_its_segment() -> None:
    rng = np.random.default_rng(0)
    rfm = pd.DataFrame({"r_score": rng.integers(1, 6, 200), "f_score": rng.integers(1, 6, 200)})
    fig = plots.rfm_grid(rfm)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 25
    assert {t.split("\n")[0] for t in texts} == set(SEGMENT_RULES["segment"])
    counts = sum(int(t.split("\n")[1].split(" ")[0].replace(",", "")) for t in texts)
    assert counts == 200


def test_figures_display_as_png_in_ipython_without_pyplot() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "from crmkit.plots import segments as plots\n"
        "from matplotlib.figure import Figure\n"
        "fig = Figure(); fig.add_subplot().plot([1, 2])\n"
        "data, _ = sh.display_formatter.format(fig)\n"
        "assert data['image/png'][:4] == b'\\x89PNG', data.keys()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
