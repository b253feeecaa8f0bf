"""The dashboard's numbers come straight from the snapshot's draws and tables."""

from __future__ import annotations

import numpy as np
import pytest

from crmkit.apps import dashboard as db
from crmkit.errors import CrmkitError, NotFoundError
from crmkit.store import Store
from tests.snapshot_factory import (
    OWNERS,
    backtest_scores,
    backtest_with_verdict,
    make_fake_snapshot,
)


def _draw_sums(snap, group: str, source: str) -> np.ndarray:
    """Per-draw sum over the periods, read from the labelled draws."""
    return snap.revenue.sel(group=group, source=source).sum("period").to_numpy()


def test_filter_allows_one_dimension_at_a_time() -> None:
    assert db.Filter().group == "all"
    assert db.Filter(team="north").group == "team=north"
    assert (
        db.Filter.from_mapping({"team": "All", "owner": "ann", "segment": ""}).group == "owner=ann"
    )
    with pytest.raises(CrmkitError, match="one of team, owner or segment"):
        db.Filter(team="north", owner="ann")
    with pytest.raises(CrmkitError, match="unknown filter"):
        db.Filter.from_mapping({"region": "EU"})


def test_filter_options_list_the_groups(snap) -> None:
    opts = db.filter_options(snap)
    assert opts == {"team": ["north", "south"], "owner": ["ann", "bob", "cy"],
                    "segment": ["Enterprise", "SMB"]}  # fmt: skip


def test_headline_adds_closed_revenue_to_the_draws(snap) -> None:
    head = db.headline(snap)
    assert list(head.index) == ["pipeline", "new_business", "repeat", "total"]
    closed_total = 95_000.0 + 10_000.0  # won by the three owners + repeat, in the factory
    assert head.loc["total", "closed_to_date"] == pytest.approx(closed_total)
    sums = _draw_sums(snap, "all", "total") + closed_total
    assert head.loc["total", "p50"] == pytest.approx(np.median(sums))
    assert head.loc["total", "p10"] < head.loc["total", "p50"] < head.loc["total", "p90"]
    assert head.loc["total", "target"] == pytest.approx(1_100_000.0)
    assert head.loc["total", "p_target"] == pytest.approx(np.mean(sums >= 1_100_000.0))
    # the sources' means add up to the total's mean
    assert head.loc[["pipeline", "new_business", "repeat"], "mean"].sum() == pytest.approx(
        head.loc["total", "mean"]
    )
    assert np.isnan(head.loc["pipeline", "p_target"])


def test_headline_follows_the_filter(snap) -> None:
    north = db.headline(snap, db.Filter(team="north")).loc["total"]
    assert north["closed_to_date"] == pytest.approx(40_000.0 + 25_000.0)
    sums = _draw_sums(snap, "team=north", "total") + 65_000.0
    assert north["p90"] == pytest.approx(np.quantile(sums, 0.9))
    assert north["p50"] < db.headline(snap).loc["total", "p50"]
    with pytest.raises(NotFoundError, match="owner 'zed'"):
        db.headline(snap, db.Filter(owner="zed"))


def test_fan_data_bands_are_quantiles_plus_closed(snap) -> None:
    fan = db.fan_data(snap)
    fc = fan[(fan["kind"] == "forecast") & (fan["source"] == "total")]
    q = snap.quantiles
    q = q[(q["group"] == "all") & (q["source"] == "total")]
    assert list(fc["period"]) == snap.coords["period"]
    np.testing.assert_allclose(fc["p50"], q["p50"] + q["closed_to_date"])
    np.testing.assert_allclose(fc["p_target"], q["p_target"])
    past = fan[fan["kind"] == "actual"]
    # past revenue of the repeat and total panels (won deals have no panel of their own)
    assert set(past["source"]) == {"repeat", "total"}
    assert len(past) == 6 * 2 and past["period"].max() < fc["period"].min()
    assert past["p50"].isna().all() and past["actual"].gt(0).all()
    assert set(past["actual_label"]) == {"actual"}
    # a filtered view shows that group's past revenue
    north = db.fan_data(snap, db.Filter(team="north"))
    north_past = north[north["kind"] == "actual"].set_index(["source", "period"])["actual"]
    all_past = past.set_index(["source", "period"])["actual"]
    np.testing.assert_allclose(north_past.loc[all_past.index], 0.6 * all_past)
    assert set(db.fan_data(snap, db.Filter(owner="ann"))["kind"]) == {"forecast"}


