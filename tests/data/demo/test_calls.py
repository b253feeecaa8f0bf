"""The demo quotas and the team managers' calls: their formulas and biases show in the data.

The calls are checked against the forecast call's own roll-ups (crmkit.forecast.call), an
implementation independent of the generator's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.data.demo import params
from crmkit.data.demo.calls import manager_calls
from crmkit.data.demo.clock import Clock
from crmkit.data.demo.company import build_demo, generate_demo
from crmkit.forecast.axes import period_axis
from crmkit.forecast.call import category_rollups
from crmkit.store import Store
from crmkit.store.calls import calls_as_of, quota_frame


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


def _won(deals: pd.DataFrame, by: str) -> pd.Series:
    """Won deal revenue per (close month start, owner or team)."""
    won = deals[deals["status"] == "won"]
    month = won["closed_at"].dt.to_period("M").dt.start_time
    return won.groupby([month, won[by]])["amount"].sum()


def test_quotas_follow_the_formula(demo):
    q = demo.frames["quotas"]
    truth = demo.truth["forecast_call"]["quotas"]
    assert truth["stretch"] == params.QUOTA_STRETCH
    assert (q["period"] == "M").all()
    # months: the period's first to 12 after its last (2022-11 .. 2027-10)
    months = pd.date_range("2022-11-01", "2027-10-01", freq="MS")
    owners = [o for team in params.TEAMS.values() for o in team]
    won = _won(demo.frames["deals"], "owner")
    base_months = pd.date_range("2025-11-01", "2026-10-01", freq="MS")
    quota = q.set_index(["scope", "name", "period_start"])["amount"].sort_index()
    for owner in owners:
        got = quota.loc[("owner", owner)].sort_index()
        assert list(got.index) == list(months), owner
        base = sum(won.get((m, owner), 0.0) for m in base_months) / 12
        ahead = np.arange(len(months)) - (len(months) - 13)  # 0 at 2026-10
        want = 1.2 * base * np.exp(np.log(1.15) * ahead / 12)
        want = np.maximum(np.round(want / 100) * 100, 1000.0)
        assert np.allclose(got.to_numpy(), want), owner
        assert got.loc[pd.Timestamp("2026-10-01")] > 1000.0, owner
    for team, members in params.TEAMS.items():
        total = sum(quota.loc[("owner", o)] for o in members)
        assert np.allclose(quota.loc[("team", team)], total), team
    teams = sum(quota.loc[("team", t)] for t in params.TEAMS)
    assert np.allclose(quota.loc[("company", "all")], teams)
    assert len(q) == len(months) * (len(owners) + len(params.TEAMS) + 1)


def test_manager_calls_come_on_the_first_business_day_and_mid_month(demo):
    calls = demo.frames["forecast_calls"]
    assert (calls["scope"] == "team").all() and (calls["period"] == "M").all()
    assert (calls["author"] == calls["name"] + " manager").all()
    assert calls["call_id"].is_monotonic_increasing
    assert calls["created_at"].is_monotonic_increasing
    at = calls["created_at"]
    assert (at.dt.day_of_week < 5).all() and (at.dt.hour == params.CALL_HOUR).all()
    assert (at.dt.to_period("M").dt.start_time == calls["period_start"]).all()
    first = calls["note"] == "first call"
    assert (at[first].dt.day <= 3).all()
    assert ((at[~first].dt.day >= 15) & (at[~first].dt.day <= 17)).all()
    # every team calls twice in each of the 48 months
    per = calls.groupby(["name", "period_start"]).size()
    assert (per == 2).all() and len(per) == 48 * len(params.TEAMS)


@pytest.fixture(scope="module")
def commit_at_calls(demo) -> np.ndarray:
    """The forecast call's commit roll-up of each call's team and month, the day before it."""
    calls = demo.frames["forecast_calls"]
    deals, history = demo.frames["deals"], demo.frames["deal_history"]
    out = np.empty(len(calls))
    for at, rows in calls.groupby("created_at"):
        day = at.normalize() - pd.Timedelta(days=1)
        groups = [f"team={t}" for t in rows["name"]]
        got = category_rollups(
            deals, as_of=day, axis=period_axis(day, 1), groups=groups, history=history
        )
        assert (got["period"] == rows["period_start"].dt.strftime("%Y-%m").iloc[0]).all()
        out[calls.index.get_indexer(rows.index)] = got["commit"].to_numpy()
    return out


def test_manager_calls_are_the_debiased_commit_rollup_known_the_day_before(demo, commit_at_calls):
    calls = demo.frames["forecast_calls"]
    commit = commit_at_calls
    truth = demo.truth["forecast_call"]["manager_calls"]
    assert truth["commit_optimism"] == params.COMMIT_OPTIMISM == 0.25
    bias = calls["name"].map(truth["bias"]).to_numpy()
    want = np.round(commit / 1.25 * bias / 100) * 100
    assert np.array_equal(calls["amount"].to_numpy(), want)
    # a team with nothing committed gets a zero call, and some months do have commits
    assert (calls["amount"].to_numpy()[commit == 0] == 0).all()
    assert (commit > 0).mean() > 0.8


def test_sandbagging_manager_bias_is_recovered(demo, commit_at_calls):
    calls = demo.frames["forecast_calls"]
    commit = commit_at_calls
    truth = demo.truth["forecast_call"]["manager_calls"]
    assert truth["sandbagging_team"] == "Strategic" and truth["bias"]["Strategic"] == 0.8
    debiased = commit / (1 + params.COMMIT_OPTIMISM)
    big = debiased > 10_000  # ratios of small calls are mostly rounding (to 100)
    ratio = calls["amount"].to_numpy() / np.where(big, debiased, np.nan)
    found = {}
    for team, bias in truth["bias"].items():
        sel = big & (calls["name"] == team).to_numpy()
        assert sel.sum() > 20, team
        found[team] = np.nanmean(ratio[sel])
        # rounding to 100 moves a call of 8,000 (0.8 x 10,000) or more by at most 0.7%
        assert abs(found[team] - bias) < 0.007, (team, found[team], bias)
    assert min(found, key=found.get) == "Strategic" and found["Strategic"] < 0.85
    assert found["West"] > found["East"] > found["Strategic"]


def test_manager_calls_do_not_see_what_happens_after_them(demo):
    deals = demo.frames["deals"].copy()
    history = demo.frames["deal_history"]
    cut = pd.Timestamp("2026-06-10")  # between June's first call and its update
    later = (deals["status"] == "won") & (deals["closed_at"] > cut)
    assert later.sum() > 10
    # every deal won after the cut is lost instead, and its later history is gone
    deals.loc[later, "status"] = "lost"
    deals.loc[later, "forecast_category"] = "omitted"
    clock = Clock(pd.Timestamp("2022-11-01"), pd.Timestamp("2026-10-31"))
    redone = manager_calls(clock, deals, history[history["changed_at"] <= cut])
    calls = demo.frames["forecast_calls"]
    before = (calls["created_at"] <= cut).to_numpy()
    assert before.sum() == 3 * (2 * 43 + 1)  # per team: 43 months and June's first call
    assert np.array_equal(redone["amount"].to_numpy()[before], calls["amount"].to_numpy()[before])
    assert not np.array_equal(redone["amount"].to_numpy()[~before], calls["amount"][~before])
    won_june = _won(deals, "team").get((pd.Timestamp("2026-06-01"), "Strategic"), 0.0)
    assert won_june < _won(demo.frames["deals"], "team")[(pd.Timestamp("2026-06-01"), "Strategic")]


def test_calls_as_of_gives_the_call_standing_on_a_day(demo):
    calls = demo.frames["forecast_calls"]
    month = pd.Timestamp("2026-06-01")
    first = calls[(calls["period_start"] == month) & (calls["note"] == "first call")]
    update = calls[(calls["period_start"] == month) & (calls["note"] == "mid-month update")]
    on_first = calls_as_of(calls, first["created_at"].iloc[0].normalize())
    on_first = on_first[on_first["period_start"] == month].set_index("name")
    pd.testing.assert_series_equal(
        on_first["amount"].sort_index(), first.set_index("name")["amount"].sort_index()
    )
    later = calls_as_of(calls, "2026-06-30")
    later = later[later["period_start"] == month].set_index("name")
    pd.testing.assert_series_equal(
        later["amount"].sort_index(), update.set_index("name")["amount"].sort_index()
    )
    assert (later["note"] == "mid-month update").all()


def test_build_demo_stores_quotas_and_calls(tmp_path):
    with Store.open(tmp_path / "demo.db") as store:
        demo = build_demo(store, n_customers=150, n_deals=300, seed=5)
        q = quota_frame(store)
        assert len(q) == len(demo.frames["quotas"])
        assert {"all", "team=Strategic", "owner=Ava Thompson"} <= set(q["group"])
        assert set(q["label"]) >= {"2026-10", "2027-10"}
        stored = store.read("forecast_calls").sort_values("call_id")
        calls = demo.frames["forecast_calls"]
        assert stored["call_id"].tolist() == list(range(1, len(calls) + 1))
        assert np.allclose(stored["amount"], calls["amount"])
        assert (stored["author"].to_numpy() == calls["author"].to_numpy()).all()
        hist = store.read("deal_history", where={"field": "forecast_category"})
        assert hist["deal_id"].nunique() == 300
