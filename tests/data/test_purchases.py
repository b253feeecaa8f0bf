"""The pandas purchase summary equals the store's SQL one on the same orders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.data.purchases import SUMMARY_COLUMNS, purchase_summary
from crmkit.store import Store
from crmkit.store.aggregates import TIME_UNITS

ORDER_COLUMNS = {"customer": "account_id", "date": "ordered_at"}


def hand_orders() -> pd.DataFrame:
    """Orders with the edge cases: same-day purchases, one purchase, orders after the cut-off."""
    rows = [
        ("SAME", "2024-01-10 09:00", 30.0),  # two orders on one day: one purchase
        ("SAME", "2024-01-10 17:30", 20.0),
        ("SAME", "2024-02-07 12:00", 80.0),
        ("SAME", "2024-02-07 13:00", 40.0),  # the repeat day spends 120
        ("ONCE", "2024-03-01 10:00", 500.0),  # a single purchase
        ("LATE", "2024-07-01 08:00", 10.0),  # only after the cut-off
        ("EDGE", "2024-05-01 00:00", 15.0),
        ("EDGE", "2024-06-30 23:59", 25.0),  # on the cut-off day, late in the evening
        ("EDGE", "2024-07-02 10:00", 99.0),  # after the cut-off: ignored
    ]
    return pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(len(rows))],
            "account_id": [r[0] for r in rows],
            "ordered_at": pd.to_datetime([r[1] for r in rows]),
            "amount": [r[2] for r in rows],
        }
    )


def random_orders(seed: int, n_customers: int = 30, n_orders: int = 300) -> pd.DataFrame:
    """Orders at random hours of one year, many customers buying more than once a day."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01")
    return pd.DataFrame(
        {
            "order_id": [f"R{i}" for i in range(n_orders)],
            "account_id": rng.choice([f"C{i:03d}" for i in range(n_customers)], n_orders),
            "ordered_at": start + pd.to_timedelta(rng.integers(0, 365 * 24, n_orders), unit="h"),
            "amount": np.round(rng.gamma(2.0, 40.0, n_orders), 2),
        }
    )


def load(store: Store, orders: pd.DataFrame) -> None:
    """Write the orders and their accounts to a store."""
    ids = orders["account_id"].unique()
    accounts = pd.DataFrame(
        {"account_id": ids, "name": ids, "created_at": pd.Timestamp("2022-01-01")}
    )
    store.insert_many({"accounts": accounts, "orders": orders})


def assert_same(pandas_summary: pd.DataFrame, sql_summary: pd.DataFrame) -> None:
    """Both summaries have the same customers, columns and numbers."""
    assert list(pandas_summary.columns) == list(sql_summary.columns) == list(SUMMARY_COLUMNS)
    got = pandas_summary.reset_index(drop=True)
    sql = sql_summary.reset_index(drop=True)
    assert got["customer_id"].tolist() == sql["customer_id"].tolist()
    for c in ("first_purchase", "last_purchase"):
        assert got[c].tolist() == sql[c].tolist(), c
    for c in ("frequency", "n_orders"):
        assert got[c].dtype == sql[c].dtype == np.int64
        np.testing.assert_array_equal(got[c].to_numpy(), sql[c].to_numpy(), err_msg=c)
    for c in ("recency", "T", "monetary_value", "revenue"):
        np.testing.assert_allclose(got[c].to_numpy(), sql[c].to_numpy(), rtol=1e-12, err_msg=c)
    assert got.attrs == sql.attrs


def test_empty_orders_give_the_stores_empty_summary_with_its_attributes() -> None:
    empty = pd.DataFrame({"customer_id": [], "date": pd.to_datetime([]), "amount": []})
    got = purchase_summary(empty, "2024-06-30", time_unit="M")
    assert list(got.columns) == list(SUMMARY_COLUMNS)
    assert got.empty
    assert got.attrs == {"cutoff": "2024-06-30", "time_unit": "M"}


@pytest.mark.parametrize("unit", ["D", "W", "M"])
def test_equals_sql_summary_on_edge_cases(store: Store, unit: str) -> None:
    orders = hand_orders()
    load(store, orders)
    got = purchase_summary(orders, "2024-06-30", time_unit=unit, **ORDER_COLUMNS)
    assert_same(got, store.purchase_summary("2024-06-30", time_unit=unit))
    s = got.set_index("customer_id")
    assert sorted(s.index) == ["EDGE", "ONCE", "SAME"]
    # same-day orders merged: two purchase days, four orders
    assert s.loc["SAME", "frequency"] == 1 and s.loc["SAME", "n_orders"] == 4
    assert s.loc["SAME", "monetary_value"] == 120.0 and s.loc["SAME", "revenue"] == 170.0
    assert s.loc["SAME", "recency"] == pytest.approx(28 / TIME_UNITS[unit])
    # one purchase: no repeat, recency and spend 0, T from the purchase to the cut-off
    assert s.loc["ONCE", "frequency"] == 0 and s.loc["ONCE", "recency"] == 0.0
    assert s.loc["ONCE", "monetary_value"] == 0.0
    assert s.loc["ONCE", "T"] == pytest.approx(121 / TIME_UNITS[unit])
    # an order late on the cut-off day counts; a later one does not
    assert s.loc["EDGE", "n_orders"] == 2 and s.loc["EDGE", "revenue"] == 40.0


@pytest.mark.parametrize("seed", [1, 2])
def test_equals_sql_summary_on_random_orders(store: Store, seed: int) -> None:
    orders = random_orders(seed)
    load(store, orders)
    for cutoff in ("2023-06-30", "2023-12-31"):
        got = purchase_summary(orders, cutoff, **ORDER_COLUMNS)
        assert_same(got, store.purchase_summary(cutoff))
    got = purchase_summary(orders, None, time_unit="D", start="2023-01-05", **ORDER_COLUMNS)
    assert_same(got, store.purchase_summary(None, time_unit="D", start="2023-01-05"))
    assert got["first_purchase"].min() >= pd.Timestamp("2023-01-05")


def test_default_cutoff_is_the_last_order_day(mem_store: Store) -> None:
    orders = hand_orders()
    load(mem_store, orders)
    got = purchase_summary(orders, **ORDER_COLUMNS)
    assert got.attrs["cutoff"] == "2024-07-02"
    assert_same(got, mem_store.purchase_summary())


def test_cohort_and_empty_summaries() -> None:
    orders = hand_orders()
    cohort = purchase_summary(orders, "2024-06-30", first_purchase_by="2024-02-01", **ORDER_COLUMNS)
    assert cohort["customer_id"].tolist() == ["SAME"]
    empty = purchase_summary(orders, "2023-12-31", **ORDER_COLUMNS)
    assert empty.empty and list(empty.columns) == list(SUMMARY_COLUMNS)
    assert purchase_summary(orders.iloc[:0], **ORDER_COLUMNS).empty
    with pytest.raises(ValueError, match="time_unit"):
        purchase_summary(orders, time_unit="Y", **ORDER_COLUMNS)
