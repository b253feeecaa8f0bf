"""The app's pages need nothing from outside the machine: a real browser with no other host.

``crmkit app`` serves the apps with crmkit's Voilà template. Voilà's lab template links Font
Awesome from a CDN; offline the browser logged ``net::ERR_NAME_NOT_RESOLVED`` and the
buttons' icons were empty boxes. Here chromium (playwright) may reach 127.0.0.1 only: every
other request is recorded and refused as an unresolvable name, as on a machine offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crmkit.apps.browser import CHROMIUM_FLAGS
from crmkit.store import Store
from tests.browser.support import CHROMIUM, ServedApp, need_browser, served_app
from tests.factories import small_company
from tests.snapshot_factory import make_fake_snapshot

pytestmark = pytest.mark.browser

#: Generous bounds for a loaded machine: these only stop a hung run, they measure nothing.
SERVER_START_S = 120
PAGE_MS = 180_000
#: Font Awesome's "refresh" (v5: "sync") glyph, as the Reload button shows it.
GLYPH = "\uf021"

#: In the page: Font Awesome's face loaded, and a glyph drawn by it (not by a fallback font).
ICON_JS = """
async (icon, glyph) => {
  const before = getComputedStyle(icon, '::before');
  await document.fonts.ready;
  const faces = await document.fonts.load('900 40px "Font Awesome 5 Free"', glyph);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = '900 40px "Font Awesome 5 Free"';
  const inFont = ctx.measureText(glyph).width;
  ctx.font = '900 40px monospace';
  const inFallback = ctx.measureText(glyph).width;
  return {
    family: before.fontFamily,
    content: before.content,
    iconWidth: icon.getBoundingClientRect().width,
    loaded: faces.filter(f => f.status === 'loaded').length,
    check: document.fonts.check('900 40px "Font Awesome 5 Free"', glyph),
    inFont: inFont,
    inFallback: inFallback,
  };
}
"""


@dataclass
class Offline:
    """What a page asked of other hosts (refused) and what failed to load."""

    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    need_browser()
    root = tmp_path_factory.mktemp("offline")
    with Store.open(root / "app.db") as store:
        store.insert_many(small_company())
        store.save_snapshot(make_fake_snapshot(seed=5))
    with served_app(
        root / "app.db", root / "voila.log", start_timeout=SERVER_START_S, user="tester"
    ) as served:
        yield served


@pytest.fixture(scope="module")
def browser(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS), headless=True
        )
        yield b
        b.close()


def offline_page(browser) -> tuple[object, Offline]:
    """A page that reaches 127.0.0.1 only; every other request is recorded and refused."""
    seen = Offline()
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def route(r) -> None:
        url = r.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname == "127.0.0.1":
            r.continue_()
        else:
            seen.refused.append(url)
            r.abort("namenotresolved")

    page.route("**/*", route)
    page.on("requestfailed", lambda r: seen.failed.append(f"{r.url} {r.failure}"))
    page.on("console", lambda m: seen.console.append(m.text))
    return page, seen


def assert_nothing_left_the_machine(seen: Offline) -> None:
    """No request to another host, and no unresolvable name anywhere."""
    assert seen.refused == []
    assert not [f for f in seen.failed if "ERR_NAME_NOT_RESOLVED" in f]
    assert not [m for m in seen.console if "ERR_NAME_NOT_RESOLVED" in m]


def test_deal_editor_page_loads_nothing_from_other_hosts_and_draws_its_icons(app, browser):
    page, seen = offline_page(browser)
    page.goto(app.path(f"{app.base}/voila/render/edit_deals.ipynb"), timeout=PAGE_MS)
    page.locator(".crmkit-grid canvas").first.wait_for(state="visible", timeout=PAGE_MS)
    page.wait_for_selector(".crmkit-grid-undo i.fa", state="attached", timeout=PAGE_MS)
    page.wait_for_load_state("networkidle", timeout=PAGE_MS)
    icons = page.locator(".crmkit-grid-undo i.fa").first.evaluate(ICON_JS, GLYPH)
    reload_icon = page.locator("button:has-text('Reload') i.fa").first.evaluate(ICON_JS, GLYPH)
    assert_nothing_left_the_machine(seen)
    for shown in (icons, reload_icon):
        assert "Font Awesome" in shown["family"], shown
        assert shown["content"] not in ("none", "normal", '""'), shown  # a glyph is drawn
        assert shown["iconWidth"] > 0, shown
    # the font is served from this machine, holds the glyph, and draws it (not a fallback)
    assert icons["loaded"] >= 1 and icons["check"], icons
    assert icons["inFont"] > 0 and icons["inFont"] != icons["inFallback"], icons
    page.close()


def test_manager_page_loads_nothing_from_other_hosts(app, browser):
    page, seen = offline_page(browser)
    page.goto(app.cmd.url, timeout=PAGE_MS)
    page.wait_for_selector(".crmkit-headline", timeout=PAGE_MS)
    page.wait_for_load_state("networkidle", timeout=PAGE_MS)
    assert_nothing_left_the_machine(seen)
    page.close()


def test_folder_listing_page_loads_nothing_from_other_hosts(app, browser):
    page, seen = offline_page(browser)
    page.goto(app.path(f"{app.base}/voila/tree"), timeout=PAGE_MS)
    page.wait_for_selector("text=manager.ipynb", timeout=PAGE_MS)
    page.wait_for_load_state("networkidle", timeout=PAGE_MS)
    assert_nothing_left_the_machine(seen)
    page.close()


def test_crmkit_template_has_no_link_to_another_host():
    # the page templates of crmkit's Voilà template name no other host (Voilà's lab
    # template links Font Awesome on cdn.jsdelivr.net)
    folder = Path(__file__).resolve().parents[2] / "crmkit/apps/voila_share/voila/templates"
    texts = [p.read_text() for p in (folder / "crmkit").iterdir() if p.is_file()]
    assert any("voila-style.js" in t for t in texts)
    assert not [t for t in texts if "http://" in t or "https://" in t or "//cdn" in t]
