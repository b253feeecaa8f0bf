"""Cohort retention tables against a hand-built example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import ValidationError
from crmkit.segments import cohort_sizes, cohort_table

NAN = np.nan


def hand_orders() -> pd.DataFrame:
    """X and Y first buy in January, Z in February; nobody starts in March or April."""
    return pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o7"],
            "account_id": ["X", "X", "X", "Y", "Y", "Z", "Z"],
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-05",
                    "2024-01-20",
                    "2024-03-02",
                    "2024-01-31 23:00",
                    "2024-02-01 08:00",
                    "2024-02-15",
                    "2024-04-30",
                ],
                format="ISO8601",
            ),
            "amount": [10.0, 20.0, 30.0, 5.0, 7.0, 100.0, 50.0],
        }
    )


def expected(rows: list[list[float]], start: str = "2024-01") -> pd.DataFrame:
    index = pd.period_range(start, periods=len(rows), freq="M", name="cohort")
    cols = pd.RangeIndex(len(rows[0]), name="periods_since_first")
    return pd.DataFrame(rows, index=index, columns=cols, dtype="float64")


def test_customer_counts() -> None:
    table = cohort_table(hand_orders())
    want = expected(
        [
            [2, 1, 1, 0],  # Jan: X+Y, Y in Feb, X in Mar, nobody in Apr
            [1, 0, 1, NAN],  # Feb: Z, Z again in Apr; age 3 not reached
            [NAN, NAN, NAN, NAN],  # no one started in March
            [NAN, NAN, NAN, NAN],
        ]
    )
    pd.testing.assert_frame_equal(table, want)
    assert table.attrs == {"value": "customers", "period": "M", "rate": False}


def test_revenue_and_rates() -> None:
    revenue = cohort_table(hand_orders(), value="revenue")
    pd.testing.assert_frame_equal(
        revenue.iloc[:2],
        expected([[35, 7, 30, 0], [100, 0, 50, NAN]]),
    )
    rates = cohort_table(hand_orders(), rate=True)
    pd.testing.assert_frame_equal(rates.iloc[:2], expected([[1, 0.5, 0.5, 0], [1, 0, 1, NAN]]))
    rev_rates = cohort_table(hand_orders(), value="revenue", rate=True)
    assert rev_rates.iloc[0].tolist() == pytest.approx([1.0, 7 / 35, 30 / 35, 0.0])


def test_end_cuts_orders_and_columns() -> None:
    table = cohort_table(hand_orders(), end="2024-03-31")  # Z's April order is ignored
    pd.testing.assert_frame_equal(table, expected([[2, 1, 1], [1, 0, NAN], [NAN, NAN, NAN]]))


def test_quarters_and_weeks() -> None:
    q = cohort_table(hand_orders(), period="Q")
    # Q1: X, Y, Z all start; Q2: only Z buys again
    assert q.index.tolist() == [pd.Period("2024Q1", "Q"), pd.Period("2024Q2", "Q")]
    assert q.iloc[0].tolist() == [3.0, 1.0]
    assert np.isnan(q.iloc[1, 1]) and np.isnan(q.iloc[1, 0])
    w = cohort_table(hand_orders().iloc[:2], period="W")  # X: Fri 5 Jan and Sat 20 Jan
    assert w.iloc[0].tolist() == [1.0, 0.0, 1.0]


def test_customer_id_column_and_sizes() -> None:
    orders = hand_orders().rename(columns={"account_id": "customer_id"})
    sizes = cohort_sizes(orders)
    assert sizes.tolist() == [2, 1, 0, 0]
    assert str(sizes.index[0]) == "2024-01"


def test_bad_input() -> None:
    with pytest.raises(ValidationError, match="account_id"):
        cohort_table(hand_orders().drop(columns="account_id"))
    with pytest.raises(ValidationError, match="amount"):
        cohort_table(hand_orders().drop(columns="amount"), value="revenue")
    bad = hand_orders()
    bad.loc[2, "ordered_at"] = pd.NaT
    with pytest.raises(ValidationError) as err:
        cohort_table(bad)
    assert [(e.row, e.field) for e in err.value.errors] == [(3, "ordered_at")]
    with pytest.raises(ValueError, match="period"):
        cohort_table(hand_orders(), period="Y")


def test_empty_orders() -> None:
    table = cohort_table(hand_orders().iloc[:0])
    assert table.shape == (0, 0)
