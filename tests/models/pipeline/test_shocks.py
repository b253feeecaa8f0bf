"""Common monthly shocks of the win and loss hazards: residuals, the grid fit, the forecast.

Simulated deals (``tests/sim_deals.py``) without a common shock, and with a known one (every
deal's win probability in month m multiplied by exp(N(0, 0.3))), fitted by the MAP pipeline
model without group effects (their Laplace spread would hide what the shock adds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.checks import check_months
from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.kernels import hazard_paths
from crmkit.models.pipeline.model import SHOCK_MONTHS, PipelineModel
from crmkit.models.pipeline.shocks import MIN_MONTHS, MonthShock, monthly_residuals
from crmkit.store.history import month_index
from tests.sim_deals import simulate

START = pd.Timestamp("2022-01-01")
N_MONTHS = 36
SHOCK_SD = 0.3
#: Forecast origins (months after START whose end is the cut-off) per simulated company.
ORIGINS = range(26, 36)
SEEDS = range(4)


def _as_of(k: int) -> pd.Timestamp:
    """The last day of the k-th simulated month (k = 1: January 2022)."""
    return START + pd.DateOffset(months=k) - pd.Timedelta(days=1)


def _company(seed: int, shock_sd: float) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Deals and history of a simulated company, and its true monthly win multipliers."""
    rng = np.random.default_rng(100 + seed)
    shock = np.exp(rng.normal(0.0, shock_sd, N_MONTHS)) if shock_sd else np.ones(N_MONTHS)
    sim = simulate(n_months=N_MONTHS, arrivals=60, seed=seed, win_shock=shock)
    return deal_frame(sim["deals"], sim["accounts"]), sim["deal_history"], shock


def _fit(deals: pd.DataFrame, history: pd.DataFrame, k: int) -> PipelineModel:
    """MAP fit without group effects at the end of simulated month k."""
    return PipelineModel(draws=200, chains=1, seed=1, groups=()).fit(
        deals, history, as_of=_as_of(k)
    )


def _next_month_wins(
    model: PipelineModel, deals: pd.DataFrame, with_shock: bool
) -> tuple[float, float, int]:
    """80% interval of next month's wins among the open deals, and the observed wins."""
    state = model.open_deals()
    nxt = int(month_index(model.as_of_)) + 1
    won_m = np.where(deals["status"].eq("won"), month_index(deals["closed_at"]), -1)
    won = pd.Series(won_m, index=deals["deal_id"].to_numpy())
    observed = int((won.reindex(state["deal_id"].to_numpy()).to_numpy() == nxt).sum())
    post = model.posterior_subset(200, 0)
    if not with_shock:
        post.pop("month_shock")
        post.pop("month_shock_first")
    pw, _ = hazard_paths(post, model.deal_codes(state), first_month=nxt, months=1)
    rng = np.random.default_rng(5)
    p = pw[:, :, 0]
    wins = (rng.random((10, *p.shape)) < p[None]).sum(axis=-1).ravel()
    lo, hi = np.quantile(wins, [0.1, 0.9])
    return float(lo), float(hi), observed


@pytest.fixture(scope="module")
def no_shock() -> tuple[PipelineModel, pd.DataFrame]:
    """A company without common shocks, fitted at the end of month 30."""
    deals, history, _ = _company(0, 0.0)
    return _fit(deals, history, 30), deals


@pytest.fixture(scope="module")
def shocked_backtest() -> dict:
    """One-month-ahead wins at 10 origins of 4 shocked companies, with and without shocks."""
    rows, last_fits = [], []
    for seed in SEEDS:
        deals, history, _ = _company(seed, SHOCK_SD)
        for k in ORIGINS:
            model = _fit(deals, history, k)
            lo_s, hi_s, obs = _next_month_wins(model, deals, with_shock=True)
            lo_n, hi_n, _ = _next_month_wins(model, deals, with_shock=False)
            rows.append((seed, k, obs, lo_s <= obs <= hi_s, lo_n <= obs <= hi_n))
        last_fits.append(model)
    table = pd.DataFrame(rows, columns=["seed", "origin", "observed", "in_shock", "in_none"])
    return {"table": table, "fits": last_fits}


# ----------------------------------------------------------------------- residuals
def test_monthly_residuals_has_one_row_per_check_month_with_observed_and_expected(
    no_shock,
) -> None:
    model, deals = no_shock
    res = monthly_residuals(model)
    assert list(res.columns) == ["month", "won", "lost", "exp_won", "exp_lost"]
    assert res["month"].tolist() == check_months(model)
    # observed wins of a month: deals open at its start, won in it
    m = int(res["month"].iloc[-1])
    start = START + pd.DateOffset(months=m - month_index(START))
    open_then = (deals["created_at"] < start) & ~(deals["closed_at"] < start)
    won_in_m = deals["status"].eq("won") & (month_index(deals["closed_at"]) == m)
    assert res["won"].iloc[-1] == float((open_then & won_in_m).sum())
    # a fitted model expects about what it saw over the window
    assert abs(res["exp_won"].sum() / res["won"].sum() - 1) < 0.1
    assert abs(res["exp_lost"].sum() / res["lost"].sum() - 1) < 0.1


