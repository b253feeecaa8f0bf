"""The pipeline model: recovery of known win probabilities, censoring, amounts, NUTS.

The ``sim`` and ``fitted`` fixtures are in ``conftest.py``; data preparation, kernels and the
new-business model have their own files (``test_data.py``, ``test_kernels.py``,
``test_new_business.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.models.pipeline.data import (
    DUE_LEVELS,
    GROUPS,
    MONTH_EDGES,
    Levels,
    deal_frame,
    due_level,
    month_bucket,
    with_stage_ahead,
)
from crmkit.models.pipeline.kernels import hazard_paths
from crmkit.models.pipeline.model import AmountRatio, PipelineModel, _cell_eta
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


def _fast_closers(seed: int = 0) -> pd.DataFrame:
    """Deals that all close within three months of creation: won mostly in the first month.

    Monthly hazards by age (months since creation): age 1 win 0.6 / lose 0.1, age 2 win 0.05
    / lose 0.5, age 3 win 0.05 / lose 0.95. No training deal is ever older than three months,
    so the age buckets 4-6, 7-12 and 13+ (and months ahead beyond three) have no trials.
    """
    rng = np.random.default_rng(seed)
    hazards = {1: (0.6, 0.1), 2: (0.05, 0.5), 3: (0.05, 0.95)}
    rows = []
    for m in range(24):  # cohorts 2022-01 .. 2023-12
        start = pd.Timestamp("2022-01-01") + pd.DateOffset(months=m)
        for j in range(60):
            created = start + pd.Timedelta(days=int(rng.integers(0, 27)))
            status, closed = "open", pd.NaT
            for age in (1, 2, 3):
                at = start + pd.DateOffset(months=age) + pd.Timedelta(days=int(rng.integers(0, 27)))
                if at > pd.Timestamp("2023-12-31"):
                    break
                w, lo = hazards[age]
                u = rng.random()
                if u < w or u < w + lo:
                    status, closed = ("won" if u < w else "lost"), at
                    break
            rows.append((f"F{m:02d}{j:02d}", created, status, closed))
    deals = pd.DataFrame(rows, columns=["deal_id", "created_at", "status", "closed_at"])
    deals["stage"] = "Open"
    deals["amount"] = 1000.0
    deals["expected_close_date"] = pd.NaT
    deals["pipeline"] = "default"
    return deals


def test_deals_older_than_any_in_training_get_the_oldest_seen_hazard_not_the_youngest() -> None:
    deals = deal_frame(_fast_closers())
    model = PipelineModel(method="map", draws=100, chains=1, groups=()).fit(
        deals, None, as_of="2023-12-31"
    )
    ages_seen = sorted(model.cells_["age"].unique().tolist())
    assert ages_seen == [0, 1, 2]  # ages 1, 2, 3 only: buckets 4-6, 7-12, 13+ never reached
    # an open deal three months old: every forecast month is an age no training deal had
    old = model.open_deals().head(1).assign(created_at=pd.Timestamp("2023-09-10"))
    pw, pl = hazard_paths(
        model.posterior_subset(100), model.deal_codes(old), first_month=2024 * 12, months=6
    )
    p_win_month = pw.mean(axis=0)[0]
    # the data: past age 3 a deal is won at most 5% a month and lost at 95%; the prior-mean
    # (zero) effect of an unseen age would be the one-month-old deals' 60% win hazard
    assert p_win_month[0] < 0.12, p_win_month
    assert p_win_month.sum() < 0.15, p_win_month
    assert pl.mean(axis=0)[0, 0] > 0.7
    # the levels with trials keep their own effects
    assert model.level_map("age").tolist() == [0, 1, 2, 2, 2, 2]


def test_months_ahead_beyond_the_followed_months_take_the_last_followed_effect() -> None:
    deals = deal_frame(_fast_closers(seed=1))
    model = PipelineModel(method="map", draws=100, chains=1, groups=(), max_ahead=2).fit(
        deals, None, as_of="2023-12-31"
    )
    assert model.level_map("ahead").tolist() == [0, 1, 1, 1, 1, 1]
    post = model.posterior_subset(50)
    assert np.array_equal(post["ahead"][:, :, 5], post["ahead"][:, :, 1])
    assert np.array_equal(post["age"][:, :, 4], post["age"][:, :, 2])


def test_summary_reports_the_month_shock(fitted) -> None:
    shock = fitted.summary()["month_shock"]
    assert shock["note"] == ""
    for outcome in ("won", "lost"):
        assert set(shock[outcome]) == {"sigma", "tau", "level", "level_sd"}
        assert 0.0 < shock[outcome]["sigma"] < 0.6 and 0.0 < shock[outcome]["tau"] < 1.0
    post = fitted.posterior_subset(40, seed=3)
    assert post["month_shock"].shape == (40, 2, 36)
    # the first shocked month is the one after the fit's last full month (April 2024)
    assert int(post["month_shock_first"]) == 2024 * 12 + 4


def test_month_shock_round_trips_through_save_and_load(fitted, tmp_path) -> None:
    back = PipelineModel.load(fitted.save(tmp_path / "p.nc"))
    assert back.summary()["month_shock"] == fitted.summary()["month_shock"]
    a, b = fitted.posterior_subset(30, seed=4), back.posterior_subset(30, seed=4)
    np.testing.assert_array_equal(a["month_shock"], b["month_shock"])
    assert a["month_shock_first"] == b["month_shock_first"]


def test_model_saved_before_month_shocks_loads_and_forecasts_without(fitted, tmp_path) -> None:
    import json

    from crmkit.models.pipeline.kernels import simulate_pipeline

    old = PipelineModel.load(fitted.save(tmp_path / "new.nc"))
    old.shock_ = None  # what a model saved before the shocks has: no "month_shock" state
    assert "month_shock" not in json.loads(old._save_attrs()["pipeline_state"])
    back = PipelineModel.load(old.save(tmp_path / "old.nc"))
    assert back.shock_ is None and back.summary()["month_shock"] is None
    post = back.posterior_subset(50, seed=0)
    assert "month_shock" not in post and "month_shock_first" not in post
    deals = back.open_deals()
    codes = back.deal_codes(deals)
    first = 2024 * 12 + 4
    rev, p_win, _ = simulate_pipeline(
        post,
        codes,
        deals["amount"].to_numpy(float),
        np.zeros((len(deals), 1), np.int64),
        first_month=first,
        period_of_k=np.arange(3),
        frac_first=1.0,
        ratio_mu=np.zeros(50),
        ratio_sigma=np.full(50, 1e-9),
        n_draws=500,
        n_periods=3,
        n_groups=1,
        seed=0,
    )
    assert np.isfinite(rev).all() and rev.sum() > 0
    # the same forecast as the new model's posterior without its shock
    new = fitted.posterior_subset(50, seed=0)
    pw_new, _ = hazard_paths(
        {k: v for k, v in new.items() if not k.startswith("month_shock")},
        codes,
        first_month=first,
        months=3,
    )
    np.testing.assert_allclose(p_win, pw_new.sum(axis=2).mean(axis=0), atol=1e-9)


def _true_monthly_wins(months: int) -> dict[str, np.ndarray]:
    """P(won in month k = 1..months) per starting stage, from the simulator's Markov chain."""
    stages = list(TRUTH)
    n = len(stages)
    step = np.zeros((n, n))  # moves between open stages in one month
    for i, s in enumerate(stages):
        w, lo, adv = TRUTH[s]
        step[i, i] = 1.0 - w - lo - adv
        if i + 1 < n:
            step[i, i + 1] = adv
        else:
            step[i, i] += adv
    win = np.array([TRUTH[s][0] for s in stages])
    open_k = np.eye(n)
    out = np.zeros((n, months))
    for k in range(months):
        out[:, k] = open_k @ win
        open_k = open_k @ step
    return dict(zip(stages, out, strict=True))


