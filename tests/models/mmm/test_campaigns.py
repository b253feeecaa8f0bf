"""Campaign results: attribution counts, pooled win rates and revenue, tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.mmm.campaigns import (
    attributed_counts,
    beta_prior,
    campaign_results,
    campaign_results_from_store,
    campaign_table,
    channel_summary,
    roas_prior,
    source_results,
)
from crmkit.store import Store
from tests.factories import small_company


def _campaigns() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "campaign_id": ["C1", "C2", "C3", "C4"],
            "name": ["a", "b", "c", "d"],
            "channel": ["search", "search", "events", "events"],
            "start_date": pd.to_datetime(["2025-01-05", "2025-04-02", "2025-02-01", "2025-07-01"]),
            "cost": [1000.0, 500.0, 2000.0, 0.0],
        }
    )


def _deals() -> pd.DataFrame:
    rows = []
    # C1: 2 won (100, 300), 1 lost, 1 open; C2: 1 lost; C3: 1 won (1000); C4 none; 1 organic
    for i, (cid, status, amount) in enumerate(
        [
            ("C1", "won", 100.0),
            ("C1", "won", 300.0),
            ("C1", "lost", 50.0),
            ("C1", "open", 80.0),
            ("C2", "lost", 10.0),
            ("C3", "won", 1000.0),
            (None, "won", 5000.0),
        ]
    ):
        rows.append(
            {
                "deal_id": f"D{i}",
                "campaign_id": cid,
                "status": status,
                "amount": amount,
                "source": "Paid" if cid else None,
            }
        )
    return pd.DataFrame(rows)


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {"order_id": ["O1", "O2", "O3"], "deal_id": ["D0", "D0", None], "amount": [60.0, 40.0, 9.0]}
    )


def test_attributed_counts_by_hand():
    out = attributed_counts(_campaigns(), _deals(), _orders()).set_index("campaign_id")
    assert out.loc["C1", ["deals", "won", "lost", "open"]].tolist() == [4, 2, 1, 1]
    assert out.loc["C1", "won_revenue"] == 400.0
    assert out.loc["C1", "roi"] == pytest.approx(400 / 1000 - 1)
    assert out.loc["C1", "cost_per_won"] == pytest.approx(500.0)
    assert out.loc["C1", "orders"] == 2 and out.loc["C1", "order_revenue"] == 100.0
    assert out.loc["C4", "deals"] == 0 and np.isnan(out.loc["C4", "roi"])
    assert np.isnan(out.loc["C2", "cost_per_won"])
    assert out.loc["C1", "period"] == "2025Q1" and out.loc["C2", "period"] == "2025Q2"


def test_source_results_counts_sources_and_none():
    out = source_results(_deals(), _orders()).set_index("source")
    assert out.loc["Paid", "deals"] == 6
    assert out.loc["Paid", "orders"] == 2 and out.loc["Paid", "order_revenue"] == 100.0
    assert out.loc["(none)", "orders"] == 0
    assert out.loc["(none)", "won_revenue"] == 5000.0
    assert out.loc["Paid", "win_rate"] == pytest.approx(3 / 5)


def test_beta_prior_mean_and_concentration():
    rng = np.random.default_rng(0)
    n = np.full(40, 50)
    homogeneous = rng.binomial(n, 0.3)
    a, b = beta_prior(homogeneous, n, overall=0.3)
    assert a / (a + b) == pytest.approx(homogeneous.sum() / n.sum(), abs=0.01)
    heterogeneous = rng.binomial(n, rng.uniform(0.05, 0.6, 40))
    a2, b2 = beta_prior(heterogeneous, n, overall=0.3)
    assert a + b > a2 + b2  # spread-out campaigns give a weaker pooled prior


def test_pooling_shrinks_small_campaign_towards_channel():
    rng = np.random.default_rng(1)
    k = 30
    camp = pd.DataFrame(
        {
            "campaign_id": [f"K{i}" for i in range(k)],
            "name": "x",
            "channel": "search",
            "start_date": pd.Timestamp("2025-01-01"),
            "cost": 100.0,
        }
    )
    rows = []
    for i in range(k):
        n = 2 if i == 0 else 40
        won = n if i == 0 else rng.binomial(n, 0.2)  # the small campaign won every deal
        for j in range(n):
            rows.append(
                {
                    "deal_id": f"{i}-{j}",
                    "campaign_id": f"K{i}",
                    "status": "won" if j < won else "lost",
                    "amount": float(rng.lognormal(7, 0.3)),
                    "source": "Paid",
                }
            )
    res = campaign_results(camp, pd.DataFrame(rows), n_draws=1000).set_index("campaign_id")
    small = res.loc["K0"]
    assert 0.2 < small["win_rate"] < 0.6  # raw rate is 1.0; channel rate about 0.2
    assert small["win_rate_lo"] <= small["win_rate"] <= small["win_rate_hi"]
    big = res.drop("K0")
    width_small = small["win_rate_hi"] - small["win_rate_lo"]
    assert width_small > (big["win_rate_hi"] - big["win_rate_lo"]).median()


def test_campaign_results_intervals_and_nan_for_zero_cost():
    res = campaign_results(_campaigns(), _deals(), _orders(), n_draws=500).set_index("campaign_id")
    for col in ("revenue_per_won", "value_per_deal", "expected_roi", "projected_revenue"):
        row = res.loc["C1"]
        assert row[f"{col}_lo"] <= row[col] <= row[f"{col}_hi"]
    assert np.isnan(res.loc["C4", "expected_roi"])  # no cost, no deals
    # C1 has one open deal: projected revenue is won revenue plus something positive
    assert res.loc["C1", "projected_revenue_lo"] >= 400.0
    assert res.loc["C1", "projected_revenue_hi"] > 400.0
    # C3 has no open deal: projected equals won to date with no spread
    assert res.loc["C3", "projected_revenue_lo"] == res.loc["C3", "projected_revenue_hi"] == 1000.0


def test_campaign_table_filters_and_sorts():
    res = campaign_results(_campaigns(), _deals(), n_draws=200)
    t = campaign_table(res, channels=["search"], sort_by="period", ascending=False)
    assert t["campaign_id"].tolist() == ["C2", "C1"]
    t2 = campaign_table(res, sort_by="cost")
    assert t2["cost"].is_monotonic_increasing
    t3 = campaign_table(res, periods=["2025Q1"])
    assert set(t3["campaign_id"]) == {"C1", "C3"}
    with pytest.raises(CrmkitError, match="cannot sort"):
        campaign_table(res, sort_by="nope")


def test_channel_summary_totals():
    res = attributed_counts(_campaigns(), _deals())
    s = channel_summary(res).set_index("channel")
    assert s.loc["search", "cost"] == 1500.0 and s.loc["search", "campaigns"] == 2
    assert s.loc["events", "roi"] == pytest.approx(1000 / 2000 - 1)


def test_from_store():
    store = Store.open("sqlite://")
    store.insert_many(small_company())
    res = campaign_results_from_store(store, n_draws=200)
    deals = store.read("deals")
    assert len(res) == store.count("campaigns")
    assert res["deals"].sum() == deals["campaign_id"].notna().sum()


def test_roas_prior_from_attribution_with_pooled_fallback():
    camp, deals = _campaigns(), _deals()
    prior = roas_prior(camp, deals, ["search", "events", "email"], min_deals=2)["roas"]
    assert prior["dist"] == "LogNormal"
    # search: 5 deals for 1,500 of cost; events 1 deal (< 2) and email none: pooled 6 / 3,500
    np.testing.assert_allclose(np.exp(prior["mu"]), [5 / 1500, 6 / 3500, 6 / 3500])
    assert prior["sigma"] == [0.7, 1.5, 1.5]
    value = roas_prior(camp, deals, ["search"], target="new_deal_value", min_deals=2)["roas"]
    assert np.exp(value["mu"][0]) == pytest.approx(540 / 1500)
    rev = roas_prior(
        camp, deals, ["search"], target="revenue", orders=_orders(), min_deals=2, sigma=0.4
    )["roas"]
    assert np.exp(rev["mu"][0]) == pytest.approx(100 / 1500) and rev["sigma"] == [0.4]
    with pytest.raises(CrmkitError, match="orders"):
        roas_prior(camp, deals, ["search"], target="revenue")
