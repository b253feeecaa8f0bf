"""The plain-text database summary and the last day with data (the CLI's ``summary``)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crmkit.store import Store
from crmkit.store.settings import set_setting
from crmkit.store.summary import database_summary, last_data_day


def test_summary_of_the_small_company(company: Store) -> None:
    text = database_summary(company)
    lines = text.splitlines()
    assert lines[0] == f"crmkit database: {company.url}"
    assert lines[1] == "reporting currency: USD"
    assert "orders: 2024-01-10 .. 2024-05-04, revenue 50,930 USD" in lines
    assert "deals by status (amounts in USD):" in lines
    assert "  won             1 deals, amount           50,000 USD" in lines
    assert "  win rate on closed deals: 50.0%" in lines  # one won, one lost
    assert lines[-1] == "forecast snapshots: 0"


def test_summary_of_an_empty_database(mem_store: Store) -> None:
    text = database_summary(mem_store)
    assert "orders:" not in text and "deals by status" not in text
    assert text.endswith("forecast snapshots: 0")
    assert last_data_day(mem_store) is None


def test_last_data_day_is_the_latest_order_or_deal_date(company: Store) -> None:
    assert last_data_day(company) == "2024-05-04"  # order O5, after every deal date


def test_summary_converts_deals_in_another_currency_at_their_day(company: Store) -> None:
    with company.engine.begin() as conn:  # won D2 (closed 2024-04-20) in EUR
        conn.execute(sa.text("UPDATE deals SET currency = 'EUR' WHERE deal_id = 'D2'"))
    rates = {"currency": ["EUR", "EUR"], "valid_from": ["2024-01-01", "2024-04-01"]}
    company.insert("exchange_rates", pd.DataFrame({**rates, "rate": [0.5, 0.8]}))
    lines = database_summary(company).splitlines()
    assert "  won             1 deals, amount           62,500 USD" in lines  # 50,000 / 0.8


def test_summary_names_missing_rates_instead_of_summing_mixed_currencies(company: Store) -> None:
    set_setting(company, "reporting_currency", "EUR")
    text = database_summary(company)
    assert "reporting currency: EUR" in text
    assert "  won             1 deals" in text.splitlines()  # counted, not summed
    assert ", amount " not in text
    assert "amounts not summed: no exchange rate to convert to the reporting currency EUR" in text
    assert "USD from 2024-" in text
