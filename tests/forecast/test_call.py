"""The forecast call: category roll-ups, P(Commit) from the draws, attainment, calls, open deals.

Hand-built deals and snapshots whose roll-ups and probabilities are known exactly; the
open-deal probabilities on the session's simulated deals with fitted models.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import SOURCE_PARTS, add_total, period_axis, revenue_array
from crmkit.forecast.call import call_tables, category_rollups, first_period_win
from crmkit.forecast.engine import forecast_draws
from crmkit.forecast.tables import quantile_table
from crmkit.store import Snapshot
from tests.forecast.fake_mmm import AS_OF as SIM_AS_OF

AS_OF = dt.date(2026, 11, 15)
GROUPS = ["all", "team=north", "team=south", "owner=ann", "owner=bob", "owner=cy"]
TEAM = {"ann": "north", "bob": "north", "cy": "south"}


def _deal(i, owner, status, category, amount, ecd, closed=None, created="2026-08-01"):
    """One deal row."""
    return {
        "deal_id": f"D{i}",
        "owner": owner,
        "team": TEAM[owner],
        "stage": "won" if status == "won" else "proposal",
        "status": status,
        "amount": float(amount),
        "created_at": pd.Timestamp(created),
        "expected_close_date": pd.Timestamp(ecd) if ecd else pd.NaT,
        "closed_at": pd.Timestamp(closed) if closed else pd.NaT,
        "forecast_category": category,
    }


def _deals() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals in every situation of the roll-ups, and a category change after as_of."""
    rows = [
        _deal(1, "ann", "open", "commit", 100, "2026-11-20"),
        _deal(2, "bob", "open", "best_case", 200, "2026-12-05"),
        _deal(3, "cy", "open", "pipeline", 300, "2026-11-30"),
        _deal(4, "ann", "open", "commit", 50, "2026-09-10"),  # overdue: the first period
        _deal(5, "bob", "open", "omitted", 1000, "2026-11-10"),  # omitted: in no roll-up
        _deal(6, "ann", "won", "closed", 400, "2026-11-03", closed="2026-11-03 10:00"),
        _deal(7, "cy", "won", "closed", 999, "2026-10-20", closed="2026-10-20"),  # last month
        _deal(8, "bob", "open", "commit", 70, "2027-05-01"),  # after the horizon
        # won after as_of: open then, in the category it had then (commit, from history)
        _deal(9, "cy", "won", "closed", 500, "2026-11-25", closed="2026-11-20"),
        _deal(10, "cy", "open", "commit", 10_000, "2026-11-30", created="2026-11-20"),  # later
        _deal(11, "ann", "lost", "omitted", 600, "2026-11-05", closed="2026-11-05"),
        _deal(12, "cy", "open", None, 30, "2027-01-15"),  # no category: pipeline
        _deal(13, "bob", "open", "Best Case", 20, None),  # no expected close date: nowhere
    ]
    history = pd.DataFrame(
        {
            "deal_id": ["D9"],
            "changed_at": [pd.Timestamp("2026-11-20")],
            "field": ["forecast_category"],
            "old_value": ["commit"],
            "new_value": ["closed"],
        }
    )
    return pd.DataFrame(rows), history


EXPECTED = {  # (group, period): (closed, commit, best_case, pipeline), by hand
    ("all", "2026-11"): (400, 1050, 1050, 1350),
    ("all", "2026-12"): (0, 0, 200, 200),
    ("all", "2027-01"): (0, 0, 0, 30),
    ("team=north", "2026-11"): (400, 550, 550, 550),
    ("team=north", "2026-12"): (0, 0, 200, 200),
    ("team=north", "2027-01"): (0, 0, 0, 0),
    ("team=south", "2026-11"): (0, 500, 500, 800),
    ("team=south", "2026-12"): (0, 0, 0, 0),
    ("team=south", "2027-01"): (0, 0, 0, 30),
    ("owner=ann", "2026-11"): (400, 550, 550, 550),
    ("owner=bob", "2026-11"): (0, 0, 0, 0),
    ("owner=bob", "2026-12"): (0, 0, 200, 200),
    ("owner=cy", "2026-11"): (0, 500, 500, 800),
    ("owner=cy", "2027-01"): (0, 0, 0, 30),
}


