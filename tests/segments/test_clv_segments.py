from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.errors import CrmkitError
from crmkit.segments import clv_segments as cs
from crmkit.segments.summary import NO_SEGMENT
from crmkit.store import Store


def fake_draws(values: np.ndarray, ids: list[str]) -> xr.DataArray:
    """CLV draws (sample, customer_id) with the given values."""
    return xr.DataArray(
        values, dims=("sample", "customer_id"), coords={"customer_id": ids}, name="clv"
    )


def summary_of(n: int, seed: int) -> pd.DataFrame:
    """A purchase summary in weeks simulated from BG/NBD and Gamma-Gamma (CDNOW's values)."""
    return simulate_bgnbd_gammagamma(n, seed=seed)


def test_segment_clv_is_a_sum_of_draws_not_of_intervals():
    rng = np.random.default_rng(1)
    base = rng.normal(100.0, 30.0, size=(400, 1))
    # A and B move in opposite directions draw by draw: their sum is nearly certain
    values = np.hstack([base, 200.0 - base, rng.normal(50.0, 5.0, size=(400, 1))])
    clv = fake_draws(values, ["A", "B", "C"])
    labels = pd.Series(["x", "x", "y", "z"], index=["A", "B", "C", "D"])  # D has no draws
    out = cs.segment_clv(clv, labels).set_index("segment")
    total_x = values[:, 0] + values[:, 1]
    assert out.loc["x", "expected_clv"] == pytest.approx(total_x.mean())
    assert out.loc["x", "clv_low"] == pytest.approx(np.quantile(total_x, 0.1))
    assert out.loc["x", "clv_high"] == pytest.approx(np.quantile(total_x, 0.9))
    # summing each customer's interval would give a far wider one
    naive = np.quantile(values[:, 0], 0.9) + np.quantile(values[:, 1], 0.9)
    assert out.loc["x", "clv_high"] < naive - 10
    assert out.loc["z", "expected_clv"] == 0.0 and out.loc["z", "clv_customers"] == 0
    assert out.loc["x", "clv_customers"] == 2
    assert out["clv_share"].sum() == pytest.approx(1.0)


def test_segment_clv_missing_labels_and_categories():
    clv = fake_draws(np.ones((10, 3)), ["A", "B", "C"])
    labels = pd.Series(
        pd.Categorical(["hi", None, "hi"], categories=["hi", "mid", "lo"]), index=["A", "B", "C"]
    )
    out = cs.segment_clv(clv, labels)
    assert list(out["segment"]) == ["hi", "mid", "lo", NO_SEGMENT]
    assert list(out["expected_clv"]) == [2.0, 0.0, 0.0, 1.0]
    plain = cs.segment_clv(clv, pd.Series(["b", None, "a"], index=["A", "B", "C"]))
    assert list(plain["segment"]) == [NO_SEGMENT, "a", "b"]


def test_tiers_rank_customers_by_expected_clv():
    values = np.array([[1.0, 9.0, 5.0, 3.0], [3.0, 11.0, 5.0, 1.0]])
    clv = fake_draws(values, ["A", "B", "C", "D"])
    assert cs.expected_clv(clv).to_dict() == {"A": 2.0, "B": 10.0, "C": 5.0, "D": 2.0}
    tiers = cs.customer_clv_tiers(clv, 2, labels=["top", "rest"])
    assert tiers.to_dict() == {"A": "rest", "B": "top", "C": "top", "D": "rest"}


def test_customer_value_draws_and_the_undiscounted_shortcut():
    data = summary_of(300, seed=2)
    assert set(cs.SUMMARY_COLUMNS) <= set(data.columns)
    clv = cs.customer_value(data, n_draws=30, periods=6)
    assert clv.dims == ("sample", "customer_id") and clv.shape == (30, 300)
    assert list(clv["customer_id"].to_numpy()) == list(data["customer_id"])
    assert clv.attrs["periods"] == 6 and clv.attrs["method"] == "mle"
    assert np.all(np.isfinite(clv.to_numpy())) and np.all(clv.to_numpy() >= 0)
    # a discount too small to matter takes the month-by-month path: same values
    monthly = cs.customer_value(data, n_draws=30, periods=6, discount_rate=1e-12)
    np.testing.assert_allclose(clv.to_numpy(), monthly.to_numpy(), rtol=1e-6)
    longer = cs.customer_value(data, n_draws=30, periods=12)
    assert float(longer.mean()) > float(clv.mean())


def test_customer_value_refuses_too_few_customers():
    with pytest.raises(CrmkitError, match="too few"):
        cs.customer_value(summary_of(10, seed=3))
    with pytest.raises(CrmkitError, match="monetary_value"):
        cs.customer_value(summary_of(50, seed=3).drop(columns="monetary_value"))


@pytest.fixture(scope="module")
def demo_store(demo_db_file, copy_db, tmp_path_factory):
    """A copy of the session's demo company (``tests/conftest.py``): the test edits an order."""
    store = Store.open(copy_db(demo_db_file, tmp_path_factory.mktemp("clv")))
    yield store
    store.close()


def test_store_customer_value_is_kept_until_orders_change(demo_store):
    first = cs.store_customer_value(demo_store, n_draws=20)
    assert cs.store_customer_value(demo_store, n_draws=20) is first
    summary = demo_store.purchase_summary(time_unit="W")
    assert set(first["customer_id"].to_numpy()) == set(summary["customer_id"])
    order = demo_store.read("orders").iloc[0]
    demo_store.update("orders", order["order_id"], {"amount": float(order["amount"]) * 10})
    again = cs.store_customer_value(demo_store, n_draws=20)
    assert again is not first
    assert cs.store_customer_value(demo_store, n_draws=20, periods=3) is not again
