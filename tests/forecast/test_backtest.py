"""Backtest scoring (CRPS, coverage), the baselines' predictive draws and the rolling origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import period_axis
from crmkit.forecast.backtest import (
    backtest,
    crps_samples,
    month_ends,
    run_rate_draws,
    score,
    summarise,
    weighted_pipeline_draws,
)
from crmkit.store.fiscal import FiscalCalendar
from tests.sim_deals import simulate


def test_sample_crps_matches_the_normal_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, 20000)
    y = 0.7
    closed = y * (2 * stats.norm.cdf(y) - 1) + 2 * stats.norm.pdf(y) - 1 / np.sqrt(np.pi)
    assert crps_samples(x, y) == pytest.approx(closed, abs=0.01)


def test_crps_of_a_point_mass_is_the_absolute_error() -> None:
    assert crps_samples(np.full(10, 3.0), 5.0) == pytest.approx(2.0)


def test_score_interval_hits() -> None:
    x = np.arange(1, 101, dtype=float)
    inside, outside = score(x, 50.0), score(x, 99.5)
    assert inside["hit50"] == 1.0 and inside["hit80"] == 1.0
    assert outside["hit50"] == 0.0 and outside["hit95"] == 0.0
    assert inside["median_error"] == pytest.approx(0.5)


def test_run_rate_centres_on_the_recent_mean() -> None:
    hist = pd.Series([100.0, 200.0, 300.0, 1000.0, 1100.0, 900.0])
    d = run_rate_draws(hist, 2, 20000, k=3, seed=0)
    assert d.shape == (20000, 2)
    assert np.median(d) == pytest.approx(1000.0, rel=0.03)
    assert (d >= 0).all()


def test_weighted_pipeline_mean_is_amount_times_probability() -> None:
    state = pd.DataFrame(
        {
            "status": ["open", "open", "open", "won"],
            "stage": ["A", "B", "A", "B"],
            "amount": [100.0, 200.0, 400.0, 999.0],
            "expected_close_date": pd.to_datetime(
                ["2024-05-10", "2024-06-01", "2024-03-01", "2024-05-01"]
            ),
        }
    )
    stages = pd.DataFrame({"stage": ["A", "B"], "probability": [0.5, 0.25]})
    ax = period_axis("2024-04-30", 2, "M")
    d = weighted_pipeline_draws(state, stages, ax, 20000, seed=0)
    assert d[:, 0].mean() == pytest.approx(50.0, rel=0.05)  # overdue deal not counted
    assert d[:, 1].mean() == pytest.approx(50.0, rel=0.05)


def test_backtest_scores_model_and_baselines() -> None:
    sim = simulate(n_months=30, arrivals=30, seed=4)
    res = backtest(sim, month_ends("2023-12-01", "2024-01-31"), horizon=2, draws=300)
    assert set(res["forecaster"]) == {"model", "weighted_pipeline", "run_rate"}
    assert set(res["lead"]) == {"1", "2", "1-2"}
    assert len(res) == 2 * 3 * 3
    assert np.isfinite(res["crps"]).all() and (res["crps"] >= 0).all()
    # the actual of January 2024 is the won revenue closed in that month
    d = sim["deals"]
    jan = d[(d["status"] == "won") & (d["closed_at"].dt.strftime("%Y-%m") == "2024-01")]
    first = res[(res["lead"] == "1") & (res["period"] == "2024-01")]
    assert first["actual"].iloc[0] == pytest.approx(jan["amount"].sum())
    s = summarise(res)
    assert {"crps", "cover50", "cover80", "cover95"} <= set(s.columns)
    assert s["cover80"].between(0, 1).all()


def test_backtest_by_source_splits_the_outcome_by_deals_created_before_and_after_the_origin():
    sim = simulate(n_months=30, arrivals=30, seed=4)
    res = backtest(sim, ["2023-12-31"], horizon=2, draws=300, sources=True)
    names = {"model", "weighted_pipeline", "run_rate", "model:pipeline", "model:new_business"}
    assert set(res["forecaster"]) == names
    by = res.set_index(["lead", "forecaster"])
    d = sim["deals"]
    won = d[(d["status"] == "won") & (d["closed_at"].dt.strftime("%Y-%m") == "2024-02")]
    new = won["created_at"] > pd.Timestamp("2024-01-01")
    assert by.loc[("2", "model:new_business"), "actual"] == pytest.approx(won[new]["amount"].sum())
    assert by.loc[("2", "model:pipeline"), "actual"] == pytest.approx(won[~new]["amount"].sum())
    assert won[new]["amount"].sum() > 0 and won[~new]["amount"].sum() > 0
    for lead in ("1", "2", "1-2"):  # the sources add up to the whole, draw by draw
        pipe, nb = by.loc[(lead, "model:pipeline")], by.loc[(lead, "model:new_business")]
        assert pipe["mean"] + nb["mean"] == pytest.approx(by.loc[(lead, "model"), "mean"])
        assert pipe["actual"] + nb["actual"] == pytest.approx(by.loc[(lead, "model"), "actual"])


def test_recent_backtest_scores_the_last_month_ends_whose_outcome_is_known(monkeypatch) -> None:
    import crmkit.forecast.backtest as bt

    seen = {}

    def fake(frames, origins, **kw):
        seen.update(origins=list(origins), **kw)
        rows = [{"origin": o, "lead": "1", "forecaster": "model", "crps": 1.0,
                 "median_error": -2.0, "hit50": 1.0, "hit80": 1.0, "hit95": 1.0}
                for o in origins]  # fmt: skip
        return pd.DataFrame(rows)

    monkeypatch.setattr(bt, "backtest", fake)
    monkeypatch.setattr(bt, "load_frames", lambda store: {"deals": store})
    monkeypatch.setattr(bt, "fiscal_calendar", lambda store: FiscalCalendar(start_month=2))
    out = bt.recent_backtest("store", as_of="2024-06-15", origins=2, horizon=2, draws=50)
    # two origins, the last month ends at least 2 months before the as-of day
    assert seen["origins"] == [pd.Timestamp("2024-02-29"), pd.Timestamp("2024-03-31")]
    assert (seen["horizon"], seen["period"], seen["draws"]) == (2, "M", 50)
    assert seen["calendar"] == FiscalCalendar(start_month=2)  # the store's calendar
    assert out[["origins", "crps", "mae_median", "cover80"]].iloc[0].tolist() == [2, 1.0, 2.0, 1.0]
    bt.recent_backtest("store", as_of="2024-06-15", origins=1, horizon=1, period="Q")
    assert seen["origins"] == [pd.Timestamp("2024-02-29")]  # a quarter (3 months) back
    # a month-end as-of day: its month is complete, and a 30th is not a 31st three months back
    bt.recent_backtest("store", as_of="2024-11-30", origins=2, horizon=3)
    assert seen["origins"] == [pd.Timestamp("2024-07-31"), pd.Timestamp("2024-08-31")]
    bt.recent_backtest("store", as_of="2024-03-31", origins=1, horizon=1)
    assert seen["origins"] == [pd.Timestamp("2024-02-29")]


def test_backtest_in_fiscal_quarters_scores_each_fiscal_quarters_won_revenue() -> None:
    """A fiscal year starting in February: quarters Feb-Apr, May-Jul, ... are scored."""
    sim = simulate(n_months=30, arrivals=30, seed=4)
    cal = FiscalCalendar(start_month=2)
    res = backtest(sim, ["2023-10-31"], horizon=2, period="Q", draws=200, calendar=cal)
    first = res[(res["lead"] == "1") & (res["forecaster"] == "model")].iloc[0]
    assert first["period"] == "FY24 Q4"  # Nov 2023 - Jan 2024, FY named by its end
    d = sim["deals"]
    c = pd.to_datetime(d["closed_at"])
    won = d[d["status"].eq("won") & (c >= "2023-11-01") & (c < "2024-02-01")]
    assert first["actual"] == pytest.approx(won["amount"].sum())
    second = res[(res["lead"] == "2") & (res["forecaster"] == "run_rate")].iloc[0]
    assert second["period"] == "FY25 Q1"
    won2 = d[d["status"].eq("won") & (c >= "2024-02-01") & (c < "2024-05-01")]
    assert second["actual"] == pytest.approx(won2["amount"].sum())


# ------------------------------------------------------------- compare (issue 17, item 3)
def test_recent_backtest_says_whether_the_model_beats_the_run_rate(monkeypatch) -> None:
    import crmkit.forecast.backtest as bt

    def fake(frames, origins, **kw):
        rows = []
        for i, o in enumerate(origins):
            for name, crps in (("model", 100.0 + i), ("run_rate", 150.0 + 2 * i)):
                rows.append(
                    {
                        "origin": o,
                        "lead": "1-3",
                        "forecaster": name,
                        "crps": crps,
                        "median_error": 1.0,
                        "hit50": 1.0,
                        "hit80": 1.0,
                        "hit95": 1.0,
                    }
                )
        return pd.DataFrame(rows)  # fmt: skip

    monkeypatch.setattr(bt, "backtest", fake)
    monkeypatch.setattr(bt, "load_frames", lambda store: {"deals": store})
    monkeypatch.setattr(bt, "fiscal_calendar", lambda store: FiscalCalendar())
    out = bt.recent_backtest("store", as_of="2024-12-15", origins=6, horizon=3).set_index(
        "forecaster"
    )
    assert out.loc["model", "vs_run_rate"] == "better"
    assert out.loc["model", "crps_diff"] == pytest.approx(-52.5)
    assert out.loc["model", "crps_diff_lo"] <= -52.5 <= out.loc["model", "crps_diff_hi"] < 0
    assert out.loc["run_rate", "vs_run_rate"] is None
    assert np.isnan(out.loc["run_rate", "crps_diff"])
    few = bt.recent_backtest("store", as_of="2024-12-15", origins=3, horizon=3)
    assert few.set_index("forecaster").loc["model", "vs_run_rate"] == "too few origins"
    # origins a month apart: two quarters ahead overlap by 6 months, more than 5 origins hold
    quarters = bt.recent_backtest("store", as_of="2024-12-15", origins=5, horizon=2, period="Q")
    assert quarters.set_index("forecaster").loc["model", "vs_run_rate"] == "too few origins"
    months = bt.recent_backtest("store", as_of="2024-12-15", origins=5, horizon=2, period="M")
    assert months.set_index("forecaster").loc["model", "vs_run_rate"] != "too few origins"


@pytest.mark.parametrize(
    ("origins", "horizon", "named"),
    [(0, 3, "origins"), ("x", 3, "origins"), (-2, 3, "origins"), (2.5, 3, "origins"),
     (True, 3, "origins"), (4, 0, "horizon")],
)  # fmt: skip
def test_recent_backtest_refuses_a_bad_number_of_origins_in_one_line(
    tmp_path, origins, horizon, named
) -> None:
    from crmkit.forecast.backtest import recent_backtest
    from crmkit.store import Store

    with Store.open(tmp_path / "crm.db") as store:
        with pytest.raises(CrmkitError) as err:
            recent_backtest(store, as_of="2026-10-31", origins=origins, horizon=horizon)
        assert store.list_snapshots(include_drafts=True).empty
    msg = str(err.value)
    assert msg.startswith(f"backtest {named} must be a whole number of at least 1, not ")
    assert "\n" not in msg
