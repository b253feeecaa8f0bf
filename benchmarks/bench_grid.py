"""The deal grid with 100k deals: time to show it (Python and browser) and to save an edit.

Targets (issue 3): the deal grid visible in the browser with 100k deals in at most 3 s;
one edit saved in at most 200 ms.

    .venv/bin/python benchmarks/bench_grid.py [--deals 100000] [--customers 20000] \
        [--db /tmp/crmkit_bench_grid.db] [--no-browser] [--where voila,jupyterlab]

The database is built once with the demo generator and reused when ``--db`` exists.
``--where`` chooses where the grid is shown in the browser (comma-separated, default
``voila``): ``voila``, the editing app, and/or ``jupyterlab``, a notebook already open in
JupyterLab. "Visible in the browser" is timed from ``page.goto`` on the Voilà app
(``notebooks/apps/edit_deals.ipynb``) until the grid's canvas is shown and the pager says
how many deals there are. Without a pool (``--pools 0``) it includes Voilà starting a
kernel and importing; with a preheated kernel (``--preheat_kernel --pool_size``) the
kernel has imported everything ahead and waits in the notebook for its viewer
(:func:`crmkit.apps.server.wait_for_viewer`), so the deals are still read when the page is asked.

In JupyterLab (``--where jupyterlab``) the analyst already has JupyterLab open and the
kernel running: the script starts ``jupyter lab`` from this venv on a temporary root directory
holding a two-cell notebook (and temporary settings: no news, no update check, no saved
workspace), opens it, waits for the ``python3`` kernel to be idle, runs cell 1 (the imports and
``Store.open()``, timed but not counted) and then times cell 2,
``grid, page = editor(store, "deals", ...); page``, from running it until the grid's canvas
and its pager ("rows 1–25 of 100,000") are shown, the same condition as the Voilà app. Cell 2
is run ``--runs`` times in the same kernel and page (its output is cleared, untimed, before
each run), so the first run also loads ipydatagrid's scripts in the page and later runs do not.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crmkit.apps.browser import CHROMIUM_FLAGS, CHROMIUM_GPU_FLAGS, free_port
from crmkit.apps.server import voila_template_settings
from crmkit.data.demo import company as datasets
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
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="crmkit_bench_voila_"))
    shutil.copy(APP, work / APP.name)
    port = free_port()
    voila = Path(sys.executable).with_name("voila")
    argv = [str(voila), str(work / APP.name), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--MappingKernelManager.cull_idle_timeout=60",
            "--VoilaExecutor.iopub_timeout=120",  # late widget output is not dropped
            "--MappingKernelManager.cull_interval=20"]  # fmt: skip
    # CRMKIT_APP_USER: the editor shows its grid at once instead of asking the viewer's name
    base_env = {**os.environ, "CRMKIT_DB_URL": str(db), "CRMKIT_APP_USER": "bench"}
    template_argv, env = voila_template_settings(base_env)
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
        wait_for_port(port, "voila")
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
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def wait_for_port(port: int, what: str, timeout: float = 60) -> None:
    """Wait until a server listens on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server started by this script, killing it if it does not stop."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: The notebook an analyst runs in JupyterLab: the imports, then the editing page.
LAB_CELLS = (
    "from crmkit import Store\nfrom crmkit.widgets import editor\n\nstore = Store.open()",
    'grid, page = editor(store, "deals", user="bench", page_size=25)\npage',
)
#: JupyterLab user settings: no news or update check (their toast would ask), no autosave.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"recordTiming": True},  # kernel's timestamps
}
#: Running and clearing cells through JupyterLab's own commands (``window.jupyterapp``).
LAB_JS = """
window.benchNotebook = () => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return w && w.content && w.sessionContext ? w : null;
};
window.benchRunCell = (index) => {
  const nb = window.benchNotebook();
  nb.content.activeCellIndex = index;
  nb.content.deselectAll();
  window.benchDone = null;
  window.benchStart = performance.now();
  return window.jupyterapp.commands.execute("notebook:run-cell")
    .then(() => { window.benchDone = performance.now() - window.benchStart; });
};
window.benchKernelTime = (index) => {  // execute_input to execute_reply, in the kernel's clock
  const nb = window.benchNotebook();
  const t = nb.content.widgets[index].model.getMetadata("execution") || {};
  const a = Date.parse(t["iopub.execute_input"]), b = Date.parse(t["shell.execute_reply"]);
  return Number.isFinite(a) && Number.isFinite(b) ? (b - a) / 1000 : null;
};
"""


def lab_notebook(path: Path) -> None:
    """Write the two-cell notebook of :data:`LAB_CELLS`, for the ``python3`` kernel."""
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
         "outputs": [], "source": src}
        for i, src in enumerate(LAB_CELLS)
    ]  # fmt: skip
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))


