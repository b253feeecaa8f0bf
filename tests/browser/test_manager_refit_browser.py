"""The manager app's "Refit forecast" action in a real browser: click, watch it fit, see it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmkit.apps import dashboard as db
from crmkit.apps.browser import CHROMIUM_FLAGS
from crmkit.plots.format import format_amount
from crmkit.store import Store
from tests.browser.support import CHROMIUM, need_browser, served_app

pytestmark = pytest.mark.browser

#: Generous bounds for a loaded machine: these only stop a hung run, they measure nothing.
SERVER_START_S = 120
PAGE_MS = 180_000
REFIT_MS = 1_200_000


def test_refit_button_fits_shows_progress_and_then_the_new_snapshot(
    sim_deals_db_file: Path, copy_db, tmp_path: Path
) -> None:
    need_browser()
    from playwright.sync_api import sync_playwright

    path = copy_db(sim_deals_db_file, tmp_path)  # deals, no forecast yet
    with (
        served_app(path, tmp_path / "voila.log", start_timeout=SERVER_START_S) as app,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS), headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(app.cmd.url, timeout=PAGE_MS)
            page.wait_for_selector(".crmkit-no-snapshot", timeout=PAGE_MS)
            assert "Refit forecast" in page.inner_text(".crmkit-no-snapshot")
            page.click(".crmkit-refit-button", timeout=PAGE_MS)
            status = page.locator(".crmkit-refit-status")
            page.wait_for_selector(
                '.crmkit-refit-status .crmkit-refit-line:has-text("fitting the pipeline model")',
                timeout=REFIT_MS,
            )
            page.wait_for_selector(
                '.crmkit-refit-status .crmkit-refit[data-state="published"]', timeout=REFIT_MS
            )
            lines = page.eval_on_selector_all(
                ".crmkit-refit-status .crmkit-refit-line", "els => els.map(e => e.innerText)"
            )
            text = [line.split("] ", 1)[1] for line in lines]
            assert text[0].startswith("refitting as of 2024-06-29: next 6 months")
            fitting = text.index(next(t for t in text if t.startswith("fitting the pipeline")))
            fitted = text.index(next(t for t in text if t.startswith("pipeline model fitted in")))
            assert fitting < fitted and "checks passed" in text[fitted]
            assert any(t.startswith("new business model fitted in") for t in text)
            assert "Refit finished after" in status.inner_text()
            assert "Traceback" not in page.content()
            # the new snapshot is shown: its id and its headline
            page.wait_for_selector('.crmkit-snapshot[data-snapshot-id="1"]', timeout=PAGE_MS)
            with Store.open(path) as store:
                snap = store.load_snapshot()
            assert snap.snapshot_id == 1 and str(snap.as_of) == "2024-06-29"
            p50 = '.crmkit-headline[data-group="all"] [data-source="total"][data-q="p50"]'
            total = db.headline(snap).loc["total"]
            assert page.inner_text(p50).strip() == format_amount(total["p50"])
            assert page.is_enabled(".crmkit-refit-button")
            page.close()
        finally:
            browser.close()
