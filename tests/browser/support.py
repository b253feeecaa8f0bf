"""What the real-browser tests need: Debian's chromium and the playwright package, and the
app served as ``crmkit app`` serves it (with its access token)."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crmkit.apps.browser import free_port
from crmkit.apps.server import AppCommand, build_app_command, stop_server

#: Debian's chromium, installed by ``bash dev.sh test``.
CHROMIUM = Path("/usr/bin/chromium")


def need_browser() -> None:
    """Skip (or fail in CI) when chromium or playwright is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (bash dev.sh test installs Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        msg = f"browser test needs {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(msg + " in CI")
        pytest.skip(msg)


# ---------------------------------------------------------------- the app served with its token
@dataclass
class ServedApp:
    """A Voilà server started as ``crmkit app`` builds it: command (with token), process, log."""

    cmd: AppCommand
    proc: subprocess.Popen
    log_path: Path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (no token)."""
        return self.cmd.url.split("/voila/")[0]

    @property
    def port(self) -> int:
        """The port served."""
        port = urlsplit(self.cmd.url).port
        assert port is not None
        return port

    def path(self, path: str, *, token: bool = True) -> str:
        """The server's address of ``path``, with the token unless ``token=False``."""
        if not token or not self.cmd.token:
            return path
        return f"{path}{'&' if '?' in path else '?'}token={self.cmd.token}"


def wait_until_serving(port: int, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Poll until the server answers an HTTP request (any status), or fail with its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"voila did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)


@contextlib.contextmanager
def served_app(
    db: str | os.PathLike[str], log_path: Path, *, start_timeout: float = 120, **options: Any
) -> Iterator[ServedApp]:
    """Serve the apps as ``crmkit app`` does (a token by default) on a free port.

    ``options`` go to :func:`crmkit.apps.server.build_app_command`. On exit Voilà and every
    kernel it started are stopped and the private settings folder is removed.
    """
    cmd = build_app_command(db, port=free_port(), **options)
    try:
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                cmd.argv, env=cmd.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                port = urlsplit(cmd.url).port
                assert port is not None
                wait_until_serving(port, proc, log_path, start_timeout)
                yield ServedApp(cmd, proc, log_path)
            finally:
                stop_server(proc, grace=30)
    finally:
        cmd.cleanup()


# ---------------------------------------------------------------- the deal grid, edited by hand
#: Geometry of the deal grid, as set by crmkit.widgets.grid.EntityGrid (pixels).
GRID_ROW_HEADER, GRID_COLUMN_HEADER, GRID_COLUMN, GRID_ROW = 110, 28, 120, 26
#: Seconds without any save that show an edit was saved once (a save loop saved ~3 a second).
QUIET_SECONDS = 5.0


def grid_columns(name: str = "deals") -> list[str]:
    """The columns the grid of ``name`` shows, in order (the key is the row header)."""
    from crmkit.store.schema import entity

    spec = entity(name)
    cols = [c.name for c in spec.columns if c.name != spec.key[0]]
    return [*cols, "segment"] if "account_id" in cols else cols


def wait_for(check, timeout: float = 60.0):
    """Poll ``check()`` until it returns something truthy (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def edit_grid_cell(page, row: int, column: str, text: str, *, grid: str = ".crmkit-grid") -> None:
    """Double-click a cell of the deal grid, replace its text and press Enter."""
    box = page.locator(grid).first.bounding_box()
    x = box["x"] + GRID_ROW_HEADER + grid_columns().index(column) * GRID_COLUMN + GRID_COLUMN / 2
    y = box["y"] + GRID_COLUMN_HEADER + row * GRID_ROW + GRID_ROW / 2
    page.mouse.dblclick(x, y)
    editor = page.locator(f"{grid} input").first
    editor.wait_for(state="visible", timeout=20_000)
    editor.fill(text)
    editor.press("Enter")


def deal_state(db: Path) -> dict:
    """``{deal_id: (row_version, updated_at)}`` and the history row count, read from the file."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT deal_id, row_version, updated_at FROM deals").fetchall()
        n_history = conn.execute("SELECT COUNT(*) FROM deal_history").fetchone()[0]
    return {"deals": {d: (v, u) for d, v, u in rows}, "history": n_history}


def check_deal_edits_saved_once(page, db: Path, user: str) -> None:
    """Edit deal D3 in the grid shown on ``page`` (every column kind, refusal, undo, redo).

    The small test company (:func:`tests.factories.small_company`) must be in ``db``, its
    grid on ``page`` with D2 and D3 in rows 1 and 2, and D3 and D2 not yet edited. After
    each step the message shown, D3's stored values and ``row_version`` are checked, again
    after a settling second; at the end nothing is saved any more for
    :data:`QUIET_SECONDS`, and D3's history holds exactly one row per saved change.
    """
    import pandas as pd

    from crmkit.store import Store

    message = page.locator(".crmkit-grid-message").first
    store = Store.open(db)
    try:
        d3 = store.read("deals", where={"deal_id": "D3"}).iloc[0]
        d2_before = store.read("deals", where={"deal_id": "D2"})
        assert (d3["row_version"], d3["amount"], d3["status"]) == (1, 3000.0, "lost")
        n_history = store.count("deal_history")

        def stored(column):
            return store.read("deals", where={"deal_id": "D3"}).iloc[0][column]

        def step(do, expected: str, column: str | None, value, version: int) -> None:
            do()
            assert wait_for(lambda: message.inner_text().strip() == expected), (
                f"expected {expected!r}, shown {message.inner_text()!r}"
            )
            page.wait_for_timeout(1000)  # the echo of the saved value has come back by now
            assert message.inner_text().strip() == expected
            if column is not None:
                assert stored(column) == value, (column, stored(column), value)
            assert stored("row_version") == version

        def edit(column, text):
            return lambda: edit_grid_cell(page, 2, column, text)

        step(edit("amount", "194980"), "Saved deal D3: amount 3000.0 → 194980.0", "amount",
             194980.0, 2)  # fmt: skip
        step(edit("amount", "205000"), "Saved deal D3: amount 194980.0 → 205000.0", "amount",
             205000.0, 3)  # fmt: skip
        step(edit("expected_close_date", "2024-08-15"),
             "Saved deal D3: expected_close_date 2024-03-31 → 2024-08-15",
             "expected_close_date", pd.Timestamp("2024-08-15"), 4)  # fmt: skip
        step(edit("status", "Open"), "Saved deal D3: status lost → open", "status", "open", 5)
        assert pd.isna(stored("closed_at"))  # reopening clears closed_at in the same save
        step(edit("stage", "Proposal"), "Saved deal D3: stage Discovery → Proposal", "stage",
             "Proposal", 6)  # fmt: skip
        step(edit("amount", "316230.5"), "Saved deal D3: amount 205000.0 → 316230.5", "amount",
             316230.5, 7)  # fmt: skip
        # a refusal: its message stays, nothing is saved, the stored value is shown again
        edit_grid_cell(page, 1, "amount", "-316230")
        assert wait_for(lambda: "must be >= 0" in message.inner_text()), message.inner_text()
        refusal = message.inner_text().strip()
        assert refusal.startswith("Not saved (deal D2): amount: ")
        page.wait_for_timeout(1000)
        assert message.inner_text().strip() == refusal
        pd.testing.assert_frame_equal(store.read("deals", where={"deal_id": "D2"}), d2_before)
        step(lambda: page.locator(".crmkit-grid-undo").first.click(),
             "Undone deal D3: amount 316230.5 → 205000.0", "amount", 205000.0, 8)  # fmt: skip
        step(lambda: page.locator(".crmkit-grid-redo").first.click(),
             "Redone deal D3: amount 205000.0 → 316230.5", "amount", 316230.5, 9)  # fmt: skip

        before = deal_state(db)
        page.wait_for_timeout(QUIET_SECONDS * 1000)
        assert deal_state(db) == before  # nothing more was saved: no row_version, no history
        assert message.inner_text().strip() == "Redone deal D3: amount 205000.0 → 316230.5"
        assert before["deals"]["D3"][0] == 9 and before["deals"]["D2"][0] == 1
        h = store.read("deal_history", where={"deal_id": "D3"}).sort_values("history_id")
        h = h[h["old_value"].notna()]
        assert list(zip(h["field"], h["old_value"], h["new_value"], strict=True)) == [
            ("amount", "3000.0", "194980.0"),
            ("amount", "194980.0", "205000.0"),
            ("expected_close_date", "2024-03-31", "2024-08-15"),
            ("status", "lost", "open"),
            ("stage", "Discovery", "Proposal"),
            ("amount", "205000.0", "316230.5"),
            ("amount", "316230.5", "205000.0"),
            ("amount", "205000.0", "316230.5"),
        ]
        assert set(h["changed_by"]) == {user}
        assert store.count("deal_history") == n_history + 8
    finally:
        store.close()
