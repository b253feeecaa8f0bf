"""The manager page's view: built from a snapshot alone, with or without its extra tables."""

from __future__ import annotations

import html
import re

import pandas as pd

from crmkit.apps import call_views as cv
from crmkit.apps import dashboard as db
from crmkit.apps.changes import page_changes
from crmkit.apps.manager import (
    MAX_CAMPAIGNS,
    MAX_ERROR_CHARS,
    REFIT_LABEL,
    ManagerPage,
    ManagerView,
    refit_parameters,
)
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


# ---------------------------------------------------------------------------- the refit action
#: Generous bound on one refit of the small store: it only stops a hung test, it measures nothing.
REFIT_WAIT_S = 900


def _refit_store(tmp_path, sim_deals_db_file, copy_db, *snaps) -> str:
    """A writable copy of the simulated-deals store holding ``snaps``; its path."""
    path = copy_db(sim_deals_db_file, tmp_path)
    with Store.open(path) as store:
        for s in snaps:
            store.save_snapshot(s)
    return str(path)


def _record(widget) -> list:
    """Every value a widget's ``value`` takes from now on (as the browser would receive them)."""
    seen: list = []
    widget.observe(lambda change: seen.append(change["new"]), names="value")
    return seen


def _lines(status_html: str) -> list[str]:
    """The progress lines of the status area, without their elapsed-time prefix."""
    items = re.findall(r'<li class="crmkit-refit-line">\[[0-9:]+\] (.*?)</li>', status_html)
    return [html.unescape(i) for i in items]


def _snapshots(path: str) -> pd.DataFrame:
    with Store.open(path) as store:
        return store.list_snapshots(include_drafts=True)


def test_refit_makes_the_first_snapshot_and_shows_progress_lines_as_they_arrive(
    tmp_path, sim_deals_db_file, copy_db
) -> None:
    path = _refit_store(tmp_path, sim_deals_db_file, copy_db)
    page = ManagerPage(path, None, method="map")
    assert "crmkit-no-snapshot" in page.content.children[0].value
    assert "Refit forecast" in page.content.children[0].value
    assert page.button in page.widget.children[0].children
    seen = _record(page.status)
    disabled_while_fitting: list[bool] = []
    page.status.observe(
        lambda c: disabled_while_fitting.append(page.button.disabled)
        if "pipeline model (map)" in c["new"] else None, names="value",
    )  # fmt: skip
    page.button.click()
    assert page.wait(REFIT_WAIT_S)
    final = page.status.value
    assert _lines(final) == [
        "refitting as of 2024-06-29: next 6 months",
        "fitting the pipeline model (map) ...",
        _lines(final)[2],
        "fitting the new business model (map) ...",
        _lines(final)[4],
    ]
    assert re.fullmatch(r"pipeline model fitted in \d+ s: checks passed.*", _lines(final)[2])
    assert re.fullmatch(r"new business model fitted in \d+ s: checks passed.*", _lines(final)[4])
    # live: the page showed the first line alone while the pipeline model was being fitted
    partial = [lines for lines in map(_lines, seen) if lines]
    assert partial[0] == ["refitting as of 2024-06-29: next 6 months"]
    assert ["refitting as of 2024-06-29: next 6 months",
            "fitting the pipeline model (map) ..."] in partial  # fmt: skip
    assert "Refit running for" in seen[0] and "Refit finished after" in final
    assert disabled_while_fitting and all(disabled_while_fitting)
    assert not page.button.disabled
    # the new snapshot is saved, published and shown
    listed = _snapshots(path)
    assert len(listed) == 1 and listed["status"].iloc[0] == "published"
    sid = int(listed["snapshot_id"].iloc[0])
    assert f'data-snapshot-id="{sid}"' in final and 'data-state="published"' in final
    assert page.view is not None and page.view.snap.snapshot_id == sid
    assert page.content.children == (page.view.widget,)
    snap = page.view.snap
    assert (str(snap.as_of), snap.horizon, snap.period) == ("2024-06-29", 6, "M")
    assert snap.label == REFIT_LABEL
    total = db.headline(snap).loc["total"]
    assert f'data-q="p50">{format_amount(total["p50"])}<' in page.view.body.value


