"""Does a notebook run through Papermill stall? N runs back to back, each with a timeout.

The stall of ``benchmarks/results/marketing.md`` ("Notebook 04 under Papermill: the stall"):
with ipykernel 7.4 a kernel's reply was sometimes lost, so papermill waited forever with the
kernel idle. This script runs a notebook ``--runs`` times, one after the other, each in a
child process stopped after ``--timeout`` seconds (the child, papermill's kernel and its
children are killed), and prints each run's seconds and outcome (``ok``, ``STALL``: hit the
timeout, ``error``: the notebook failed), the number of stalls and the versions of
ipykernel, jupyter_client, nbclient, papermill and pyzmq. For a stall it also prints the
cell papermill was in, the CPU its processes used in 3 s (idle or busy), and whether one
message sent to the kernel by a second client made the run finish by itself (the signature
of a missed socket wake-up); then it kills the run.

The default notebook is ``notebooks/04_marketing.ipynb`` with the small settings of
``tests/test_notebook_marketing.py`` (demo company of 150 customers and 300 deals, seed 3;
``method="map"``, 200 draws, 8 plan weeks, 2 forecast months, 300 forecast draws).
``--part widgets`` runs only its cells up to the first that creates widgets
(``CampaignExplorer(results)``, where the ipykernel 7 stalls happened), a few seconds a run.

    .venv/bin/python benchmarks/bench_papermill_stall.py [--runs 50] [--timeout 300]
        [--part full|widgets] [--notebook PATH] [--budget-minutes M]

``--notebook PATH`` runs another notebook (with no parameters injected). ``--budget-minutes``
starts no new run after that many minutes and reports the runs made.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil

from crmkit.apps.report import kill_tree

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_04 = ROOT / "notebooks" / "04_marketing.ipynb"
#: The settings of tests/test_notebook_marketing.py.
PARAMETERS_04 = {
    "method": "map",
    "draws": 200,
    "horizon_weeks": 8,
    "forecast_months": 2,
    "forecast_draws": 300,
}
DEMO_SIZES = {"n_customers": 150, "n_deals": 300, "seed": 3}
WIDGET_CELL = "CampaignExplorer(results)"
#: Whether a stalled kernel is probed by a second client (``--no-probe``: no).
PROBE = True
PACKAGES = ("ipykernel", "jupyter_client", "nbclient", "papermill", "pyzmq", "tornado")

RUNNER = r"""
import json, os, signal, sys
import papermill as pm


def dump(signum, frame):
    # on SIGUSR1: what papermill's coroutines await, and which of its kernel client's sockets
    # hold an unread message (reading ZMQ_EVENTS also re-arms a missed edge-triggered wake-up)
    import asyncio, gc, io, zmq
    from jupyter_client.asynchronous.client import AsyncKernelClient
    buf = io.StringIO()
    try:
        for task in asyncio.all_tasks(asyncio.get_running_loop()):
            task.print_stack(limit=2, file=buf)
    except RuntimeError as exc:
        buf.write(f"no running loop: {exc}\n")
    for obj in gc.get_objects():
        if isinstance(obj, AsyncKernelClient):
            for name in ("shell", "iopub", "control", "stdin"):
                ch = getattr(obj, f"_{name}_channel", None)
                if ch is not None and ch.socket is not None:
                    waiting = bool(ch.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN)
                    buf.write(f"{name} socket: unread message {waiting}\n")
    with open(os.environ["STALL_DUMP"], "w") as f:
        f.write(buf.getvalue())


signal.signal(signal.SIGUSR1, dump)
src, out, cwd, params = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
extra = {}
if sys.argv[5] == "crmkit":
    from crmkit.apps import kernel_client
    extra = kernel_client.papermill_kwargs()
pm.execute_notebook(src, out, parameters=params, kernel_name="python3", progress_bar=False,
                    cwd=cwd, **extra)
if sys.argv[5] == "crmkit":
    sys.stderr.write(f"\nrescued {kernel_client.RESCUED['count']}\n")
