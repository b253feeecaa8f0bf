"""The pipeline model: recovery of known win probabilities, censoring, amounts, NUTS.

The ``sim`` and ``fitted`` fixtures are in ``conftest.py``; data preparation, kernels and the
new-business model have their own files (``test_data.py``, ``test_kernels.py``,
``test_new_business.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.kernels import hazard_paths
from crmkit.models.pipeline.model import AmountRatio, PipelineModel
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


def test_learned_stage_probabilities_recover_the_truth(fitted) -> None:
    table = fitted.stage_probabilities().set_index("stage")
    truth = _true_win_probability()
    for stage, p in truth.items():
        assert abs(table.loc[stage, "learned_mean"] - p) < 0.12, (stage, p, table.loc[stage])
        assert table.loc[stage, "learned_p10"] < table.loc[stage, "learned_p90"]
    # the configured column is the store's table, not the learned one
    assert table.loc["Qualify", "configured"] == pytest.approx(0.1)


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


def test_amount_ratio_posterior_recovers_the_log_mean() -> None:
    rng = np.random.default_rng(0)
    ratios = rng.lognormal(-0.2, 0.15, size=400)
    mu, sd = AmountRatio().fit(ratios).draws(2000, seed=1)
    assert abs(mu.mean() + 0.2) < 0.03
    assert abs(sd.mean() - 0.15) < 0.03
    few_mu, _ = AmountRatio().fit(ratios[:2]).draws(2000, seed=1)
    assert few_mu.std() > mu.std()  # little data, the prior keeps it wide


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
    post = model.idata_.posterior
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, 150)
    assert model.posterior_subset(300)["stage"].shape[0] == 300


NO_OWNER = ("team", "segment", "source")


@pytest.mark.parametrize("method", ["map", "nuts"])
def test_groups_without_owner_fit_and_the_posterior_has_no_owner_effects(sim, method) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    model = PipelineModel(method=method, draws=150, tune=150, chains=2, seed=2, groups=NO_OWNER)
    model.fit(deals, sim["deal_history"], as_of=AS_OF)
    post = model.idata_.posterior
    assert "u_owner" not in post and "sigma_owner" not in post and "owner_level" not in post.coords
    assert {"u_team", "u_segment", "u_source"} <= set(post.data_vars)
    assert "owner" not in model.cells_.columns
    assert model.levels_.groups.keys() == set(NO_OWNER)
    # the forecast's inputs: owners get no effect (code -1, a zero effect in the draws)
    codes = model.deal_codes(model.open_deals())
    assert (codes["owner"] == -1).all()
    assert np.all(model.posterior_subset(20)["u_owner"] == 0.0)
    table = model.stage_probabilities(n_draws=50)
    assert table["learned_mean"].between(0, 1).all()
    # the cells hold the same deal-months as the full model's, summed over owners
    full = PipelineModel(method="map", draws=50, chains=1).fit(
        deals, sim["deal_history"], as_of=AS_OF
    )
    counts = ["n_stay", "n_win", "n_lose"]
    np.testing.assert_allclose(model.cells_[counts].sum(), full.cells_[counts].sum())
    assert len(model.cells_) < len(full.cells_)


def test_groups_round_trip_through_save_and_load(sim, tmp_path) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    model = PipelineModel(draws=50, chains=1, seed=2, groups=NO_OWNER).fit(
        deals, sim["deal_history"], as_of=AS_OF
    )
    back = PipelineModel.load(model.save(tmp_path / "p.nc"))
    assert back.groups == NO_OWNER and back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.cells_[list(NO_OWNER)], model.cells_[list(NO_OWNER)])
    assert sorted(back.posterior_subset(5)) == sorted(model.posterior_subset(5))


def test_unknown_group_is_a_one_line_error_naming_it(sim) -> None:
    from crmkit.errors import CrmkitError

    with pytest.raises(CrmkitError, match="'region'") as err:
        PipelineModel(groups=("team", "region")).fit(sim["deals"], as_of=AS_OF)
    assert "\n" not in str(err.value)
