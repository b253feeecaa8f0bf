"""The snapshot's extra tables: pipeline by stage, campaign ROI and past actuals."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from crmkit.apps import dashboard as db
from crmkit.errors import CrmkitError
from crmkit.forecast import snapshot_tables as st
from tests.snapshot_factory import backtest_scores, backtest_with_verdict, make_fake_snapshot

RATES = [
    {"pipeline": "default", "stage": "Qualification", "configured": 0.1, "learned_mean": 0.1},
    {"pipeline": "default", "stage": "Proposal", "configured": 0.6, "learned_mean": 0.5},
]


def _open_deals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal_id": ["D1", "D2", "D3", "D4", "D5"],
            "owner": ["ann", "ann", "bob", "cy", "cy"],
            "team": ["north", "north", "north", "south", None],
            "segment": ["SMB", "SMB", "Enterprise", "SMB", None],
            "stage": ["Proposal", "Proposal", "Qualification", "Proposal", "Unknown"],
            "amount": [1000.0, 3000.0, 500.0, 200.0, np.nan],
        }
    )


def test_pipeline_by_stage_sums_amounts_and_expected_value_by_group() -> None:
    recs = st.pipeline_by_stage(_open_deals(), RATES)
    df = pd.DataFrame(recs)
    ann = df[(df.owner == "ann") & (df.stage == "Proposal")].iloc[0]
    assert ann["n_deals"] == 2 and ann["amount"] == 4000.0
    assert ann["expected"] == pytest.approx(4000.0 * 0.5)
    assert ann["team"] == "north" and ann["segment"] == "SMB"
    bob = df[df.owner == "bob"].iloc[0]
    assert bob["expected"] == pytest.approx(500.0 * 0.1)
    # a stage without a learned rate: amount kept, no expected value; missing labels named
    odd = next(r for r in recs if r["stage"] == "Unknown")
    assert odd["expected"] is None and odd["team"] == st.NONE and odd["amount"] == 0.0
    # stages in their configured order, then unknown ones
    assert df["stage_order"].tolist() == sorted(df["stage_order"])
    assert df.loc[df.stage == "Qualification", "stage_order"].iloc[0] == 0
    assert df["n_deals"].sum() == len(_open_deals())
    json.dumps(recs)  # stored as JSON in the snapshot


def test_pipeline_by_stage_rejects_missing_columns_and_handles_no_deals() -> None:
    with pytest.raises(CrmkitError, match="amount"):
        st.pipeline_by_stage(_open_deals().drop(columns="amount"), RATES)
    with pytest.raises(CrmkitError, match="learned_mean"):
        st.pipeline_by_stage(_open_deals(), [{"stage": "Proposal"}])
    assert st.pipeline_by_stage(_open_deals().iloc[0:0], RATES) == []


def test_dashboard_filters_the_stage_table_by_team_owner_and_segment() -> None:
    snap = make_fake_snapshot()
    snap.parameters["tables"]["stage_probabilities"] = RATES
    snap.parameters["tables"]["pipeline_by_stage"] = st.pipeline_by_stage(_open_deals(), RATES)
    north = db.pipeline_by_stage(snap, db.Filter(team="north")).set_index("stage")
    assert north.loc["Proposal", "amount"] == 4000.0
    assert north.loc["Qualification", "expected"] == pytest.approx(50.0)
    smb = db.pipeline_by_stage(snap, db.Filter(segment="SMB")).set_index("stage")
    assert smb.loc["Proposal", "n_deals"] == 3 and smb.loc["Proposal", "amount"] == 4200.0


def _store_tables() -> dict[str, pd.DataFrame]:
    deals = pd.DataFrame(
        {
            "deal_id": ["W1", "W2", "W3", "L1", "O1", "F1"],
            "account_id": ["A1", "A2", "A1", "A2", "A1", "A2"],
            "owner": ["ann", "cy", "ann", "cy", "ann", "cy"],
            "team": ["north", "south", "north", "south", "north", "south"],
            "status": ["won", "won", "won", "lost", "open", "won"],
            "amount": [100.0, 200.0, 50.0, 70.0, 300.0, 999.0],
            "created_at": pd.to_datetime(
                ["2026-07-01", "2026-07-05", "2026-08-01", "2026-08-02", "2026-09-01", "2026-09-02"]
            ),
            "closed_at": pd.to_datetime(
                ["2026-08-10", "2026-09-15", "2026-09-20", "2026-09-21", None, "2026-11-20"]
            ),
            "campaign_id": ["C1", "C1", "C2", "C2", "C1", "C1"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "account_id": ["A1", "A2", "A2", "A1"],
            "ordered_at": pd.to_datetime(["2026-08-03", "2026-09-09", "2026-09-30", "2026-11-05"]),
            "amount": [10.0, 20.0, 30.0, 40.0],
            "deal_id": [None, None, "W2", None],
        }
    )
    accounts = pd.DataFrame(
        {"account_id": ["A1", "A2"], "owner": ["ann", "cy"], "segment": ["SMB", "Enterprise"]}
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": ["C1", "C2"],
            "name": ["Webinar", "Search"],
            "channel": ["events", "search"],
            "start_date": pd.to_datetime(["2026-06-01", "2026-07-01"]),
            "end_date": pd.to_datetime(["2026-06-30", "2026-07-31"]),
            "cost": [100.0, 0.0],
        }
    )
    return {"deals": deals, "orders": orders, "accounts": accounts, "campaigns": campaigns}


def test_actuals_add_repeat_orders_to_won_deals_by_period_and_group() -> None:
    t = _store_tables()
    recs = st.actuals(t["deals"], t["orders"], t["accounts"], as_of=dt.date(2026, 10, 31))
    df = pd.DataFrame(recs).set_index(["group", "period", "source"])["amount"]
    assert df[("all", "2026-08", "deals")] == 100.0
    assert df[("all", "2026-08", "repeat")] == 10.0
    assert df[("all", "2026-09", "deals")] == 250.0
    assert df[("all", "2026-09", "repeat")] == 20.0  # the order of deal W2 is not repeat
    assert df[("all", "2026-09", "total")] == 270.0
    # orders follow their account's owner, that owner's team and the account's segment
    assert df[("owner=cy", "2026-09", "repeat")] == 20.0
    assert df[("team=south", "2026-09", "total")] == 220.0
    assert df[("segment=SMB", "2026-09", "deals")] == 50.0
    assert df[("owner=ann", "2026-09", "repeat")] == 0.0  # every group has every row
    # nothing after the as-of day (the deal won and the order placed in November)
    assert "2026-11" not in set(df.index.get_level_values("period"))
    q = pd.DataFrame(
        st.actuals(t["deals"], t["orders"], t["accounts"], as_of="2026-10-31", period="Q")
    )
    assert set(q["period"]) == {"2026-Q3"}
    assert q[(q.group == "all") & (q.source == "total")]["amount"].sum() == 380.0
    # nothing won or ordered yet: no actuals; no orders at all: deals only
    assert st.actuals(t["deals"], t["orders"], as_of="2026-01-01") == []
    only_deals = pd.DataFrame(st.actuals(t["deals"], None, as_of="2026-10-31"))
    assert only_deals[only_deals.source == "repeat"]["amount"].sum() == 0.0
    assert only_deals[(only_deals.group == "all") & (only_deals.source == "total")][
        "amount"
    ].sum() == pytest.approx(350.0)


def test_fan_chart_data_shows_total_and_repeat_actuals() -> None:
    t = _store_tables()
    snap = make_fake_snapshot(as_of=dt.date(2026, 11, 15))
    snap.parameters["tables"]["actuals"] = st.actuals(
        t["deals"], t["orders"], t["accounts"], as_of="2026-10-31"
    )
    fan = db.fan_data(snap)
    past = fan[fan["kind"] == "actual"].set_index(["source", "period"])["actual"]
    assert past[("total", "2026-09")] == 270.0 and past[("repeat", "2026-09")] == 20.0
    north = db.fan_data(snap, db.Filter(team="north"))
    past_n = north[north["kind"] == "actual"].set_index(["source", "period"])["actual"]
    assert past_n[("total", "2026-09")] == 50.0


def test_campaign_roi_has_ranges_and_respects_the_as_of_day() -> None:
    t = _store_tables()
    recs = st.campaign_roi(t["campaigns"], t["deals"], t["orders"], as_of="2026-10-31", n_draws=400)
    df = pd.DataFrame(recs).set_index("campaign_id")
    c1 = df.loc["C1"]
    # F1 was won after the as-of day: it counts as open, its amount not as won revenue
    assert c1["won_revenue"] == 300.0 and c1["open"] == 2
    assert c1["revenue_p10"] <= c1["revenue_p50"] <= c1["revenue_p90"]
    assert c1["revenue_p10"] >= 300.0
    assert c1["roi_p50"] == pytest.approx(c1["revenue_p50"] / 100.0 - 1.0, rel=1e-6)
    assert next(r for r in recs if r["campaign_id"] == "C2")["roi_p50"] is None  # no cost
    json.dumps(recs)
    assert st.campaign_roi(t["campaigns"].iloc[0:0], t["deals"]) == []
    # the app's table reads it
    snap = make_fake_snapshot()
    snap.parameters["tables"]["campaign_roi"] = recs
    roi = db.campaign_roi(snap).set_index("campaign_id")
    assert roi.loc["C1", "roi_p90"] == pytest.approx(c1["roi_p90"])


def test_extra_tables_in_one_call() -> None:
    t = _store_tables()
    snap = make_fake_snapshot(as_of=dt.date(2026, 10, 31))
    snap.parameters["tables"]["stage_probabilities"] = RATES
    open_deals = t["deals"][t["deals"]["status"] == "open"].assign(stage="Proposal")
    tables = st.extra_tables(snap, t, open_deals=open_deals, campaigns=t["campaigns"])
    assert set(tables) == {"pipeline_by_stage", "actuals", "campaign_roi"}
    assert tables["pipeline_by_stage"][0]["expected"] == pytest.approx(150.0)
    assert "campaign_roi" not in st.extra_tables(snap, t, open_deals=open_deals)


def test_backtest_records_keep_the_verdict_columns_through_a_saved_snapshot(store) -> None:
    summary = backtest_with_verdict()
    assert summary.loc[summary.forecaster == "model", "vs_run_rate"].item() == "better"
    snap = make_fake_snapshot()
    snap.parameters["tables"]["backtest"] = st.backtest_records(summary)
    store.save_snapshot(snap)
    back = db.backtest_table(store.load_snapshot(snap.snapshot_id))
    pd.testing.assert_frame_equal(back, summary.astype({"origins": "Int64"}), check_dtype=False)
    model = back[back.forecaster == "model"].iloc[0]
    assert model["vs_run_rate"] == "better" and model["crps_diff"] < model["crps_diff_hi"] < 0
    run_rate = back[back.forecaster == "run_rate"].iloc[0]
    assert run_rate["vs_run_rate"] is None and np.isnan(run_rate["crps_diff"])
    assert back["crps_diff_lo"].dtype == np.float64 and back["origins"].tolist() == [12, 12]
    # what the stored verdict rests on travels with it
    assert model["vs_run_rate_how"] == "90% Diebold-Mariano (HLN) interval, overlap 3"
    assert run_rate["vs_run_rate_how"] is None


def test_backtest_records_are_plain_json_without_nan() -> None:
    recs = st.backtest_records(backtest_with_verdict())
    text = json.dumps(recs, allow_nan=False)  # a NaN would not be JSON (PostgreSQL refuses it)
    assert '"vs_run_rate": null' in text and '"vs_run_rate": "better"' in text


def test_backtest_frame_of_a_table_saved_before_the_verdict_columns_has_none_of_them() -> None:
    from crmkit.forecast.backtest import summarise

    old = st.backtest_records(summarise(backtest_scores(3, 0.0)))  # as stored before #17
    back = st.backtest_frame(old)
    assert list(back.columns) == [
        "lead", "forecaster", "origins", "crps", "mae_median", "cover50", "cover80", "cover95",
    ]  # fmt: skip
    assert st.backtest_frame([]) is None and st.backtest_frame(None) is None
