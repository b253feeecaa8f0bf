"""The dashboard's numbers come straight from the snapshot's draws and tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.apps import dashboard as db
from crmkit.errors import CrmkitError, NotFoundError
from crmkit.store import Store
from tests.snapshot_factory import OWNERS, make_fake_snapshot


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


def test_no_snapshot_gives_none_and_a_helpful_message(mem_store: Store) -> None:
    assert db.latest_snapshot(mem_store) is None
    msg = db.no_snapshot_message(mem_store.url)
    assert "no forecast snapshot" in msg and "crmkit report" in msg
    with pytest.raises(NotFoundError):
        db.latest_snapshot(mem_store, snapshot_id=7)


def test_stored_snapshot_reads_the_same_and_changes_since(tmp_path) -> None:
    store = Store.open(tmp_path / "s.db")
    first = make_fake_snapshot(seed=1)
    second = make_fake_snapshot(seed=2, scale=1.2)
    store.save_snapshot(first)
    store.save_snapshot(second)
    loaded = db.latest_snapshot(store)
    assert loaded.snapshot_id == second.snapshot_id
    pd.testing.assert_frame_equal(db.headline(loaded), db.headline(second))
    prev = db.previous_snapshot(store, loaded)
    assert prev is not None and prev.snapshot_id == first.snapshot_id
    assert db.previous_snapshot(store, prev) is None
    ch = db.changes_since(prev, loaded)
    assert ch.loc["total", "p50_before"] == pytest.approx(db.headline(first).loc["total", "p50"])
    assert ch.loc["total", "change"] > 0  # everything is scaled up by 20 %
    assert db.changes_since(None, loaded)["p50_before"].isna().all()
    store.close()


def test_formatting() -> None:
    assert db.format_amount(1234567.4) == "1,234,567"
    assert db.format_amount(float("nan")) == "–"
    assert db.format_share(0.456) == "46%"


# ---------------------------------------------------------------- the forecast call (issue #16)
@pytest.fixture(scope="module")
def call_snap():
    return make_fake_snapshot(forecast_call=True)


def test_forecast_call_rows_are_the_groups_table_in_period_order(call_snap) -> None:
    table = pd.DataFrame(call_snap.parameters["tables"]["forecast_call"])
    north = db.forecast_call(call_snap, db.Filter(team="north"))
    assert list(north["period"]) == call_snap.coords["period"]
    want = table[table["group"] == "team=north"].reset_index(drop=True)
    for c in ("closed", "commit", "best_case", "pipeline", "p10", "p50", "p90", "p_commit"):
        np.testing.assert_allclose(north[c].astype(float), want[c].astype(float))
    # the roll-ups include each other, and P(commit reached) is read from the draws
    assert (north["closed"] <= north["commit"]).all()
    assert (north["commit"] <= north["best_case"]).all() and (
        north["best_case"] <= north["pipeline"]
    ).all()
    first = call_snap.coords["period"][0]
    draws = call_snap.revenue.sel(period=first, source="total", group="team=north").to_numpy()
    assert north.loc[0, "p_commit"] == pytest.approx(
        np.mean(draws + 65_000.0 >= north.loc[0, "commit"])
    )
    assert north.loc[0, "call"] == 310_000.0 and np.isnan(north.loc[1, "call"])
    assert north.loc[1, "call_author"] is None
    assert db.forecast_call(call_snap, db.Filter(segment="SMB")).empty  # no calls for segments


def test_forecast_call_and_attainment_are_none_for_older_snapshots(snap) -> None:
    assert db.forecast_call(snap) is None and db.attainment(snap) is None
    assert db.NOT_IN_SNAPSHOT in db.forecast_call_html(None, db.Filter())
    assert db.NOT_IN_SNAPSHOT in db.attainment_html(None, db.Filter())


def test_attainment_owners_sorted_by_p_attain_with_hand_computed_values(call_snap) -> None:
    att = db.attainment(call_snap)
    first = call_snap.coords["period"][0]
    owners = att[(att["period"] == first) & (att["scope"] == "owner")]
    assert owners["p_attain"].is_monotonic_decreasing and len(owners) == 3
    # ann: quota 150,000, won 40,000 so far, the rest from her draws
    ann = owners.set_index("name").loc["ann"]
    revenue = 40_000.0 + call_snap.revenue.sel(period=first, source="total", group="owner=ann")
    assert ann["quota"] == 150_000.0
    assert ann["attainment_to_date"] == pytest.approx(40_000.0 / 150_000.0)
    assert ann["expected_attainment"] == pytest.approx(float(revenue.mean()) / 150_000.0)
    assert ann["p_attain"] == pytest.approx(float((revenue >= 150_000.0).mean()))
    # per period: owners, then teams, then the company
    assert list(att[att["period"] == first]["scope"]) == ["owner"] * 3 + ["team"] * 2 + ["company"]
    south = db.attainment(call_snap, db.Filter(team="south"))
    assert set(south["group"]) == {"team=south", "owner=cy"}
    assert set(db.attainment(call_snap, db.Filter(owner="bob"))["group"]) == {"owner=bob"}
    assert db.attainment(call_snap, db.Filter(segment="SMB")).empty


def test_change_steps_run_from_the_previous_to_the_current_total() -> None:
    old = make_fake_snapshot(seed=3, scale=0.9, forecast_call=True)
    new = make_fake_snapshot(seed=4, forecast_call=True)
    steps = db.what_changed(old, new)
    assert steps["step"].iloc[0] == "before" and steps["step"].iloc[-1] == "now"
    start = old.revenue.sel(source="total", group="all").sum("period").mean()
    end = new.revenue.sel(source="total", group="all").sum("period").mean()
    assert steps["amount"].iloc[0] == pytest.approx(float(start))
    assert steps["amount"].iloc[-1] == pytest.approx(float(end))
    assert steps["amount"].iloc[1:-1].sum() == pytest.approx(float(end - start))
    assert steps["label"].is_unique
    # every reason once, in the waterfall's order, with compare_snapshots' sums
    reasons = db.compare_snapshots(old, new)["reasons"].set_index("reason")
    changes = steps[steps["kind"] == "change"].set_index("step")
    assert set(reasons.index) <= set(changes.index) <= set(reasons.index) | {"other"}
    for r in reasons.index:
        assert changes.loc[r, "amount"] == pytest.approx(reasons.loc[r, "delta_expected"])
    order = list(db.CHANGE_LABELS)
    assert [order.index(s) for s in changes.index] == sorted(order.index(s) for s in changes.index)
    assert db.what_changed(None, new) is None


def test_format_chance_never_rounds_to_a_certainty() -> None:
    assert db.format_chance(0.9975) == ">99%" and db.format_chance(1.0) == "100%"
    assert db.format_chance(0.003) == "<1%" and db.format_chance(0.0) == "0%"
    assert db.format_chance(0.456) == "46%" and db.format_chance(None) == "–"
