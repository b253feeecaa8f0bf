"""The manager page's view: built from a snapshot alone, with or without its extra tables."""

from __future__ import annotations

import re

from crmkit.apps import dashboard as db
from crmkit.apps.manager import MAX_CAMPAIGNS, ManagerView
from tests.snapshot_factory import make_fake_snapshot


def test_page_without_the_extra_tables_still_shows_the_forecast() -> None:
    snap = make_fake_snapshot()
    for name in ("pipeline_by_stage", "campaign_roi", "actuals", "at_risk_deals"):
        snap.parameters["tables"].pop(name)
    view = ManagerView(snap)
    total = db.headline(snap).loc["total"]
    assert f'data-q="p50">{db.format_amount(total["p50"])}<' in view.body.value
    assert "crmkit-fan-svg" in view.body.value and "crmkit-fan-actual" not in view.body.value
    assert "did not measure campaign returns" in view.static.value
    view.dropdowns["segment"].value = "SMB"
    assert 'data-group="segment=SMB"' in view.body.value
    assert (
        "Nothing to show"
        in view.body.value.split("crmkit-risk", 1)[0][-200:]
        + (view.body.value.split("Deals most at risk", 1)[1])
    )


def test_page_lists_the_campaigns_with_most_projected_revenue() -> None:
    snap = make_fake_snapshot()
    snap.parameters["tables"]["campaign_roi"] = [
        {"campaign_id": f"C{i:02d}", "name": f"Campaign {i}", "cost": 100.0,
         "revenue_p10": 10.0 * i, "revenue_p50": 20.0 * i, "revenue_p90": 30.0 * i}
        for i in range(MAX_CAMPAIGNS + 5)
    ]  # fmt: skip
    static = ManagerView(snap).static.value
    assert len(re.findall(r"<td>C\d\d</td>", static)) == MAX_CAMPAIGNS
    assert f"<td>C{MAX_CAMPAIGNS + 4:02d}</td>" in static and "<td>C00</td>" not in static
