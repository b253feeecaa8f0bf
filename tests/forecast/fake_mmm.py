"""A marketing-mix model with given (fake) posterior draws, for the plan tests: no sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm

AS_OF = "2024-04-30"
LAST_WEEK = pd.Timestamp("2024-04-22")  # the last week complete on AS_OF (a Monday)


def fake_mmm(n_weeks: int = 60, seed: int = 0) -> MarketingMixModel:
    """A model on weekly new deals (about 7 a week) ending the week before AS_OF."""
    start = LAST_WEEK - pd.Timedelta(weeks=n_weeks - 1)
    df, _ = simulate_mmm(
        n_weeks,
        decay=[0.3, 0.5],
        lam=[2.0, 2.0],
        beta=[2.0, 1.0],
        intercept=6.0,
        trend_per_year=0.0,
        season_amplitude=0.0,
        noise=1.0,
        start=str(start.date()),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    n = 50

    def draws(mean: float, sd: float, *shape: int) -> np.ndarray:
        return mean + sd * rng.standard_normal((1, n, *shape))

    post = {
        "intercept": draws(0.6, 0.01),
        "trend": draws(0.0, 0.001),
        "fourier": draws(0.0, 0.001, 2),
        "decay": np.clip(draws(0.4, 0.05, 2), 0.01, 0.95),
        "lam": np.abs(draws(2.0, 0.2, 2)),
        "beta": np.abs(draws(0.2, 0.03, 2)),
        "sigma": np.abs(draws(0.1, 0.01)),
    }
    return MarketingMixModel(["x1", "x2"], yearly_order=1).set_posterior(df, post)
