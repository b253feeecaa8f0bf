"""The forecast: periods, draws per source and group, quantiles, targets, snapshots, comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast import (
    SOURCES,
    compare_snapshots,
    period_axis,
    probability_of_target,
    quantile_table,
    run_forecast,
)
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


def test_period_axis_month_end_starts_next_month() -> None:
    ax = period_axis("2024-04-30", 3, "M")
    assert ax.labels == ["2024-05", "2024-06", "2024-07"]
    assert ax.frac_first == 1.0
    assert ax.period_of_k.tolist() == [0, 1, 2]


def test_period_axis_mid_month_keeps_the_rest_of_the_month() -> None:
    ax = period_axis("2024-04-10", 2, "M")
    assert ax.labels == ["2024-04", "2024-05"]
    assert ax.frac_first == pytest.approx(20 / 30)


def test_period_axis_quarters_map_months() -> None:
    ax = period_axis("2024-05-15", 2, "Q")
    assert ax.labels == ["2024-Q2", "2024-Q3"]
    assert ax.period_of_k.tolist() == [0, 0, 1, 1, 1]


def test_quantiles_are_ordered_and_target_probability_uses_closed_to_date() -> None:
    rng = np.random.default_rng(0)
    rollup = rng.gamma(2.0, 50.0, size=(2000, 2, len(SOURCES), 1))
    rollup[:, :, 3, :] = rollup[:, :, :3, :].sum(axis=2)
    closed = np.array([[100.0], [0.0]])
    q = quantile_table(rollup, ["2024-05", "2024-06"], ["all"], closed, target=400.0)
    cols = ["p05", "p10", "p25", "p50", "p75", "p90", "p95"]
    assert (np.diff(q[cols].to_numpy(), axis=1) >= 0).all()
    tot = q[q["source"] == "total"].set_index("period")
    expected = np.mean(100.0 + rollup[:, 0, 3, 0] >= 400.0)
    assert tot.loc["2024-05", "p_target"] == pytest.approx(expected)
    assert tot.loc["2024-06", "p_target"] == pytest.approx(np.mean(rollup[:, 1, 3, 0] >= 400.0))
    assert q[q["source"] != "total"]["p_target"].isna().all()


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


def test_probability_of_target_from_the_snapshot(store_and_snap) -> None:
    _, snap, _ = store_and_snap
    p_low = probability_of_target(snap, 1.0, period="2024-05")
    p_high = probability_of_target(snap, 1e9, period="2024-05")
    assert p_low > 0.9 and p_high == 0.0
    row = snap.quantiles.query("group_by == 'all' and source == 'total' and period == '2024-05'")
    assert probability_of_target(snap, 150000.0, period="2024-05") == pytest.approx(
        float(row["p_target"].iloc[0])
    )


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


def test_compare_snapshots_explains_the_move(store_and_snap) -> None:
    store, old, _ = store_and_snap
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
    new = run_forecast(store, as_of=AS_OF, horizon=3, draws=400, seed=1, save=False)
    out = compare_snapshots(old, new, store.read("deals"))
    reasons = out["deals"].set_index("deal_id")["reason"]
    assert reasons[first] == "won"
    assert reasons[second] == "slipped"
    assert set(out["periods"]["period"]) == set(old.coords["period"])
