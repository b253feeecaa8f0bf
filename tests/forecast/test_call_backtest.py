"""The forecast call's backtest: the model, the categories or the manager."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.backtest import (
    CALL_COLUMNS,
    call_backtest,
    call_origins,
    call_points,
    month_ends,
    run_rate_points,
    score_call,
    summarise_calls,
)

ORIGIN = "2024-03-31"


def _deals() -> pd.DataFrame:
    """Five deals of two owners (Ann in East, Bob in West) around April 2024."""
    rows = [
        # deal, owner, team, created, status, closed_at, amount, expected close, category now
        ("D1", "Ann", "East", "2024-02-01", "won", "2024-04-20", 100.0, "2024-04-15", "pipeline"),
        ("D2", "Bob", "West", "2024-02-01", "lost", "2024-04-25", 200.0, "2024-04-30", "commit"),
        ("D3", "Ann", "East", "2024-02-01", "won", "2024-06-10", 400.0, "2024-06-10", "commit"),
        ("D4", "Bob", "West", "2024-04-05", "won", "2024-04-28", 50.0, "2024-04-28", "commit"),
        ("D5", "Ann", "East", "2023-12-01", "won", "2024-01-15", 300.0, "2024-01-15", "closed"),
        ("D6", "Bob", "West", "2024-01-01", "won", "2024-03-10", 60.0, "2024-03-10", "closed"),
        ("D7", "Bob", "West", "2024-02-01", "open", None, 900.0, "2024-04-20", "omitted"),
    ]
    cols = ["deal_id", "owner", "team", "created_at", "status", "closed_at", "amount",
            "expected_close_date", "forecast_category"]  # fmt: skip
    d = pd.DataFrame(rows, columns=cols)
    d["stage"] = "Proposal"
    for c in ("created_at", "closed_at", "expected_close_date"):
        d[c] = pd.to_datetime(d[c])
    return d


def _history() -> pd.DataFrame:
    """Category changes: D1 commit in March, pipeline in April; D2 best case, then commit."""
    rows = [
        ("D1", "2024-02-01", "forecast_category", None, "pipeline"),
        ("D1", "2024-03-10", "forecast_category", "pipeline", "commit"),
        ("D1", "2024-04-05", "forecast_category", "commit", "pipeline"),
        ("D2", "2024-03-01", "forecast_category", "pipeline", "best_case"),
        ("D2", "2024-04-10", "forecast_category", "best_case", "commit"),
    ]
    h = pd.DataFrame(rows, columns=["deal_id", "changed_at", "field", "old_value", "new_value"])
    h["changed_at"] = pd.to_datetime(h["changed_at"])
    h["history_id"] = np.arange(1, len(h) + 1)
    return h


def _calls() -> pd.DataFrame:
    """Manager calls: East's April call made by the origin and superseded after it, and more."""
    rows = [
        ("team", "East", "M", "2024-04-01", 90.0, "Erin", "2024-03-25 10:00"),
        ("team", "East", "M", "2024-04-01", 500.0, "Erin", "2024-04-02 09:00"),  # after
        ("company", "all", "M", "2024-04-01", 400.0, "Vic", "2024-03-31 15:00"),  # same day
        ("team", "West", "Q", "2024-04-01", 777.0, "Wes", "2024-03-20 10:00"),  # quarter
        ("team", "West", "M", "2024-05-01", 666.0, "Wes", "2024-03-20 10:00"),  # May
    ]
    cols = ["scope", "name", "period", "period_start", "amount", "author", "created_at"]
    c = pd.DataFrame(rows, columns=cols)
    c["note"] = None
    c["call_id"] = np.arange(1, len(c) + 1)
    c["period_start"] = pd.to_datetime(c["period_start"])
    c["created_at"] = pd.to_datetime(c["created_at"])
    return c


def _frames() -> dict[str, pd.DataFrame]:
    return {"deals": _deals(), "deal_history": _history(), "forecast_calls": _calls()}


def _point(res: pd.DataFrame, group: str, forecaster: str) -> pd.Series:
    row = res[(res["group"] == group) & (res["forecaster"] == forecaster)]
    assert len(row) == 1, (group, forecaster, row)
    return row.iloc[0]