def test_refit_keeps_the_shown_snapshots_settings(tmp_path, sim_deals_db_file, copy_db) -> None:
    old = make_fake_snapshot(seed=5, horizon=3, target=900_000.0)
    path = _refit_store(tmp_path, sim_deals_db_file, copy_db, old)
    with Store.open(path) as store:
        shown = store.load_snapshot()
        kw = refit_parameters(store, shown, method="map")
        kw_first = refit_parameters(store, None, method="map")
        per_month = store.load_snapshot()
        per_month.parameters["target"] = {"2024-07": 5.0, "2031-01": 7.0}  # 2031: not forecast
        kw_months = refit_parameters(store, per_month, method="map")
        per_month.parameters["period"] = "Q"
        kw_quarters = refit_parameters(store, per_month, method="map")
    assert kw == {
        "as_of": "2024-06-29", "horizon": 3, "period": "M", "draws": old.parameters["draws"],
        "seed": 5, "target": 900_000.0, "method": "map", "label": REFIT_LABEL,
    }  # fmt: skip
    assert kw_first == {"as_of": "2024-06-29", "horizon": 6, "period": "M", "method": "map",
                        "label": REFIT_LABEL}  # fmt: skip
    assert kw_months["target"] == {"2024-07": 5.0}
    assert kw_quarters["period"] == "Q" and kw_quarters["target"] is None
    page = ManagerPage(path, shown, method="map")
    assert page.refit() and page.wait(REFIT_WAIT_S)
    new = page.view.snap
    assert (new.snapshot_id, str(new.as_of), new.horizon, new.period) == (2, "2024-06-29", 3, "M")
    assert new.parameters["target"] == 900_000.0 and new.parameters["seed"] == 5
    assert new.parameters["draws"] == old.parameters["draws"]


def test_failing_refit_shows_one_line_and_keeps_the_previous_snapshot(tmp_path) -> None:
    path = str(tmp_path / "no_deals.db")
    with Store.open(path) as store:
        store.save_snapshot(make_fake_snapshot(seed=1))
        shown = store.load_snapshot()
    page = ManagerPage(path, shown, method="map")
    assert page.refit()
    assert page.wait(REFIT_WAIT_S)
    error = re.search(r'class="crmkit-warn crmkit-refit-error"[^>]*>(.*?)</p>', page.status.value)
    assert error is not None
    assert html.unescape(error.group(1)) == (
        "the database has no deals or orders; nothing to forecast"
    )
    assert "Nothing was saved; the page still shows snapshot 1." in page.status.value
    assert "Traceback" not in page.status.value and 'data-state="failed"' in page.status.value
    assert page.view.snap.snapshot_id == 1 and page.content.children == (page.view.widget,)
    assert len(_snapshots(path)) == 1 and not page.button.disabled


def test_unexpected_error_shows_refit_failed_in_one_line_without_the_password() -> None:
    url = "postgresql+psycopg://crmkit:s3cret-pw@127.0.0.1:1/crm"  # nothing listens on port 1
    page = ManagerPage(url, None, method="map")
    assert "s3cret-pw" not in page.content.children[0].value
    assert page.refit()
    assert page.wait(REFIT_WAIT_S)
    error = re.search(r'class="crmkit-warn crmkit-refit-error"[^>]*>(.*?)</p>', page.status.value)
    assert error is not None
    text = html.unescape(error.group(1))
    assert text.startswith("refit failed: (psycopg.OperationalError) ")
    assert "\n" not in text and len(text) <= MAX_ERROR_CHARS + 40
    assert "s3cret-pw" not in page.status.value and "Traceback" not in page.status.value
    assert page.view is None and "crmkit-no-snapshot" in page.content.children[0].value
    assert "Nothing was saved; the page still has no forecast to show." in page.status.value


def test_busy_database_shows_the_busy_line_and_saves_nothing(
    tmp_path, sim_deals_db_file, copy_db, monkeypatch
) -> None:
    import sqlite3

    path = _refit_store(tmp_path, sim_deals_db_file, copy_db)
    monkeypatch.setenv("CRMKIT_BUSY_TIMEOUT", "0.5")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock throughout
        page = ManagerPage(path, None, method="map")
        assert page.refit()
        assert page.wait(REFIT_WAIT_S)
    finally:
        other.execute("ROLLBACK")
        other.close()
    status = page.status.value
    assert 'data-state="failed"' in status
    assert "the database is busy (locked by another writer for 0.5 s); nothing was" in status
    assert "refit failed" not in status and "Traceback" not in status
    assert _snapshots(path).empty and page.view is None


