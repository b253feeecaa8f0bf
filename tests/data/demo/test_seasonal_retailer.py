"""Tests of crmkit.data.demo.seasonal_retailer: the truth is in the transactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.data.demo.seasonal_retailer import simulate_seasonal_retailer


@pytest.fixture(scope="module")
def retailer():
    return simulate_seasonal_retailer(6000, seed=3)


def test_simulator_spans_two_years_with_every_customer_once_first(retailer):
    tx = retailer.transactions
    assert tx["date"].min() >= pd.Timestamp("2023-01-01")
    assert tx["date"].max() <= pd.Timestamp("2024-12-31") == retailer.end + pd.Timedelta(days=1)
    assert tx["customer_id"].nunique() == 6000
    assert (tx["amount"] > 0).all()
    # customers arrive over the whole span: first purchases in every quarter
    first = tx.groupby("customer_id")["date"].min()
    assert first.dt.to_period("Q").nunique() == 8


def test_simulator_has_the_known_purchase_rate_seasonality(retailer):
    tx = retailer.transactions
    days = tx.drop_duplicates(["customer_id", "date"])
    first = days.groupby("customer_id")["date"].transform("min")
    rep = days[days["date"] > first]

    def per_day(a, b):
        return ((rep["date"] >= a) & (rep["date"] <= b)).sum() / (
            (pd.Timestamp(b) - pd.Timestamp(a)).days + 1
        )

    # the two weeks either side of November 1st, 2024: the same base, +60% rate
    ratio = per_day("2024-11-01", "2024-11-14") / per_day("2024-10-18", "2024-10-31")
    assert 1.4 < ratio < 1.8


def test_simulator_has_the_known_spend_seasonality(retailer):
    tx = retailer.transactions
    holiday = tx["date"].dt.month >= 11
    ratio = tx.loc[holiday, "amount"].mean() / tx.loc[~holiday, "amount"].mean()
    assert 1.22 < ratio < 1.38  # truth 1.3
    np.testing.assert_allclose(retailer.relative("spend")[10] / retailer.relative("spend")[0], 1.3)


def test_simulator_is_reproducible_and_checks_its_seasons():
    a = simulate_seasonal_retailer(200, seed=9).transactions
    b = simulate_seasonal_retailer(200, seed=9).transactions
    pd.testing.assert_frame_equal(a, b)
    flat = simulate_seasonal_retailer(200, rate_season=(1.0,) * 12, spend_season=(1.0,) * 12)
    np.testing.assert_array_equal(flat.relative("rate"), 1.0)
    with pytest.raises(ValueError, match="12 positive numbers"):
        simulate_seasonal_retailer(10, spend_season=(1.0,) * 11)
    with pytest.raises(ValueError, match="12 positive numbers"):
        simulate_seasonal_retailer(10, rate_season=(0.0,) * 12)
