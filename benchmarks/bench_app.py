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
    .venv/bin/python benchmarks/bench_app.py --protocol   # 1 browser + 9 browserless viewers
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

from crmkit.apps import server as app  # noqa: E402
from crmkit.apps.browser import CHROMIUM_FLAGS, free_port  # noqa: E402
from crmkit.apps.server import build_app_command, stop_server  # noqa: E402
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


def _kernel_message(
    msg_type: str, content: dict, session: str, metadata: dict | None = None
) -> str:
    """A Jupyter message for the kernel's websocket (JSON form)."""
    import datetime
    import json
    import uuid

    header = {
        "msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session,
        "username": "bench", "version": "5.3",
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
    }  # fmt: skip
    return json.dumps(
        {"header": header, "parent_header": {}, "metadata": metadata or {},
         "content": content, "channel": "shell", "buffers": []}
    )  # fmt: skip


async def protocol_view(url: str, t0: float) -> float:
    """What a browser asks of the server for one page, without a browser; seconds to done.

    Fetches the page's HTML, connects to its kernel's websocket and asks for the widgets'
    state (as the page's widget manager does); done when the state holds the fan chart.
    """
    import json
    import re
    import uuid

    from tornado.httpclient import AsyncHTTPClient
    from tornado.websocket import websocket_connect

    page = await AsyncHTTPClient().fetch(url, request_timeout=300)
    kernel = re.search(r'"kernelId": *"([^"]+)"', page.body.decode()).group(1)
    session, comm = uuid.uuid4().hex, uuid.uuid4().hex
    base = url.split("/voila/")[0].replace("http", "ws", 1)
    token = url.partition("?token=")[2]  # crmkit app serves with a token: the websocket too
    ws = await websocket_connect(
        f"{base}/api/kernels/{kernel}/channels?session_id={session}&token={token}"
    )
    open_ = {"comm_id": comm, "target_name": "jupyter.widget.control", "data": {}}
    await ws.write_message(_kernel_message("comm_open", open_, session, {"version": "1.0.0"}))
    ask = {"comm_id": comm, "data": {"method": "request_states"}}
    await ws.write_message(_kernel_message("comm_msg", ask, session))
    while True:
        raw = await ws.read_message()
        if raw is None:
            raise RuntimeError("the kernel's websocket closed before the widgets' state came")
        if isinstance(raw, bytes):
            continue
        msg = json.loads(raw)
        data = msg.get("content", {}).get("data", {})
        if msg.get("msg_type") == "comm_msg" and data.get("method") == "update_states":
            if "crmkit-fan-p50" not in json.dumps(data["states"]):
                raise RuntimeError("the widgets' state has no fan chart")
            ws.close()
            return time.perf_counter() - t0


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
    url: str,
    viewers: int,
    repeats: int,
    pid: int,
    pause: float,
    returning: bool = False,
    protocol: bool = False,
) -> dict:
    """Time ``repeats`` single views, then ``viewers`` at once; CPU per view of each side.

    With ``returning`` the crowd's viewers have each opened the page once before in their own
    browser context (scripts in its cache), as managers who use the app do; otherwise every
    crowd viewer comes with an empty cache. With ``protocol`` the crowd is one viewer in
    the browser and :func:`protocol_view` clients for the others: the server serves ten
    viewers while only one browser shares its cores, as when each viewer has a computer
    (``repeats`` such crowds).
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

        async def at_once() -> list[float]:
            """Every viewer opens the page at the same moment; seconds each until done."""
            t0 = time.perf_counter()
            if protocol:  # one viewer in this browser, the others' browsers elsewhere
                others = [protocol_view(url, t0) for _ in contexts[1:]]
                views = [one_view(browser, url, t0), *others]
            else:
                views = [one_view(browser, url, t0, c) for c in contexts]
            return list(await asyncio.gather(*views))

        crowd = await at_once()
        c2, b2 = server_cpu(pid), browser_cpu(pid)
        in_browser = crowd[:1] if protocol else []
        for _ in range(repeats - 1 if protocol else 0):  # more crowds: the browser's view varies
            await asyncio.sleep(pause + 2.0 * viewers)  # the pool is refilled
            in_browser.append((await at_once())[0])
        await browser.close()
    return {
        "in_browser": in_browser,
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
    ap.add_argument(
        "--protocol", action="store_true",
        help="one crowd viewer in the browser, the others fetch the page and its widgets' "
        "state without one (as when each viewer's browser runs on their own computer)",
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
        proc = subprocess.Popen(
            cmd.argv, env=cmd.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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
                run(
                    cmd.url,
                    args.viewers,
                    args.repeats,
                    proc.pid,
                    pause,
                    returning=args.returning,
                    protocol=args.protocol,
                )
            )
        finally:
            stop_server(proc, grace=60)  # Voilà and every kernel it started
            cmd.cleanup()
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
    if args.protocol:
        who = "viewers, 1 in the browser and the rest without one (page + widget state)"
    print(f"{args.viewers} {who} at once: all complete; fastest {c[0]:.2f} s, median "
          f"{statistics.median(c):.2f} s, slowest {c[-1]:.2f} s")  # fmt: skip
    if args.protocol:
        b = res["in_browser"]
        print(f"the browser's page in those crowds: complete after {max(b):.2f} s at most "
              f"(crowds: {', '.join(f'{x:.2f}' for x in b)})")  # fmt: skip
    print(f"server CPU per page view (Voilà + kernel): {res['cpu_single']:.2f} s alone, "
          f"{res['cpu_crowd']:.2f} s in the crowd; of which kernels started in the window "
          f"(per-viewer kernels, or pool refills): {res['new_single']:.2f} s alone, "
          f"{res['new_crowd']:.2f} s in the crowd")  # fmt: skip
    print(f"browser CPU per page view (chromium): {res['browser_single']:.2f} s alone, "
          f"{res['browser_crowd']:.2f} s in the crowd")  # fmt: skip


if __name__ == "__main__":
    main()
