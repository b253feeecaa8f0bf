"""Fixtures of the chart tests: the dashboard's fan table of the fake snapshot."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.apps import dashboard as db
from crmkit.store import Snapshot


@pytest.fixture(scope="module")
def fan(snap: Snapshot) -> pd.DataFrame:
    """The fan chart table (:func:`crmkit.apps.dashboard.fan_data`) of the fake snapshot."""
    return db.fan_data(snap)
