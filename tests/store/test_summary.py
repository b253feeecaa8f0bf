"""The plain-text database summary and the last day with data (the CLI's ``summary``)."""

from __future__ import annotations

from crmkit.store import Store
from crmkit.store.summary import database_summary, last_data_day


def test_summary_of_the_small_company(company: Store) -> None:
    text = database_summary(company)
    lines = text.splitlines()
    assert lines[0] == f"crmkit database: {company.url}"
    assert "orders: 2024-01-10 .. 2024-05-04, revenue 50,930" in lines
    assert "  won             1 deals, amount           50,000" in lines
    assert "  win rate on closed deals: 50.0%" in lines  # one won, one lost
    assert lines[-1] == "forecast snapshots: 0"


def test_summary_of_an_empty_database(mem_store: Store) -> None:
    text = database_summary(mem_store)
    assert "orders:" not in text and "deals by status" not in text
    assert text.endswith("forecast snapshots: 0")
    assert last_data_day(mem_store) is None


def test_last_data_day_is_the_latest_order_or_deal_date(company: Store) -> None:
    assert last_data_day(company) == "2024-05-04"  # order O5, after every deal date
