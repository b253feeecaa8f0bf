"""Tests of crmkit.widgets.grid_values: cell values typed, compared and cleaned for the store."""

from __future__ import annotations

import pandas as pd

from crmkit.widgets.grid_values import clean_value, edit_changes, same_value, typed_value


def test_values_compare_as_the_store_types_them():
    assert typed_value("deals", "amount", "205000") == 205000.0
    assert typed_value("deals", "expected_close_date", "2024-08-15 ") == pd.Timestamp("2024-08-15")
    assert typed_value("deals", "status", " Won") == "won"
    assert typed_value("deals", "stage", " Proposal ") == "Proposal"
    assert typed_value("deals", "amount", "") is None
    assert same_value("deals", "amount", "205000", 205000.0)
    assert same_value("deals", "amount", 205000, "205000.00")
    assert not same_value("deals", "amount", "205000.5", 205000.0)
    assert same_value("deals", "expected_close_date", "2024-08-15", pd.Timestamp("2024-08-15"))
    assert not same_value("deals", "closed_at", "2024-08-15 10:00", pd.Timestamp("2024-08-15"))
    assert same_value("deals", "forecast_category", "Best Case", "best_case")
    assert same_value("deals", "lost_reason", None, float("nan"))
    assert not same_value("deals", "lost_reason", "price", None)
    # values the store refuses equal only themselves
    assert same_value("deals", "amount", "-5", -5.0)
    assert not same_value("deals", "amount", "-5", 5.0)
    assert not same_value("deals", "amount", "abc", 12000.0)


def test_clean_value_and_status_edit_ties_closed_at():
    assert clean_value("  ") is None and clean_value(" x ") == "x"
    row = pd.Series({"status": "open", "closed_at": pd.NaT})
    assert set(edit_changes("deals", row, "status", "lost")) == {"status", "closed_at"}
    assert edit_changes("accounts", row, "status", "lost") == {"status": "lost"}
