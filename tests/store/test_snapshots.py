"""Forecast snapshots keep quantiles, labelled draws, parameters and diagnostics."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from crmkit.store import Snapshot, Store


def make_snapshot(seed: int = 0) -> Snapshot:
    rng = np.random.default_rng(seed)
    periods = ["2026-11", "2026-12", "2027-01"]
    total = rng.gamma(5.0, 1000.0, size=(200, 3))
    q = pd.DataFrame(
        {
            "period": periods,
            "source": "total",
            "p10": np.quantile(total, 0.1, axis=0),
            "p50": np.quantile(total, 0.5, axis=0),
            "p90": np.quantile(total, 0.9, axis=0),
        }
    )
    return Snapshot(
        as_of=dt.date(2026, 10, 31),
        horizon=3,
        period="M",
        quantiles=q,
        draws={"total": total},
        coords={"period": periods},
        dims={"total": ["sample", "period"]},
        parameters={"draws": 200, "target": 12_000.5},
        diagnostics={"ok": True, "r_hat_max": 1.004},
        label="test",
    )


def test_snapshot_round_trip(store: Store) -> None:
    snap = make_snapshot()
    sid = store.save_snapshot(snap)
    back = store.load_snapshot(sid)
    assert back.snapshot_id == sid
    assert back.as_of == dt.date(2026, 10, 31)
    assert (back.horizon, back.period, back.label) == (3, "M", "test")
    np.testing.assert_array_equal(back.draws["total"], snap.draws["total"])
    pd.testing.assert_frame_equal(back.quantiles, snap.quantiles, check_dtype=False)
    assert back.parameters == {"draws": 200, "target": 12_000.5}
    assert back.diagnostics["ok"] is True
    ds = back.to_xarray()
    assert ds["total"].dims == ("sample", "period")
    assert list(ds["period"].values) == ["2026-11", "2026-12", "2027-01"]


def test_latest_snapshot_and_listing(store: Store) -> None:
    a = store.save_snapshot(make_snapshot(1))
    b = store.save_snapshot(make_snapshot(2))
    assert store.load_snapshot().snapshot_id == b
    listing = store.list_snapshots()
    assert listing["snapshot_id"].tolist() == [b, a]
    assert "draws" not in listing.columns
