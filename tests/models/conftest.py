"""Fixtures shared by the model tests: the marketing-mix fit and the contract tests' inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.models.clv.models import BetaGeo
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


@dataclass
class FitInput:
    """What a contract test passes to ``fit``: the data and keyword arguments (fast method)."""

    data: Any
    kwargs: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def clv_fit_input() -> FitInput:
    """A small simulated purchase summary (with spend), fitted by MAP."""
    return FitInput(simulate_bgnbd_gammagamma(300, seed=11), {"method": "map"})


@pytest.fixture(scope="session")
def calendar_fit_input() -> FitInput:
    """Weekly repeat purchases and a BG/NBD fitted by MLE, for the calendar effect."""
    summary = simulate_bgnbd_gammagamma(300, seed=12)
    bg = BetaGeo(random_seed=0).fit(summary, method="mle")
    observed = np.random.default_rng(12).poisson(8.0, 20).astype(float)
    return FitInput(observed, {"method": "grid", "purchase_model": bg})


@pytest.fixture(scope="session")
def mmm_fit_input() -> FitInput:
    """Forty simulated weeks of spend and outcome, fitted by MAP."""
    df, _ = simulate_mmm(40, seed=6)
    return FitInput(df, {"method": "map", "draws": 60})


@pytest.fixture(scope="session")
def pipeline_fit_input() -> FitInput:
    """Simulated deals and their history, fitted by MAP on what was known on 2024-04-30."""
    from tests.sim_deals import simulate

    sim = simulate(n_months=28, arrivals=25, seed=4)
    kwargs = {"history": sim["deal_history"], "as_of": "2024-04-30", "method": "map"}
    return FitInput(sim["deals"], kwargs)
