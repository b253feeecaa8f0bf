"""The forecast end to end on simulated deals: draws per source and group, the saved snapshot.

The axes, tables, snapshot layout and comparison have their own tests
(``test_forecast_axes.py``, ``test_forecast_tables.py``, ``test_forecast_snapshot.py``,
``test_forecast_compare.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.engine import SOURCES, run_forecast
from tests.sim_deals import simulate

AS_OF = "2024-04-30"


def _load(store, sim: dict[str, pd.DataFrame]) -> None:
    hist = sim["deal_history"].drop(columns=["history_id"])
    store.insert_many(
        {
            "accounts": sim["accounts"],
            "stages": sim["stages"],
            "deals": sim["deals"],
            "deal_history": hist,
        },
        changed_by="test",
    )


@pytest.fixture(scope="module")
def store_and_snap():
    from crmkit.store import Store

    store = Store.open("sqlite://")
    sim = simulate(n_months=30, arrivals=30, seed=2)
    _load(store, sim)
    snap = run_forecast(store, as_of=AS_OF, horizon=3, draws=400, target=150000.0, seed=1)
    yield store, snap, sim
    store.close()


def test_snapshot_follows_the_contract(store_and_snap) -> None:
    store, snap, _ = store_and_snap
    assert snap.snapshot_id is not None
    arr = snap.draws["rollup"]
    assert snap.dims["rollup"] == ["sample", "period", "source", "group"]
    assert arr.shape == (400, 3, 4, len(snap.coords["group"]))
    assert snap.coords["source"] == list(SOURCES)
    # total is the sum of the sources, draw by draw
    assert np.allclose(arr[:, :, 3], arr[:, :, :3].sum(axis=2))
    assert set(snap.quantiles["group_by"]) == {"all", "team", "owner", "segment"}
    assert {"stage_probabilities", "at_risk_deals", "actuals"} <= set(snap.parameters["tables"])
    assert set(snap.diagnostics["models"]) == {"pipeline", "new_business", "repeat"}
    loaded = store.load_snapshot(snap.snapshot_id)
    assert np.allclose(loaded.draws["rollup"], arr)
    assert loaded.parameters["tables"]["stage_probabilities"][0]["configured"] is not None


def test_rollups_are_sums_of_draws(store_and_snap) -> None:
    _, snap, _ = store_and_snap
    arr, groups = snap.draws["rollup"], snap.coords["group"]
    teams = [i for i, g in enumerate(groups) if g.startswith("team=")]
    owners = [i for i, g in enumerate(groups) if g.startswith("owner=")]
    for src in (0, 1):  # every deal has a team and an owner
        assert np.allclose(arr[:, :, src, teams].sum(axis=2), arr[:, :, src, 0])
        assert np.allclose(arr[:, :, src, owners].sum(axis=2), arr[:, :, src, 0])


def test_forecast_is_near_what_happened(store_and_snap) -> None:
    _, snap, sim = store_and_snap
    d = sim["deals"]
    won = d[
        (d["status"] == "won")
        & (d["closed_at"] > "2024-04-30 23:59")
        & (d["closed_at"] < "2024-08-01")
    ]
    total = snap.draws["rollup"][:, :, 3, 0].sum(axis=1)
    lo, hi = np.quantile(total, [0.01, 0.99])
    assert lo <= won["amount"].sum() <= hi


def test_quarterly_forecast_counts_closed_to_date(store_and_snap) -> None:
    store, _, sim = store_and_snap
    snap = run_forecast(
        store,
        as_of="2024-05-15",
        horizon=2,
        period="Q",
        draws=100,
        seed=3,
        save=False,
        include_repeat=False,
    )
    assert snap.coords["period"] == ["2024-Q2", "2024-Q3"]
    q = snap.quantiles.query("group_by == 'all' and source == 'total'").set_index("period")
    d = sim["deals"]
    won = d[
        (d["status"] == "won")
        & (d["closed_at"] >= "2024-04-01")
        & (d["closed_at"] <= "2024-05-15 23:59:59")
    ]
    assert q.loc["2024-Q2", "closed_to_date"] == pytest.approx(won["amount"].sum())
    assert q.loc["2024-Q3", "closed_to_date"] == 0.0


def test_names_moved_out_are_still_importable_from_crmkit_forecast() -> None:
    import crmkit.forecast.engine as f
    from crmkit.forecast import axes as forecast_axes
    from crmkit.forecast import compare as forecast_compare
    from crmkit.forecast import snapshot as forecast_snapshot
    from crmkit.forecast import tables as forecast_tables

    for module in (forecast_axes, forecast_compare, forecast_snapshot, forecast_tables):
        for name in module.__all__:
            assert name in f.__all__, name
            assert getattr(f, name) is getattr(module, name), name
    assert all(hasattr(f, name) for name in f.__all__)
