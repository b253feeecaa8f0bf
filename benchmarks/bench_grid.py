"""The deal grid with 100k deals: time to show it (Python and browser) and to save an edit.

Targets (issue 3): the deal grid visible in the browser with 100k deals in at most 3 s;
one edit saved in at most 200 ms.

    .venv/bin/python benchmarks/bench_grid.py [--deals 100000] [--customers 20000] \
        [--db /tmp/crmkit_bench_grid.db] [--no-browser]

The database is built once with the demo generator and reused when ``--db`` exists.
"Visible in the browser" is timed from ``page.goto`` on the Voilà app
(``notebooks/apps/edit_deals.ipynb``) until the grid's canvas is shown and the pager says
how many deals there are. Without a pool (``--pools 0``) it includes Voilà starting a
kernel and importing; with a preheated kernel (``--preheat_kernel --pool_size``) the
kernel has imported everything ahead and waits in the notebook for its viewer
(:func:`crmkit.app.wait_for_viewer`), so the deals are still read when the page is asked.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crmkit import datasets
from crmkit.app import voila_template_settings
from crmkit.browser import CHROMIUM_FLAGS, CHROMIUM_GPU_FLAGS, free_port
from crmkit.store import Store
from crmkit.widgets.grid import EntityGrid

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "notebooks" / "apps" / "edit_deals.ipynb"
#: How the browser draws canvases: "software" (``--disable-gpu``, the tests' setting) or "gpu"
#: (GPU emulated on the CPU by SwiftShader, as desktop browsers with a graphics card draw).
CANVAS_FLAGS = {"software": list(CHROMIUM_FLAGS), "gpu": list(CHROMIUM_GPU_FLAGS)}


def build(db: Path, n_deals: int, n_customers: int) -> Store:
    store = Store.open(db)
    if store.count("deals") < n_deals:
        store.clear()
        t = time.perf_counter()
        datasets.build_demo(
            store, n_customers=n_customers, n_deals=n_deals, seed=11, validate=False
        )
        print(f"built demo: {store.count('deals'):,} deals in {time.perf_counter() - t:.1f} s")
    return store


def python_side(store: Store, n_edits: int) -> None:
    t, c = time.perf_counter(), time.process_time()
    grid = EntityGrid(store, "deals", user="bench")
    print(
        f"EntityGrid(deals) with its first page ({grid.n_rows:,} deals): "
        f"wall {time.perf_counter() - t:.2f} s, cpu {time.process_time() - c:.2f} s"
    )
    t, c = time.perf_counter(), time.process_time()
    n = len(grid.table)
    print(
        f"  whole table read on the first filter/sort/search ({n:,} rows): "
        f"wall {time.perf_counter() - t:.2f} s, cpu {time.process_time() - c:.2f} s"
    )
    for label, action in (
        ("next page", lambda: grid.go_to_page(1)),
        ("last page", lambda: grid.go_to_page(grid.n_pages - 1)),
        (
            "first text search 'licence' (builds the search text)",
            lambda: grid.set_query(text="licence", page=0),
        ),
        ("next text search 'support plan'", lambda: grid.set_query(text="support plan", page=0)),
        ("filter status=open", lambda: grid.set_query(text="", filters={"status": "open"})),
        ("sort by amount desc", lambda: grid.set_query(sort_by="amount", ascending=False)),
    ):
        t, c = time.perf_counter(), time.process_time()
        action()
        print(
            f"  {label}: wall {1000 * (time.perf_counter() - t):.0f} ms, "
            f"cpu {1000 * (time.process_time() - c):.0f} ms ({len(grid.rows):,} rows)"
        )
    grid.set_query(filters={}, sort_by=None, ascending=True, page=0)
    stages = list(store.read("stages")["stage"])
    times, cpu, store_ms, store_cpu = [], [], [], []
    for i in range(n_edits):
        row = i % len(grid.page)
        current = grid.page.iloc[row]["stage"]
        new = next(s for s in stages if s != current)
        t, c = time.perf_counter(), time.process_time()
        ok = grid.apply_edit(row, "stage", new)
        times.append(1000 * (time.perf_counter() - t))
        cpu.append(1000 * (time.process_time() - c))
        assert ok, grid.message_text
        key, version = grid.page.index[row], int(grid.page.iloc[row]["row_version"])
        t, c = time.perf_counter(), time.process_time()
        store.update("deals", key, {"stage": current}, expected_version=version)
        store_ms.append(1000 * (time.perf_counter() - t))
        store_cpu.append(1000 * (time.process_time() - c))
        grid.refresh_rows([key])
    t = time.perf_counter()
    grid.undo()
    undo_ms = 1000 * (time.perf_counter() - t)
    print(
        f"one edit saved in the grid (validate + update + history + refresh the cell), "
        f"{n_edits} edits: median wall {statistics.median(times):.0f} ms "
        f"(cpu {statistics.median(cpu):.0f} ms), max {max(times):.0f} ms; undo {undo_ms:.0f} ms\n"
        f"  store.update alone: median wall {statistics.median(store_ms):.0f} ms "
        f"(cpu {statistics.median(store_cpu):.0f} ms)"
    )


def browser_side(db: Path, runs: int, pool: int, gap: float, canvas: str = "software") -> None:
    """Time page loads of the Voilà app; ``pool`` preheated kernels (0: one per page view).

    ``canvas`` chooses the browser's canvas drawing (:data:`CANVAS_FLAGS`).
    """
    import json

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="crmkit_bench_voila_"))
    shutil.copy(APP, work / APP.name)
    port = free_port()
    voila = Path(sys.executable).with_name("voila")
    argv = [str(voila), str(work / APP.name), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--MappingKernelManager.cull_idle_timeout=60",
            "--VoilaExecutor.iopub_timeout=120",  # late widget output is not dropped
            "--MappingKernelManager.cull_interval=20"]  # fmt: skip
    template_argv, env = voila_template_settings({**os.environ, "CRMKIT_DB_URL": str(db)})
    argv += template_argv  # as crmkit app serves it
    if pool > 0:  # the kernel waits in the notebook for its viewer: no cell time limit
        argv += ["--preheat_kernel=True", f"--pool_size={pool}", "--VoilaExecutor.timeout=604800"]
    else:
        argv += ["--VoilaExecutor.timeout=300"]
    proc = subprocess.Popen(
        argv, cwd=work, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    label = f"{pool} preheated kernel(s)" if pool else "a kernel started per page view"
    label += f", {canvas} canvas"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("voila did not start") from None
                time.sleep(0.3)
        url = f"http://127.0.0.1:{port}/"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=CANVAS_FLAGS[canvas]
            )
            times = []
            for i in range(runs):
                if pool:  # let Voilà fill (then refill) its pool, as between real viewers
                    time.sleep(2 * gap if i == 0 else gap)
                load = Path("/proc/loadavg").read_text().split()[0]
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                t = time.perf_counter()
                page.goto(url, timeout=300_000)
                page.locator(".crmkit-grid canvas").first.wait_for(state="visible", timeout=300_000)
                page.locator("text=/rows 1–\\d+ of [\\d,]+/").first.wait_for(timeout=300_000)
                elapsed = time.perf_counter() - t
                nav = json.loads(
                    page.evaluate(
                        "JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())"
                    )
                )
                times.append(elapsed)
                print(
                    f"  browser run {i + 1} ({label}): page served "
                    f"{nav['responseEnd'] / 1000:.2f} s, scripts loaded "
                    f"{nav['loadEventEnd'] / 1000:.2f} s, deal grid visible "
                    f"{elapsed:.2f} s (load average {load})"
                )
                page.close()
            browser.close()
        print(
            f"deal grid visible in the browser with {label}: median "
            f"{statistics.median(times):.2f} s over {runs} page loads "
            f"(load average now {Path('/proc/loadavg').read_text().split()[0]})"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "crmkit_bench_grid.db")
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument(
        "--pools", default="0,1",
        help="Voilà kernel pools to time, comma-separated (0: a kernel per page view; "
        "default 0,1)",
    )  # fmt: skip
    ap.add_argument(
        "--gap", type=float, default=15.0,
        help="seconds between page loads with a pool, for Voilà to refill it (default 15)",
    )  # fmt: skip
    ap.add_argument(
        "--canvas", default="software,gpu",
        help="canvas drawing to time, comma-separated: software (--disable-gpu, as the "
        "tests) and/or gpu (GPU emulated on the CPU, as desktop browsers); default both",
    )  # fmt: skip
    args = ap.parse_args()
    store = build(args.db, args.deals, args.customers)
    print(
        f"database {args.db}: {store.count('deals'):,} deals, {store.count('accounts'):,} accounts"
    )
    python_side(store, args.edits)
    store.close()
    if not args.no_browser:
        for canvas in args.canvas.split(","):
            for pool in (int(p) for p in args.pools.split(",")):
                browser_side(args.db, args.runs, pool, args.gap, canvas)


if __name__ == "__main__":
    main()