"""


def versions() -> dict[str, str]:
    """Installed versions of the packages between papermill and the kernel."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def widgets_part(src: Path, dst: Path) -> Path:
    """Write the cells of ``src`` up to the first that creates widgets into ``dst``."""
    nb = nbformat.read(src, as_version=4)
    end = next(i for i, c in enumerate(nb.cells) if WIDGET_CELL in c.source)
    nb.cells = nb.cells[: end + 1]
    nbformat.write(nb, dst)
    return dst


def where_stalled(out: Path, proc: subprocess.Popen) -> str:
    """Describe a stalled run: the cell papermill marks running, and whether its processes work."""
    try:
        nb = nbformat.read(out, as_version=4)
        running = [
            (i, c) for i, c in enumerate(nb.cells)
            if c.get("metadata", {}).get("papermill", {}).get("status") == "running"
        ]  # fmt: skip
        cell = (
            f"cell {running[0][0]} `{running[0][1].source.splitlines()[-1][:60]}`"
            if running
            else "no cell running (kernel start or between cells)"
        )
    except (OSError, ValueError) as exc:
        cell = f"no output notebook yet ({type(exc).__name__})"
    try:
        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        cpu0 = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(3)
        cpu1 = [sum(p.cpu_times()[:2]) for p in procs]
        busy = ", ".join(
            f"{'papermill' if p.pid == proc.pid else 'kernel'} +{b - a:.2f} CPU-s"
            for p, a, b in zip(procs, cpu0, cpu1, strict=True)
        )
    except psutil.Error as exc:
        busy = f"processes unreadable ({exc})"
    return f"{cell}; in 3 s: {busy}"


def probe(proc: subprocess.Popen, wait: float = 30.0) -> str:
    """Send the stalled kernel one message from a second client; tell whether the run resumes.

    A reply that waits in a socket until another message arrives (a missed wake-up) is
    released by any new message: the run then finishes by itself.
    """
    from jupyter_client import BlockingKernelClient

    kernels = [
        p for p in psutil.Process(proc.pid).children(recursive=True)
        if "ipykernel" in " ".join(p.cmdline())
    ]  # fmt: skip
    if not kernels:
        return "no kernel to probe"
    cmd = kernels[0].cmdline()
    client = BlockingKernelClient(connection_file=cmd[cmd.index("-f") + 1])
    client.load_connection_file()
    client.start_channels()
    try:
        reply = client.execute_interactive("None", timeout=20, store_history=False)
        answered = f"answered ({reply['content']['status']})"
    except Exception as exc:  # a probe reports whatever happened
        answered = f"no answer ({type(exc).__name__})"
    finally:
        client.stop_channels()
    try:
        proc.wait(timeout=wait)
        return f"probe {answered}; the run then finished by itself (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        pass
    told = f"probe {answered}; the run stayed stalled {wait:.0f} s more"
    dump = Path(os.environ["STALL_DUMP"])
    proc.send_signal(signal.SIGUSR1)
    for _ in range(50):
        if dump.exists():
            break
        time.sleep(0.2)
    lines = dump.read_text().strip().splitlines() if dump.exists() else ["no dump"]
    told += "\n      papermill: " + "\n      papermill: ".join(lines)
    try:
        proc.wait(timeout=wait)
        return told + f"\n    after the dump the run finished by itself (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        return told + f"\n    after the dump the run stayed stalled {wait:.0f} s more"