def test_call_points_rebuild_the_categories_as_they_stood_at_the_origin() -> None:
    res = call_points(_frames(), [ORIGIN])
    assert list(res.columns) == list(CALL_COLUMNS)
    assert set(res["period"]) == {"2024-04"}
    # at the origin D1 was commit and D2 best case (today: pipeline and commit); the omitted
    # D7 and the June deal D3 count in no April roll-up, D4 did not exist yet
    expect = {
        ("all", "commit"): 100.0, ("all", "best_case"): 300.0,
        ("owner=Ann", "commit"): 100.0, ("owner=Ann", "best_case"): 100.0,
        ("owner=Bob", "commit"): 0.0, ("owner=Bob", "best_case"): 200.0,
        ("team=East", "commit"): 100.0, ("team=West", "best_case"): 200.0,
    }  # fmt: skip
    for (group, name), value in expect.items():
        assert _point(res, group, name)["point"] == pytest.approx(value), (group, name)


def test_call_points_score_against_the_won_revenue_of_the_period() -> None:
    res = call_points(_frames(), [ORIGIN])
    # April's wins: D1 (100, Ann/East) and D4 (50, Bob/West, created after the origin)
    outcome = res.groupby("group")["outcome"].first()
    assert outcome.to_dict() == {
        "all": 150.0, "owner=Ann": 100.0, "owner=Bob": 50.0, "team=East": 100.0,
        "team=West": 50.0,
    }  # fmt: skip
    c = _point(res, "all", "commit")
    assert (c["error"], c["abs_error"], c["hit"]) == (-50.0, 50.0, 1.0)  # 150 >= 100 reached
    b = _point(res, "all", "best_case")
    assert (b["error"], b["abs_error"], b["hit"]) == (150.0, 150.0, 0.0)  # 300 not reached
    assert res[["crps", "cover80", "cover50"]].isna().all().all()


def test_call_points_take_the_manager_call_made_by_the_origin_not_a_later_one() -> None:
    res = call_points(_frames(), [ORIGIN])
    calls = res[res["forecaster"] == "manager_call"].set_index("group")["point"]
    # East's 500 came after the origin; West's calls are for a quarter and for May
    assert calls.to_dict() == {"all": 400.0, "team=East": 90.0}
    east = _point(res, "team=East", "manager_call")
    assert (east["abs_error"], east["hit"]) == (10.0, 1.0)
    later = call_points(_frames(), ["2024-04-02"])  # the superseding call stands from then
    assert _point(later, "team=East", "manager_call")["point"] == 500.0


def test_run_rate_is_the_mean_of_the_last_complete_periods_zeros_included() -> None:
    res = call_points(_frames(), [ORIGIN], run_rate_k=3)
    rr = res[res["forecaster"] == "run_rate"].set_index("group")["point"]
    # January 300 (Ann), February nothing, March 60 (Bob)
    assert rr.to_dict() == pytest.approx(
        {"all": 120.0, "owner=Ann": 100.0, "owner=Bob": 20.0, "team=East": 100.0,
         "team=West": 20.0}
    )  # fmt: skip
    none = run_rate_points(_deals().iloc[:0], 24 * 12, "M", ["all"])
    assert none == {"all": 0.0}


def test_call_points_by_quarter_count_closed_to_date_in_the_commit() -> None:
    # from the end of April the quarter is Q2 2024: D1 and D4 were won in April (closed to
    # date), D2 lost, D7 omitted; D3 (June) was commit all along
    res = call_points(_frames(), ["2024-04-30"], period="Q")
    assert set(res["period"]) == {"2024-Q2"}
    assert _point(res, "all", "commit")["point"] == pytest.approx(100.0 + 50.0 + 400.0)
    assert _point(res, "owner=Bob", "best_case")["point"] == pytest.approx(50.0)
    assert _point(res, "all", "commit")["outcome"] == pytest.approx(100.0 + 50.0 + 400.0)


def test_score_call_of_the_model_has_crps_and_coverage() -> None:
    draws = np.arange(1.0, 101.0)
    inside = score_call(50.0, float(np.median(draws)), draws)
    assert inside["cover80"] == 1.0 and inside["cover50"] == 1.0
    assert inside["abs_error"] == pytest.approx(0.5) and inside["hit"] == 0.0
    outside = score_call(95.0, 50.5, draws)
    assert outside["cover80"] == 0.0 and outside["cover50"] == 0.0 and outside["hit"] == 1.0
    assert outside["crps"] > inside["crps"] > 0
    point = score_call(10.0, 10.0)
    assert point["hit"] == 1.0 and np.isnan(point["crps"])  # exactly reached counts


