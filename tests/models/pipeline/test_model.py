"""The pipeline model: recovery of known win probabilities, censoring, amounts, new business."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.models.pipeline.data import deal_frame, landmark_cells
from crmkit.models.pipeline.kernels import hazard_paths, simulate_pipeline
from crmkit.models.pipeline.model import AmountRatio, PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel, monthly_arrivals
from tests.sim_deals import TRUTH, simulate

AS_OF = "2024-04-30"


def _true_win_probability() -> dict[str, float]:
    """Eventual win probability per stage implied by the simulator's monthly probabilities."""
    out: dict[str, float] = {}
    nxt = 0.0
    for stage in reversed(list(TRUTH)):
        w, lo, adv = TRUTH[stage]
        out[stage] = (w + adv * nxt) / (w + lo + adv)
        nxt = out[stage]
    return out


@pytest.fixture(scope="module")
def sim() -> dict[str, pd.DataFrame]:
    return simulate(n_months=30, arrivals=60, seed=3)


@pytest.fixture(scope="module")
def fitted(sim) -> PipelineModel:
    deals = deal_frame(sim["deals"], sim["accounts"])
    return PipelineModel(method="map", draws=200, chains=1, seed=1).fit(
        deals, sim["deal_history"], as_of=AS_OF, stages=sim["stages"]
    )


def test_learned_stage_probabilities_recover_the_truth(fitted) -> None:
    table = fitted.stage_probabilities().set_index("stage")
    truth = _true_win_probability()
    for stage, p in truth.items():
        assert abs(table.loc[stage, "learned_mean"] - p) < 0.12, (stage, p, table.loc[stage])
        assert table.loc[stage, "learned_p10"] < table.loc[stage, "learned_p90"]
    # the configured column is the store's table, not the learned one
    assert table.loc["Qualify", "configured"] == pytest.approx(0.1)


def test_cells_weight_each_deal_month_once(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    cells, _ = landmark_cells(deals, sim["deal_history"], AS_OF, window_months=12, max_ahead=6)
    n = cells[["n_win", "n_lose", "n_stay"]].to_numpy().sum()
    # deal-months at risk in the window: every trial weight sums to one per deal-month,
    # so the total is at most (open deals per month x months) and far less than landmarks x ahead
    wins = cells["n_win"].sum()
    won_in_window = sim["deals"][
        (sim["deals"]["status"] == "won")
        & (sim["deals"]["closed_at"] > "2023-04-30")
        & (sim["deals"]["closed_at"] <= "2024-04-30 23:59")
    ]
    assert wins == pytest.approx(len(won_in_window), rel=0.15)
    assert n > wins


def test_deals_that_never_close_are_not_future_wins() -> None:
    sim = simulate(n_months=24, arrivals=30, seed=5)
    deals = sim["deals"].copy()
    stuck = deals.head(80).copy()
    stuck["deal_id"] = [f"S{i}" for i in range(80)]
    stuck["stage"] = "Stuck"
    stuck["status"] = "open"
    stuck["closed_at"] = pd.NaT
    stuck["created_at"] = pd.Timestamp("2022-01-15")
    frame = deal_frame(pd.concat([deals, stuck], ignore_index=True), sim["accounts"])
    model = PipelineModel(method="map", draws=100, chains=1).fit(
        frame, sim["deal_history"], as_of="2023-12-31"
    )
    open_now = model.open_deals()
    codes = model.deal_codes(open_now)
    pw, _ = hazard_paths(model.posterior_subset(100), codes, first_month=2024 * 12, months=12)
    p_win = pw.sum(axis=2).mean(axis=0)
    is_stuck = open_now["stage"].eq("Stuck").to_numpy()
    assert p_win[is_stuck].max() < 0.05
    assert p_win[open_now["stage"].eq("Negotiate").to_numpy()].mean() > 0.5


def test_simulated_revenue_matches_the_hazards(fitted) -> None:
    deals = fitted.open_deals()
    codes = fitted.deal_codes(deals)
    post = fitted.posterior_subset(50, seed=0)
    first = 2024 * 12 + 4  # May 2024
    pw, _ = hazard_paths(post, codes, first_month=first, months=3)
    mu = np.zeros(50)
    sig = np.full(50, 1e-9)
    amount = deals["amount"].to_numpy(float)
    gidx = np.zeros((len(deals), 1), np.int64)
    rev, p_win, _ = simulate_pipeline(
        post,
        codes,
        amount,
        gidx,
        first_month=first,
        period_of_k=np.arange(3),
        frac_first=1.0,
        ratio_mu=mu,
        ratio_sigma=sig,
        n_draws=4000,
        n_periods=3,
        n_groups=1,
        seed=0,
    )
    expected = np.einsum("pnk,n->k", pw, amount) / 50
    assert np.allclose(rev[:, :, 0].mean(axis=0), expected, rtol=0.05)
    assert np.allclose(p_win, pw.sum(axis=2).mean(axis=0), atol=1e-9)


def test_amount_ratio_posterior_recovers_the_log_mean() -> None:
    rng = np.random.default_rng(0)
    ratios = rng.lognormal(-0.2, 0.15, size=400)
    mu, sd = AmountRatio().fit(ratios).draws(2000, seed=1)
    assert abs(mu.mean() + 0.2) < 0.03
    assert abs(sd.mean() - 0.15) < 0.03
    few_mu, _ = AmountRatio().fit(ratios[:2]).draws(2000, seed=1)
    assert few_mu.std() > mu.std()  # little data, the prior keeps it wide


def test_new_business_arrivals_and_win_timing(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    nb = NewBusinessModel(method="map", draws=200, chains=1).fit(
        deals, sim["deal_history"], as_of=AS_OF
    )
    counts = monthly_arrivals(deals, AS_OF)
    mu, _alpha = nb.arrival_means(2024 * 12 + 4, 3, 400)
    assert abs(np.median(mu) - counts.mean()) < 0.25 * counts.mean()
    cdf = nb.win_cdf(2024 * 12 + 4, 6, 200)
    assert np.all(np.diff(cdf, axis=2) >= -1e-12)
    assert np.all(cdf[:, 1, 0] == 0)  # a deal created in month 1 cannot be won in month 0
    # the simulator never closes a deal in its creation month
    assert cdf[:, 0, 0].mean() < 0.05
    assert len(nb.templates_) > 0


@pytest.mark.slow
def test_nuts_fit_reports_arviz_diagnostics(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    model = PipelineModel(method="nuts", draws=150, tune=150, chains=2, seed=2).fit(
        deals, sim["deal_history"], as_of=AS_OF
    )
    d = model.diagnostics_
    assert d["method"] == "nuts"
    assert d["r_hat_max"] is not None and d["ess_bulk_min"] is not None
    assert isinstance(d["ok"], bool)
    assert model.posterior_["stage"].shape[0] == 300
