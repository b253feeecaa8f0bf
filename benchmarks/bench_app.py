"""Time the manager app in a real browser: one viewer, then N viewers at the same moment.

"Complete" means the headline numbers, the fan chart (SVG) and the campaign section are on
the page. Chromium runs on the same machine as Voilà, so its CPU time (printed) shares the
cores with the server's.
The app reads a snapshot only, so what a page costs depends on the snapshot's size, not on
the database's: ``--deals N`` adds per-deal draw arrays for N open deals (as the forecast
saves them) to a contract-shaped fake snapshot; ``--db PATH`` uses an existing database
with a real snapshot instead.

    .venv/bin/python benchmarks/bench_app.py                  # 1 viewer x3, then 10 at once
    .venv/bin/python benchmarks/bench_app.py --deals 100000
    .venv/bin/python benchmarks/bench_app.py --pool 0         # a kernel started per viewer
    .venv/bin/python benchmarks/bench_app.py --db data/crmkit.db
    .venv/bin/python benchmarks/bench_app.py --returning  # crowd with warm browser caches
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmkit import app  # noqa: E402
from crmkit.app import build_app_command  # noqa: E402
from crmkit.browser import CHROMIUM_FLAGS, free_port  # noqa: E402
from crmkit.store import Store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = list(CHROMIUM_FLAGS)
DONE = (
    "() => document.querySelector('.crmkit-headline [data-q=\"p50\"]') !== null && "
    "document.querySelector('svg.crmkit-fan-svg .crmkit-fan-p50') !== null && "
    "document.querySelector('.crmkit-roi') !== null"
)


def make_db(path: Path, deals: int) -> None:
    """Save a fake snapshot, with per-deal arrays for ``deals`` deals, into a new database."""
    from tests.snapshot_factory import make_fake_snapshot

    snap = make_fake_snapshot(n_draws=1000, horizon=6)
    if deals:
        rng = np.random.default_rng(0)
        snap.draws |= {
            "deal_p_win": rng.uniform(0, 1, deals),
            "deal_expected": rng.gamma(2, 5000, deals),
            "deal_amount": rng.gamma(2, 10000, deals),
            "deal_expected_month": rng.integers(24300, 24340, deals),
        }
        snap.coords["deal_id"] = [f"D{i:07d}" for i in range(deals)]
        snap.dims |= {k: ["deal_id"] for k in snap.draws if k.startswith("deal_")}
        snap.parameters["tables"]["at_risk_deals"] *= 8  # about 200 rows, like the forecast
    with Store.open(path) as store:
        store.save_snapshot(snap)


async def one_view(browser, url: str, t0: float | None = None, ctx=None) -> float:
    """Open the page, in ``ctx`` or else a fresh context; seconds until it is complete."""
    own = ctx is None
    if own:
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await ctx.new_page()
    start = t0 if t0 is not None else time.perf_counter()
    await page.goto(url, timeout=300_000)
    await page.wait_for_function(DONE, timeout=300_000, polling=50)
    took = time.perf_counter() - start
    await (ctx.close() if own else page.close())
    return took


def server_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by the Voilà server and each of its kernels."""
    import psutil

    out = {}
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return out


def browser_cpu(server_pid: int) -> dict[int, float]:
    """CPU seconds used so far by the browser: this process's children other than Voilà."""
    import psutil

    out = {}
    for p in psutil.Process().children(recursive=True):
        if p.pid == server_pid:
            continue
        try:
            if server_pid in [a.pid for a in p.parents()]:
                continue
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings (new processes count in full)."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def new_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds of the processes started between two readings (kernels started)."""
    return sum(v for pid, v in after.items() if pid not in before)


