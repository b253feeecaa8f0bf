"""Tables from forecast draws: quantiles, P(target) and the ``crmkit forecast`` JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from crmkit.errors import NotFoundError
from crmkit.forecast.axes import SOURCE_PARTS, add_total, revenue_array
from crmkit.forecast.tables import forecast_to_json, probability_of_target, quantile_table
from crmkit.store import Snapshot
from tests.snapshot_factory import make_fake_snapshot


def _revenue(seed: int, n: int, periods: list[str], groups: list[str], shape: float = 2.0):
    """Random revenue draws per source, with their total."""
    rng = np.random.default_rng(seed)
    rev = revenue_array(n, periods, groups)
    for s in SOURCE_PARTS:
        rev.loc[{"source": s}] = rng.gamma(shape, 50.0, size=(n, len(periods), len(groups)))
    return add_total(rev)


def _closed(values, periods: list[str], groups: list[str]) -> xr.DataArray:
    """Closed-to-date revenue ``(period, group)``."""
    return xr.DataArray(
        np.asarray(values, float), dims=("period", "group"),
        coords={"period": periods, "group": groups},
    )  # fmt: skip


def test_quantiles_are_ordered_and_target_probability_uses_closed_to_date() -> None:
    periods = ["2024-05", "2024-06"]
    rev = _revenue(0, 2000, periods, ["all"])
    q = quantile_table(rev, _closed([[100.0], [0.0]], periods, ["all"]), target=400.0)
    total = rev.sel(source="total", group="all")
    cols = ["p05", "p10", "p25", "p50", "p75", "p90", "p95"]
    assert (np.diff(q[cols].to_numpy(), axis=1) >= 0).all()
    tot = q[q["source"] == "total"].set_index("period")
    expected = np.mean(100.0 + total.sel(period="2024-05") >= 400.0)
    assert tot.loc["2024-05", "p_target"] == pytest.approx(expected)
    june = np.mean(total.sel(period="2024-06") >= 400.0)
    assert tot.loc["2024-06", "p_target"] == pytest.approx(june)
    # the quantiles are the draws' own, read by label
    pipe = q[q["source"] == "pipeline"].set_index("period")
    want = np.quantile(rev.sel(source="pipeline", group="all", period="2024-06"), 0.9)
    assert pipe.loc["2024-06", "p90"] == pytest.approx(want)
    assert (q[q["source"] != "total"]["closed_to_date"] == 0.0).all()
    assert q[q["source"] != "total"]["p_target"].isna().all()


def test_target_per_period_applies_to_the_company_total_only() -> None:
    periods, groups = ["2024-05", "2024-06"], ["all", "team=north"]
    rev = _revenue(3, 500, periods, groups)
    q = quantile_table(rev, _closed(np.zeros((2, 2)), periods, groups), {"2024-06": 80.0})
    total = rev.sel(source="total", group="all", period="2024-06")
    with_target = q[q["target"].notna()]
    assert with_target[["group_by", "source", "period"]].values.tolist() == [
        ["all", "total", "2024-06"]
    ]
    assert with_target["p_target"].iloc[0] == pytest.approx(np.mean(total >= 80.0))
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
    arr = snap.revenue.sel(source="total", group="all").to_numpy()
    ctd = snap.quantiles.query("group_by == 'all' and source == 'total'")["closed_to_date"].sum()
    assert ctd > 0
    assert probability_of_target(snap, 800_000.0) == pytest.approx(
        np.mean(arr.sum(axis=1) + ctd >= 800_000.0)
    )
    with pytest.raises(NotFoundError, match="group 'team=west'"):
        probability_of_target(snap, 1.0, group="team=west")


# ---------------------------------------------------------------------- the CLI's JSON
def _snapshot(target: object) -> Snapshot:
    labels, groups = ["2026-12", "2027-01"], ["all", "team=north"]
    rev = _revenue(1, 500, labels, groups, shape=3.0)
    q = quantile_table(rev, _closed(np.zeros((2, 2)), labels, groups), target)
    return Snapshot(
        as_of=pd.Timestamp("2026-11-30").date(),
        horizon=2,
        period="M",
        quantiles=q,
        draws={"revenue": rev},
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
    totals = snap.revenue.sel(source="total", group="all")
    for p in out["periods"]:
        assert p["target"] == 900.0
        want = np.mean(totals.sel(period=p["period"]) >= 900.0)
        assert p["p_target"] == pytest.approx(want)


def test_group_rows_do_not_leak_into_the_totals() -> None:
    snap = _snapshot(None)
    out = forecast_to_json(snap)
    q = snap.quantiles
    row = q[(q["group_by"] == "all") & (q["source"] == "total") & (q["period"] == "2026-12")]
    assert out["periods"][0]["total"]["p50"] == pytest.approx(float(row["p50"].iloc[0]))
    assert out["as_of"] == "2026-11-30" and out["period"] == "M" and out["horizon"] == 2


def test_json_carries_the_forecast_call_and_attainment_and_open_deals_only_if_asked() -> None:
    snap = _snapshot(None)
    call = {"group": "all", "period": "2026-12", "commit": 500.0, "p_commit": 0.4,
            "p_best_case": 0.2, "call": None}  # fmt: skip
    att = {"group": "all", "period": "2026-12", "quota": 900.0, "p_attain": 0.3}
    deal = {"deal_id": "D1", "p_win": 0.5, "p_slip": None, "expected_revenue": 10.0}
    snap.parameters = {"tables": {"forecast_call": [call], "attainment": [att],
                                  "open_deals": [deal]}}  # fmt: skip
    out = forecast_to_json(snap)
    assert out["forecast_call"] == [call] and out["attainment"] == [att]
    assert "open_deals" not in out  # compact by default
    assert forecast_to_json(snap, open_deals=True)["open_deals"] == [deal]
    json.dumps(out, allow_nan=False)


def test_json_of_a_snapshot_without_the_call_tables_has_empty_lists() -> None:
    out = forecast_to_json(_snapshot(None), open_deals=True)
    assert out["forecast_call"] == [] and out["attainment"] == [] and out["open_deals"] == []


def test_probability_of_target_of_a_group_adds_that_groups_closed_to_date() -> None:
    snap = make_fake_snapshot(seed=5, n_draws=400, horizon=3, target=900_000.0)
    groups = snap.coords["group"]
    team = next(g for g in groups if g.startswith("team="))
    q = snap.quantiles
    rows = q[(q["group_by"] == "team") & (q["group"] == team.split("=")[1])]
    own = rows[rows["source"] == "total"]["closed_to_date"].sum()
    company = q.query("group_by == 'all' and source == 'total'")["closed_to_date"].sum()
    assert 0 < own < company  # the team has won some of the company's revenue so far
    arr = snap.revenue.sel(source="total", group=team).to_numpy()
    target = float(np.median(arr.sum(axis=1) + own))
    assert probability_of_target(snap, target, group=team) == pytest.approx(
        np.mean(arr.sum(axis=1) + own >= target)
    )
    # one source alone: the table's own closed to date for it, here none
    pipe = snap.revenue.sel(source="pipeline", group=team).sum("period").to_numpy()
    ctd = rows[rows["source"] == "pipeline"]["closed_to_date"].sum()
    t2 = float(np.median(pipe))
    assert probability_of_target(snap, t2, group=team, source="pipeline") == pytest.approx(
        np.mean(pipe + ctd >= t2)
    )
