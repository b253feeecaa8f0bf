"""Repeat revenue for the forecast: the purchase summary of orders without a deal, and draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.sources.repeat import repeat_draws, repeat_summary


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5", "O6"],
            "account_id": ["A1", "A1", "A1", "A2", "A2", "A3"],
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 15:00",
                    "2024-01-15 00:00",
                    "2024-01-08 00:00",
                    "2024-02-05 00:00",
                    "2024-03-01 00:00",
                ]
            ),
            "amount": [100.0, 50.0, 80.0, 5000.0, 60.0, 10.0],
            "deal_id": [None, None, None, "D1", None, None],
        }
    )


def test_summary_merges_days_and_leaves_out_deal_orders() -> None:
    s = repeat_summary(_orders(), "2024-01-29").set_index("customer_id")
    # A1: two orders on Jan 1 are one purchase day, Jan 15 one repeat
    assert s.loc["A1", "frequency"] == 1
    assert s.loc["A1", "recency"] == pytest.approx(2.0)
    assert s.loc["A1", "T"] == pytest.approx(4.0)
    assert s.loc["A1", "monetary_value"] == pytest.approx(80.0)
    assert "A2" not in s.index  # its only order before the cut-off belongs to a deal
    assert "A3" not in s.index  # first order after the cut-off


def test_no_orders_gives_zero_repeat_revenue() -> None:
    out, diag = repeat_draws(
        None,
        None,
        {"all": 0},
        {},
        as_of="2024-01-31",
        month_edges_weeks=np.array([4.3, 8.7]),
        period_of_k=np.array([0, 1]),
        n_periods=2,
        n_draws=50,
    )
    assert out.shape == (50, 2, 1) and not out.any()
    assert diag["method"] == "none"


@pytest.mark.slow
def test_repeat_draws_follow_the_purchase_rate() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for c in range(300):
        t = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        while t < pd.Timestamp("2024-06-30"):
            rows.append((f"A{c}", t, float(rng.gamma(4, 25))))
            if rng.random() < 0.03:  # the customer drops out (BG/NBD)
                break
            t += pd.Timedelta(days=int(rng.exponential(30)) + 1)
    orders = pd.DataFrame(rows, columns=["account_id", "ordered_at", "amount"])
    orders["deal_id"] = None
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{c}" for c in range(300)],
            "segment": ["SMB"] * 300,
            "owner": [None] * 300,
        }
    )
    index = {"all": 0, "segment=SMB": 1}
    out, diag = repeat_draws(
        orders,
        accounts,
        index,
        {},
        as_of="2024-06-30",
        month_edges_weeks=np.array([31 / 7]),
        period_of_k=np.array([0]),
        n_periods=1,
        n_draws=400,
        method="map",
    )
    alive = orders.groupby("account_id")["ordered_at"].max() > pd.Timestamp("2024-05-01")
    # about one purchase a month of mean value 100 from each active customer
    expected = 100.0 * alive.sum()
    assert 0.5 * expected < np.median(out[:, 0, 0]) < 1.5 * expected
    assert np.allclose(out[:, 0, 0], out[:, 0, 1])
    assert "customers" in diag
