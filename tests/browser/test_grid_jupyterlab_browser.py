"""A real browser edits deals in an EntityGrid inside JupyterLab (Debian's chromium, playwright).

One ``jupyter lab`` server for the module, with a token and its own settings, serving a tmp
folder that holds a small notebook opening the grid on a tmp copy of the small test company;
the notebook's cells are run from JupyterLab's menu, then cells of the grid are edited.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmkit.apps.browser import CHROMIUM_FLAGS, free_port
from crmkit.store import Store
from tests.browser.support import CHROMIUM, check_deal_edits_saved_once, need_browser
from tests.factories import small_company

pytestmark = pytest.mark.browser

USER = "lab"
NOTEBOOK = "grid.ipynb"


def grid_notebook(db: Path) -> dict:
    """A notebook of two cells: open the store, then show its deals in an EntityGrid."""
    cells = [
        f"from crmkit.store import Store\nfrom crmkit.widgets.grid import EntityGrid\n\n"
        f"store = Store.open({str(db)!r})",
        f'grid = EntityGrid(store, "deals", user={USER!r}, page_size=25)\ngrid',
    ]
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _answers(port: int, token: str) -> bool:
    """Tell whether the server answers its status API with 200."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """Start ``jupyter lab`` on a free port; yield the notebook's address and the database."""
    need_browser()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    db = tmp / "crm.db"
    with Store.open(db) as store:
        store.insert_many(small_company())
    (root / NOTEBOOK).write_text(json.dumps(grid_notebook(db), indent=1))
    config = tmp / "config"
    (config / "labconfig").mkdir(parents=True)
    # no news question popping up over the page
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_TOKEN": token,  # in the environment, not in the process arguments
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "IPYTHONDIR": str(tmp / "ipython"),
    }
    log_path = tmp / "lab.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab",
                "--no-browser",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
                f"--LabApp.user_settings_dir={tmp / 'settings'}",
                f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",  # never asks PyPI
                "--allow-root",  # containers run tests as root
            ],
            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not _answers(port, token):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}", db
        finally:
            proc.terminate()  # the server shuts its kernels down
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(timeout=10)


def run_all_cells(page) -> None:
    """Run the notebook with Run > Run All Cells, until its last cell has run.

    A click made while the kernel's connection is still being set up can be lost (the cells
    stay unrun, ``[ ]``); then the menu is used again. Cells queued or running (``[*]``)
    are waited for, never run twice.
    """
    from tests.browser.support import wait_for

    prompts = page.locator(".jp-Cell .jp-InputArea-prompt")

    def prompt() -> str:
        return prompts.last.inner_text().strip()

    for _attempt in range(4):
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
        if wait_for(lambda: prompt() not in ("[ ]:", ""), timeout=20):
            break
    else:
        pytest.fail(f"the notebook's cells did not run: last prompt {prompt()!r}")
    assert wait_for(lambda: re.fullmatch(r"\[\d+\]:", prompt()), timeout=180), prompt()


def test_each_deal_edit_is_saved_once_in_jupyterlab(lab):
    """Run the notebook from the Run menu, then edit every column kind, refuse, undo, redo."""
    from playwright.sync_api import sync_playwright

    url, db = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page(viewport={"width": 2200, "height": 1100})
            page.goto(url, timeout=180_000)
            idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
            idle.first.wait_for(state="attached", timeout=180_000)
            run_all_cells(page)
            grid = page.locator(".crmkit-grid canvas").first
            grid.wait_for(state="visible", timeout=180_000)
            page.locator(".crmkit-grid").first.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)  # let the grid paint its rows
            check_deal_edits_saved_once(page, db, USER)
        finally:
            browser.close()
