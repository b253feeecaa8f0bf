"""MAP + Laplace fit of the pipeline model: the group scales from their Laplace marginal.

The joint mode of the non-centred posterior overstates the group scales (issue #17,
benchmarks/results/sbc.md); ``scales="marginal"`` takes them from their marginal with the
other parameters integrated out by a Laplace step (:class:`CentredPosterior`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.inference.laplace import numeric_hessian
from crmkit.models.pipeline.data import Levels
from crmkit.models.pipeline.map_fit import CentredPosterior, fit_map_numpy, log_posterior
from crmkit.models.pipeline.model import DEFAULT_PRIORS
from crmkit.models.pipeline.simulate import demo_structure, draw_prior, simulate_cells

#: Log scales (owner, team, segment, source; won then lost) away from any mode.
S_TEST = np.log([0.3, 0.6, 0.2, 0.4, 0.5, 0.25, 0.3, 0.7])


@pytest.fixture(scope="module")
def large() -> tuple:
    """20,000 simulated deals (the setting of test_simulate's MAP recovery) and the truth."""
    st = demo_structure(20000, seed=12)
    truth = draw_prior(st, seed=13, parametrisation="map")
    cells, _ = simulate_cells(st, truth, seed=14)
    return cells, st.levels, truth


@pytest.fixture(scope="module")
def demo_size() -> tuple[pd.DataFrame, Levels]:
    """3,000 simulated deals, the demo company's size."""
    st = demo_structure(3000, seed=21)
    truth = draw_prior(st, seed=22, parametrisation="map")
    cells, _ = simulate_cells(st, truth, seed=23)
    return cells, st.levels


def test_marginal_sigma_owner_covers_truth_where_the_joint_mode_overstates_it(large) -> None:
    cells, levels, truth = large
    joint, _ = fit_map_numpy(cells, levels, DEFAULT_PRIORS, n_draws=2000, seed=0, scales="joint")
    marg, diag = fit_map_numpy(
        cells, levels, DEFAULT_PRIORS, n_draws=2000, seed=0, scales="marginal"
    )
    assert diag["ok"] and diag["scales"] == "marginal"
    true = truth["sigma_owner"]  # won 0.27, lost 0.71; the 11 owners' effects: sd 0.18, 0.86
    lo, med, hi = np.quantile(marg["sigma_owner"], [0.03, 0.5, 0.97], axis=0)
    joint_lo, joint_med = np.quantile(joint["sigma_owner"], [0.03, 0.5], axis=0)
    # seed 12-14: marginal won 0.20 (0.12-0.35), lost 0.85 (0.60-1.21);
    # joint won 0.68 (0.29-1.54), lost 1.25 (0.86-1.85)
    assert np.all((lo <= true) & (true <= hi)), (lo, true, hi)
    assert np.all(np.abs(med - true) < np.abs(joint_med - true) / 2.5), (med, joint_med, true)
    assert joint_lo[1] > true[1]  # the joint mode's 94% interval misses the lost scale


def test_inner_newton_gradient_is_zero_at_x_hat_by_log_posterior(demo_size) -> None:
    cells, levels = demo_size
    post = CentredPosterior(cells, levels, DEFAULT_PRIORS)
    x_hat, _, steps, converged = post.inner_mode(S_TEST)
    assert converged and steps > 0
    lay, logp = log_posterior(cells, levels, DEFAULT_PRIORS)
    # the non-centred gradient in every block but the log scales is sigma * the centred one
    not_scales = np.ones(lay.size, bool)
    for g in levels.groups:
        start, shape = lay.blocks[f"log_sigma_{g}"]
        not_scales[start : start + shape[0]] = False
    grad = logp(post.theta(x_hat, S_TEST))[1][not_scales]
    assert np.abs(grad).max() < 1e-6
    moved = logp(post.theta(x_hat + 0.01, S_TEST))[1][not_scales]
    assert np.abs(moved).max() > 1.0  # the check can fail


def test_analytic_hessian_equals_differences_of_the_gradient(demo_size) -> None:
    cells, levels = demo_size
    post = CentredPosterior(cells, levels, DEFAULT_PRIORS)
    x = post.inner_mode(S_TEST)[0] + 0.05
    numeric = numeric_hessian(lambda v: -post.gradient(v, S_TEST), x, eps=1e-5)
    np.testing.assert_allclose(post.hessian(x, S_TEST), numeric, atol=1e-4 * np.abs(numeric).max())


def test_laplace_log_det_is_finite_and_its_gradient_matches_differences(demo_size) -> None:
    cells, levels = demo_size
    post = CentredPosterior(cells, levels, DEFAULT_PRIORS)
    value, x_hat, hess, _, _ = post.log_marginal(S_TEST)
    sign, logdet = np.linalg.slogdet(hess)
    assert np.isfinite(value) and sign > 0 and np.isfinite(logdet)
    grad = post.log_marginal_gradient(x_hat, S_TEST, hess)
    h = 1e-5
    numeric = [
        (post.log_marginal(S_TEST + h * e, x_hat)[0] - post.log_marginal(S_TEST - h * e, x_hat)[0])
        / (2 * h)
        for e in np.eye(len(S_TEST))
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)


def test_group_with_a_single_level_gets_a_finite_prior_sized_scale(demo_size) -> None:
    cells, levels = demo_size
    one = cells.assign(segment=0).groupby(list(cells.columns[:-3]), as_index=False).sum()
    lv = Levels(levels.stage, {**levels.groups, "segment": ["Everyone"]})
    flat, diag = fit_map_numpy(one, lv, DEFAULT_PRIORS, n_draws=4000, seed=1, scales="marginal")
    assert diag["ok"] and diag["scales_at_bound"] == 0
    sig = flat["sigma_segment"]
    assert np.isfinite(sig).all() and np.isfinite(flat["u_segment"]).all()
    # no information on the scale: about its HalfNormal(0.5) prior (mode of log sigma: 0.5)
    med = np.median(sig, axis=0)
    assert np.all((0.2 < med) & (med < 1.0)), med
    assert np.all(np.quantile(sig, 0.97, axis=0) < 5.0)


def test_marginal_draws_have_the_joint_methods_keys_and_shapes(demo_size) -> None:
    cells, levels = demo_size
    joint, jd = fit_map_numpy(cells, levels, DEFAULT_PRIORS, n_draws=300, seed=2, scales="joint")
    marg, md = fit_map_numpy(cells, levels, DEFAULT_PRIORS, n_draws=300, seed=2, scales="marginal")
    assert list(marg) == list(joint)
    assert {k: v.shape for k, v in marg.items()} == {k: v.shape for k, v in joint.items()}
    assert set(jd) <= set(md) and jd["n_params"] == md["n_params"]
    assert jd["scales"] == "joint" and md["scale_curvature_floored"] == 0
    for name in ("ahead", "age", "due", "miq"):  # reference levels stay exactly zero
        assert (marg[name][:, :, 0] == 0).all()


def test_unseen_levels_are_drawn_from_normal_with_each_drawn_scale(demo_size) -> None:
    cells, levels = demo_size
    flat, _ = fit_map_numpy(cells, levels, DEFAULT_PRIORS, n_draws=4000, seed=3, scales="marginal")
    unseen = flat["u_owner"][:, :, -1]  # the extra last level: an owner not seen in training
    ratio = unseen / flat["sigma_owner"]
    assert np.all(np.abs(ratio.std(axis=0) - 1.0) < 0.05)
    # the scale's uncertainty reaches the effect: |u| grows with the drawn sigma
    for j in (0, 1):
        corr = np.corrcoef(np.abs(unseen[:, j]), flat["sigma_owner"][:, j])[0, 1]
        assert corr > 0.1, corr


def test_model_without_groups_has_no_scales_to_fit(demo_size) -> None:
    cells, levels = demo_size
    bare = cells.drop(columns=list(levels.groups))
    bare = bare.groupby(list(bare.columns[:-3]), as_index=False).sum()
    lv = Levels(levels.stage, {})
    flat, diag = fit_map_numpy(bare, lv, DEFAULT_PRIORS, n_draws=200, scales="marginal")
    assert diag["ok"] and diag["scales"] == "marginal"
    assert sorted(flat) == ["age", "ahead", "due", "miq", "stage", "stage_ahead"]
    assert np.isfinite(flat["stage"]).all() and flat["stage"].shape == (200, 2, 5)


def test_unknown_scales_option_is_a_one_line_error(demo_size) -> None:
    cells, levels = demo_size
    with pytest.raises(CrmkitError, match="scales must be one of") as err:
        fit_map_numpy(cells, levels, DEFAULT_PRIORS, scales="centred")
    assert "\n" not in str(err.value)


def test_log_posterior_gradient_matches_differences_with_the_stage_ahead_block(demo_size) -> None:
    cells, levels = demo_size
    lay, logp = log_posterior(cells, levels, DEFAULT_PRIORS)
    assert lay.blocks["stage_ahead"][1] == (2, (len(levels.stage) + 1) * 5)
    theta = np.random.default_rng(5).normal(0.0, 0.3, lay.size)
    lay.get(theta, "stage")[...] -= 2.0
    grad = logp(theta)[1]
    h = 1e-6
    numeric = np.array(
        [(logp(theta + h * e)[0] - logp(theta - h * e)[0]) / (2 * h) for e in np.eye(lay.size)]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-3)
    start, shape = lay.blocks["stage_ahead"]
    block = slice(start, start + shape[0] * shape[1])
    assert np.abs(grad[block]).max() > 1.0  # the block is informed: the check can fail


def test_marginal_fit_recovers_the_stage_ahead_interaction(large) -> None:
    cells, levels, truth = large
    flat, diag = fit_map_numpy(cells, levels, DEFAULT_PRIORS, n_draws=2000, seed=4)
    assert diag["ok"] and diag["scales"] == "marginal"
    n_stage = len(levels.stage)
    draws = flat["stage_ahead"][:, :, :n_stage]  # seen stages
    assert draws.shape == (2000, 2, n_stage, 6)
    assert (draws[..., 0] == 0).all()  # one month ahead: the reference
    lo, hi = np.quantile(draws[..., 1:], [0.03, 0.97], axis=0)
    true = truth["stage_ahead"][:, :n_stage, 1:]
    covered = float(((lo <= true) & (true <= hi)).mean())
    corr = np.corrcoef(draws[..., 1:].mean(axis=0).ravel(), true.ravel())[0, 1]
    # seed 12-14, 4 stages x 5 levels x 2 outcomes (posterior sd ~0.5 where informed): 90%
    # of the 94% intervals cover the truth, correlation of the means with it 0.71
    assert covered >= 0.85, covered
    assert corr > 0.5, corr
    # months ahead 13+ (no trial followed so far): the prior Normal(0, stage_ahead_sigma)
    sd = draws[..., 5].std(axis=0)
    assert np.allclose(sd, DEFAULT_PRIORS["stage_ahead_sigma"], rtol=0.1), sd


def test_map_fit_given_cells_without_stage_ahead_refuses_naming_the_column(demo_size) -> None:
    # the fits read the column the builders of cells set; they never derive it themselves
    cells, levels = demo_size
    bare = cells.drop(columns="stage_ahead")
    for fit in (
        lambda: fit_map_numpy(bare, levels, DEFAULT_PRIORS, n_draws=10, scales="marginal"),
        lambda: fit_map_numpy(bare, levels, DEFAULT_PRIORS, n_draws=10, scales="joint"),
        lambda: log_posterior(bare, levels, DEFAULT_PRIORS),
        lambda: CentredPosterior(bare, levels, DEFAULT_PRIORS),
    ):
        with pytest.raises(ValueError, match="cells lack the column 'stage_ahead'") as err:
            fit()
        assert "\n" not in str(err.value) and "with_stage_ahead" in str(err.value)
    assert "stage_ahead" in cells.columns  # the caller's cells are left as they were


def test_map_fit_given_a_stale_stage_ahead_column_refuses_naming_the_row(demo_size) -> None:
    # codes that are not those of the row's stage and months ahead would fit silently wrong
    cells, levels = demo_size
    stale = cells.copy()
    row = int(np.flatnonzero(stale["ahead"].to_numpy() > 0)[0])
    stale.loc[row, "stage_ahead"] = 0
    with pytest.raises(ValueError, match=f"cells row {row}: column 'stage_ahead' is 0") as err:
        fit_map_numpy(stale, levels, DEFAULT_PRIORS, n_draws=10)
    assert "\n" not in str(err.value)
