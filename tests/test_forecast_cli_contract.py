"""The JSON the ``crmkit forecast`` command writes: forecast_to_json on a snapshot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast import SOURCES, forecast_to_json, quantile_table
from crmkit.store import Snapshot


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
