"""Fixtures shared by the marketing-mix model tests."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm


@pytest.fixture(scope="session")
def fitted() -> tuple[MarketingMixModel, pd.DataFrame, dict]:
    """A short NUTS fit on 2 years of data simulated from known adstock and saturation."""
    df, truth = simulate_mmm(
        104, decay=[0.3, 0.6], lam=[2.0, 3.0], beta=[300.0, 200.0], noise=30.0, seed=7
    )
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, random_seed=7)
    mmm.fit(df, draws=300, tune=400, chains=2)
    return mmm, df, truth
