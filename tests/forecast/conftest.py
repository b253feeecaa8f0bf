"""Forecast fixtures: the session's simulated deals with fitted models and a fake MMM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crmkit.forecast.engine import fit_models, load_frames
from crmkit.store import Store
from tests.forecast.fake_mmm import AS_OF, fake_mmm


@pytest.fixture(scope="session")
def marketing_setup(sim_deals_db_file: Path) -> Iterator[tuple[Store, dict, dict]]:
    """The simulated-deals store (read-only), its frames, and models fitted as of AS_OF.

    The models are the forecast's own plus ``"marketing"``, a :func:`fake_mmm`. Tests read
    them and never save to the store (``save=False``).
    """
    store = Store.open(sim_deals_db_file)
    frames = load_frames(store)
    models = fit_models(frames, as_of=AS_OF)
    models["marketing"] = fake_mmm()
    yield store, frames, models
    store.close()