def test_stage_ahead_interaction_has_the_right_sign_and_times_each_stages_wins(sim) -> None:
    # the simulator's Qualify deals win mostly after advancing (win chance rising with the
    # months ahead), Negotiate deals at once (falling): the common months-ahead effect
    # alone cannot time both; a fit with the interaction pinned at zero is the "without"
    deals = deal_frame(sim["deals"], sim["accounts"])
    fits = {
        label: PipelineModel(method="map", draws=200, chains=1, seed=1, priors=priors).fit(
            deals, sim["deal_history"], as_of=AS_OF
        )
        for label, priors in (("with", None), ("without", {"stage_ahead_sigma": 1e-4}))
    }
    inter = fits["with"].idata_.posterior["stage_ahead"].mean(("chain", "draw")).sel(outcome="won")
    later = ["3", "4-6"]
    assert (inter.sel(stage_level="Qualify", months_ahead=later) > 0.3).all()
    assert (inter.sel(stage_level="Negotiate", months_ahead=later) < -0.3).all()
    truth = _true_monthly_wins(6)
    err = {}
    for label, model in fits.items():
        open_now = model.open_deals()
        pw, _ = hazard_paths(
            model.posterior_subset(200, seed=0),
            model.deal_codes(open_now),
            first_month=2024 * 12 + 4,
            months=6,
        )
        mean = pw.mean(axis=0)  # (deal, month)
        stage = open_now["stage"].astype(str).to_numpy()
        err[label] = sum(np.abs(mean[stage == s].mean(axis=0) - truth[s]).sum() for s in truth)
    # sim seed 3: summed absolute error of the monthly win chances 0.13 with, 0.28 without
    assert err["with"] < 0.6 * err["without"], err