def _scored() -> pd.DataFrame:
    """A hand-made call backtest: two origins, the company and team East."""
    rows = [
        # origin, group, forecaster, outcome, point, crps, cover80, cover50
        ("2024-01-31", "all", "model", 100.0, 90.0, 5.0, 1.0, 1.0),
        ("2024-01-31", "all", "commit", 100.0, 130.0, None, None, None),
        ("2024-01-31", "all", "manager_call", 100.0, 60.0, None, None, None),
        ("2024-01-31", "team=East", "model", 40.0, 50.0, 4.0, 1.0, 0.0),
        ("2024-01-31", "team=East", "commit", 40.0, 45.0, None, None, None),
        ("2024-02-29", "all", "model", 200.0, 230.0, 9.0, 0.0, 0.0),
        ("2024-02-29", "all", "commit", 200.0, 260.0, None, None, None),
        ("2024-02-29", "team=East", "model", 80.0, 70.0, 3.0, 1.0, 1.0),
        ("2024-02-29", "team=East", "commit", 80.0, 100.0, None, None, None),
        ("2024-02-29", "team=East", "manager_call", 80.0, 50.0, None, None, None),
    ]
    cols = ["origin", "group", "forecaster", "outcome", "point", "crps", "cover80", "cover50"]
    df = pd.DataFrame(rows, columns=cols).astype({c: float for c in cols[5:]})
    df["period"] = np.where(df["origin"] == "2024-01-31", "2024-02", "2024-03")
    df["error"] = df["point"] - df["outcome"]
    df["abs_error"] = df["error"].abs()
    df["hit"] = (df["outcome"] >= df["point"]).astype(float)
    return df


def test_summarise_calls_per_forecaster_on_a_hand_made_case() -> None:
    s = summarise_calls(_scored()).set_index("forecaster")
    assert list(s.index) == ["model", "commit", "manager_call"]
    assert s.loc["model", "mae"] == pytest.approx((10 + 10 + 30 + 10) / 4)
    assert s.loc["commit", "mae"] == pytest.approx((30 + 5 + 60 + 20) / 4)
    assert s.loc["manager_call", "mae"] == pytest.approx((40 + 30) / 2)
    assert s.loc["model", "hit_rate"] == pytest.approx(2 / 4)
    assert s.loc["commit", "hit_rate"] == 0.0
    assert s.loc["manager_call", "hit_rate"] == 1.0
    assert s.loc["commit", "bias"] == pytest.approx((30 + 5 + 60 + 20) / 4)  # optimistic
    assert s.loc["manager_call", "bias"] == pytest.approx(-35.0)  # sandbagging
    assert s.loc["model", "crps"] == pytest.approx(21 / 4)
    assert s.loc["model", "cover80"] == pytest.approx(3 / 4)
    assert s.loc["model", "cover50"] == pytest.approx(2 / 4)
    assert s.loc["commit", ["crps", "cover80"]].isna().all()
    assert s["n"].tolist() == [4, 4, 2]


def test_summarise_calls_per_group_scores_everyone_on_the_manager_calls_outcomes() -> None:
    s = summarise_calls(_scored(), by_group=True).set_index(["group", "forecaster"])
    # only (origin, group, period) where the manager called: all in January, East in February
    assert s["n"].to_dict() == {
        ("all", "model"): 1, ("all", "commit"): 1, ("all", "manager_call"): 1,
        ("team=East", "model"): 1, ("team=East", "commit"): 1, ("team=East", "manager_call"): 1,
    }  # fmt: skip
    assert s.loc[("all", "model"), "mae"] == 10.0
    assert s.loc[("all", "manager_call"), "mae"] == 40.0
    assert s.loc[("team=East", "commit"), "mae"] == 20.0
    assert s.loc[("team=East", "manager_call"), "hit_rate"] == 1.0


def test_call_origins_are_month_ends_or_a_day_whose_period_is_over_by_as_of() -> None:
    # June 15th: May is not over a month before, so April's end is the last origin
    assert call_origins("2024-06-15", 2) == [pd.Timestamp("2024-03-31"), pd.Timestamp("2024-04-30")]
    # the 20th of a month scores that month
    assert call_origins("2024-06-30", 2, day=20) == [
        pd.Timestamp("2024-04-20"), pd.Timestamp("2024-05-20")
    ]  # fmt: skip
    assert call_origins("2024-03-31", 1, day=31) == [pd.Timestamp("2024-02-29")]
    assert call_origins("2024-10-31", 1, period="Q", day=20) == [pd.Timestamp("2024-07-20")]