async def run(
    url: str, viewers: int, repeats: int, pid: int, pause: float, returning: bool = False
) -> dict:
    """Time ``repeats`` single views, then ``viewers`` at once; CPU per view of each side.

    With ``returning`` the crowd's viewers have each opened the page once before in their own
    browser context (scripts in its cache), as managers who use the app do; otherwise every
    crowd viewer comes with an empty cache.
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        await one_view(browser, url)  # warm-up: first kernel
        contexts = [None] * viewers
        if returning:  # each crowd viewer's earlier visit, one after the other
            contexts = [
                await browser.new_context(viewport={"width": 1280, "height": 900})
                for _ in range(viewers)
            ]
            for ctx in contexts:
                await one_view(browser, url, ctx=ctx)
            await asyncio.sleep(viewers * 3.0)  # with a pool: the used kernels are replaced
        await asyncio.sleep(pause)
        c0, b0 = server_cpu(pid), browser_cpu(pid)
        single = []
        for _ in range(repeats):
            single.append(await one_view(browser, url))
            await asyncio.sleep(pause)  # with a pool: let Voilà replace the kernel used
        c1, b1 = server_cpu(pid), browser_cpu(pid)
        t0 = time.perf_counter()
        crowd = await asyncio.gather(*[one_view(browser, url, t0, ctx) for ctx in contexts])
        c2, b2 = server_cpu(pid), browser_cpu(pid)
        await browser.close()
    return {
        "single": single,
        "crowd": sorted(crowd),
        "new_single": new_cpu(c0, c1) / repeats,
        "new_crowd": new_cpu(c1, c2) / viewers,
        "cpu_single": cpu_delta(c0, c1) / repeats,
        "cpu_crowd": cpu_delta(c1, c2) / viewers,
        "browser_single": cpu_delta(b0, b1) / repeats,
        "browser_crowd": cpu_delta(b1, b2) / viewers,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="existing database with a snapshot (default: a fake one)")
    ap.add_argument("--deals", type=int, default=0, help="per-deal arrays in the fake snapshot")
    ap.add_argument("--viewers", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--pool", type=int, default=app.DEFAULT_POOL,
        help=f"preheated kernels (default {app.DEFAULT_POOL}, as crmkit app; 0: none)",
    )  # fmt: skip
    ap.add_argument(
        "--fill-delay", type=float, default=app.POOL_FILL_DELAY_SECONDS,
        help="seconds before Voilà replaces a used preheated kernel (as crmkit app)",
    )  # fmt: skip
    ap.add_argument(
        "--returning", action="store_true",
        help="the crowd's viewers opened the page once before (warm browser caches)",
    )  # fmt: skip
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "bench.db"
        if not args.db:
            make_db(db, args.deals)
        cmd = build_app_command(
            db, port=free_port(), pool_size=args.pool, pool_fill_delay=args.fill_delay
        )
        log = open(Path(tmp) / "voila.log", "w")
        proc = subprocess.Popen(cmd.argv, env=cmd.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = cmd.url.split("/voila/")[0]
            for _ in range(600):
                try:
                    urllib.request.urlopen(base + "/", timeout=5)
                    break
                except OSError:
                    time.sleep(0.2)
            if args.pool:
                time.sleep(10 + 2 * args.pool)  # let the pool fill
            pause = 3.0 if not args.pool else args.fill_delay + 12.0
            res = asyncio.run(
                run(cmd.url, args.viewers, args.repeats, proc.pid, pause, args.returning)
            )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    load = os.getloadavg()
    what = args.db or f"fake snapshot, {args.deals:,} deal arrays"
    cores = os.cpu_count()
    print(f"# manager app ({what}; pool {args.pool}, fill delay {args.fill_delay:g} s; "
          f"on {cores} cores)")  # fmt: skip
    print(f"load average before {load0[0]:.2f}, after {load[0]:.2f} (1 min)")
    s, c = res["single"], res["crowd"]
    print(f"single viewer, complete page: median {statistics.median(s):.2f} s "
          f"(runs: {', '.join(f'{x:.2f}' for x in s)})")  # fmt: skip
    who = "returning viewers (warm caches)" if args.returning else "viewers (empty caches)"
    print(f"{args.viewers} {who} at once: all complete; fastest {c[0]:.2f} s, median "
          f"{statistics.median(c):.2f} s, slowest {c[-1]:.2f} s")  # fmt: skip
    print(f"server CPU per page view (Voilà + kernel): {res['cpu_single']:.2f} s alone, "
          f"{res['cpu_crowd']:.2f} s in the crowd; of which kernels started in the window "
          f"(per-viewer kernels, or pool refills): {res['new_single']:.2f} s alone, "
          f"{res['new_crowd']:.2f} s in the crowd")  # fmt: skip
    print(f"browser CPU per page view (chromium): {res['browser_single']:.2f} s alone, "
          f"{res['browser_crowd']:.2f} s in the crowd")  # fmt: skip


if __name__ == "__main__":
    main()
