"""One amount formatter and one PNG helper for every chart, table and report."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from crmkit.apps import dashboard as db
from crmkit.plots import chart_data as cd
from crmkit.plots import fanchart
from crmkit.plots import svg as fanchart_svg
from crmkit.plots.format import MISSING, amount_formatter, figure_png, format_amount


@pytest.mark.parametrize(
    "value,compact,full",
    [
        (0, "0", "0"),
        (2.5, "2.5", "2"),
        (950, "950", "950"),
        (999.6, "1k", "1,000"),
        (1_500, "1.5k", "1,500"),
        (12_000, "12k", "12,000"),
        (12_345, "12.3k", "12,345"),
        (123_456, "123k", "123,456"),
        (999_999, "1M", "999,999"),
        (1_250_000, "1.25M", "1,250,000"),
        (4_500_000, "4.5M", "4,500,000"),
        (2e9, "2B", "2,000,000,000"),
        (2.5e12, "2,500B", "2,500,000,000,000"),
        (-1_500, "-1.5k", "-1,500"),
    ],
)
def test_compact_and_full_amounts(value: float, compact: str, full: str) -> None:
    assert format_amount(value, compact=True) == compact
    assert format_amount(value) == full


def test_missing_amounts() -> None:
    for v in (None, float("nan"), float("inf"), np.float64("nan")):
        assert format_amount(v) == format_amount(v, compact=True) == MISSING == "–"


def test_neighbouring_ticks_never_read_the_same() -> None:
    for step in (0.5, 250, 500, 2_500, 50_000, 250_000, 2_500_000):
        ticks = np.arange(0, 11) * step
        labels = [format_amount(t, compact=True) for t in ticks]
        assert len(set(labels)) == len(labels), labels


def test_every_chart_writes_amounts_with_the_one_formatter(fan) -> None:
    fmt = amount_formatter()
    values = [1_500, 12_345, 1_250_000]
    expected = [format_amount(v, compact=True) for v in values]
    assert [fmt(v, 0) for v in values] == expected
    chart = cd.BarChart(title="t", labels=[], series=[], share=False, xmax=1.0)
    assert [chart.tick_label(v) for v in values] == expected
    # the matplotlib and the SVG fan chart write their ticks the same way
    main = fanchart.fan_chart(fan).axes[0]
    assert main.yaxis.get_major_formatter()(1_500, 0) == "1.5k"
    svg = fanchart_svg.fan_chart_svg(fan)
    assert any(f">{format_amount(t, compact=True)}</text>" in svg for t in (50_000, 100_000))
    table = pd.DataFrame({"amount": [1_234_567.4, np.nan]})
    html = db.table_html(table, css="x", money=("amount",))
    assert "1,234,567" in html and "–" in html
    assert db.format_amount is format_amount


def test_figure_png_is_cropped_and_sized_by_dpi() -> None:
    fig = Figure(figsize=(4.0, 3.0))
    fig.add_subplot().plot([0, 1], [0, 1_500])
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    h, w = imread(io.BytesIO(png)).shape[:2]
    assert 0 < w <= 400 and 0 < h <= 300  # cropped to the drawing, at most the page
    h2, w2 = imread(io.BytesIO(figure_png(fig, dpi=200))).shape[:2]
    assert w2 == pytest.approx(2 * w, abs=8) and h2 == pytest.approx(2 * h, abs=8)