def test_model_saved_before_the_stage_ahead_interaction_loads_and_forecasts_without(
    fitted, tmp_path
) -> None:
    import copy

    old = copy.deepcopy(fitted)
    old.idata_.posterior = old.idata_.posterior.drop_vars("stage_ahead")
    back = PipelineModel.load(old.save(tmp_path / "old.nc"))
    assert "stage_ahead" not in back.idata_.posterior
    assert "stage_ahead" in back.cells_  # derived from stage and months ahead on load
    post = back.posterior_subset(40, seed=0)
    n_stage = len(back.levels_.stage) + 1
    assert post["stage_ahead"].shape == (40, 2, n_stage, 6) and (post["stage_ahead"] == 0).all()
    codes = back.deal_codes(back.open_deals())
    pw, _ = hazard_paths(post, codes, first_month=2024 * 12 + 4, months=3)
    # the same hazards as the new model's posterior with its interaction set to zero
    new = fitted.posterior_subset(40, seed=0)
    new["stage_ahead"] = np.zeros_like(new["stage_ahead"])
    pw_new, _ = hazard_paths(new, codes, first_month=2024 * 12 + 4, months=3)
    np.testing.assert_allclose(pw, pw_new, atol=1e-12)
    ll = back.add_log_likelihood().idata_.log_likelihood["cell_counts"]
    assert np.isfinite(ll.to_numpy()).all()


def _hand_built_posterior(n_draws: int, levels: Levels, seed: int) -> dict[str, np.ndarray]:
    """Random effects of every variable (reference levels zero), first axis: draw."""
    rng = np.random.default_rng(seed)
    n_stage, n_ahead = len(levels.stage) + 1, len(MONTH_EDGES)

    def free(*shape: int) -> np.ndarray:
        out = rng.normal(0.0, 0.7, (n_draws, 2, *shape))
        out[..., 0] = 0.0
        return out

    post = {
        "stage": rng.normal(-2.0, 0.5, (n_draws, 2, n_stage)),
        "ahead": free(n_ahead),
        "age": free(n_ahead),
        "due": free(len(DUE_LEVELS)),
        "miq": free(3),
        "stage_ahead": free(n_stage, n_ahead),
    }
    for g in GROUPS:
        post[f"u_{g}"] = rng.normal(0.0, 0.4, (n_draws, 2, len(levels.groups[g]) + 1))
    return post