# ---------------------------------------------------------------------- the demo's known truth
#: Small demo (a few seconds a refit); its reps put deals in commit too early (optimistic
#: commits) and Strategic's manager calls 0.8 x the de-biased commit roll-up (sandbagging).
DEMO = {"n_customers": 300, "n_deals": 600, "seed": 1}


@pytest.fixture(scope="module")
def demo_frames() -> dict[str, pd.DataFrame]:
    from crmkit.data.demo.company import generate_demo

    return generate_demo(**DEMO).frames


@pytest.mark.slow
def test_demo_model_p50_error_is_below_the_optimistic_commit_rollups(demo_frames) -> None:
    origins = month_ends("2025-10-01", "2026-09-30")[-6:]
    res = call_backtest(demo_frames, origins, draws=300)
    s = summarise_calls(res).set_index("forecaster")
    assert s.loc["commit", "bias"] > 0  # the reps' commits are optimistic
    assert s.loc["model", "mae"] < s.loc["commit", "mae"]
    company = summarise_calls(res[res["group"] == "all"]).set_index("forecaster")
    assert company.loc["model", "mae"] < company.loc["commit", "mae"]
    assert company.loc["commit", "bias"] > 0


@pytest.fixture(scope="module")
def demo_mid_month(demo_frames) -> pd.DataFrame:
    """The call backtest from the 20th of six months (after the managers' mid-month update)."""
    origins = [d.replace(day=20) for d in month_ends("2026-04-01", "2026-09-30")]
    return call_backtest(demo_frames, origins, draws=300)


@pytest.mark.slow
def test_demo_backtest_shows_the_sandbagging_manager(demo_mid_month) -> None:
    by = summarise_calls(demo_mid_month, by_group=True).set_index(["group", "forecaster"])
    calls = by.xs("manager_call", level="forecaster")
    assert set(calls.index) == {"team=East", "team=West", "team=Strategic"}
    assert (calls["n"] == 6).all()  # one standing call per team and month
    # the managers call from the team's commit roll-up known then (not the outcome, which the
    # slipping commits of a small demo swing far more): Strategic's calls are the lowest share
    # of it (truth 0.8 / 1.25 = 0.64; East 1 / 1.25, West 1.1 / 1.25)
    res = demo_mid_month[demo_mid_month["group"].isin(calls.index)]
    points = res.pivot_table(index="group", columns="forecaster", values="point", aggfunc="sum")
    share = points["manager_call"] / points["commit"]
    assert share.idxmin() == "team=Strategic" and share["team=Strategic"] < 0.7, share


@pytest.mark.slow
def test_demo_model_p50_error_is_below_the_sandbagging_managers(demo_mid_month) -> None:
    by = summarise_calls(demo_mid_month, by_group=True).set_index(["group", "forecaster"])
    assert (
        by.loc[("team=Strategic", "model"), "mae"]
        < by.loc[("team=Strategic", "manager_call"), "mae"]
    )


def test_call_points_in_fiscal_quarters_score_the_fiscal_quarter() -> None:
    """Fiscal year from February: the quarter after 31 Jan 2024 is Feb-Apr (FY25 Q1)."""
    from crmkit.store.fiscal import FiscalCalendar

    frames = {"deals": _deals(), "deal_history": _history()}
    cal = FiscalCalendar(start_month=2)
    pts = call_points(frames, ["2024-01-31"], period="Q", calendar=cal)
    assert set(pts["period"]) == {"FY25 Q1"}
    company = pts[(pts["group"] == "all")].iloc[0]
    # won with closed_at in Feb-Apr 2024: D1 100, D4 50, D6 60 (D5 in January is before it)
    assert company["outcome"] == pytest.approx(210.0)
    calendar_q = call_points(frames, ["2024-01-31"], period="Q")
    assert set(calendar_q["period"]) == {"2024-Q1"}
    # the calendar quarter holding 31 January: D5 300 + D6 60
    assert calendar_q[calendar_q["group"] == "all"]["outcome"].iloc[0] == pytest.approx(360.0)
