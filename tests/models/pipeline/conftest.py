"""Fixtures shared by the pipeline tests: simulated deals and a MAP pipeline fit on them."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.model import PipelineModel
from tests.sim_deals import simulate

AS_OF = "2024-04-30"


@pytest.fixture(scope="session")
def sim() -> dict[str, pd.DataFrame]:
    """Thirty months of simulated deals, 60 arrivals a month (read-only)."""
    return simulate(n_months=30, arrivals=60, seed=3)


@pytest.fixture(scope="session")
def fitted(sim: dict[str, pd.DataFrame]) -> PipelineModel:
    """A MAP pipeline model fitted on ``sim`` as of :data:`AS_OF` (read-only)."""
    deals = deal_frame(sim["deals"], sim["accounts"])
    return PipelineModel(method="map", draws=200, chains=1, seed=1).fit(
        deals, sim["deal_history"], as_of=AS_OF, stages=sim["stages"]
    )
