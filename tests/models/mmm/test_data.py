"""Weekly marketing-mix frames: from store tables, simulated, and their row checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.mmm.data import mmm_frame, simulate_mmm, weekly_row_errors


def test_mmm_frame_counts_new_deals_per_week():
    spend = pd.DataFrame(
        {
            "channel": ["a", "a", "b"],
            "week_start": pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-06"]),
            "spend": [10.0, 20.0, 5.0],
        }
    )
    deals = pd.DataFrame(
        {
            "created_at": pd.to_datetime(
                ["2025-01-06 10:00", "2025-01-12 00:00", "2025-01-13 00:00", "2025-03-01 00:00"]
            ),
            "amount": [1.0, 2.0, 4.0, 8.0],
        }
    )
    out = mmm_frame(spend, deals, target="new_deals")
    assert out["date"].tolist() == list(pd.to_datetime(["2025-01-06", "2025-01-13"]))
    assert out["a"].tolist() == [10.0, 20.0] and out["b"].tolist() == [5.0, 0.0]
    assert out["y"].tolist() == [2.0, 1.0]
    assert mmm_frame(spend, deals, target="new_deal_value")["y"].tolist() == [3.0, 4.0]
    with pytest.raises(CrmkitError):
        mmm_frame(spend, deals, target="clicks")


def test_mmm_frame_sums_revenue_per_week_and_needs_its_table():
    spend = pd.DataFrame(
        {"channel": ["a", "a"], "week_start": ["2025-01-06", "2025-01-13"], "spend": [1.0, 2.0]}
    )
    orders = pd.DataFrame(
        {
            "ordered_at": pd.to_datetime(["2025-01-07", "2025-01-08", "2025-01-19", "2025-02-03"]),
            "amount": [10.0, 5.0, 7.0, 100.0],
        }
    )
    out = mmm_frame(spend, orders=orders, target="revenue")
    assert out["y"].tolist() == [15.0, 7.0]  # the order of 3 Feb is outside the spend weeks
    with pytest.raises(CrmkitError, match="orders"):
        mmm_frame(spend, target="revenue")
    with pytest.raises(CrmkitError, match="deals"):
        mmm_frame(spend, orders=orders, target="new_deals")


def test_simulate_mmm_is_seeded_weekly_and_clean():
    a, truth = simulate_mmm(30, seed=3)
    b, _ = simulate_mmm(30, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(simulate_mmm(30, seed=4)[0])
    assert list(a.columns) == ["date", "x1", "x2", "y"]
    assert (a["date"].diff().dropna() == pd.Timedelta(days=7)).all()
    assert truth["contributions"].shape == (30, 2)
    assert weekly_row_errors(a, "date", ["x1", "x2", "y"], ["x1", "x2"]) == []


def test_weekly_row_errors_name_row_and_field():
    df = pd.DataFrame(
        {
            "week": ["2025-01-06", "2025-01-13", "not a date", "2025-01-27", "2025-02-10"],
            "tv": [1.0, -2.0, 0.0, 1.0, 1.0],
            "y": [1.0, 2.0, np.nan, 4.0, 5.0],
        }
    )
    errors = weekly_row_errors(df, "week", ["tv", "y"], ["tv"])
    got = {(e.row, e.field, e.reason) for e in errors}
    assert got == {
        (3, "week", "not a date"),
        (5, "week", "weeks must be consecutive (7 days apart, sorted)"),
        (2, "tv", "spend must be >= 0"),
        (3, "y", "missing or not a number"),
    }
    short = weekly_row_errors(df.iloc[:1], "week", ["tv"], ["tv"])
    assert [(e.row, e.reason) for e in short] == [(None, "need at least two weeks of data")]
