"""A real browser edits deals in the Voilà app: Debian's chromium driven by playwright.

One Voilà server per way of serving (a kernel per page view, or preheated kernels), each
on its own copy of the small test company; every test opens its own page (its own kernel).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmkit.apps.browser import CHROMIUM_FLAGS, free_port
from crmkit.store import Store
from tests.browser.support import (
    CHROMIUM,
    check_deal_edits_saved_once,
    edit_grid_cell,
    need_browser,
    wait_for,
)
from tests.factories import small_company

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "notebooks" / "apps" / "edit_deals.ipynb"
CHROMIUM_ARGS = list(CHROMIUM_FLAGS)
USER = "voila"


@pytest.fixture(scope="module", params=[0, 1], ids=["kernel-per-view", "preheated"])
def voila(request, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """Serve the app with a kernel started per page view, or with a preheated kernel.

    A preheated kernel has run the imports ahead and waits in the notebook for its viewer
    (:func:`crmkit.apps.server.wait_for_viewer`); both ways must show the stored deals and save
    edits. Yields the page's address and the database file it edits.
    """
    need_browser()
    pool = request.param
    tmp_path = tmp_path_factory.mktemp("voila")
    db = tmp_path / "crm.db"
    with Store.open(db) as store:
        store.insert_many(small_company())
    app_dir = tmp_path / "apps"
    app_dir.mkdir()
    shutil.copy(APP, app_dir / APP.name)
    port = free_port()
    voila_bin = Path(sys.executable).with_name("voila")
    # the edits are recorded under the name `crmkit app --user` passes (no name asked)
    env = {**os.environ, "CRMKIT_DB_URL": str(db), "CRMKIT_APP_USER": USER}
    log = open(tmp_path / "voila.log", "wb")
    proc = subprocess.Popen(
        [
            str(voila_bin),
            str(app_dir / APP.name),
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--VoilaExecutor.iopub_timeout=120",
            "--MappingKernelManager.cull_idle_timeout=120",
            "--MappingKernelManager.cull_interval=30",
            *(
                ["--preheat_kernel=True", f"--pool_size={pool}", "--VoilaExecutor.timeout=3600"]
                if pool
                else ["--VoilaExecutor.timeout=180"]
            ),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail("voila did not start:\n" + (tmp_path / "voila.log").read_text())
                time.sleep(0.3)
        yield url, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One Debian chromium for the module's pages."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def app_page(voila, chromium) -> Iterator[object]:
    """A fresh page of the app (its own kernel), showing the deal grid."""
    url, _db = voila
    page = chromium.new_page(viewport={"width": 1800, "height": 1000})
    try:
        page.goto(url, timeout=180_000)
        page.locator(".crmkit-grid canvas").first.wait_for(state="visible", timeout=180_000)
        page.wait_for_timeout(500)  # let the grid paint its rows
        yield page
    finally:
        page.close()


def test_edit_stage_in_browser(voila, app_page):
    page, (_url, db) = app_page, voila
    store = Store.open(db)
    try:
        history_before = store.count("deal_history")
        # a valid stage: saved, with history
        edit_grid_cell(page, 0, "stage", "Negotiation")

        def saved():
            d1 = store.read("deals", where={"deal_id": "D1"}).iloc[0]
            return d1["stage"] == "Negotiation"

        message = page.locator(".crmkit-grid-message")
        assert wait_for(saved), message.inner_text()
        h = store.read("deal_history", where={"deal_id": "D1", "field": "stage"})
        last = h.sort_values("history_id").iloc[-1]
        assert (last["old_value"], last["new_value"], last["changed_by"]) == (
            "Proposal",
            "Negotiation",
            USER,
        )
        assert store.count("deal_history") == history_before + 1
        assert wait_for(lambda: "Saved" in message.inner_text())

        # a bad stage: message on the page, nothing saved
        before = store.read("deals")
        n_history = store.count("deal_history")
        edit_grid_cell(page, 1, "stage", "Bogus")
        assert wait_for(lambda: "unknown stage" in message.inner_text()), message.inner_text()
        text = message.inner_text()
        assert "Not saved" in text and "stage" in text and "Bogus" in text
        page.wait_for_timeout(1000)  # the echo of the restored stage changes nothing
        assert message.inner_text() == text
        after = store.read("deals")
        assert after.equals(before)
        assert store.count("deal_history") == n_history
    finally:
        store.close()


def test_each_deal_edit_is_saved_once_in_voila(voila, app_page):
    """Every column kind, a refusal, undo and redo: one save each, then nothing more."""
    check_deal_edits_saved_once(app_page, voila[1], USER)


def test_forecast_category_edit_in_browser_writes_one_history_row(voila, app_page):
    """The category shows by its label; typing another saves the stored value once."""
    page, (_url, db) = app_page, voila
    store = Store.open(db)
    try:

        def category_changes():
            h = store.read("deal_history", where={"deal_id": "D1", "field": "forecast_category"})
            h = h[h["old_value"].notna()].sort_values("history_id")
            return list(zip(h["old_value"], h["new_value"], h["changed_by"], strict=True))

        d1 = store.read("deals", where={"deal_id": "D1"}).iloc[0]
        assert d1["forecast_category"] == "pipeline" and category_changes() == []
        n_history = store.count("deal_history")
        edit_grid_cell(page, 0, "forecast_category", "Commit")
        message = page.locator(".crmkit-grid-message")
        expected = "Saved deal D1: forecast_category Pipeline → Commit"
        assert wait_for(lambda: message.inner_text().strip() == expected), message.inner_text()
        page.wait_for_timeout(1000)  # the echo of the label sent back changes nothing
        assert message.inner_text().strip() == expected
        after = store.read("deals", where={"deal_id": "D1"}).iloc[0]
        assert after["forecast_category"] == "commit"
        assert after["row_version"] == d1["row_version"] + 1
        assert category_changes() == [("pipeline", "commit", USER)]
        assert store.count("deal_history") == n_history + 1
    finally:
        store.close()
