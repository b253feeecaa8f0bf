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
