"""The manager page's view: built from a snapshot alone, with or without its extra tables."""

from __future__ import annotations

import re

import pandas as pd

from crmkit.apps import call_views as cv
from crmkit.apps import dashboard as db
from crmkit.apps.changes import page_changes
from crmkit.apps.manager import MAX_CAMPAIGNS, ManagerView
from crmkit.apps.section_html import format_chance
from crmkit.plots.format import format_amount
from crmkit.store import Store
from tests.html_rows import data_rows
from tests.snapshot_factory import make_fake_snapshot


def test_page_without_the_extra_tables_still_shows_the_forecast() -> None:
    snap = make_fake_snapshot()
    for name in ("pipeline_by_stage", "campaign_roi", "actuals", "at_risk_deals"):
        snap.parameters["tables"].pop(name)
    view = ManagerView(snap)
    total = db.headline(snap).loc["total"]
    assert f'data-q="p50">{format_amount(total["p50"])}<' in view.body.value
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


def test_page_shows_the_forecast_call_beside_the_model_with_names_escaped() -> None:
    snap = make_fake_snapshot(forecast_call=True)
    view = ManagerView(snap)
    view.dropdowns["team"].value = "north"
    body = view.body.value
    rows = data_rows(body.split('class="crmkit-call"', 1)[1], "crmkit-call-row")
    calls = cv.forecast_call(snap, db.Filter(team="north"))
    assert [r["period"] for r in rows] == list(calls["period"])
    first, want = rows[0], calls.iloc[0]
    for c in ("closed", "commit", "best_case", "pipeline", "p50", "call"):
        assert first[c] == format_amount(want[c])
    assert first["p10_p90"] == f"{format_amount(want['p10'])} – {format_amount(want['p90'])}"
    assert first["p_commit"] == format_chance(want["p_commit"])
    assert first["p_best_case"] == f"{100 * want['p_best_case']:.0f}%"
    assert first["call_at"] == "2026-11-14 09:30"
    assert first["call_author"] == "Dana &lt;b&gt;&amp; Co&lt;/b&gt;"
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert rows[1]["call"] == "–" and rows[1]["call_author"] == "–"


def test_quota_view_sorts_owners_by_p_attain_and_follows_the_filter() -> None:
    snap = make_fake_snapshot(forecast_call=True)
    view = ManagerView(snap)
    first = snap.coords["period"][0]
    rows = [r for r in data_rows(view.body.value, "crmkit-quota-row") if r["period"] == first]
    owners = [r for r in rows if r["scope"] == "owner"]
    table = pd.DataFrame(snap.parameters["tables"]["attainment"])
    table = table[(table["period"] == first) & table["group"].str.startswith("owner=")]
    want = table.sort_values("p_attain", ascending=False)
    assert [r["group"] for r in owners] == list(want["group"])
    for r, (_, w) in zip(owners, want.iterrows(), strict=True):
        assert r["quota"] == format_amount(w["quota"])
        assert r["p_attain"] == f"{100 * w['p_attain']:.0f}%"
        assert r["expected_attainment"] == f"{100 * w['expected_attainment']:.0f}%"
    assert [r["group"] for r in rows][-1] == "all"
    view.dropdowns["team"].value = "south"
    assert {r["group"] for r in data_rows(view.body.value, "crmkit-quota-row")} == {
        "team=south",
        "owner=cy",
    }
    view.dropdowns["segment"].value = "SMB"
    assert "segments have no quotas" in view.body.value


def test_older_snapshot_says_its_new_sections_are_not_in_it() -> None:
    view = ManagerView(make_fake_snapshot())
    assert view.body.value.count(cv.NOT_IN_SNAPSHOT) == 2  # forecast call and quotas
    assert "first saved forecast" in view.static.value


def test_page_draws_the_waterfall_of_what_changed_since_the_previous_snapshot(tmp_path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.save_snapshot(make_fake_snapshot(seed=3, scale=0.9, forecast_call=True))
        store.save_snapshot(make_fake_snapshot(seed=4, forecast_call=True))
        snap = store.load_snapshot()
        changes = page_changes(store, snap)
    static = ManagerView(snap, changes=changes).static.value
    assert "Compared with snapshot 1" in static
    steps = re.findall(r'class="crmkit-waterfall-bar" data-step="([^"]+)"', static)
    assert steps == list(changes["step"]) and steps[0] == "before" and steps[-1] == "now"


def test_page_headline_shows_the_snapshots_currency_code() -> None:
    snap = make_fake_snapshot()
    snap.parameters["currency"] = "GBP"
    view = ManagerView(snap)
    assert "Revenue over the horizon in GBP" in view.body.value
    assert 'data-currency="GBP"' in view.body.value
