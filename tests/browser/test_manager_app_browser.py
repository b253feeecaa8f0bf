"""The manager app in a real browser: Voilà serves it, headless chromium reads it."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crmkit.apps.browser import CHROMIUM_FLAGS
from crmkit.forecast.compare import compare_snapshots
from crmkit.store import Snapshot, Store
from tests.browser.support import CHROMIUM, need_browser, served_app
from tests.snapshot_factory import make_fake_snapshot

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = list(CHROMIUM_FLAGS)
#: Generous bounds for a loaded machine: these only stop a hung run, they measure nothing.
SERVER_START_S = 120
PAGE_MS = 180_000


@contextlib.contextmanager
def _voila(db: Path, log_path: Path, pool_size: int = 0) -> Iterator[str]:
    """Serve the app on a free port as ``crmkit app`` does; yield the page's URL (with its
    token); stop the server and its kernels."""
    with served_app(db, log_path, start_timeout=SERVER_START_S, pool_size=pool_size) as app:
        assert "?token=" in app.cmd.url
        yield app.cmd.url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Snapshot]]:
    need_browser()
    root = tmp_path_factory.mktemp("app")
    snap = make_fake_snapshot(seed=11, forecast_call=True)
    with Store.open(root / "app.db") as store:
        store.save_snapshot(make_fake_snapshot(seed=10, scale=0.9, forecast_call=True))
        store.save_snapshot(snap)
    with _voila(root / "app.db", root / "voila.log") as url:
        yield url, snap


@pytest.fixture(scope="module")
def browser(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _expected(snap: Snapshot, group: str) -> dict[str, float]:
    """Horizon totals of one group, computed here from the raw draws."""
    by, value = ("all", "all") if group == "all" else group.split("=")
    q = snap.quantiles
    closed = q[(q.group_by == by) & (q.group == value) & (q.source == "total")]["closed_to_date"]
    sums = snap.revenue.sel(source="total", group=group).sum("period").to_numpy() + closed.sum()
    return {"p10": np.quantile(sums, 0.1), "p50": np.median(sums), "p90": np.quantile(sums, 0.9),
            "p_target": float(np.mean(sums >= 1_100_000.0))}  # fmt: skip


def _shown(page, group: str) -> dict:
    sel = f'.crmkit-headline[data-group="{group}"] [data-source="total"][data-q="{{}}"]'
    page.wait_for_selector(sel.format("p50"), timeout=PAGE_MS)
    out = {q: float(page.inner_text(sel.format(q)).replace(",", "")) for q in ("p10", "p50", "p90")}
    if group == "all":
        out["p_target"] = page.inner_text(sel.format("p_target"))
    return out


def test_app_shows_the_snapshot_and_follows_the_filter(served, browser) -> None:
    url, snap = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, timeout=PAGE_MS)
    shown = _shown(page, "all")
    want = _expected(snap, "all")
    for q in ("p10", "p50", "p90"):
        assert shown[q] == round(want[q])
    assert shown["p_target"] == f"{100 * want['p_target']:.0f}%"
    # the fan chart is SVG, drawn at its full width, with the snapshot's medians
    box = page.locator("svg.crmkit-fan-svg").bounding_box()
    assert box is not None and box["width"] > 400
    p50 = page.get_attribute("svg.crmkit-fan-svg .crmkit-fan-p50", "data-values")
    fan = snap.quantiles[(snap.quantiles.group_by == "all") & (snap.quantiles.source == "total")]
    want_p50 = fan["p50"] + fan["closed_to_date"]
    np.testing.assert_allclose([float(v) for v in p50.split()], want_p50, atol=0.01)
    assert page.locator("text=Deals most at risk of slipping").count() == 1
    assert "manager_app(" not in page.content()  # no code on the page

    page.select_option(".crmkit-filter-team select", "north")
    north = _shown(page, "team=north")
    want_north = _expected(snap, "team=north")
    for q in ("p10", "p50", "p90"):
        assert north[q] == round(want_north[q])
    assert north["p50"] < shown["p50"]
    assert page.input_value(".crmkit-filter-owner select") == "All"

    page.select_option(".crmkit-filter-owner select", "cy")
    cy = _shown(page, "owner=cy")
    assert cy["p50"] == round(_expected(snap, "owner=cy")["p50"])
    assert page.input_value(".crmkit-filter-team select") == "All"
    page.close()


def test_page_loads_with_crmkits_still_loading_notice(served) -> None:
    """Served with crmkit's template: Voilà's notice ids, without its animated spinner."""
    url, _ = served
    page_html = urllib.request.urlopen(url, timeout=PAGE_MS / 1000).read().decode()
    assert 'id="loading_text"' in page_html and 'id="loading"' in page_html
    assert 'class="spinner"' not in page_html and "@keyframes" not in page_html
    assert "jp-Notebook" in page_html  # still Voilà's lab page


def test_preheated_kernels_read_the_snapshot_when_the_page_is_opened(
    served, browser, tmp_path: Path
) -> None:
    """Kernels started ahead of viewers wait for the request before reading the snapshot."""
    db = tmp_path / "pool.db"
    with Store.open(db) as store:
        store.save_snapshot(make_fake_snapshot(seed=21))
    with _voila(db, tmp_path / "voila.log", pool_size=1) as url:
        page = browser.new_page()
        page.goto(url, timeout=PAGE_MS)
        _shown(page, "all")
        assert page.get_attribute(".crmkit-snapshot", "data-snapshot-id") == "1"
        page.close()
        newer = make_fake_snapshot(seed=22, scale=1.3)
        with Store.open(db) as store:
            store.save_snapshot(newer)
        page = browser.new_page()
        page.goto(url, timeout=PAGE_MS)
        shown = _shown(page, "all")
        assert page.get_attribute(".crmkit-snapshot", "data-snapshot-id") == "2"
        assert shown["p50"] == round(_expected(newer, "all")["p50"])
        # the filters work in a preheated page
        page.select_option(".crmkit-filter-team select", "south")
        south = _shown(page, "team=south")
        assert south["p50"] == round(_expected(newer, "team=south")["p50"])
        page.close()


def _quota_rows(page) -> list[dict[str, str]]:
    """The quota view's rows as shown: the row's group, scope, period and each cell's text."""
    page.wait_for_selector(".crmkit-quota-row", timeout=PAGE_MS)
    return page.eval_on_selector_all(
        ".crmkit-quota-row",
        """rows => rows.map(r => Object.assign(
            {group: r.dataset.group, scope: r.dataset.scope, period: r.dataset.period},
            Object.fromEntries([...r.querySelectorAll('td')].map(
                td => [td.dataset.col, td.innerText.trim()]))))""",
    )


