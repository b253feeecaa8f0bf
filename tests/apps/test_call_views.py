"""The forecast call and quota attainment come straight from the snapshot's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.apps import call_views as cv
from crmkit.apps.dashboard import Filter
from tests.snapshot_factory import make_fake_snapshot


@pytest.fixture(scope="module")
def call_snap():
    return make_fake_snapshot(forecast_call=True)


def test_forecast_call_rows_are_the_groups_table_in_period_order(call_snap) -> None:
    table = pd.DataFrame(call_snap.parameters["tables"]["forecast_call"])
    north = cv.forecast_call(call_snap, Filter(team="north"))
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
    assert cv.forecast_call(call_snap, Filter(segment="SMB")).empty  # no calls for segments


def test_forecast_call_and_attainment_are_none_for_older_snapshots(snap) -> None:
    assert cv.forecast_call(snap) is None and cv.attainment(snap) is None
    assert cv.NOT_IN_SNAPSHOT in cv.forecast_call_html(None, Filter())
    assert cv.NOT_IN_SNAPSHOT in cv.attainment_html(None, Filter())


def test_attainment_owners_sorted_by_p_attain_with_hand_computed_values(call_snap) -> None:
    att = cv.attainment(call_snap)
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
    south = cv.attainment(call_snap, Filter(team="south"))
    assert set(south["group"]) == {"team=south", "owner=cy"}
    assert set(cv.attainment(call_snap, Filter(owner="bob"))["group"]) == {"owner=bob"}
    assert cv.attainment(call_snap, Filter(segment="SMB")).empty