# ----------------------------------------------------------------------- no shock
def test_without_common_shocks_the_fitted_shock_is_small(no_shock) -> None:
    model, _ = no_shock
    s = model.shock_.summary()
    assert s["note"] == ""
    # prior means: sigma 0.08, tau 0.12; the data pull both down
    assert s["won"]["tau"] < 0.08 and s["won"]["sigma"] < 0.07
    assert abs(s["won"]["level"]) < 0.1


def test_without_common_shocks_the_interval_is_barely_wider(no_shock) -> None:
    model, deals = no_shock
    lo_s, hi_s, _ = _next_month_wins(model, deals, with_shock=True)
    lo_n, hi_n, _ = _next_month_wins(model, deals, with_shock=False)
    assert hi_n - lo_n <= hi_s - lo_s < 1.3 * (hi_n - lo_n)


# ----------------------------------------------------------------------- known shock
def test_known_monthly_shock_is_within_the_grid_posterior_interval(shocked_backtest) -> None:
    for model in shocked_backtest["fits"]:
        lo_t, hi_t = model.shock_.interval("tau")
        lo_s, hi_s = model.shock_.interval("sigma")
        # iid monthly shocks: the month noise tau, or the state step sigma, covers them
        assert lo_t <= SHOCK_SD <= hi_t or lo_s <= SHOCK_SD <= hi_s
        assert model.shock_.summary()["won"]["tau"] > 0.15


def test_known_monthly_shock_one_month_intervals_hold_and_without_it_they_do_not(
    shocked_backtest,
) -> None:
    table = shocked_backtest["table"]
    assert len(table) == 40
    with_shock, without = table["in_shock"].mean(), table["in_none"].mean()
    assert 0.65 <= with_shock <= 0.95
    assert without <= with_shock - 0.2


# ----------------------------------------------------------------------- zero shock
def test_too_few_months_with_closes_give_a_zero_shock_with_a_note() -> None:
    res = pd.DataFrame(
        {
            "month": [10, 11, 12, 13],
            "won": [3.0, 0.0, 2.0, 4.0],
            "lost": [1.0, 0.0, 1.0, 0.0],
            "exp_won": [2.0, 1.0, 2.0, 3.0],
            "exp_lost": [1.0, 1.0, 1.0, 1.0],
        }
    )
    shock = MonthShock().fit(res)
    assert not shock.active
    assert shock.state()["note"].startswith("zero shock: 3 training months with closes")
    assert np.all(shock.draws(6, 50, seed=1) == 0.0)
    assert shock.draws(6, 50).shape == (50, 2, 6)
    assert shock.summary()["won"]["tau"] == 0.0


def test_no_expected_wins_give_a_zero_shock_with_a_note() -> None:
    res = pd.DataFrame(
        {
            "month": np.arange(6),
            "won": np.zeros(6),
            "lost": np.full(6, 4.0),
            "exp_won": np.zeros(6),
            "exp_lost": np.full(6, 4.0),
        }
    )
    shock = MonthShock().fit(res)
    assert not shock.active and "expects no wins" in shock.state()["note"]


def test_a_model_fitted_on_too_few_months_forecasts_without_shock() -> None:
    sim = simulate(n_months=4, arrivals=40, seed=2)
    deals = deal_frame(sim["deals"], sim["accounts"])
    model = PipelineModel(draws=50, chains=1, seed=1).fit(
        deals, sim["deal_history"], as_of=_as_of(4)
    )
    assert model.summary()["month_shock"]["note"].startswith("zero shock:")
    post = model.posterior_subset(20)
    assert np.all(post["month_shock"] == 0.0)
    assert MIN_MONTHS == 4


# ----------------------------------------------------------------------- state
def test_shock_state_round_trips_and_draws_walk_on_from_the_last_month(no_shock) -> None:
    model, _ = no_shock
    back = MonthShock.from_state(model.shock_.state())
    np.testing.assert_array_equal(back.draws(12, 300, 4), model.shock_.draws(12, 300, 4))
    post = model.posterior_subset(30, seed=2)
    assert post["month_shock"].shape == (30, 2, SHOCK_MONTHS)
    assert int(post["month_shock_first"]) == model.shock_.last_month_ + 1
    assert model.shock_.last_month_ == int(month_index(model.as_of_))


def test_forecast_shocks_are_centred_even_after_a_month_far_below_expectation() -> None:
    # 12 months of steady wins, then a last month at a fifth of the expected wins: the fit
    # sees a shock (the filtered level is negative), but the forecast's shocks only widen
    months = np.arange(100, 113)
    won = np.r_[np.full(12, 40.0), 8.0]
    res = pd.DataFrame(
        {"month": months, "won": won, "lost": np.full(13, 20.0),
         "exp_won": np.full(13, 40.0), "exp_lost": np.full(13, 20.0)}
    )  # fmt: skip
    shock = MonthShock().fit(res)
    assert shock.active
    level = shock.grid_["won"]["weight"] @ shock.grid_["won"]["mean"]
    assert level < -0.1  # the filter does see the last month's drop
    x = shock.draws(3, 20000, seed=5)[:, 0, :]  # won, the next 3 months
    assert np.abs(np.median(x, axis=0)).max() < 0.02
    assert x[:, 0].std() > 0.05  # and the shock still spreads the forecast