def test_category_rollups_equal_the_sums_of_their_deals_for_company_teams_and_owners() -> None:
    deals, history = _deals()
    axis = period_axis(AS_OF, 3, "M")
    roll = category_rollups(deals, as_of=AS_OF, axis=axis, groups=GROUPS, history=history)
    assert list(roll.columns) == ["group", "period", "closed", "commit", "best_case", "pipeline"]
    assert len(roll) == len(GROUPS) * 3
    got = roll.set_index(["group", "period"])
    for key, want in EXPECTED.items():
        assert tuple(got.loc[key]) == pytest.approx(want), key
    # every team is the sum of its owners, the company the sum of its teams
    cols = ["closed", "commit", "best_case", "pipeline"]
    by = {g: got.loc[g, cols].to_numpy() for g in GROUPS}
    np.testing.assert_allclose(by["team=north"], by["owner=ann"] + by["owner=bob"])
    np.testing.assert_allclose(by["team=south"], by["owner=cy"])
    np.testing.assert_allclose(by["all"], by["team=north"] + by["team=south"])
    # the roll-ups nest: closed <= commit <= best case <= pipeline
    assert (np.diff(roll[cols].to_numpy(), axis=1) >= 0).all()


def test_category_rollups_without_history_use_todays_categories() -> None:
    deals, _ = _deals()
    axis = period_axis(AS_OF, 1, "M")
    roll = category_rollups(deals, as_of=AS_OF, axis=axis, groups=["owner=cy"]).iloc[0]
    # deal 9 is open on as_of (won later) and today in category closed: counted in commit
    assert (roll["closed"], roll["commit"], roll["pipeline"]) == (0.0, 500.0, 800.0)


def test_category_rollups_per_quarter_count_the_quarter_closed_to_date() -> None:
    deals, history = _deals()
    axis = period_axis(AS_OF, 2, "Q")
    roll = category_rollups(deals, as_of=AS_OF, axis=axis, groups=["all"], history=history)
    got = roll.set_index("period")
    # Q4 holds the October win (999) and every open deal due by December
    assert tuple(got.loc["2026-Q4"].iloc[1:]) == (1399.0, 2049.0, 2249.0, 2549.0)
    assert tuple(got.loc["2027-Q1"].iloc[1:]) == (0.0, 0.0, 0.0, 30.0)


def test_unknown_forecast_category_is_a_one_line_error_naming_the_deal() -> None:
    deals, _ = _deals()
    deals.loc[2, "forecast_category"] = "maybe next year"
    with pytest.raises(CrmkitError) as err:
        category_rollups(deals, as_of=AS_OF, axis=period_axis(AS_OF, 1), groups=["all"])
    msg = str(err.value)
    assert "\n" not in msg and "deal D3" in msg and "'maybe next year'" in msg


# ------------------------------------------------------------------ hand-made snapshots
def _snapshot(
    totals: dict[str, np.ndarray],
    closed: dict[str, float],
    *,
    as_of: dt.date = AS_OF,
    period: str = "M",
    horizon: int = 1,
) -> Snapshot:
    """A snapshot whose total draws per group are given (same in every period)."""
    axis = period_axis(as_of, horizon, period)
    groups = list(totals)
    n = len(next(iter(totals.values())))
    rev = revenue_array(n, axis.labels, groups)
    for s in SOURCE_PARTS:
        rev.loc[{"source": s}] = 0.0
    for g, d in totals.items():
        rev.loc[{"source": "pipeline", "group": g}] = np.asarray(d, float)[:, None]
    add_total(rev)
    ctd = np.zeros((len(axis.labels), len(groups)))
    for g, c in closed.items():
        ctd[0, groups.index(g)] = c
    import xarray as xr

    ctd_da = xr.DataArray(
        ctd, dims=("period", "group"), coords={"period": axis.labels, "group": groups}
    )
    return Snapshot(
        as_of=as_of,
        horizon=horizon,
        period=period,
        quantiles=quantile_table(rev, ctd_da),
        draws={"revenue": rev.to_numpy()},
        coords={"period": axis.labels, "source": list(rev.coords["source"].values),
                "group": groups},
        dims={"revenue": list(rev.dims)},
        parameters={"tables": {}},
    )  # fmt: skip


def _frames() -> dict[str, pd.DataFrame]:
    deals, history = _deals()
    return {"deals": deals, "deal_history": history}


