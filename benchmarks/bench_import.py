"""Import of 100k deals and 1M orders from CSV through ``crmkit.data.io.import_file``: time, memory.

Target (issue 2): at most 60 s and 2 GiB on a 2-core machine. Each import runs in its own
process so its peak resident memory (``ru_maxrss``, Python and pandas included) is its own.
The files come from the demo company (``crmkit.data.demo.company.generate_demo``); when it has fewer
orders than asked, more are drawn for the same customers.

    .venv/bin/python benchmarks/bench_import.py [--deals 100000] [--orders 1000000]
        [--customers 200000] [--db sqlite-file-or-url] [--workdir DIR]
    .venv/bin/python benchmarks/bench_import.py --validation-only 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def make_files(
    workdir: Path, n_customers: int, n_deals: int, n_orders: int, seed: int = 7
) -> dict[str, Path]:
    """Write the demo company's reference entities, deals and orders as CSV files."""
    from crmkit.data.demo.company import generate_demo

    demo = generate_demo(n_customers=n_customers, n_deals=n_deals, seed=seed)
    frames = dict(demo.frames)
    orders = frames["orders"]
    if len(orders) < n_orders:  # top up with more orders of the same customers
        rng = np.random.default_rng(seed)
        extra = n_orders - len(orders)
        ids = frames["accounts"]["account_id"].to_numpy()
        created = frames["accounts"]["created_at"].to_numpy()
        who = rng.integers(0, len(ids), extra)
        delay = rng.integers(0, 365 * 24 * 3600, extra).astype("timedelta64[s]")
        more = pd.DataFrame(
            {
                "order_id": [f"X{i}" for i in range(extra)],
                "account_id": ids[who],
                "ordered_at": created[who] + delay,
                "amount": np.round(rng.gamma(2.0, 40.0, extra), 2),
            }
        )
        orders = pd.concat([orders, more], ignore_index=True)
    frames["orders"] = orders.iloc[:n_orders]
    paths = {}
    for name in ("accounts", "stages", "campaigns", "deals", "orders"):
        p = workdir / f"{name}.csv"
        frames[name].to_csv(p, index=False)
        paths[name] = p
    return paths


def run_import(db: str, entity: str, path: Path) -> dict[str, float]:
    """Import one file in this process; return seconds and peak resident memory."""
    from crmkit.data import io
    from crmkit.data.reading import read_table
    from crmkit.store import Store

    store = Store.open(db)
    c0 = time.process_time()
    t0 = time.perf_counter()
    df = read_table(path)  # exactly what import_file does, timed apart
    t1 = time.perf_counter()
    result = io.import_frames(store, {entity: df}, source=str(path))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = _peak_rss_gib()
    store.close()
    return {
        "rows": result.written[entity],
        "seconds": seconds,
        "cpu_s": cpu,
        "read_s": t1 - t0,
        "peak_gib": peak,
    }


def _peak_rss_gib() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2  # KiB -> GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child(db: str, entity: str, path: Path) -> dict[str, float]:
    """Run :func:`run_import` in a fresh interpreter and read its figures."""
    code = (
        f"import json, sys, pathlib; sys.path.insert(0, {str(ROOT)!r}); "
        "from benchmarks.bench_import import run_import; "
        f"print(json.dumps(run_import({db!r}, {entity!r}, pathlib.Path({str(path)!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_validation(n: int, n_accounts: int = 100_000, seed: int = 0) -> None:
    """Time ``validate`` alone on ``n`` order rows given as text, clean and with bad rows."""
    from crmkit.store.validation import validate

    rng = np.random.default_rng(seed)
    accounts = np.char.add("A", np.arange(n_accounts).astype(str))
    df = pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(n).astype(str)),
            "account_id": accounts[rng.integers(0, n_accounts, n)],
            "ordered_at": np.datetime_as_string(
                np.datetime64("2020-01-01T00:00") + np.arange(n).astype("timedelta64[m]"),
                unit="s",
            ),
            "amount": np.round(rng.gamma(2.0, 50.0, n), 2).astype(str),
        }
    ).astype("str")
    known = {"accounts": set(accounts.tolist())}

    def keys(name: str) -> set:
        return known.get(name, set())

    for label in ("clean", "4 bad rows"):
        if label != "clean":
            df.loc[5, "amount"] = "-3"
            df.loc[7, "ordered_at"] = "2023-02-30"
            df.loc[9, "order_id"] = "O1"
            df.loc[11, "account_id"] = "nobody"
        c0, t0 = time.process_time(), time.perf_counter()
        res = validate("orders", df, known_keys=keys)
        print(
            f"validate {n:,} orders ({label}): {time.perf_counter() - t0:.1f} s wall, "
            f"{time.process_time() - c0:.1f} s CPU, {len(res.errors)} problem(s)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--db", help="database URL or SQLite file (default: a fresh temporary file)")
    ap.add_argument("--workdir", type=Path, help="where to write the CSV files (default: temp)")
    ap.add_argument(
        "--validation-only",
        type=int,
        metavar="N",
        help="only time validate() on N generated order rows",
    )
    args = ap.parse_args()
    if args.validation_only:
        bench_validation(args.validation_only)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db = args.db or str(work / "bench.db")
        t0 = time.perf_counter()
        paths = make_files(work, args.customers, args.deals, args.orders)
        print(f"generated CSV files in {time.perf_counter() - t0:.1f} s")
        rows = []
        for entity in ("accounts", "stages", "campaigns", "deals", "orders"):
            r = child(db, entity, paths[entity])
            size = paths[entity].stat().st_size / 1024**2
            rows.append(
                (entity, r["rows"], size, r["seconds"], r["cpu_s"], r["read_s"], r["peak_gib"])
            )
            print(
                f"{entity:<10} {r['rows']:>10,} rows  {size:7.1f} MiB  {r['seconds']:7.1f} s "
                f"(CPU {r['cpu_s']:.1f} s, read {r['read_s']:.1f} s)  peak {r['peak_gib']:.2f} GiB",
                flush=True,
            )
        print()
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
        print("| entity | rows | CSV MiB | wall s | CPU s | of which read s | peak RSS GiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for entity, n, size, sec, cpu, read_s, peak in rows:
            print(
                f"| {entity} | {n:,} | {size:.1f} | {sec:.1f} | {cpu:.1f} | {read_s:.1f} "
                f"| {peak:.2f} |"
            )


if __name__ == "__main__":
    main()
