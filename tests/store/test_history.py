"""Rebuilding deal state as of a past day from deal_history and the deals' dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.store.history import HistoryIndex, deals_as_of, month_end, month_index, month_label
from tests.factories import small_company


def _deals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal_id": ["D1", "D2", "D3"],
            "owner": ["ann", "bob", "ann"],
            "stage": ["Negotiation", "Proposal", "Discovery"],
            "status": ["won", "open", "lost"],
            "amount": [1200.0, 500.0, 300.0],
            "created_at": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-03-10"]),
            "expected_close_date": pd.to_datetime(["2024-04-30", "2024-06-30", "2024-04-30"]),
            "closed_at": pd.to_datetime(["2024-04-20", None, "2024-04-02"]),
        }
    )


def _history() -> pd.DataFrame:
    rows = [
        ("D1", "2024-01-05", "stage", None, "Discovery"),
        ("D1", "2024-01-05", "amount", None, "1000.0"),
        ("D1", "2024-02-15", "stage", "Discovery", "Proposal"),
        ("D1", "2024-03-20", "stage", "Proposal", "Negotiation"),
        ("D1", "2024-04-20", "amount", "1000.0", "1200.0"),
        ("D1", "2024-04-20", "status", "open", "won"),
        ("D2", "2024-03-01", "expected_close_date", "2024-03-31", "2024-06-30"),
    ]
    h = pd.DataFrame(rows, columns=["deal_id", "changed_at", "field", "old_value", "new_value"])
    h["changed_at"] = pd.to_datetime(h["changed_at"])
    h["history_id"] = np.arange(1, len(h) + 1)
    return h


def test_stage_and_amount_follow_the_history() -> None:
    state = deals_as_of(_deals(), _history(), "2024-03-01").set_index("deal_id")
    assert state.loc["D1", "stage"] == "Proposal"
    assert state.loc["D1", "amount"] == 1000.0
    assert state.loc["D1", "status"] == "open"
    assert pd.isna(state.loc["D1", "closed_at"])


def test_changes_on_the_day_count_and_closed_deals_keep_their_status() -> None:
    state = deals_as_of(_deals(), _history(), "2024-04-20").set_index("deal_id")
    assert state.loc["D1", "status"] == "won"
    assert state.loc["D1", "amount"] == 1200.0
    assert state.loc["D3", "status"] == "lost"


def test_deals_not_created_yet_are_absent() -> None:
    state = deals_as_of(_deals(), _history(), "2024-02-10")
    assert set(state["deal_id"]) == {"D1", "D2"}


def test_before_the_first_change_the_old_value_is_used() -> None:
    state = deals_as_of(_deals(), _history(), "2024-02-10").set_index("deal_id")
    assert state.loc["D2", "expected_close_date"] == pd.Timestamp("2024-03-31")
    later = deals_as_of(_deals(), _history(), "2024-03-02").set_index("deal_id")
    assert later.loc["D2", "expected_close_date"] == pd.Timestamp("2024-06-30")


def test_without_history_closed_at_decides_the_status() -> None:
    state = deals_as_of(_deals(), None, "2024-04-10").set_index("deal_id")
    assert state.loc["D1", "status"] == "open"  # closed on 2024-04-20
    assert state.loc["D3", "status"] == "lost"  # closed on 2024-04-02
    assert state.loc["D1", "stage"] == "Negotiation"  # the current value


def test_history_index_gives_the_same_result_as_a_frame() -> None:
    d, h = _deals(), _history()
    a = deals_as_of(d, h, "2024-03-25")
    b = deals_as_of(d, HistoryIndex(d, h), "2024-03-25")
    pd.testing.assert_frame_equal(a, b)


def test_store_history_rebuilds_a_past_stage(mem_store) -> None:
    frames = small_company()
    mem_store.insert_many({k: v for k, v in frames.items()}, changed_by="test")
    at = pd.Timestamp("2030-01-01 10:00")
    mem_store.update("deals", "D1", {"stage": "Negotiation"}, changed_by="ann", at=at)
    deals, hist = mem_store.read("deals"), mem_store.read("deal_history")
    before = deals_as_of(deals, hist, "2029-12-31").set_index("deal_id")
    after = deals_as_of(deals, hist, "2030-01-01").set_index("deal_id")
    assert before.loc["D1", "stage"] == "Proposal"
    assert after.loc["D1", "stage"] == "Negotiation"


@pytest.mark.parametrize("day,label", [("2026-11-15", "2026-11"), ("2024-01-01", "2024-01")])
def test_month_index_round_trips_to_a_label(day: str, label: str) -> None:
    assert month_label(month_index(pd.Timestamp(day))) == label


def test_store_history_rebuilds_a_past_forecast_category(store) -> None:
    """Category edits land in deal_history, so the category as it stood on a day comes back."""
    store.insert_many(small_company())  # D1 imported as "pipeline" (import time: now)
    store.update("deals", "D1", {"forecast_category": "Best Case"}, at=pd.Timestamp("2030-01-10"))
    store.update("deals", "D1", {"forecast_category": "commit"}, at=pd.Timestamp("2030-02-10"))
    deals, hist = store.read("deals"), store.read("deal_history")
    on = {
        day: deals_as_of(deals, hist, day).set_index("deal_id").loc["D1", "forecast_category"]
        for day in ("2030-01-09", "2030-01-10", "2030-02-09", "2030-02-10")
    }
    assert on == {
        "2030-01-09": "pipeline",
        "2030-01-10": "best_case",
        "2030-02-09": "best_case",
        "2030-02-10": "commit",
    }


def test_month_end_is_the_last_day_of_a_month_index_and_inverts_month_index() -> None:
    assert month_end(2024 * 12 + 1) == pd.Timestamp("2024-02-29")  # leap year
    assert month_end(2026 * 12 + 11) == pd.Timestamp("2026-12-31")
    for m in (2023 * 12, 2025 * 12 + 3, 2026 * 12 + 10):
        assert month_index(month_end(m)) == m
        assert month_index(month_end(m) + pd.Timedelta(days=1)) == m + 1
