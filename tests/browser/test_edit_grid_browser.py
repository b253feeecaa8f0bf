"""A real browser edits a deal in the Voilà app: Debian's chromium driven by playwright."""

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
from tests.browser.support import CHROMIUM, need_browser
from tests.factories import small_company

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "notebooks" / "apps" / "edit_deals.ipynb"
CHROMIUM_ARGS = list(CHROMIUM_FLAGS)
# Geometry of the deal grid, as set by crmkit.widgets.grid.EntityGrid (pixels).
ROW_HEADER, COLUMN_HEADER, COLUMN, ROW = 110, 28, 120, 26
GRID_COLUMNS = ["account_id", "name", "owner", "team", "pipeline", "stage"]  # first shown columns


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "crm.db"
    with Store.open(path) as store:
        store.insert_many(small_company())
    return path


@pytest.fixture(params=[0, 1], ids=["kernel-per-view", "preheated"])
def voila(request, db, tmp_path) -> Iterator[str]:
    """Serve the app with a kernel started per page view, or with a preheated kernel.

    A preheated kernel has run the imports ahead and waits in the notebook for its viewer
    (:func:`crmkit.apps.server.wait_for_viewer`); both ways must show the stored deals and save
    edits.
    """
    need_browser()
    pool = request.param
    app_dir = tmp_path / "apps"
    app_dir.mkdir()
    shutil.copy(APP, app_dir / APP.name)
    port = free_port()
    voila_bin = Path(sys.executable).with_name("voila")
    env = {**os.environ, "CRMKIT_DB_URL": str(db)}
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_for(check, timeout: float = 60.0):
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def edit_cell(page, row: int, column: str, text: str) -> None:
    """Double-click a grid cell, replace its text and press Enter."""
    box = page.locator(".crmkit-grid").bounding_box()
    x = box["x"] + ROW_HEADER + GRID_COLUMNS.index(column) * COLUMN + COLUMN / 2
    y = box["y"] + COLUMN_HEADER + row * ROW + ROW / 2
    page.mouse.dblclick(x, y)
    editor = page.locator(".crmkit-grid input").first
    editor.wait_for(state="visible", timeout=10_000)
    editor.fill(text)
    editor.press("Enter")


def test_edit_stage_in_browser(voila, db):
    from playwright.sync_api import sync_playwright

    store = Store.open(db)
    history_before = store.count("deal_history")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(voila, timeout=180_000)
            page.locator(".crmkit-grid canvas").first.wait_for(state="visible", timeout=180_000)
            page.wait_for_timeout(500)  # let the grid paint its rows

            # a valid stage: saved, with history
            edit_cell(page, 0, "stage", "Negotiation")

            def saved():
                d1 = store.read("deals", where={"deal_id": "D1"}).iloc[0]
                return d1["stage"] == "Negotiation"

            assert wait_for(saved), page.locator(".crmkit-grid-message").inner_text()
            h = store.read("deal_history", where={"deal_id": "D1", "field": "stage"})
            last = h.sort_values("history_id").iloc[-1]
            assert (last["old_value"], last["new_value"], last["changed_by"]) == (
                "Proposal",
                "Negotiation",
                "voila",
            )
            assert store.count("deal_history") == history_before + 1
            message = page.locator(".crmkit-grid-message")
            assert wait_for(lambda: "Saved" in message.inner_text())

            # a bad stage: message on the page, nothing saved
            before = store.read("deals")
            n_history = store.count("deal_history")
            edit_cell(page, 1, "stage", "Bogus")
            assert wait_for(lambda: "unknown stage" in message.inner_text()), message.inner_text()
            text = message.inner_text()
            assert "Not saved" in text and "stage" in text and "Bogus" in text
            after = store.read("deals")
            assert after.equals(before)
            assert store.count("deal_history") == n_history
        finally:
            browser.close()
            store.close()
