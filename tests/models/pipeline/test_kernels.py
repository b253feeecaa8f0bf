"""The pipeline's numba kernels: hazard paths and the revenue simulation agree."""

from __future__ import annotations

import numpy as np

from crmkit.models.pipeline.kernels import hazard_paths, simulate_pipeline


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


def _zero_post(p: int) -> dict[str, np.ndarray]:
    """A hand-made posterior whose time effects are all zero."""
    from crmkit.models.pipeline.data import DUE_LEVELS, MONTH_EDGES

    n = len(MONTH_EDGES)
    return {
        "ahead": np.zeros((p, 2, n)),
        "age": np.zeros((p, 2, n)),
        "due": np.zeros((p, 2, len(DUE_LEVELS))),
        "miq": np.zeros((p, 2, 3)),
    }


def test_time_effects_add_the_month_shock_to_the_right_months() -> None:
    from crmkit.models.pipeline.kernels import time_effects

    post = _zero_post(2)
    shock = np.arange(12, dtype=float).reshape(2, 2, 3) + 1.0  # (P, outcome, H)
    post["month_shock"] = shock
    post["month_shock_first"] = np.int64(100)
    tv = time_effects(post, first_month=98, months=7)  # months 98..104
    assert tv.shape[:3] == (2, 2, 7)
    # before the first shock month: nothing (the past the shocks were measured on)
    assert np.all(tv[:, :, :2] == 0.0)
    # months 100, 101, 102: columns 0, 1, 2, the same over age and due levels
    np.testing.assert_array_equal(tv[:, :, 2:5, 3, 1], shock)
    assert np.all(tv[:, :, 2:5] == shock[:, :, :, None, None])
    # beyond H: the last column
    np.testing.assert_array_equal(tv[:, :, 5, 0, 0], shock[:, :, 2])
    np.testing.assert_array_equal(tv[:, :, 6, 0, 0], shock[:, :, 2])
    # without a shock the time effects are unchanged
    del post["month_shock"], post["month_shock_first"]
    assert np.all(time_effects(post, first_month=98, months=7) == 0.0)


def test_simulated_revenue_carries_the_month_shock(fitted) -> None:
    deals = fitted.open_deals()
    codes = fitted.deal_codes(deals)
    post = fitted.posterior_subset(50, seed=0)
    first = int(post["month_shock_first"])
    amount = deals["amount"].to_numpy(float)
    kw = {
        "first_month": first,
        "period_of_k": np.arange(2),
        "frac_first": 1.0,
        "ratio_mu": np.zeros(50),
        "ratio_sigma": np.full(50, 1e-9),
        "n_draws": 2000,
        "n_periods": 2,
        "n_groups": 1,
        "seed": 0,
    }
    gidx = np.zeros((len(deals), 1), np.int64)
    up = dict(post, month_shock=np.full_like(post["month_shock"], np.log(2.0)))
    base, _, _ = simulate_pipeline(dict(post, month_shock=0 * post["month_shock"]), codes,
                                   amount, gidx, **kw)  # fmt: skip
    more, _, _ = simulate_pipeline(up, codes, amount, gidx, **kw)
    # doubling every deal's win odds in the forecast months wins more in the first month
    assert more[:, 0, 0].mean() > 1.3 * base[:, 0, 0].mean()
    pw, _ = hazard_paths(up, codes, first_month=first, months=2)
    expected = np.einsum("pnk,n->k", pw, amount) / 50
    assert np.allclose(more[:, :, 0].mean(axis=0), expected, rtol=0.05)


def _stage_post(p: int, n_stage: int) -> dict[str, np.ndarray]:
    """A hand-made posterior: zero time effects, stage logits -2, no group effects."""
    from crmkit.models.pipeline.data import GROUPS

    post = _zero_post(p)
    post["stage"] = np.full((p, 2, n_stage), -2.0)
    for g in GROUPS:
        post[f"u_{g}"] = np.zeros((p, 2, 1))
    return post


def _codes(stage: list[int]) -> dict[str, np.ndarray]:
    """Codes of deals in the given stages, created in month 0, no expected close, no groups."""
    from crmkit.models.pipeline.data import GROUPS

    n = len(stage)
    codes = {"stage": np.array(stage, np.int64)}
    codes.update({g: np.full(n, -1, np.int64) for g in GROUPS})
    codes["created_m"] = np.zeros(n, np.int64)
    codes["expected_m"] = np.full(n, -1, np.int64)
    return codes


def test_stage_ahead_effects_index_stage_and_the_months_ahead_bucket() -> None:
    from crmkit.models.pipeline.data import MONTH_EDGES
    from crmkit.models.pipeline.kernels import stage_ahead_effects

    p, n_stage = 3, 4
    post = _stage_post(p, n_stage)
    sa = np.random.default_rng(0).normal(size=(p, 2, n_stage, len(MONTH_EDGES)))
    sa[..., 0] = 0.0
    post["stage_ahead"] = sa
    eff = stage_ahead_effects(post, months=14)
    assert eff.shape == (p, 2, n_stage, 14)
    # forecast months 1, 2, 3, 4-6, 7-12, 13+ -> buckets 0..5
    buckets = [0, 1, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5]
    np.testing.assert_array_equal(eff, sa[..., buckets])
    # a posterior without the interaction (models saved before it): zero
    del post["stage_ahead"]
    assert np.all(stage_ahead_effects(post, months=5) == 0.0)


def test_stage_ahead_raises_only_its_stage_hazard_in_paths_and_simulation() -> None:
    p, n_stage, months = 4, 3, 4
    post = _stage_post(p, n_stage)
    post["stage_ahead"] = np.zeros((p, 2, n_stage, 6))
    codes = _codes([0, 1, 2])
    base_w, _ = hazard_paths(post, codes, first_month=50, months=months)
    up = dict(post, stage_ahead=post["stage_ahead"].copy())
    up["stage_ahead"][:, 0, 1, 1] = np.log(3.0)  # stage 1, won, 2 months ahead: odds x 3
    up_w, _ = hazard_paths(up, codes, first_month=50, months=months)
    assert up_w.shape == (p, 3, months)
    # deal of stage 1: month 1 unchanged, month 2 tripled odds; other deals unchanged
    np.testing.assert_allclose(up_w[:, [0, 2]], base_w[:, [0, 2]])
    np.testing.assert_allclose(up_w[:, 1, 0], base_w[:, 1, 0])
    odds = np.exp(-2.0)
    hw = 3 * odds / (1 + 3 * odds + odds)
    surv1 = 1 - 2 * odds / (1 + 2 * odds)
    np.testing.assert_allclose(up_w[:, 1, 1], surv1 * hw)
    # the revenue kernel carries the same term: its P(win) equals the paths'
    _, p_win, _ = simulate_pipeline(
        up,
        codes,
        np.ones(3),
        np.zeros((3, 1), np.int64),
        first_month=50,
        period_of_k=np.arange(months),
        frac_first=1.0,
        ratio_mu=np.zeros(p),
        ratio_sigma=np.full(p, 1e-9),
        n_draws=400,
        n_periods=months,
        n_groups=1,
        seed=0,
    )
    np.testing.assert_allclose(p_win, up_w.sum(axis=2).mean(axis=0), atol=1e-6)
    assert p_win[1] > base_w[:, 1].sum(axis=1).mean() + 0.05
