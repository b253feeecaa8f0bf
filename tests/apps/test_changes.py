"""What changed between two forecasts: headline figures side by side and the waterfall."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.apps import changes as chg
from crmkit.apps.dashboard import headline, latest_snapshot
from crmkit.forecast.compare import compare_snapshots, previous_snapshot
from crmkit.store import Store
from tests.snapshot_factory import make_fake_snapshot


def test_stored_snapshot_reads_the_same_and_changes_since(tmp_path) -> None:
    store = Store.open(tmp_path / "s.db")
    first = make_fake_snapshot(seed=1)
    second = make_fake_snapshot(seed=2, scale=1.2)
    store.save_snapshot(first)
    store.save_snapshot(second)
    loaded = latest_snapshot(store)
    assert loaded.snapshot_id == second.snapshot_id
    pd.testing.assert_frame_equal(headline(loaded), headline(second))
    prev = previous_snapshot(store, loaded)
    assert prev is not None and prev.snapshot_id == first.snapshot_id
    assert previous_snapshot(store, prev) is None
    ch = chg.changes_since(prev, loaded)
    assert ch.loc["total", "p50_before"] == pytest.approx(headline(first).loc["total", "p50"])
    assert ch.loc["total", "change"] > 0  # everything is scaled up by 20 %
    assert chg.changes_since(None, loaded)["p50_before"].isna().all()
    store.close()


def test_change_steps_run_from_the_previous_to_the_current_total() -> None:
    old = make_fake_snapshot(seed=3, scale=0.9, forecast_call=True)
    new = make_fake_snapshot(seed=4, forecast_call=True)
    steps = chg.what_changed(old, new)
    assert steps["step"].iloc[0] == "before" and steps["step"].iloc[-1] == "now"
    start = old.revenue.sel(source="total", group="all").sum("period").mean()
    end = new.revenue.sel(source="total", group="all").sum("period").mean()
    assert steps["amount"].iloc[0] == pytest.approx(float(start))
    assert steps["amount"].iloc[-1] == pytest.approx(float(end))
    assert steps["amount"].iloc[1:-1].sum() == pytest.approx(float(end - start))
    assert steps["label"].is_unique
    # every reason once, in the waterfall's order, with compare_snapshots' sums
    reasons = compare_snapshots(old, new)["reasons"].set_index("reason")
    changes = steps[steps["kind"] == "change"].set_index("step")
    assert set(reasons.index) <= set(changes.index) <= set(reasons.index) | {"other"}
    for r in reasons.index:
        assert changes.loc[r, "amount"] == pytest.approx(reasons.loc[r, "delta_expected"])
    order = list(chg.CHANGE_LABELS)
    assert [order.index(s) for s in changes.index] == sorted(order.index(s) for s in changes.index)
    assert chg.what_changed(None, new) is None
