"""Tables from forecast draws: quantiles, P(target), actuals and the ``crmkit forecast`` JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.axes import SOURCES
from crmkit.forecast.tables import (
    actuals_table,
    forecast_to_json,
    probability_of_target,
    quantile_table,
)
from crmkit.store import Snapshot
from tests.snapshot_factory import make_fake_snapshot


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


def test_target_per_period_applies_to_the_company_total_only() -> None:
    rng = np.random.default_rng(3)
    rollup = rng.gamma(2.0, 50.0, size=(500, 2, len(SOURCES), 2))
    q = quantile_table(
        rollup, ["2024-05", "2024-06"], ["all", "team=north"], np.zeros((2, 2)), {"2024-06": 80.0}
    )
    with_target = q[q["target"].notna()]
    assert with_target[["group_by", "source", "period"]].values.tolist() == [
        ["all", "total", "2024-06"]
    ]
    assert with_target["p_target"].iloc[0] == pytest.approx(np.mean(rollup[:, 1, 3, 0] >= 80.0))
    north = q[q["group_by"] == "team"]
    assert set(north["group"]) == {"north"}


def test_probability_of_target_adds_closed_to_date() -> None:
    snap = make_fake_snapshot(seed=4, n_draws=300, horizon=3, target=900_000.0)
    per_period = 900_000.0 / 3
    first = snap.coords["period"][0]
    row = snap.quantiles.query("group_by == 'all' and source == 'total' and period == @first")
    # the factory computes p_target on its own, from the same draws and closed to date
    assert probability_of_target(snap, per_period, period=first) == pytest.approx(
        float(row["p_target"].iloc[0])
    )
    assert probability_of_target(snap, 1.0, period=first) == 1.0
    assert probability_of_target(snap, 1e12, period=first) == 0.0
    arr = snap.draws["rollup"][:, :, 3, 0]
    ctd = snap.quantiles.query("group_by == 'all' and source == 'total'")["closed_to_date"].sum()
    assert ctd > 0
    assert probability_of_target(snap, 800_000.0) == pytest.approx(
        np.mean(arr.sum(axis=1) + ctd >= 800_000.0)
    )


def test_actuals_are_won_revenue_per_past_period_up_to_as_of() -> None:
    deals = pd.DataFrame(
        {
            "status": ["won", "won", "won", "lost", "won", "open"],
            "closed_at": pd.to_datetime(
                ["2024-01-10", "2024-01-25", "2024-03-02", "2024-03-05", "2024-05-02", None]
            ),
            "amount": [100.0, 50.0, 70.0, 999.0, 500.0, 999.0],
        }
    )
    months = actuals_table(deals, "2024-04-30", "M")
    assert months == [
        {"period": "2024-01", "source": "deals", "amount": 150.0},
        {"period": "2024-03", "source": "deals", "amount": 70.0},
    ]
    assert actuals_table(deals, "2024-04-30", "M", n_back=1) == months[-1:]
    quarters = actuals_table(deals, "2024-05-31", "Q")
    assert quarters == [
        {"period": "2024-Q1", "source": "deals", "amount": 220.0},
        {"period": "2024-Q2", "source": "deals", "amount": 500.0},
    ]
    assert actuals_table(deals, "2023-12-31", "M") == []


# ---------------------------------------------------------------------- the CLI's JSON
def _snapshot(target: object) -> Snapshot:
    rng = np.random.default_rng(1)
    rollup = rng.gamma(3.0, 100.0, size=(500, 2, len(SOURCES), 2))
    rollup[:, :, 3] = rollup[:, :, :3].sum(axis=2)
    labels = ["2026-12", "2027-01"]
    q = quantile_table(rollup, labels, ["all", "team=north"], np.zeros((2, 2)), target)
    return Snapshot(
        as_of=pd.Timestamp("2026-11-30").date(),
        horizon=2,
        period="M",
        quantiles=q,
        draws={"rollup": rollup},
        coords={"period": labels, "source": list(SOURCES), "group": ["all", "team=north"]},
        dims={"rollup": ["sample", "period", "source", "group"]},
        diagnostics={"ok": True},
    )


def test_every_period_has_p10_p50_p90_per_source_and_total() -> None:
    out = forecast_to_json(_snapshot(None))
    assert [p["period"] for p in out["periods"]] == ["2026-12", "2027-01"]
    for p in out["periods"]:
        for s in ("pipeline", "new_business", "repeat", "total"):
            assert p[s]["p10"] <= p[s]["p50"] <= p[s]["p90"]
        assert "p_target" not in p
    json.dumps(out)  # serialisable as is


def test_p_target_is_given_with_a_target() -> None:
    snap = _snapshot(900.0)
    out = forecast_to_json(snap)
    totals = snap.draws["rollup"][:, :, 3, 0]
    for i, p in enumerate(out["periods"]):
        assert p["target"] == 900.0
        assert p["p_target"] == pytest.approx(np.mean(totals[:, i] >= 900.0))


def test_group_rows_do_not_leak_into_the_totals() -> None:
    snap = _snapshot(None)
    out = forecast_to_json(snap)
    q = snap.quantiles
    row = q[(q["group_by"] == "all") & (q["source"] == "total") & (q["period"] == "2026-12")]
    assert out["periods"][0]["total"]["p50"] == pytest.approx(float(row["p50"].iloc[0]))
    assert out["as_of"] == "2026-11-30" and out["period"] == "M" and out["horizon"] == 2


def test_probability_of_target_of_a_group_adds_that_groups_closed_to_date() -> None:
    snap = make_fake_snapshot(seed=5, n_draws=400, horizon=3, target=900_000.0)
    groups = snap.coords["group"]
    team = next(g for g in groups if g.startswith("team="))
    gi = groups.index(team)
    q = snap.quantiles
    rows = q[(q["group_by"] == "team") & (q["group"] == team.split("=")[1])]
    own = rows[rows["source"] == "total"]["closed_to_date"].sum()
    company = q.query("group_by == 'all' and source == 'total'")["closed_to_date"].sum()
    assert 0 < own < company  # the team has won some of the company's revenue so far
    arr = snap.draws["rollup"][:, :, 3, gi]
    target = float(np.median(arr.sum(axis=1) + own))
    assert probability_of_target(snap, target, group=team) == pytest.approx(
        np.mean(arr.sum(axis=1) + own >= target)
    )
    # one source alone: the table's own closed to date for it, here none
    pipe = snap.draws["rollup"][:, :, 0, gi].sum(axis=1)
    ctd = rows[rows["source"] == "pipeline"]["closed_to_date"].sum()
    t2 = float(np.median(pipe))
    assert probability_of_target(snap, t2, group=team, source="pipeline") == pytest.approx(
        np.mean(pipe + ctd >= t2)
    )
