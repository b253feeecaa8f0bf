"""NUTS fit of the pipeline model: exact log-density, identified effects, recovery of truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime

from crmkit.models.pipeline.data import DUE_LEVELS, GROUPS, MONTH_EDGES, Levels, with_stage_ahead
from crmkit.models.pipeline.model import DEFAULT_PRIORS, PipelineModel
from crmkit.models.pipeline.nuts_fit import PipelinePosterior, fit_nuts, nesting, zero_sum_basis

STAGES = ["Negotiate", "Propose", "Qualify"]
OWNERS = ["ann", "bob", "cat", "dan"]
TEAMS = {"ann": "east", "bob": "east", "cat": "west", "dan": "west"}
SEGMENTS = ["Enterprise", "SMB"]
#: Known truth: logits of (won, lost) per stage, due-status effect and zero-sum groups.
TRUE_STAGE = np.array([[-0.8, -1.6, -3.0], [-2.2, -1.5, -1.0]])
TRUE_DUE_NOW = np.array([0.8, -0.3])  # "due now" against "unknown"
TRUE_SEGMENT = np.array([[0.3, -0.3], [-0.2, 0.2]])


def _simulate_cells(n_deals: int = 400, months: int = 6, seed: int = 0):
    """Deal-months drawn from the truth, aggregated into cells (codes as landmark_cells)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_deals):
        s = int(rng.integers(3))
        o = int(rng.integers(4))
        seg = int(rng.integers(2))
        for k in range(months):
            due = 4 if k == 1 else 0  # "due now" in the second month, else unknown
            eta = TRUE_STAGE[:, s] + (TRUE_DUE_NOW if due == 4 else 0) + TRUE_SEGMENT[:, seg]
            p = np.exp(np.r_[0.0, eta])
            r = rng.choice(3, p=p / p.sum())
            rows.append((s, 0, 0, due, 0, o, o // 2, seg, 0, r))
            if r:
                break
    df = pd.DataFrame(rows, columns=["stage", "ahead", "age", "due", "miq", *GROUPS, "r"])
    for col, r in (("n_stay", 0), ("n_win", 1), ("n_lose", 2)):
        df[col] = (df["r"] == r).astype(float)
    keys = ["stage", "ahead", "age", "due", "miq", *GROUPS]
    cells = df.drop(columns="r").groupby(keys, as_index=False).sum()
    levels = Levels(
        list(STAGES),
        {"owner": OWNERS, "team": ["east", "west"], "segment": SEGMENTS, "source": ["web"]},
    )
    return with_stage_ahead(cells, levels), levels


@pytest.fixture(scope="module")
def cells_levels():
    """Simulated cells from 400 deals and their levels (read-only)."""
    return _simulate_cells()


@pytest.fixture(scope="module")
def nuts_fit(cells_levels):
    """NUTS draws on the simulated cells: (flat draws, diagnostics, sample stats)."""
    cells, levels = cells_levels
    return fit_nuts(cells, levels, DEFAULT_PRIORS, draws=1000, tune=500, chains=2, seed=4)


def test_owners_nested_in_teams_are_detected_and_sum_to_zero_within_team(cells_levels) -> None:
    cells, levels = cells_levels
    assert nesting(cells, levels) == {
        "owner": "team",
        "team": None,
        "segment": None,
        "source": None,
    }
    post = PipelinePosterior(cells, levels, DEFAULT_PRIORS)
    b = post.bases["owner"]  # 4 owners in 2 teams: 2 free directions
    assert b.shape == (4, 2)
    assert np.allclose(b[:2].sum(axis=0), 0) and np.allclose(b[2:].sum(axis=0), 0)
    assert np.allclose(b.T @ b, np.eye(2))
    assert post.bases["source"].shape == (1, 0)  # one source: no free effect


def test_zero_sum_basis_without_parent_is_orthonormal_and_sums_to_zero() -> None:
    b = zero_sum_basis(5, None)
    assert b.shape == (5, 4)
    assert np.allclose(b.sum(axis=0), 0) and np.allclose(b.T @ b, np.eye(4))


def test_nuts_log_density_gradient_matches_finite_differences(cells_levels) -> None:
    cells, levels = cells_levels
    post = PipelinePosterior(cells, levels, DEFAULT_PRIORS)
    x = np.random.default_rng(0).normal(size=post.size) * 0.3
    lp, grad = post.logp(x)
    num = approx_fprime(x, lambda t: post.logp(t)[0], 1e-6)
    assert np.isfinite(lp)
    assert np.abs(num - grad).max() < 1e-3 * max(1.0, np.abs(grad).max())


def test_centred_and_non_centred_group_effects_are_the_same_posterior(cells_levels) -> None:
    cells, levels = cells_levels
    nc = PipelinePosterior(cells, levels, DEFAULT_PRIORS)
    cen = PipelinePosterior(
        cells, levels, DEFAULT_PRIORS, {g: np.array([True, False]) for g in GROUPS}
    )
    x = np.random.default_rng(1).normal(size=nc.size) * 0.3
    y, log_jac = x.copy(), 0.0
    for g in GROUPS:  # won effects: w = sigma * zeta, density changes by sigma^-k
        sig = np.exp(nc.get(x, f"log_sigma_{g}"))[0]
        v = cen.get(y, f"zeta_{g}")
        v[0] *= sig
        log_jac += v.shape[1] * np.log(sig)
    assert cen.logp(y)[0] == pytest.approx(nc.logp(x)[0] - log_jac, abs=1e-8)
    a = nc.natural(x, np.random.default_rng(2))
    b = cen.natural(y, np.random.default_rng(2))
    assert all(np.allclose(a[k], b[k]) for k in a)


def test_nuts_has_no_divergences_and_r_hat_within_threshold_on_simulated_truth(nuts_fit) -> None:
    _, diag, stats = nuts_fit
    assert diag["method"] == "nuts" and diag["sampler"] == "nutpie-logp"
    assert diag["divergences"] == 0
    assert int(stats["diverging"].sum()) == 0
    assert diag["r_hat_max"] <= 1.01


def test_nuts_recovers_stage_due_and_segment_effects_inside_94_percent_interval(nuts_fit) -> None:
    flat, _, _ = nuts_fit

    def inside(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
        lo, hi = np.quantile(draws, [0.03, 0.97], axis=0)
        return (lo <= truth) & (truth <= hi)

    assert inside(flat["stage"][:, :, :3], TRUE_STAGE).all()
    assert inside(flat["due"][:, :, 4], TRUE_DUE_NOW).all()
    assert inside(flat["u_segment"][:, :, :2], TRUE_SEGMENT).all()
    # effects are identified: seen levels of each group sum to zero in every draw
    assert np.allclose(flat["u_segment"][:, :, :2].sum(axis=2), 0)
    assert np.allclose(flat["u_owner"][:, :, :2].sum(axis=2), 0)  # owners within team east
    # the unseen levels are prior draws, sigma * N(0, 1), not a constant
    assert flat["u_owner"][:, 0, -1].std() > 0
    # a level of a fixed effect is the reference: zero
    assert np.all(flat["ahead"][:, :, 0] == 0) and flat["ahead"].shape[2] == len(MONTH_EDGES)
    assert flat["due"].shape[2] == len(DUE_LEVELS)


def test_pipeline_model_nuts_fit_fills_the_contract_with_mcmc_diagnostics(sim) -> None:
    from crmkit.models.pipeline.data import deal_frame

    deals = deal_frame(sim["deals"], sim["accounts"])
    model = PipelineModel(method="nuts", draws=200, tune=200, chains=2, seed=2).fit(
        deals, sim["deal_history"], as_of="2024-04-30"
    )
    d = model.diagnostics_
    assert d["method"] == "nuts" and d["divergences"] == 0
    assert d["r_hat_max"] is not None and d["ess_bulk_min"] > 0
    post = model.idata_.posterior
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, 200)
    assert "diverging" in model.idata_.sample_stats
    assert model.posterior_subset(50)["u_owner"].shape[1:] == post["u_owner"].shape[2:]


def test_nuts_fit_given_cells_without_stage_ahead_refuses_naming_the_column(cells_levels) -> None:
    cells, levels = cells_levels
    bare = cells.drop(columns="stage_ahead")
    with pytest.raises(ValueError, match="cells lack the column 'stage_ahead'") as err:
        fit_nuts(bare, levels, DEFAULT_PRIORS, draws=10, tune=10, chains=1)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="cells lack the column 'stage_ahead'"):
        PipelinePosterior(bare, levels, DEFAULT_PRIORS)