def test_cell_eta_and_the_kernels_agree_on_a_hand_built_case() -> None:
    # one coding of (stage, months ahead): the cells' stage_ahead code picks in _cell_eta
    # the effect the forecast kernels take at [stage, months-ahead bucket]
    levels = Levels(["A", "B", "C"], {g: ["x", "y"] for g in GROUPS})
    post = _hand_built_posterior(5, levels, seed=30)
    first, months = 2024 * 12 + 1, 14  # months ahead 1 .. 14: every bucket, 13+ included
    deals = {
        "stage": np.array([0, 1, 2, 3]),
        "created_m": np.array([first - 2, first - 9, first - 1, first - 30]),
    }
    deals["expected_m"] = np.array([first + 3, -1, first - 1, first + 12])
    for i, g in enumerate(GROUPS):
        deals[g] = (np.arange(4) + i) % 3  # level 2: the unseen level
    pw, pl = hazard_paths(post, deals, first_month=first, months=months)  # (P, N, K)
    rows = []
    for n in range(4):
        for k in range(months):
            m = first + k
            rows.append(
                {
                    "stage": deals["stage"][n],
                    "ahead": int(month_bucket(np.array([k + 1]))[0]),
                    "age": int(month_bucket(np.array([m - deals["created_m"][n]]))[0]),
                    "due": int(due_level(np.array([m]), np.array([deals["expected_m"][n]]))[0]),
                    "miq": m % 3,
                    **{g: deals[g][n] for g in GROUPS},
                    "n_stay": 1.0,
                    "n_win": 0.0,
                    "n_lose": 0.0,
                }
            )
    cells = with_stage_ahead(pd.DataFrame(rows), levels)
    eta = _cell_eta(post, cells, levels)  # (P, 2, cells), cells in (deal, month) order
    e = np.exp(eta)
    p = e / (1.0 + e.sum(axis=1, keepdims=True))
    hw, hl = p[:, 0].reshape(pw.shape), p[:, 1].reshape(pl.shape)  # monthly hazards
    # the kernels' chances of winning / losing in each month: still open before it x hazard
    surv = np.cumprod(1.0 - hw - hl, axis=2)
    prev = np.concatenate([np.ones((*surv.shape[:2], 1)), surv[..., :-1]], axis=2)
    np.testing.assert_allclose(prev * hw, pw, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(prev * hl, pl, rtol=1e-12, atol=1e-15)
    # the interaction matters here: without it the hazards differ
    bare = {k: v for k, v in post.items() if k != "stage_ahead"}
    e0 = np.exp(_cell_eta(bare, cells, levels))
    assert not np.allclose(e0[:, 0] / (1.0 + e0.sum(axis=1)), p[:, 0])


def test_cell_eta_given_cells_without_stage_ahead_refuses_naming_the_column() -> None:
    levels = Levels(["A", "B"], {g: ["x"] for g in GROUPS})
    post = _hand_built_posterior(2, levels, seed=31)
    cells = pd.DataFrame(
        {"stage": [1], "ahead": [2], "age": [0], "due": [0], "miq": [0], **{g: [0] for g in GROUPS}}
    )
    cells[["n_stay", "n_win", "n_lose"]] = [[1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="cells lack the column 'stage_ahead'") as err:
        _cell_eta(post, cells, levels)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="cells lack the column 'stage_ahead'"):
        PipelineModel().build_model(cells, levels)


def test_a_month_of_the_quarter_never_seen_takes_the_seen_months_mean_not_its_prior(
    tmp_path,
) -> None:
    # closes first recorded in December 2023 (3rd month of a quarter), as-of January 2024
    # (1st): February, the 2nd month, has no training trial
    deals = _fast_closers(seed=2)
    early = deals["closed_at"].notna() & (deals["closed_at"] < pd.Timestamp("2023-12-01"))
    deals = deal_frame(deals[~early].reset_index(drop=True))
    model = PipelineModel(method="map", draws=200, chains=1, groups=()).fit(
        deals, None, as_of="2024-01-31"
    )
    assert model.quarter_seen().tolist() == [True, False, True]
    post = model.posterior_subset(200, seed=1)
    expected = post["miq"][:, :, [0, 2]].mean(axis=2)
    np.testing.assert_allclose(post["miq"][:, :, 1], expected)
    # the raw posterior of the unseen month is its prior, sd 1: far wider than the filled one
    raw = model.idata_.posterior["miq"].isel(month_of_quarter=1).to_numpy().ravel()
    assert raw.std() > 0.7
    assert post["miq"][:, :, 1].std() < 0.5 * raw.std()
    # a saved model forecasts the same way
    back = PipelineModel.load(model.save(tmp_path / "young.nc"))
    assert back.quarter_seen().tolist() == [True, False, True]
    np.testing.assert_array_equal(back.posterior_subset(200, seed=1)["miq"], post["miq"])


def test_a_model_that_saw_every_month_of_the_quarter_keeps_its_own_effects(fitted) -> None:
    assert fitted.quarter_seen().all()
    post = fitted.posterior_subset(50, seed=2)
    raw = fitted.idata_.posterior["miq"].stack(s=("chain", "draw")).transpose("s", ...)
    assert any(np.allclose(post["miq"][0], raw.to_numpy()[i]) for i in range(raw.sizes["s"]))


def test_a_fit_and_its_readers_parse_the_deal_history_once(sim, monkeypatch, tmp_path) -> None:
    from crmkit.forecast.checks import posterior_predictive_checks
    from crmkit.store import history

    built: list[int] = []
    real = history.HistoryIndex.__init__

    def counting(self, deals, hist):
        built.append(len(deals))
        real(self, deals, hist)

    monkeypatch.setattr(history.HistoryIndex, "__init__", counting)
    deals = deal_frame(sim["deals"], sim["accounts"])
    model = PipelineModel(method="map", draws=100, chains=1, seed=1).fit(
        deals, sim["deal_history"], as_of=AS_OF
    )  # landmark cells, amounts and the monthly shocks
    open_now = model.open_deals()
    model.open_deals()
    posterior_predictive_checks({"pipeline": model}, {}, as_of=AS_OF, n_draws=20)
    assert len(built) == 1, built
    # the index is the fit's: the same open deals as a fresh parse of the history
    fresh = history.deals_as_of(model.frame_, sim["deal_history"], model.as_of_)
    assert open_now["deal_id"].tolist() == fresh[fresh["status"].eq("open")]["deal_id"].tolist()
    # a saved model parses it again on first use, once
    back = PipelineModel.load(model.save(tmp_path / "p.nc"))
    built.clear()
    back.open_deals()
    back.open_deals()
    assert len(built) == 1
