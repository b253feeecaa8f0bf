"""One amount formatter and one PNG helper for every chart, table and report."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from crmkit.apps import section_html as sh
from crmkit.plots import chart_data as cd
from crmkit.plots import fanchart
from crmkit.plots import svg as fanchart_svg
from crmkit.plots.format import (
    MISSING,
    amount_formatter,
    figure_png,
    format_amount,
    format_estimates,
    format_numbers,
    number_decimals,
    number_formatter,
    rate_scale,
    tick_labels,
)


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
    html = sh.table_html(table, css="x", money=("amount",))
    assert "1,234,567" in html and "–" in html
    assert sh.format_amount is format_amount


def test_figure_png_is_cropped_and_sized_by_dpi() -> None:
    fig = Figure(figsize=(4.0, 3.0))
    fig.add_subplot().plot([0, 1], [0, 1_500])
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    h, w = imread(io.BytesIO(png)).shape[:2]
    assert 0 < w <= 400 and 0 < h <= 300  # cropped to the drawing, at most the page
    h2, w2 = imread(io.BytesIO(figure_png(fig, dpi=200))).shape[:2]
    assert w2 == pytest.approx(2 * w, abs=8) and h2 == pytest.approx(2 * h, abs=8)


# ------------------------------------------------ numbers shown together (issue #14)
def test_roas_values_0_021_0_034_0_047_render_distinct() -> None:
    shown = format_estimates([0.021, 0.034, 0.047], [0.015, 0.021, 0.030], [0.028, 0.047, 0.070])
    assert shown == ["0.021 [0.015–0.028]", "0.034 [0.021–0.047]", "0.047 [0.030–0.070]"]
    # the old table wrote every one of them 0.02 or 0.03 or 0.05 and tiny ones 0.00
    tiny = format_estimates([0.000205, 0.001172], [0.00009, 0.000271], [0.000396, 0.002946])
    assert "0.00 " not in " ".join(tiny) and len(set(tiny)) == 2


def test_numbers_of_a_set_never_collapse_unless_equal() -> None:
    rng = np.random.default_rng(0)
    for kind in ("number", "amount", "count", "percent"):
        for _ in range(200):
            scale = 10.0 ** rng.integers(-6, 8)
            values = np.round(rng.random(6) * scale, int(rng.integers(0, 9)))
            values[rng.integers(0, 6)] = values[0]  # one repeated value
            text = format_numbers(values, kind=kind)
            for a, ta in zip(values, text, strict=True):
                for b, tb in zip(values, text, strict=True):
                    assert (ta == tb) == (a == b), (kind, values, text)
            assert all(t.strip("0.,%") != "" for v, t in zip(values, text, strict=True) if v)


def test_money_has_enough_significant_digits_with_k_and_m() -> None:
    assert format_numbers([760_837.1, 760_662.6, 1_141_063.0], kind="amount") == [
        "760.8k",
        "760.7k",
        "1.141M",
    ]
    assert format_numbers([1_500, 12_000, 950], kind="amount") == ["1.5k", "12k", "950"]
    assert format_numbers([-345.2, 0.0, 1_436.2], kind="amount", signed=True) == [
        "-345",
        "0",
        "+1.44k",
    ]


def test_counts_whole_or_with_the_decimals_they_need() -> None:
    assert format_numbers([12, 1_210, 0], kind="count") == ["12", "1,210", "0"]
    assert format_numbers([0.74, 0.84, 0.845], kind="count", signed=True) == [
        "+0.740",
        "+0.840",
        "+0.845",
    ]
    assert format_numbers([None, float("nan"), 3.0], kind="count") == [MISSING, MISSING, "3"]
    assert number_decimals([263_352.942841, 1_520.5]) == 0
    assert number_decimals([0.5, 0.74]) == 2


def test_shares_and_changes_as_percentages() -> None:
    assert format_numbers([1 / 3] * 3, kind="percent", min_decimals=1) == ["33.3%"] * 3
    assert format_numbers(
        [0.28, 0.004, -0.1256], kind="percent", signed=True, min_significant=1
    ) == ["+28.0%", "+0.4%", "-12.6%"]


def test_rate_scale_makes_tiny_rates_readable() -> None:
    assert rate_scale([0.0012, 0.0029]) == (1000.0, "1k")
    assert rate_scale([0.043, 0.07]) == (1.0, "1")
    assert rate_scale([2e-7]) == (1e6, "1M")
    assert rate_scale([]) == (1.0, "1")


def _drawn_labels(lo: float, hi: float, formatter) -> list[str]:
    """The tick labels matplotlib draws for data from ``lo`` to ``hi``."""
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1], [lo, hi])
    ax.yaxis.set_major_formatter(formatter)
    fig.canvas.draw()
    return [t.get_text() for t in ax.get_yticklabels() if t.get_text()]


def test_ticks_unique_for_any_range() -> None:
    from matplotlib.ticker import MaxNLocator

    rng = np.random.default_rng(1)
    ranges = [(1000, 1010), (123_456, 123_470), (1e6, 1.0004e6), (99_990, 100_020), (0, 4e-5)]
    ranges += [
        (c, c + w)
        for c, w in zip(rng.normal(0, 1e5, 60), 10.0 ** rng.uniform(-5, 6, 60), strict=True)
    ]
    for lo, hi in ranges:
        ticks = MaxNLocator(nbins=int(rng.integers(3, 12))).tick_values(lo, hi)
        for compact in (True, False):
            labels = tick_labels(ticks, compact=compact)
            assert len(set(labels)) == len(labels), (lo, hi, labels)
            step = float(np.diff(ticks).min())
            for t, text in zip(ticks, labels, strict=True):  # every label is exact
                if not compact or not text[-1:].isalpha():
                    assert abs(float(text.replace(",", "")) - t) <= step * 1e-6, (t, text)
    for lo, hi in ((1000, 1010), (0, 0.004), (1e6, 1.0004e6), (-5, 3)):
        for fmt in (amount_formatter(), number_formatter()):
            drawn = _drawn_labels(lo, hi, fmt)
            assert len(set(drawn)) == len(drawn) > 1, (lo, hi, drawn)
    # the issue: ticks 0, 0.5, ..., 4 read "0, 0, 1, 2, 2, 2, 3, 4"; plan - baseline "0, 0, 0"
    assert tick_labels([0, 0.5, 1, 1.5, 2]) == ["0.0", "0.5", "1.0", "1.5", "2.0"]
    assert tick_labels([0, 0.001, 0.002, 0.003]) == ["0.000", "0.001", "0.002", "0.003"]
    assert tick_labels([0, 500, 1000, 1500]) == ["0", "500", "1k", "1.5k"]