def test_pipeline_by_stage_merges_rates_and_filtered_amounts(snap) -> None:
    df = db.pipeline_by_stage(snap, db.Filter(owner="ann"))
    assert list(df["stage"]) == ["Qualification", "Discovery", "Proposal", "Negotiation"]
    assert list(df["amount"]) == [50_000.0, 100_000.0, 150_000.0, 200_000.0]
    assert list(df["configured"]) == [0.1, 0.25, 0.6, 0.8]
    everyone = db.pipeline_by_stage(snap)
    assert list(everyone["amount"]) == [a * len(OWNERS) for a in df["amount"]]


def test_at_risk_deals_sorted_and_filtered(snap) -> None:
    risk = db.at_risk_deals(snap, n=5)
    assert len(risk) == 5 and risk["p_slip"].is_monotonic_decreasing
    south = db.at_risk_deals(snap, db.Filter(team="south"), n=50)
    assert set(south["owner"]) == {"cy"} and len(south) == 8
    smb = db.at_risk_deals(snap, db.Filter(segment="SMB"), n=50)
    assert set(smb["segment"]) == {"SMB"}


def test_segment_contributions_share_the_total(snap) -> None:
    seg = db.segment_contributions(snap)
    assert list(seg["segment"]) == ["Enterprise", "SMB"]  # larger share first
    assert seg["share"].sum() == pytest.approx(1.0)
    ent = _draw_sums(snap, "segment=Enterprise", "total") + 0.6 * 105_000.0
    assert seg.loc[0, "p50"] == pytest.approx(np.median(ent))


def test_campaign_roi_when_available(snap) -> None:
    roi = db.campaign_roi(snap)
    assert roi is not None
    assert roi.loc[0, "roi_p50"] == pytest.approx(42_000 / 20_000 - 1)
    bare = make_fake_snapshot()
    del bare.parameters["tables"]["campaign_roi"]
    assert db.campaign_roi(bare) is None


def test_diagnostics_and_backtest_tables(snap) -> None:
    diag = db.diagnostics_table(snap)
    assert list(diag["model"]) == ["pipeline", "new_business", "repeat"]
    assert diag["ok"].all()
    assert len(db.backtest_table(snap)) == 2


def test_backtest_verdict_of_a_saved_snapshot_is_the_models_one_line(tmp_path) -> None:
    from crmkit.forecast.snapshot_tables import backtest_records

    snap = make_fake_snapshot()
    snap.parameters["tables"]["backtest"] = backtest_records(backtest_with_verdict())
    with Store.open(tmp_path / "crm.db") as store:
        store.save_snapshot(snap)
        loaded = store.load_snapshot()
    verdicts = db.backtest_verdicts(loaded)
    assert verdicts[["lead", "what"]].values.tolist() == [["1-3", "next 3 periods"]]
    assert verdicts["line"].item().startswith("better than run rate: yes (CRPS difference −")


def test_old_snapshot_backtest_without_verdict_columns_loads_with_no_verdict(tmp_path) -> None:
    from crmkit.forecast.backtest import summarise
    from crmkit.forecast.snapshot_tables import backtest_records

    old_fake = make_fake_snapshot()  # the factory's table: other columns, no verdict
    old_real = make_fake_snapshot(seed=1)  # a report's table as stored before #17
    old_real.parameters["tables"]["backtest"] = backtest_records(summarise(backtest_scores(3, 0)))
    with Store.open(tmp_path / "crm.db") as store:
        for snap in (old_fake, old_real):
            store.save_snapshot(snap)
            loaded = store.load_snapshot(snap.snapshot_id)
            table = db.backtest_table(loaded)
            assert len(table) == 2 and "vs_run_rate" not in table
            assert db.backtest_verdicts(loaded).empty


def test_no_snapshot_gives_none_and_a_helpful_message(mem_store: Store) -> None:
    assert db.latest_snapshot(mem_store) is None
    msg = db.no_snapshot_message(mem_store.url)
    assert "no forecast snapshot" in msg and "crmkit report" in msg
    with pytest.raises(NotFoundError):
        db.latest_snapshot(mem_store, snapshot_id=7)


def test_verdict_with_few_origins_says_only_a_large_difference_would_show() -> None:
    row = {"vs_run_rate": "not distinguishable", "crps_diff": -3000.0, "crps_diff_lo": -2e6,
           "crps_diff_hi": 1.7e6, "origins": 4}  # fmt: skip
    line = db.run_rate_verdict(row)
    assert line.startswith("better than run rate: not distinguishable (CRPS difference −3")
    assert line.endswith("; with 4 origins only a large difference would show")
    assert "only a large difference" not in db.run_rate_verdict({**row, "origins": 7})
    better = {**row, "vs_run_rate": "better", "crps_diff_hi": -1.0}
    assert "only a large difference" not in db.run_rate_verdict(better)