def test_second_click_while_a_refit_runs_starts_nothing(
    tmp_path, sim_deals_db_file, copy_db
) -> None:
    path = _refit_store(tmp_path, sim_deals_db_file, copy_db)
    page = ManagerPage(path, None, method="map")
    other = ManagerPage(path, None, method="map")  # another page of the same database
    again: list[tuple[bool, bool, str, str]] = []
    clicked: list[bool] = []

    def click_again(change: dict) -> None:
        if "fitting the pipeline model" in change["new"] and not clicked:
            clicked.append(True)  # once (the notice written below comes back here too)
            again.append((page.refit(), other.refit(), page.status.value, other.status.value))

    page.status.observe(click_again, names="value")
    page.button.click()
    assert page.wait(REFIT_WAIT_S)
    ((mine, theirs, mine_status, their_status),) = again
    assert (mine, theirs) == (False, False)
    assert "A refit is running; this click started nothing" in mine_status
    assert "A refit is running (from another page of this database)" in their_status
    assert other.thread is None
    assert len(_snapshots(path)) == 1  # one refit, one snapshot
    assert "A refit is running" not in page.status.value  # gone once it ended
    assert other.refit() and other.wait(REFIT_WAIT_S)  # free again afterwards
    assert len(_snapshots(path)) == 2


def test_draft_refit_shows_its_reasons_and_keeps_the_previous_snapshot(
    tmp_path, sim_deals_db_file, copy_db, monkeypatch
) -> None:
    import crmkit.forecast.engine as engine

    path = _refit_store(tmp_path, sim_deals_db_file, copy_db, make_fake_snapshot(seed=2))
    with Store.open(path) as store:
        shown = store.load_snapshot()
    # the real checks pass on these data: make one fail, as a model that did not converge would
    monkeypatch.setattr(
        engine, "publication_reasons", lambda snap: ["pipeline model: R-hat <b>1.2</b>"]
    )
    page = ManagerPage(path, shown, method="map")
    assert page.refit() and page.wait(REFIT_WAIT_S)
    status = page.status.value
    assert 'data-state="draft"' in status and 'class="crmkit-refit-draft" role="alert"' in status
    assert "saved as draft 2, not shown. The page still shows snapshot 1." in status
    assert "<li>pipeline model: R-hat &lt;b&gt;1.2&lt;/b&gt;</li>" in status
    assert page.view.snap.snapshot_id == 1
    listed = _snapshots(path)
    assert list(listed.sort_values("snapshot_id")["status"]) == ["published", "draft"]


def test_read_only_page_has_no_refit_action(tmp_path, monkeypatch) -> None:
    from crmkit.apps.server import manager_app

    path = str(tmp_path / "s.db")
    with Store.open(path) as store:
        store.save_snapshot(make_fake_snapshot())
        snap = store.load_snapshot()
    page = ManagerPage(path, snap, allow_refit=False)
    assert page.widget.children == (page.content,)
    assert page.refit() is False and page.thread is None
    monkeypatch.setenv("CRMKIT_APP_REFIT", "0")  # crmkit app --no-refit
    widget = manager_app(path)
    assert [type(c).__name__ for c in widget.children] == ["VBox"]
    monkeypatch.delenv("CRMKIT_APP_REFIT")
    assert "crmkit-refit-button" in manager_app(path).children[0].children[0]._dom_classes
    empty = ManagerPage(str(tmp_path / "empty.db"), None, allow_refit=False)
    assert "Refit forecast" not in empty.content.children[0].value


def test_crmkit_app_no_refit_reaches_the_kernels(tmp_path) -> None:
    import argparse

    from crmkit.apps.server import REFIT_ENV, add_app_arguments, build_app_command

    parser = argparse.ArgumentParser()
    add_app_arguments(parser)
    assert parser.parse_args(["--no-refit"]).no_refit is True
    assert parser.parse_args([]).no_refit is False
    for allow, want in ((True, "1"), (False, "0")):
        cmd = build_app_command(str(tmp_path / "s.db"), allow_refit=allow)
        try:
            assert cmd.env[REFIT_ENV] == want
        finally:
            cmd.cleanup()


def test_page_says_whether_past_forecasts_beat_the_run_rate_from_the_stored_backtest() -> None:
    from crmkit.forecast.snapshot_tables import backtest_records
    from tests.snapshot_factory import backtest_with_verdict

    snap = make_fake_snapshot()
    snap.parameters["tables"]["backtest"] = backtest_records(backtest_with_verdict(12, -50.0))
    static = ManagerView(snap).static.value
    assert "Did past forecasts beat the run rate?" in static
    line = re.search(r'<li data-lead="1-3">next 3 periods: ([^<]*)</li>', static)
    assert line is not None and line.group(1).startswith(
        "better than run rate: yes (CRPS difference −50"
    )
    old = make_fake_snapshot()  # no backtest stored, or one saved before the verdict
    assert "Did past forecasts beat the run rate?" not in ManagerView(old).static.value
    old.parameters["tables"]["backtest"] = backtest_records(
        backtest_with_verdict(12, -50.0).drop(
            columns=["crps_diff", "crps_diff_lo", "crps_diff_hi", "vs_run_rate"]
        )
    )
    assert "crmkit-backtest-verdict" not in ManagerView(old).static.value