def test_p_commit_and_p_best_case_are_shares_of_the_draws() -> None:
    # company: closed 400, commit 1050, best case 1050, pipeline 1350 (see EXPECTED);
    # draws 0..999 on top of the 400 won: P(400 + x >= 1050) = P(x >= 650) = 0.35
    snap = _snapshot({"all": np.arange(1000.0), "owner=ann": np.arange(1000.0) / 10}, {
        "all": 400.0, "owner=ann": 400.0})  # fmt: skip
    t = call_tables(snap, _frames())
    rec = {r["group"]: r for r in t["forecast_call"]}
    company = rec["all"]
    assert (company["closed"], company["commit"], company["pipeline"]) == (400.0, 1050.0, 1350.0)
    assert company["p_commit"] == pytest.approx(0.35)
    assert company["p_best_case"] == pytest.approx(0.35)
    want = np.quantile(400.0 + np.arange(1000.0), [0.1, 0.5, 0.9])
    assert [company[k] for k in ("p10", "p50", "p90")] == pytest.approx(list(want))
    # ann: commit 550 against 400 + x/10, x/10 in 0..99.9: never reached (max 499.9)
    assert rec["owner=ann"]["p_commit"] == 0.0
    assert rec["owner=ann"]["commit"] == 550.0
    assert set(rec) == {"all", "owner=ann"}  # only the snapshot's company, teams, owners
    assert all(r["call"] is None and r["call_author"] is None for r in t["forecast_call"])


def test_p_commit_is_one_when_closed_to_date_already_covers_commit() -> None:
    snap = _snapshot({"all": np.zeros(10), "owner=bob": np.zeros(10)}, {"all": 400.0})
    rec = {r["group"]: r for r in call_tables(snap, _frames())["forecast_call"]}
    assert rec["owner=bob"]["commit"] == 0.0 and rec["owner=bob"]["p_commit"] == 1.0
    assert rec["all"]["p_commit"] == 0.0  # 400 < 1050 in every draw


def _quotas(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["scope", "name", "period", "period_start", "amount"])


def test_attainment_matches_hand_computed_case() -> None:
    # ann: quota 100, 40 closed, draws 0/20/60/100 -> totals 40/60/100/140
    snap = _snapshot(
        {"all": np.zeros(4), "owner=ann": np.array([0.0, 20.0, 60.0, 100.0]),
         "owner=bob": np.zeros(4)},
        {"owner=ann": 40.0},
    )  # fmt: skip
    quotas = _quotas(
        [
            ("owner", "ann", "M", pd.Timestamp("2026-11-01"), 100.0),
            ("owner", "ann", "M", pd.Timestamp("2027-03-01"), 100.0),  # not a forecast period
            ("owner", "ann", "Q", pd.Timestamp("2026-10-01"), 300.0),  # quarterly: not monthly
            ("owner", "zed", "M", pd.Timestamp("2026-11-01"), 100.0),  # not in the forecast
        ]
    )
    att = call_tables(snap, _frames(), quotas=quotas)["attainment"]
    assert len(att) == 1  # company and bob have no quota: no record
    a = att[0]
    assert (a["group"], a["period"], a["quota"], a["closed_to_date"]) == (
        "owner=ann", "2026-11", 100.0, 40.0)  # fmt: skip
    assert a["attainment_to_date"] == pytest.approx(0.4)
    assert a["expected_attainment"] == pytest.approx((0.4 + 0.6 + 1.0 + 1.4) / 4)
    assert a["att_p50"] == pytest.approx(0.8)
    assert a["att_p10"] == pytest.approx(np.quantile([0.4, 0.6, 1.0, 1.4], 0.1))
    assert a["att_p90"] == pytest.approx(np.quantile([0.4, 0.6, 1.0, 1.4], 0.9))
    assert a["p_attain"] == pytest.approx(0.5)  # 100 and 140 reach it


def test_attainment_per_quarter_uses_quarterly_quotas() -> None:
    snap = _snapshot(
        {"all": np.full(10, 500.0), "team=north": np.arange(0.0, 1000.0, 100.0)},
        {"team=north": 400.0},
        period="Q",
        horizon=2,
    )
    assert snap.revenue.coords["period"].values.tolist() == ["2026-Q4", "2027-Q1"]
    quotas = _quotas(
        [
            ("team", "north", "Q", pd.Timestamp("2026-10-01"), 1000.0),
            ("team", "north", "M", pd.Timestamp("2026-11-01"), 300.0),  # monthly: not here
            ("company", "all", "Q", pd.Timestamp("2027-01-01"), 0.0),  # zero quota
        ]
    )
    att = {(r["group"], r["period"]): r for r in call_tables(snap, _frames(), quotas=quotas)[
        "attainment"]}  # fmt: skip
    assert set(att) == {("team=north", "2026-Q4"), ("all", "2027-Q1")}
    north = att[("team=north", "2026-Q4")]
    # 400 closed + 0..900: reaches 1000 from 600 on, 4 draws of 10
    assert north["p_attain"] == pytest.approx(0.4)
    assert north["expected_attainment"] == pytest.approx((400 + 450) / 1000)
    zero = att[("all", "2027-Q1")]
    assert zero["p_attain"] == 1.0 and zero["expected_attainment"] is None
    assert zero["closed_to_date"] == 0.0  # nothing is closed in a later quarter yet


