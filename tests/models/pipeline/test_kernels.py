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