def run_once(
    nb: Path, out: Path, cwd: Path, params: dict, timeout: float, client: str = "crmkit"
) -> tuple[str, float, int]:
    """Run the notebook once in a child process; its outcome, seconds and rescued replies."""
    t0 = time.perf_counter()
    os.environ["STALL_DUMP"] = str(out.with_suffix(".stall.txt"))
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(nb), str(out), str(cwd), json.dumps(params), client],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        secs = time.perf_counter() - t0
        print(f"    stalled at: {where_stalled(out, proc)}", flush=True)
        if PROBE:
            print(f"    {probe(proc)}", flush=True)
        kill_tree(proc)
        return "STALL", secs, 0
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-2:])
        print(f"    error: {tail[:300]}", flush=True)
        return "error", secs, 0
    rescued = [int(line.split()[1]) for line in err.splitlines() if line.startswith("rescued ")]
    return "ok", secs, sum(rescued)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 1 when a run stalled or failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--part", choices=["full", "widgets"], default="full")
    ap.add_argument("--notebook", type=Path, help="another notebook (no parameters injected)")
    ap.add_argument("--budget-minutes", type=float, help="start no run after this many minutes")
    ap.add_argument(
        "--no-probe", dest="probe", action="store_false",
        help="do not message a stalled kernel from a second client before killing it",
    )  # fmt: skip
    ap.add_argument(
        "--client", choices=["crmkit", "plain"], default="crmkit",
        help="crmkit: papermill with crmkit.apps.kernel_client (waits in 1 s slices); "
        "plain: papermill's own kernel client (waits on the socket's wake-up)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    global PROBE
    PROBE = args.probe

    os.environ.setdefault("MPLBACKEND", "Agg")
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench_stall_") as tmpname:
        tmp = Path(tmpname)
        if args.notebook is not None:
            nb, params, what = args.notebook.resolve(), {}, str(args.notebook)
        else:
            from crmkit.data.demo import company as datasets
            from crmkit.store import Store

            db = tmp / "demo.db"
            with Store.open(db) as store:
                datasets.build_demo(store, **DEMO_SIZES)
            params = {"db_url": str(db), **PARAMETERS_04}
            nb = tmp / NOTEBOOK_04.name
            if args.part == "widgets":
                widgets_part(NOTEBOOK_04, nb)
                params = {"db_url": str(db)}
            else:
                nb.write_bytes(NOTEBOOK_04.read_bytes())
            what = f"notebooks/04_marketing.ipynb ({args.part}; {params})"
        if args.part == "widgets" and args.notebook is not None:
            nb = widgets_part(nb, tmp / "widgets.ipynb")
        print(f"notebook: {what}; {args.runs} runs, timeout {args.timeout:.0f} s each; "
              f"client {args.client}")  # fmt: skip
        start = time.perf_counter()
        outcomes: list[tuple[str, float]] = []
        rescued = 0
        for i in range(1, args.runs + 1):
            if args.budget_minutes and time.perf_counter() - start > 60 * args.budget_minutes:
                print(f"budget of {args.budget_minutes} min used: stopping after {i - 1} runs")
                break
            outcome, secs, saved = run_once(
                nb, tmp / f"out_{i}.ipynb", tmp, params, args.timeout, args.client
            )
            outcomes.append((outcome, secs))
            rescued += saved
            load = os.getloadavg()[0]
            note = f", {saved} reply(ies) found after a lost wake-up" if saved else ""
            print(f"run {i:3d}: {secs:7.1f} s  {outcome}  (load {load:.1f}{note})", flush=True)
    ok = [s for o, s in outcomes if o == "ok"]
    stalls = sum(o == "STALL" for o, _ in outcomes)
    errors = sum(o == "error" for o, _ in outcomes)
    print(f"runs: {len(outcomes)}, ok: {len(ok)}, stalls (hit the {args.timeout:.0f} s timeout): "
          f"{stalls}, errors: {errors}; client {args.client}")  # fmt: skip
    if args.client == "crmkit":
        print(f"kernel messages found at the end of a 1 s slice (lost wake-ups): {rescued}")
    if ok:
        print(f"seconds of ok runs: median {statistics.median(ok):.1f}, min {min(ok):.1f}, "
              f"max {max(ok):.1f}; total {time.perf_counter() - start:.0f} s")  # fmt: skip
    return 1 if stalls or errors else 0


if __name__ == "__main__":
    sys.exit(main())
