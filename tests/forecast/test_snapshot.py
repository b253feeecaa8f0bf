"""The forecast snapshot's layout, from a hand-made forecast result and stand-in models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from crmkit.forecast.axes import SOURCE_PARTS, SOURCES, add_total, period_axis, revenue_array
from crmkit.forecast.snapshot import build_snapshot
from crmkit.forecast.tables import quantile_table
from crmkit.models.inference.diagnostics import KEYS

AS_OF = "2024-04-30"
GROUPS = ["all", "team=north", "team=south"]


def _result(marketing: dict | None = None) -> dict:
    """A forecast_draws-shaped result: 2 months, 3 open deals, new business not converged."""
    rng = np.random.default_rng(5)
    axis = period_axis(AS_OF, 2)
    revenue = revenue_array(300, axis.labels, GROUPS)
    for s in SOURCE_PARTS:
        revenue.loc[{"source": s}] = rng.gamma(2.0, 100.0, size=(300, 2, len(GROUPS)))
    add_total(revenue)
    deals = pd.DataFrame(
        {
            "deal_id": ["D1", "D2", "D3"],
            "name": ["one", "two", None],
            "owner": ["ann", "bob", "cy"],
            "team": ["north", "north", "south"],
            "segment": ["SMB", "SMB", "Enterprise"],
            "stage": ["Proposal", "Discovery", "Negotiation"],
            "amount": [1000.0, 5000.0, np.nan],
            "expected_close_date": pd.to_datetime(["2024-05-10", "2024-06-20", "2024-05-03"]),
            "p_win": [0.5, 0.2, 0.9],
            "p_slip": [0.1, 0.4, 0.05],
            "expected_revenue": [500.0, 1000.0, 0.0],
        }
    )
    return {
        "revenue": revenue,
        "axis": axis,
        "deals": deals,
        "closed_to_date": xr.DataArray(
            np.zeros((2, len(GROUPS))),
            dims=("period", "group"),
            coords={"period": axis.labels, "group": GROUPS},
        ),
        "diagnostics": {
            "pipeline": {"ok": True, "method": "map", "seconds": 1.5},
            "new_business": {"ok": False, "method": "map", "message": "did not converge"},
            "repeat": {"ok": True, "method": "none", "message": "not requested"},
        },
        "marketing": marketing,
    }


def _models() -> dict:
    """Stand-ins for the fitted pipeline and new-business models."""
    frame = pd.DataFrame(
        {
            "status": ["won", "won", "open"],
            "closed_at": pd.to_datetime(["2024-03-05", "2024-04-20", None]),
            "amount": [300.0, 700.0, 50.0],
        }
    )
    stages = pd.DataFrame({"stage": ["Proposal"], "configured": [0.6], "learned_mean": [0.5]})
    pipe = SimpleNamespace(
        stage_probabilities=lambda: stages,
        frame_=frame,
        method="map",
        method_="map",
        data_={"deals": 3},
    )
    nb = SimpleNamespace(method="map", method_="map", data_={"n": 2})
    return {"pipeline": pipe, "new_business": nb}


def _build(result: dict, **kw):
    """build_snapshot with the test's settings."""
    settings = {"horizon": 2, "period": "M", "draws": 300, "seed": 4, "method": "map"}
    return build_snapshot(result, _models(), as_of=AS_OF, **(settings | kw))


def test_draws_coords_and_quantiles_follow_the_contract() -> None:
    result = _result()
    snap = _build(result, target=900.0)
    assert snap.coords == {
        "period": ["2024-05", "2024-06"],
        "source": list(SOURCES),
        "group": GROUPS,
        "deal_id": ["D1", "D2", "D3"],
    }
    assert snap.dims["revenue"] == ["sample", "period", "source", "group"]
    assert all(snap.dims[k] == ["deal_id"] for k in snap.draws if k.startswith("deal_"))
    xr.testing.assert_identical(snap.revenue, result["revenue"])
    assert snap.draws["deal_amount"].tolist() == [1000.0, 5000.0, 0.0]
    may, june = 2024 * 12 + 4, 2024 * 12 + 5  # month index: year * 12 + month - 1
    assert snap.draws["deal_expected_month"].tolist() == [may, june, may]
    expected = quantile_table(result["revenue"], result["closed_to_date"], 900.0)
    pd.testing.assert_frame_equal(snap.quantiles, expected)
    assert snap.parameters["target"] == 900.0
    assert snap.parameters["methods"] == {
        "pipeline": "map",
        "new_business": "map",
        "repeat": "none",
    }
    assert snap.parameters["data"]["open_deals"] == 3
    assert "marketing" not in snap.parameters
    assert snap.label == "forecast as of 2024-04-30 (map)"


def test_tables_list_deals_by_expected_revenue() -> None:
    snap = _build(_result())
    tables = snap.parameters["tables"]
    at_risk = tables["at_risk_deals"]
    assert [d["deal_id"] for d in at_risk] == ["D2", "D1", "D3"]
    assert at_risk[0]["expected_close_date"] == "2024-06-20"
    assert at_risk[2]["name"] is None and at_risk[2]["amount"] is None
    assert tables["stage_probabilities"] == [
        {"stage": "Proposal", "configured": 0.6, "learned_mean": 0.5}
    ]
    # past revenue (``actuals``) comes with the extra tables, from deals and orders
    assert set(tables) == {"stage_probabilities", "at_risk_deals"}


def test_a_model_not_ok_marks_the_snapshot_and_says_why() -> None:
    snap = _build(_result(marketing={"diagnostics": {"ok": True}}), label="mine")
    d = snap.diagnostics
    assert d["ok"] is False
    assert d["models"]["pipeline"]["ok"] and not d["models"]["new_business"]["ok"]
    assert d["models"]["pipeline"]["seconds"] == pytest.approx(1.5)
    # every model's diagnostics in the one schema
    assert all(list(m) == list(KEYS) for m in d["models"].values())
    assert d["models"]["new_business"]["message"] == "did not converge"
    assert "new_business: did not converge" in d["messages"]
    assert "new_business: diagnostics not ok (map)" in d["messages"]
    assert "repeat: not requested" in d["messages"]
    assert snap.parameters["marketing"] == {"diagnostics": {"ok": True}}
    assert snap.label == "mine"