def test_forecast_call_shows_the_latest_manager_call_made_by_as_of() -> None:
    snap = _snapshot({"all": np.zeros(5), "team=north": np.zeros(5)}, {})
    calls = pd.DataFrame(
        {
            "call_id": [1, 2, 3, 4, 5],
            "scope": ["team", "team", "team", "company", "team"],
            "name": ["north", "north", "north", "all", "south"],
            "period": ["M", "M", "M", "Q", "M"],
            "period_start": pd.to_datetime(["2026-11-01"] * 3 + ["2026-10-01", "2026-11-01"]),
            "amount": [800.0, 900.0, 1200.0, 5000.0, 10.0],
            "author": ["mia", "mia", "mia", "ceo", "sam"],
            "note": [None, "two deals pushed", "after as_of", None, None],
            "created_at": pd.to_datetime(
                ["2026-11-01 09:00", "2026-11-15 17:30", "2026-11-16 08:00", "2026-11-02 00:00",
                 "2026-11-03 00:00"]
            ),
        }
    )  # fmt: skip
    rec = {r["group"]: r for r in call_tables(snap, _frames(), calls=calls)["forecast_call"]}
    north = rec["team=north"]
    assert (north["call"], north["call_author"], north["call_note"]) == (
        900.0, "mia", "two deals pushed")  # fmt: skip
    assert north["call_at"] == "2026-11-15T17:30:00"
    assert rec["all"]["call"] is None  # a quarterly call is not a monthly one


# ------------------------------------------------------------------ open deals
@pytest.fixture(scope="module")
def sim_forecast(marketing_setup):
    """Forecast draws on the simulated deals: 1 and 3 months."""
    _, frames, models = marketing_setup
    kw = dict(as_of=SIM_AS_OF, draws=200, seed=2, include_repeat=False)
    one = forecast_draws(models, frames, horizon=1, **kw)
    return models, one, forecast_draws(models, frames, horizon=3, **kw), frames


def test_first_period_win_equals_the_simulations_p_win_over_one_period(sim_forecast) -> None:
    models, one, _, _ = sim_forecast
    deals = one["deals"]
    n_p = one["settings"]["n_p"]
    p = first_period_win(models["pipeline"], deals, one["axis"], n_p=n_p, seed=2)
    assert len(p) == len(deals) > 10
    np.testing.assert_allclose(p, deals["p_win"].to_numpy(), atol=1e-5)


def test_open_deals_table_has_p_win_in_the_period_p_slip_and_expected_revenue(
    sim_forecast,
) -> None:
    models, _, three, frames = sim_forecast
    deals = three["deals"].copy()
    deals["p_win_period"] = first_period_win(
        models["pipeline"], deals, three["axis"], n_p=three["settings"]["n_p"], seed=2
    )
    tables = call_tables(_sim_snapshot(three), frames, open_deals=deals)
    rows = tables["open_deals"]
    assert [r["deal_id"] for r in rows] == deals["deal_id"].astype(str).tolist()
    p_win = np.array([r["p_win"] for r in rows])
    assert ((p_win >= 0) & (p_win <= 1)).all()
    # within the first month no more likely than within three, and less for some deals
    assert (p_win <= deals["p_win"].to_numpy() + 1e-6).all()
    assert (p_win < deals["p_win"].to_numpy() - 0.01).any()
    slip = [r["p_slip"] for r in rows]
    want = deals["p_slip"].to_numpy()
    assert all((s is None) == np.isnan(w) for s, w in zip(slip, want, strict=True))
    assert all(s is None or 0 <= s <= 1 for s in slip)
    exp = np.array([r["expected_revenue"] for r in rows])
    np.testing.assert_allclose(exp, deals["expected_revenue"].to_numpy())


def test_first_period_win_refuses_deals_that_are_not_the_models(sim_forecast) -> None:
    models, one, _, _ = sim_forecast
    deals = one["deals"].iloc[::-1]
    with pytest.raises(CrmkitError, match="not the pipeline model's"):
        first_period_win(models["pipeline"], deals, one["axis"], n_p=10, seed=2)


def _sim_snapshot(result: dict) -> Snapshot:
    """A snapshot of forecast draws, as build_snapshot lays them out."""
    rev = result["revenue"]
    axis = result["axis"]
    return Snapshot(
        as_of=pd.Timestamp(SIM_AS_OF).date(),
        horizon=len(axis.labels),
        period="M",
        quantiles=quantile_table(rev, result["closed_to_date"]),
        draws={"revenue": rev.to_numpy()},
        coords={d: [str(v) for v in rev.coords[d].values] for d in ("period", "source", "group")},
        dims={"revenue": list(rev.dims)},
        parameters={"tables": {}},
    )