def test_quota_view_shows_owners_sorted_by_p_attain_with_the_snapshots_numbers(
    served, browser
) -> None:
    url, snap = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, timeout=PAGE_MS)
    first = snap.coords["period"][0]
    owners = [r for r in _quota_rows(page) if r["period"] == first and r["scope"] == "owner"]
    table = [r for r in snap.parameters["tables"]["attainment"]
             if r["period"] == first and r["group"].startswith("owner=")]  # fmt: skip
    want = sorted(table, key=lambda r: -r["p_attain"])
    assert [r["group"] for r in owners] == [w["group"] for w in want]
    for r, w in zip(owners, want, strict=True):
        assert float(r["quota"].replace(",", "")) == w["quota"]
        assert abs(float(r["p_attain"].rstrip("%")) - 100 * w["p_attain"]) <= 0.5
        assert abs(float(r["expected_attainment"].rstrip("%"))
                   - 100 * w["expected_attainment"]) <= 0.5  # fmt: skip
    assert page.locator(".crmkit-quota-table").first.is_visible()
    # the quota view follows the team filter: the team and its owners only
    page.select_option(".crmkit-filter-team select", "north")
    page.wait_for_selector('.crmkit-quotas[data-group="team=north"]', timeout=PAGE_MS)
    assert {r["group"] for r in _quota_rows(page)} == {"team=north", "owner=ann", "owner=bob"}
    page.close()


def test_waterfall_is_drawn_with_one_bar_per_reason(served, browser) -> None:
    url, snap = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, timeout=PAGE_MS)
    page.wait_for_selector("svg.crmkit-waterfall-svg", timeout=PAGE_MS)
    box = page.locator("svg.crmkit-waterfall-svg").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    bars = page.eval_on_selector_all(
        "svg.crmkit-waterfall-svg .crmkit-waterfall-bar",
        "els => els.map(e => [e.dataset.step, +e.dataset.from, +e.dataset.to, "
        "e.getBoundingClientRect().width])",
    )
    previous = make_fake_snapshot(seed=10, scale=0.9, forecast_call=True)  # as served
    reasons = compare_snapshots(previous, snap)["reasons"]["reason"]  # the db has no deals
    steps = [b[0] for b in bars]
    assert steps[0] == "before" and steps[-1] == "now"
    assert set(steps[1:-1]) - {"other"} == set(reasons) and len(steps) == len(set(steps))
    assert all(b[3] > 0 for b in bars)  # every bar drawn
    # from the previous forecast's total to this one's
    total = previous.revenue.sel(source="total", group="all").sum("period").mean()
    assert bars[0][2] == pytest.approx(float(total), abs=0.01)
    assert bars[-2][2] == pytest.approx(bars[-1][2], abs=0.01)
    page.close()
