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