def jupyterlab_side(db: Path, runs: int, canvas: str = "software") -> None:
    """Time running the editor cell in a notebook already open in JupyterLab.

    ``canvas`` chooses the browser's canvas drawing (:data:`CANVAS_FLAGS`).
    """
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="crmkit_bench_lab_"))
    root, settings = work / "root", work / "user-settings"
    root.mkdir()
    lab_notebook(root / "bench_grid.ipynb")
    for plugin, values in LAB_SETTINGS.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    argv = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
            f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={work / 'workspaces'}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True"]  # fmt: skip
    if os.geteuid() == 0:  # as the browser: this machine runs everything as root
        argv.append("--allow-root")
    env = {
        **os.environ,
        "CRMKIT_DB_URL": str(db),
        "JUPYTER_CONFIG_DIR": str(work / "config"),  # not the user's ~/.jupyter
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
    }
    log_path = work / "jupyter.log"
    log = log_path.open("w")
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    label = f"JupyterLab, {canvas} canvas"
    try:
        wait_for_port(port, "jupyter lab")
        url = f"http://127.0.0.1:{port}/lab/tree/bench_grid.ipynb?token={token}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=CANVAS_FLAGS[canvas]
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.add_init_script(LAB_JS)
            t = time.perf_counter()
            page.goto(url, timeout=300_000)
            page.wait_for_function(
                "() => { const w = window.benchNotebook && window.benchNotebook();"
                " const k = w && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle' && w.content.widgets.length === 2; }",
                timeout=300_000,
            )
            opened = time.perf_counter() - t
            dialogs = page.locator(".jp-Dialog").count()
            if dialogs:  # none expected: the notebook names its kernel
                print(f"  note: {dialogs} JupyterLab dialog(s) shown; accepting")
                page.locator(".jp-Dialog .jp-mod-accept").first.click()
            t = time.perf_counter()
            page.evaluate("window.benchRunCell(0)")
            imports = time.perf_counter() - t
            error = page.locator('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]')
            if error.count():
                raise RuntimeError(f"cell 1 failed:\n{error.first.inner_text()}")
            print(
                f"  {label}: notebook open and kernel idle {opened:.2f} s; "
                f"cell 1 (imports, Store.open) {imports:.2f} s"
            )
            outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
            grid = outputs.locator(".crmkit-grid canvas").first
            pager = outputs.locator("text=/rows 1–\\d+ of [\\d,]+/").first
            times = []
            for i in range(runs):
                page.evaluate(
                    "window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')"
                )
                page.locator(".jp-Notebook .crmkit-grid").first.wait_for(state="detached")
                time.sleep(1)  # let the page settle after clearing, as an analyst would
                load = Path("/proc/loadavg").read_text().split()[0]
                t = time.perf_counter()
                page.evaluate("() => { window.benchRunCell(1); }")
                grid.wait_for(state="visible", timeout=300_000)
                pager.wait_for(timeout=300_000)
                elapsed = time.perf_counter() - t
                shown = pager.inner_text()
                page.wait_for_function("() => window.benchDone !== null", timeout=300_000)
                done = page.evaluate("window.benchDone") / 1000
                kernel = page.evaluate("window.benchKernelTime(1)")
                times.append(elapsed)
                print(
                    f"  lab run {i + 1} ({label}): cell run in the kernel "
                    f"{'?' if kernel is None else f'{kernel:.2f}'} s, its messages handled "
                    f"by the page {done:.2f} s, deal grid visible {elapsed:.2f} s "
                    f"('{shown.split('·')[-1].strip()}', load average {load})"
                )
            page.close()
            browser.close()
        print(
            f"deal grid visible in {label}: median {statistics.median(times):.2f} s over "
            f"{runs} runs of the editor cell (load average now "
            f"{Path('/proc/loadavg').read_text().split()[0]})"
        )
    except Exception:
        print("jupyter lab's log (last lines):", *log_path.read_text().splitlines()[-20:], sep="\n")
        raise
    finally:
        stop(proc)
        log.close()
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
    ap.add_argument(
        "--where", default="voila",
        help="where the grid is shown, comma-separated: voila (the editing app) and/or "
        "jupyterlab (the editor cell run in a notebook open in JupyterLab); default voila",
    )  # fmt: skip
    args = ap.parse_args()
    where = args.where.split(",")
    if unknown := set(where) - {"voila", "jupyterlab"}:
        ap.error(f"--where: unknown {', '.join(sorted(unknown))} (voila, jupyterlab)")
    store = build(args.db, args.deals, args.customers)
    print(
        f"database {args.db}: {store.count('deals'):,} deals, {store.count('accounts'):,} accounts"
    )
    python_side(store, args.edits)
    store.close()
    if not args.no_browser:
        for canvas in args.canvas.split(","):
            if "voila" in where:
                for pool in (int(p) for p in args.pools.split(",")):
                    browser_side(args.db, args.runs, pool, args.gap, canvas)
            if "jupyterlab" in where:
                jupyterlab_side(args.db, args.runs, canvas)


if __name__ == "__main__":
    main()
