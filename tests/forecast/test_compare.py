"""How the forecast moved between two snapshots: per period, per reason and per deal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.compare import compare_snapshots, compare_with_previous
from crmkit.forecast.engine import run_forecast
from crmkit.store import Snapshot
from tests.snapshot_factory import make_fake_snapshot

AS_OF = "2024-04-30"


def _with_deals(snap: Snapshot, deals: dict[str, tuple[float, float, int, str]]) -> Snapshot:
    """The snapshot with open deals ``{deal_id: (expected, amount, month, stage)}``."""
    ids = list(deals)
    cols = list(zip(*deals.values(), strict=True)) if deals else [(), (), (), ()]
    snap.coords["deal_id"] = ids
    snap.draws["deal_expected"] = np.array(cols[0], float)
    snap.draws["deal_amount"] = np.array(cols[1], float)
    snap.draws["deal_expected_month"] = np.array(cols[2], np.int64)
    snap.draws["deal_stage"] = np.array(cols[3], str)
    return snap


def test_every_reason_and_the_period_totals() -> None:
    old = _with_deals(
        make_fake_snapshot(seed=0),
        {
            "won": (10.0, 100.0, 5, "Proposal"),
            "lost": (20.0, 100.0, 5, "Proposal"),
            "gone": (30.0, 100.0, 5, "Proposal"),
            "slip": (40.0, 100.0, 5, "Proposal"),
            "pull": (50.0, 100.0, 5, "Proposal"),
            "amt": (60.0, 100.0, 5, "Proposal"),
            "stg": (70.0, 100.0, 5, "Proposal"),
            "same": (80.0, 100.0, 5, "Proposal"),
        },
    )
    new = _with_deals(
        make_fake_snapshot(seed=1, scale=1.2),
        {
            "slip": (41.0, 100.0, 6, "Proposal"),
            "pull": (52.0, 100.0, 4, "Proposal"),
            "amt": (63.0, 150.0, 5, "Proposal"),
            "stg": (74.0, 100.0, 5, "Negotiation"),
            "same": (85.0, 100.0, 5, "Proposal"),
            "new": (9.0, 40.0, 5, "Discovery"),
        },
    )
    status = pd.DataFrame({"deal_id": ["won", "lost", "gone"], "status": ["won", "lost", "open"]})
    out = compare_snapshots(old, new, status)
    reasons = out["deals"].set_index("deal_id")["reason"].to_dict()
    assert reasons == {
        "won": "won",
        "lost": "lost",
        "gone": "closed",
        "slip": "slipped",
        "pull": "pulled in",
        "amt": "amount changed",
        "stg": "stage changed",
        "same": "re-estimated",
        "new": "added",
    }
    by = out["reasons"].set_index("reason")
    assert by.loc["won", "delta_expected"] == -10.0
    assert by.loc["added", "delta_expected"] == 9.0
    assert by.loc["slipped", "deals"] == 1
    # the sources without deals: the change of their mean summed over the periods
    nb_new = new.revenue.sel(source="new_business", group="all")
    nb_old = old.revenue.sel(source="new_business", group="all")
    change = nb_new.mean("sample") - nb_old.mean("sample")
    assert by.loc["new_business", "delta_expected"] == pytest.approx(float(change.sum()))
    assert by.loc["new_business", "deals"] == 0
    periods = out["periods"].set_index("period")
    assert list(periods.index) == old.coords["period"]
    first = old.coords["period"][0]
    total = [s.revenue.sel(source="total", group="all", period=first).mean() for s in (new, old)]
    assert periods.loc[first, "change"] == pytest.approx(float(total[0] - total[1]))
    q = new.quantiles.query("group_by == 'all' and source == 'total'").set_index("period")
    assert periods["p50_new"].to_dict() == q["p50"].to_dict()


def test_without_current_deals_the_left_deals_count_as_closed() -> None:
    old = _with_deals(make_fake_snapshot(seed=0), {"a": (10.0, 100.0, 5, "Proposal")})
    new = _with_deals(make_fake_snapshot(seed=0), {})
    out = compare_snapshots(old, new)
    assert out["deals"]["reason"].tolist() == ["closed"]
    assert out["periods"]["change"].abs().max() == 0.0


def test_compare_with_previous_finds_the_snapshot_saved_before(tmp_path) -> None:
    from crmkit.store import Store

    class WithDeals:
        """A store's snapshots, and the current deals given here."""

        def __init__(self, store: Store, deals: pd.DataFrame) -> None:
            self.list_snapshots, self.load_snapshot = store.list_snapshots, store.load_snapshot
            self.deals = deals

        def read(self, name: str, columns: list[str]) -> pd.DataFrame:
            assert name == "deals"
            return self.deals[columns]

    saved = Store.open(tmp_path / "c.db")
    store = WithDeals(saved, pd.DataFrame({"deal_id": ["a"], "status": ["won"], "x": [1]}))
    first = _with_deals(make_fake_snapshot(seed=0), {"a": (10.0, 100.0, 5, "Proposal")})
    assert compare_with_previous(store, first)["previous"].empty
    saved.save_snapshot(first)
    second = make_fake_snapshot(seed=1)
    saved.save_snapshot(second)
    out = compare_with_previous(store, second)
    assert out["previous"].to_dict("records") == [
        {"snapshot_id": first.snapshot_id, "as_of": str(first.as_of)}
    ]
    assert out["deals"].set_index("deal_id").loc["a", "reason"] == "won"
    pd.testing.assert_frame_equal(
        out["periods"], compare_snapshots(first, second, store.deals)["periods"]
    )
    assert compare_with_previous(store, store.load_snapshot(first.snapshot_id))["periods"].empty
    saved.close()


# ---------------------------------------------------------------------- on real forecasts
def test_compare_snapshots_explains_the_move(sim_deals_store) -> None:
    store = sim_deals_store  # a copy of the session's simulated deals: this test edits it
    old = run_forecast(store, as_of=AS_OF, horizon=3, draws=400, seed=1, save=False, method="map")
    deals = store.read("deals")
    open_ids = old.coords["deal_id"]
    assert len(open_ids) >= 2
    # one deal is won, one gets a later expected close date, then forecast again
    first, second = open_ids[0], open_ids[1]
    store.update(
        "deals",
        first,
        {"status": "won", "closed_at": pd.Timestamp("2024-04-30 12:00")},
        changed_by="t",
    )
    d2 = deals.set_index("deal_id").loc[second]
    later = pd.Timestamp(d2["expected_close_date"]) + pd.DateOffset(months=3)
    store.update(
        "deals",
        second,
        {"expected_close_date": later},
        changed_by="t",
        at=pd.Timestamp("2024-04-30 13:00"),
    )
    new = run_forecast(store, as_of=AS_OF, horizon=3, draws=400, seed=1, save=False, method="map")
    out = compare_snapshots(old, new, store.read("deals"))
    reasons = out["deals"].set_index("deal_id")["reason"]
    assert reasons[first] == "won"
    assert reasons[second] == "slipped"
    assert set(out["periods"]["period"]) == set(old.coords["period"])
