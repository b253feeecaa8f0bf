"""Demo company generation (and optionally its load into a store): time and peak memory.

Target (issue 2): the default company builds in seconds; 1M customers (about 5M orders) and
100k deals generate in well under a minute and a few GiB. Each size runs in a fresh process
so that its peak resident memory is its own.

    .venv/bin/python benchmarks/bench_demo.py                       # default and 1M / 100k
    .venv/bin/python benchmarks/bench_demo.py --build               # also load into SQLite
    .venv/bin/python benchmarks/bench_demo.py --sizes 2000:3000 --build --validate
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(customers: int, deals: int, build: bool, validate: bool) -> dict:
    """Generate (and load) one company in this process; return the figures."""
    from crmkit.data.demo.company import build_demo, generate_demo

    out: dict[str, object] = {"customers": customers, "deals": deals}
    t0, c0 = time.perf_counter(), time.process_time()
    demo = generate_demo(n_customers=customers, n_deals=deals)
    out["generate_s"] = round(time.perf_counter() - t0, 2)
    out["generate_cpu_s"] = round(time.process_time() - c0, 2)
    out["rows"] = {k: len(v) for k, v in demo.frames.items()}
    out["generate_peak_gib"] = round(_peak_gib(), 2)
    if build:
        from crmkit.store import Store

        del demo
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp) / "demo.db")
            t0, c0 = time.perf_counter(), time.process_time()
            build_demo(store, n_customers=customers, n_deals=deals, validate=validate)
            out["build_s"] = round(time.perf_counter() - t0, 2)
            out["build_cpu_s"] = round(time.process_time() - c0, 2)
            out["build_validated"] = validate
            store.close()
        out["build_peak_gib"] = round(_peak_gib(), 2)
    return out


def _peak_gib() -> float:
    """Peak resident memory of this process in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> None:
    """Run every size in its own process and print one line of figures each."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["2000:3000", "1000000:100000"],
                   help="CUSTOMERS:DEALS pairs")  # fmt: skip
    p.add_argument("--build", action="store_true", help="also load into a SQLite file")
    p.add_argument("--validate", action="store_true", help="validate rows while loading")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        c, d = (int(x) for x in args.one.split(":"))
        print(json.dumps(run_one(c, d, args.build, args.validate)))
        return
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", size]
        cmd += ["--build"] * args.build + ["--validate"] * args.validate
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rows = res.pop("rows")
        print(json.dumps(res))
        print("   rows:", ", ".join(f"{k} {v:,}" for k, v in rows.items()))


if __name__ == "__main__":
    main()
