"""SQL aggregations: the purchase summary and pipeline totals, checked against pandas and CDNOW."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.data.cdnow import load_cdnow_summary, load_cdnow_transactions
from crmkit.store import Store
from tests.conftest import shared_dataset
from tests.factories import small_company


def reference_summary(orders: pd.DataFrame, cutoff: pd.Timestamp, unit_days: float) -> pd.DataFrame:
    """The buy-till-you-die summary written directly in pandas, for comparison."""
    o = orders[orders["ordered_at"].dt.normalize() <= cutoff].copy()
    o["day"] = o["ordered_at"].dt.normalize()
    days = o.groupby(["account_id", "day"], as_index=False)["amount"].sum()
    rows = []
    for cid, g in days.groupby("account_id"):
        g = g.sort_values("day")
        first, last = g["day"].iloc[0], g["day"].iloc[-1]
        x = len(g) - 1
        rows.append(
            {
                "customer_id": cid,
                "frequency": x,
                "recency": (last - first).days / unit_days,
                "T": (cutoff - first).days / unit_days,
                "monetary_value": g["amount"].iloc[1:].mean() if x else 0.0,
                "revenue": g["amount"].sum(),
            }
        )
    return pd.DataFrame(rows).sort_values("customer_id").reset_index(drop=True)


def random_orders(seed: int, n_customers: int = 40, n_orders: int = 400) -> dict:
    rng = np.random.default_rng(seed)
    ids = [f"C{i:03d}" for i in range(n_customers)]
    accounts = pd.DataFrame(
        {"account_id": ids, "name": ids, "created_at": pd.Timestamp("2023-01-01")}
    )
    start = pd.Timestamp("2023-01-01")
    orders = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(n_orders)],
            "account_id": rng.choice(ids, n_orders),
            "ordered_at": start + pd.to_timedelta(rng.integers(0, 365 * 24, n_orders), unit="h"),
            "amount": np.round(rng.gamma(2.0, 40.0, n_orders), 2),
        }
    )
    return {"accounts": accounts, "orders": orders}


@pytest.mark.parametrize("unit,days", [("D", 1.0), ("W", 7.0)])
def test_purchase_summary_matches_pandas_reference(store: Store, unit: str, days: float) -> None:
    frames = random_orders(seed=3)
    store.insert_many(frames)
    cutoff = pd.Timestamp("2023-09-30")
    got = store.purchase_summary(cutoff, time_unit=unit).reset_index(drop=True)
    ref = reference_summary(frames["orders"], cutoff, days)
    assert got["customer_id"].tolist() == ref["customer_id"].tolist()
    for c in ("frequency", "recency", "T", "monetary_value", "revenue"):
        np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=1e-9)
    assert got.attrs["cutoff"] == "2023-09-30"


def test_purchase_summary_merges_same_day_orders(store: Store) -> None:
    store.insert_many(small_company())
    s = store.purchase_summary("2024-06-30", time_unit="D").set_index("customer_id")
    # A1: two orders on 2024-01-10 (one purchase day) and one on 2024-02-07.
    assert s.loc["A1", "frequency"] == 1
    assert s.loc["A1", "n_orders"] == 3
    assert s.loc["A1", "recency"] == 28
    assert s.loc["A1", "T"] == (pd.Timestamp("2024-06-30") - pd.Timestamp("2024-01-10")).days
    assert s.loc["A1", "monetary_value"] == 80.0
    assert s.loc["A2", "monetary_value"] == 700.0
    assert "A3" not in s.index  # no orders


def test_purchase_summary_cutoff_and_start(store: Store) -> None:
    store.insert_many(small_company())
    s = store.purchase_summary("2024-01-31", time_unit="D")
    assert s["customer_id"].tolist() == ["A1"]
    assert s["frequency"].tolist() == [0]
    assert store.purchase_summary("2024-06-30", start="2024-03-01")["customer_id"].tolist() == [
        "A2"
    ]


def test_purchase_summary_of_cdnow_sample_equals_published_summary(mem_store: Store) -> None:
    tx = load_cdnow_transactions("sample", shared_dataset("cdnow"))
    ids = tx["customer_id"].astype(str)
    day0 = pd.Timestamp("1997-01-01")
    mem_store.insert_many(
        {
            "accounts": pd.DataFrame(
                {"account_id": ids.unique(), "name": ids.unique(), "created_at": day0}
            ),
            "orders": pd.DataFrame(
                {
                    "order_id": [f"o{i}" for i in range(len(tx))],
                    "account_id": ids,
                    "ordered_at": tx["date"],
                    "amount": tx["amount"],
                }
            ),
        }
    )
    got = mem_store.purchase_summary("1997-09-30", time_unit="W")
    published = load_cdnow_summary(shared_dataset("cdnow"))
    # The published summary's ID is the sample id (1..2357).
    got = got.assign(cid=got["customer_id"].astype(int)).sort_values("cid").reset_index(drop=True)
    assert (got["cid"].to_numpy() == published["customer_id"].to_numpy()).all()
    assert len(got) == len(published) == 2357
    assert (got["frequency"].to_numpy() == published["frequency"].to_numpy()).all()
    np.testing.assert_allclose(got["recency"], published["recency"], atol=0.006)
    np.testing.assert_allclose(got["T"], published["T"], atol=0.006)


def test_pipeline_totals_match_pandas(store: Store) -> None:
    frames = small_company()
    store.insert_many(frames)
    tot = store.pipeline_totals(period="M")
    open_ = tot[tot["status"] == "open"]
    assert open_[["stage", "period", "deals", "amount"]].values.tolist() == [
        ["Proposal", "2024-06", 1, 12000.0]
    ]
    assert open_["weighted_amount"].tolist() == [pytest.approx(12000.0 * 0.6)]
    won = tot[tot["status"] == "won"].iloc[0]
    assert (won["period"], won["weighted_amount"]) == ("2024-04", 50000.0)
    lost = tot[tot["status"] == "lost"].iloc[0]
    assert lost["weighted_amount"] == 0.0
    q = store.pipeline_totals(period="Q", status="open")
    assert q["period"].tolist() == ["2024-Q2"]
    with pytest.raises(ValueError, match="period"):
        store.pipeline_totals(period="W")


def test_sums_that_are_not_finite_are_refused_naming_table_and_column(store: Store) -> None:
    import sqlalchemy as sa

    from crmkit.errors import CrmkitError

    store.insert_many(small_company())
    with store.engine.begin() as conn:  # an amount crmkit refuses, written by hand
        conn.execute(sa.text("UPDATE orders SET amount = :x"), {"x": float("inf")})
        conn.execute(sa.text("UPDATE deals SET amount = :x"), {"x": float("inf")})
    with pytest.raises(CrmkitError, match=r"orders\.amount: a sum is not a finite number"):
        store.purchase_summary()
    with pytest.raises(CrmkitError, match=r"deals\.amount: a sum is not a finite number"):
        store.pipeline_totals(period="Q")


def _old_purchase_summary(engine, cutoff: str, time_unit: str, start: str | None = None):
    """The purchase summary as crmkit computed it before issue #15 (two passes, rows to pandas).

    Kept verbatim as the reference the one-pass SQL must reproduce.
    """
    import sqlalchemy as sa

    from crmkit.store.aggregates import TIME_UNITS

    d = engine.dialect.name

    def day(col: str) -> str:
        return f"DATE({col})" if d == "sqlite" else f"CAST({col} AS DATE)"

    def between(later: str, earlier: str) -> str:
        if d == "sqlite":
            return f"(julianday({later}) - julianday({earlier}))"
        return f"(({later}) - ({earlier}))"

    cut = pd.Timestamp(cutoff).normalize()
    params: dict[str, object] = {
        "end": (cut + pd.Timedelta(days=1)).to_pydatetime(),
        "cut": cut.date() if d != "sqlite" else cut.strftime("%Y-%m-%d"),
        "unit": TIME_UNITS[time_unit],
    }
    start_filter = ""
    if start is not None:
        s = pd.Timestamp(start).normalize()
        params["start"] = s.date() if d != "sqlite" else s.strftime("%Y-%m-%d")
        start_filter = "WHERE a.first_day >= :start"
    cut_expr = ":cut" if d == "sqlite" else "CAST(:cut AS DATE)"
    sql = f"""
    WITH f AS (
        SELECT account_id, {day("MIN(ordered_at)")} AS first_day
        FROM orders WHERE ordered_at < :end GROUP BY account_id
    ), agg AS (
        SELECT o.account_id AS account_id, MIN(f.first_day) AS first_day,
               {day("MAX(o.ordered_at)")} AS last_day,
               COUNT(DISTINCT {day("o.ordered_at")}) AS n_days,
               SUM(o.amount) AS revenue, COUNT(*) AS n_orders,
               SUM(CASE WHEN {day("o.ordered_at")} = f.first_day THEN o.amount ELSE 0 END)
                   AS first_spend
        FROM f JOIN orders o ON o.account_id = f.account_id
        WHERE o.ordered_at < :end GROUP BY o.account_id
    )
    SELECT a.account_id AS customer_id, a.first_day AS first_purchase,
           a.last_day AS last_purchase, a.n_days - 1 AS frequency,
           {between("a.last_day", "a.first_day")} / :unit AS recency,
           {between(cut_expr, "a.first_day")} / :unit AS "T",
           CASE WHEN a.n_days > 1 THEN (a.revenue - a.first_spend) / (a.n_days - 1) ELSE 0 END
               AS monetary_value,
           a.n_orders AS n_orders, a.revenue AS revenue
    FROM agg a {start_filter} ORDER BY a.account_id
    """
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    df["first_purchase"] = pd.to_datetime(df["first_purchase"])
    df["last_purchase"] = pd.to_datetime(df["last_purchase"])
    for c in ("recency", "T", "monetary_value", "revenue"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
    for c in ("frequency", "n_orders"):
        df[c] = pd.to_numeric(df[c]).astype("int64")
    return df


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faster_purchase_summary_equals_the_old_two_pass_result(store: Store, seed: int) -> None:
    # Many orders a customer, several on one day (same-day merging, first-day spend),
    # orders after the cut-off and customers whose first order is after it.
    rng = np.random.default_rng(seed)
    n_customers, n_orders = 300, 6000
    ids = [f"C{i:04d}" for i in range(n_customers)]
    start = pd.Timestamp("2023-01-01")
    days = rng.integers(0, 600, n_orders)
    frames = {
        "accounts": pd.DataFrame({"account_id": ids, "name": ids, "created_at": start}),
        "orders": pd.DataFrame(
            {
                "order_id": [f"O{i}" for i in range(n_orders)],
                "account_id": rng.choice(ids, n_orders, p=rng.dirichlet(np.ones(n_customers))),
                "ordered_at": start
                + pd.to_timedelta(days, unit="D")
                + pd.to_timedelta(rng.integers(0, 24 * 3600, n_orders), unit="s"),
                "amount": np.round(rng.gamma(2.0, 40.0, n_orders), 2),
            }
        ),
    }
    store.insert_many(frames)
    cases = [
        ("2023-09-30", "W", None),
        ("2024-06-15", "D", "2023-03-01"),
        ("2025-01-01", "M", None),
    ]
    for cutoff, unit, first in cases:
        got = store.purchase_summary(cutoff, time_unit=unit, start=first)
        old = _old_purchase_summary(store.engine, cutoff, unit, first)
        assert len(got) > 50 and (got["frequency"] > 0).sum() > 50
        assert (got["n_orders"] > got["frequency"] + 1).any()  # same-day orders merged
        assert got["customer_id"].tolist() == old["customer_id"].tolist()
        for c in ("first_purchase", "last_purchase"):
            assert (got[c].to_numpy() == old[c].to_numpy()).all(), c
        for c in ("frequency", "n_orders"):
            assert got[c].dtype == "int64"
            assert got[c].tolist() == old[c].tolist(), c
        for c in ("recency", "T", "monetary_value", "revenue"):
            assert got[c].dtype == "float64"
            np.testing.assert_allclose(got[c], old[c], rtol=1e-12, atol=1e-9, err_msg=c)
        assert list(got.columns) == list(old.columns)
        assert got.attrs == {"cutoff": pd.Timestamp(cutoff).date().isoformat(), "time_unit": unit}
