"""Marketing figures: each draws what it is given, with its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crmkit.plots import marketing as p


def _summary() -> pd.DataFrame:
    d = pd.date_range("2025-01-06", periods=5, freq="7D")
    rows = [
        {"date": t, "channel": c, "spend": 1.0, "mean": 2.0, "lo": 1.0, "hi": 3.0}
        for c in ("a", "b")
        for t in d
    ]
    return pd.DataFrame(rows)


def test_contribution_chart_one_line_and_band_per_channel():
    fig = p.contribution_chart(_summary())
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and len(ax.lines) == 2 and len(ax.collections) == 2


def test_roas_chart_bars_and_whiskers():
    r = pd.DataFrame(
        {
            "channel": ["a", "b"],
            "roas": [2.0, 1.0],
            "roas_lo": [1.5, 0.5],
            "roas_hi": [2.5, 1.5],
            "mroas": [1.0, 0.4],
            "mroas_lo": [0.5, 0.2],
            "mroas_hi": [1.5, 0.6],
        }
    )
    ax = p.roas_chart(r).axes[0]
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]


def test_scenario_and_allocation_and_campaign_charts():
    d = pd.date_range("2025-01-06", periods=4, freq="7D")
    weekly = pd.DataFrame({"date": d})
    for n in ("plan", "baseline", "difference"):
        weekly[f"{n}_mean"], weekly[f"{n}_lo"], weekly[f"{n}_hi"] = 2.0, 1.0, 3.0
    fig = p.scenario_chart(weekly)
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == 4
    alloc = pd.DataFrame({"channel": ["a", "b"], "current": [1.0, 2.0], "optimal": [2.0, 1.0]})
    assert len(p.allocation_chart(alloc).axes[0].patches) == 4
    res = pd.DataFrame(
        {
            "name": ["x", "y", "z"],
            "channel": ["a", "b", "a"],
            "expected_roi": [1.0, np.nan, 3.0],
            "expected_roi_lo": [0.5, np.nan, 2.0],
            "expected_roi_hi": [2.0, np.nan, 4.0],
        }
    )
    ax = p.campaign_chart(res).axes[0]
    labels = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True))
    assert labels[max(labels)] == "x (a)"  # first row drawn at the top


def test_response_curve_chart_marks_current_spend():
    c = pd.DataFrame(
        {"channel": "a", "spend": [0.0, 1.0, 2.0], "mean": [0, 1, 1.5], "lo": 0.0, "hi": 2.0}
    )
    ax = p.response_curve_chart(c, current={"a": 1.0}).axes[0]
    assert len(ax.lines) == 2  # the curve and the current-spend marker


def test_plan_forecast_chart_two_series_with_ranges():
    t = pd.DataFrame(
        {
            "period": ["2025-01", "2025-02"],
            "baseline_lo": [1.0, 2.0],
            "baseline_p50": [2.0, 3.0],
            "baseline_hi": [3.0, 4.0],
            "plan_lo": [1.5, 2.5],
            "plan_p50": [2.5, 3.5],
            "plan_hi": [3.5, 9.0],
        }
    )
    ax = p.plan_forecast_chart(t).axes[0]
    assert len(ax.containers) == 2  # one errorbar series per plan
    assert [tk.get_text() for tk in ax.get_xticklabels()] == ["2025-01", "2025-02"]
    assert ax.get_ylim()[1] >= 9.0


def _roas(scale: float) -> pd.DataFrame:
    """Three channels' ROAS and marginal ROAS (``scale`` times 1 to 3), with intervals."""
    mid = np.array([1.172, 0.213, 0.363]) * scale
    return pd.DataFrame(
        {
            "channel": ["email", "events", "search"],
            "roas": mid,
            "roas_lo": mid * 0.25,
            "roas_hi": mid * 2.5,
            "mroas": mid * 0.8,
            "mroas_lo": mid * 0.1,
            "mroas_hi": mid * 2.3,
        }
    )


def _vlines(ax) -> list[float]:
    """Positions of the vertical reference lines (``axvline``) on an axis."""
    return [
        float(ln.get_xdata()[0])
        for ln in ax.lines
        if list(ln.get_ydata()) == [0, 1] and len(set(ln.get_xdata())) == 1
    ]


def test_roas_chart_bars_visible_when_all_values_are_far_below_one():
    fig = p.roas_chart(_roas(0.001), outcome="new deals")
    ax = fig.axes[0]
    fig.canvas.draw()
    # drawn per 1k spent: the axis fits the data instead of the 1.0 reference line
    assert ax.get_xlabel().startswith("new deals per 1k spent")
    assert "break-even" in ax.get_xlabel() and _vlines(ax) == []  # no line far off the data
    widths = [b.get_width() for b in ax.patches]
    assert min(widths) / ax.get_xlim()[1] > 0.02 and max(widths) / ax.get_xlim()[1] > 0.25
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(set(labels)) == len(labels)
    values = {t.get_text().strip() for t in ax.texts}
    assert {"1.17", "0.21", "0.36"} <= values  # each bar labelled with its mean


def test_roas_chart_keeps_break_even_line_near_the_data():
    ax = p.roas_chart(_roas(1.0)).axes[0]
    assert _vlines(ax) == [1.0]
    assert ax.get_xlabel() == "outcome per 1 spent"


def test_scenario_chart_difference_ticks_unique():
    d = pd.date_range("2025-01-06", periods=4, freq="7D")
    weekly = pd.DataFrame({"date": d})
    for n, v in (("plan", 2.004), ("baseline", 2.0), ("difference", 0.004)):
        weekly[f"{n}_mean"], weekly[f"{n}_lo"], weekly[f"{n}_hi"] = v, v * 0.5, v * 1.5
    fig = p.scenario_chart(weekly, outcome="new deals")
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) > 1 and len(set(labels)) == len(labels), labels
    assert fig.axes[0].get_ylabel() == "new deals per week"
