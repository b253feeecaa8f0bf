"""crmkit at a mid-size company's size (issue #15 section 5), on SQLite and on PostgreSQL.

2M customers (accounts), about 10M orders and 500k deals with their history, as CSV files
made once (seeded) into a cache folder; each file imported through the ``crmkit import``
path (:func:`crmkit.data.io.import_file`) into a fresh SQLite file and into a fresh
PostgreSQL schema; then the purchase summary (the store's SQL, side by side with DuckDB
reading the SQLite file when ``duckdb`` and its sqlite extension are importable, and
PostgreSQL with and without parallel workers), a full refit + forecast (MAP) and the
manager page built in the kernel (:func:`crmkit.apps.server.manager_app`, no browser).

Targets: import ≤ 3 min per source, purchase summary ≤ 15 s, refit + forecast ≤ 2 min,
app page ≤ 3 s. Every step runs in its own process, so each peak resident memory printed
is that step's own.

The data are the demo company (:func:`crmkit.data.demo.company.generate_demo`), generated in
chunks of 200k customers and 50k deals (each chunk its own seed, its ids prefixed
``K<chunk>``), so memory stays near 1 GiB whatever the scale; campaigns are left out.

    .venv/bin/python benchmarks/bench_scale.py --scale 0.1          # quick: 200k / 1M / 50k
    CRMKIT_BENCH_PG_URL=postgresql+psycopg://crm:crm@127.0.0.1:5432/crm \\
        .venv/bin/python benchmarks/bench_scale.py                  # full size, both stores
    PYTHONPATH=/tmp/duckdb_pkgs .venv/bin/python benchmarks/bench_scale.py --only summary

DuckDB is not a crmkit dependency; for the side-by-side figure install it apart, e.g.
``pip install --target /tmp/duckdb_pkgs duckdb==1.4.4 duckdb-ext-sqlite`` (the extension
package ships the sqlite scanner, which DuckDB otherwise downloads at run time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: Rows of each chunk of the generator (at scale 1: ten chunks).
CHUNK_CUSTOMERS = 200_000
CHUNK_DEALS = 50_000
#: Full size: the issue's mid-size company.
FULL = {"customers": 2_000_000, "deals": 500_000, "orders": 10_000_000}
#: Files imported, in reference order (every one refers only to earlier ones).
SOURCES = ("stages", "accounts", "deals", "deal_history", "orders")
AS_OF = "2026-10-31"  # the demo's last day
PG_SCHEMA = "bench_scale"


# ---------------------------------------------------------------------- data
def make_files(folder: Path, scale: float) -> dict[str, object]:
    """Write the CSV files once (seeded) and return what is in them; reuse a finished folder."""
    done = folder / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    from crmkit.data.demo.company import generate_demo

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n_customers = round(FULL["customers"] * scale)
    n_deals = round(FULL["deals"] * scale)
    chunks = max(1, round(n_customers / CHUNK_CUSTOMERS))
    # orders per chunk: the demo's own (about 5 a customer), cut to the 10M at scale 1
    orders_per_chunk = round(FULL["orders"] * scale / chunks)
    counts = dict.fromkeys(SOURCES, 0)
    t0 = time.perf_counter()
    for i in range(chunks):
        lo_c, hi_c = n_customers * i // chunks, n_customers * (i + 1) // chunks
        lo_d, hi_d = n_deals * i // chunks, n_deals * (i + 1) // chunks
        demo = generate_demo(n_customers=hi_c - lo_c, n_deals=hi_d - lo_d, seed=1000 + i)
        frames = _prefixed(demo.frames, f"K{i:02d}")
        orders = frames["orders"]
        if len(orders) > orders_per_chunk:  # a seeded random subset, kept in time order
            rng = np.random.default_rng(i)
            keep = np.sort(rng.choice(len(orders), orders_per_chunk, replace=False))
            frames["orders"] = orders.iloc[keep]
        for name in SOURCES:
            if name == "stages" and i > 0:
                continue
            df = frames[name]
            df.to_csv(tmp / f"{name}.csv", mode="a", header=i == 0, index=False)
            counts[name] += len(df)
        print(
            f"  chunk {i + 1}/{chunks} written ({time.perf_counter() - t0:.0f} s, "
            f"peak {_peak_gib():.2f} GiB)",
            flush=True,
        )
    info = {"scale": scale, "rows": counts, "seconds": time.perf_counter() - t0}
    (tmp / "done.json").write_text(json.dumps(info))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return info


def _prefixed(frames: dict[str, pd.DataFrame], p: str) -> dict[str, pd.DataFrame]:
    """The demo's accounts, stages, deals, history and orders with chunk-unique ids."""

    def pre(s: pd.Series) -> pd.Series:
        return s.where(s.isna(), p + s.astype(str))

    accounts = frames["accounts"].assign(account_id=lambda d: pre(d["account_id"]))
    deals = frames["deals"].assign(
        deal_id=lambda d: pre(d["deal_id"]), account_id=lambda d: pre(d["account_id"])
    )
    deals = deals.drop(columns=["campaign_id"], errors="ignore")
    history = frames["deal_history"].drop(columns=["history_id"], errors="ignore")
    history = history.assign(deal_id=lambda d: pre(d["deal_id"]))
    orders = frames["orders"].assign(
        order_id=lambda d: pre(d["order_id"]),
        account_id=lambda d: pre(d["account_id"]),
        deal_id=lambda d: pre(d["deal_id"]),
    )
    return {
        "stages": frames["stages"],
        "accounts": accounts,
        "deals": deals,
        "deal_history": history,
        "orders": orders,
    }


# ---------------------------------------------------------------------- steps (one process each)
def step_import(db: str, entity: str, path: str) -> dict[str, object]:
    """Import one CSV file the way ``crmkit import --allow-future`` does.

    A few of the demo's open deals expect to close more than a year after today.
    """
    from crmkit.data.io import import_file
    from crmkit.store import Store

    store = Store.open(db)
    t0, c0 = time.perf_counter(), time.process_time()
    result = import_file(store, entity, path, allow_future=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    total = store.count(entity)
    store.close()
    return {"rows": result.written[entity], "table_rows": total, "seconds": seconds, "cpu_s": cpu}


def step_analyze(db: str) -> dict[str, object]:
    """ANALYZE the store (PostgreSQL's planner statistics; SQLite's too)."""
    from crmkit.store import Store

    store = Store.open(db)
    t0 = time.perf_counter()
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    seconds = time.perf_counter() - t0
    store.close()
    return {"seconds": seconds}


def _fingerprint(s: pd.DataFrame) -> dict[str, float]:
    """A few sums that two equal summaries share."""
    return {
        "customers": len(s),
        "repeat": int((s["frequency"] > 0).sum()),
        "frequency": int(s["frequency"].sum()),
        "revenue": round(float(s["revenue"].sum()), 2),
        "monetary": round(float(s["monetary_value"].sum()), 2),
        "T": round(float(s["T"].sum()), 3),
    }


def step_summary(db: str, workers: int | None = None) -> dict[str, object]:
    """The store's purchase summary (SQL); on PostgreSQL with ``workers`` parallel workers."""
    import sqlalchemy as sa

    from crmkit.store import Store
    from crmkit.store.aggregates import purchase_summary

    store = Store.open(db)
    engine = store.engine
    if workers is not None and store.dialect == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def _workers(dbapi_conn, _record) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET max_parallel_workers_per_gather = {int(workers)}")
            dbapi_conn.commit()

        engine.dispose()
    t0, c0 = time.perf_counter(), time.process_time()
    s = purchase_summary(engine, AS_OF)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    return {"seconds": seconds, "cpu_s": cpu, **_fingerprint(s)}


def step_duckdb(sqlite_file: str) -> dict[str, object]:
    """The same summary computed by DuckDB reading the SQLite file (sqlite scanner)."""
    import duckdb

    from crmkit.store.aggregates import TIME_UNITS

    con = duckdb.connect()
    ext = None
    try:
        import duckdb_ext  # the duckdb-ext-sqlite package's folder

        base = Path(duckdb_ext.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
        found = sorted(base.glob("*/sqlite_scanner.duckdb_extension"))
        ext = str(found[0]) if found else None
    except ImportError:
        pass
    con.execute(f"LOAD '{ext}'" if ext else "LOAD sqlite")
    t0, c0 = time.perf_counter(), time.process_time()
    con.execute(f"ATTACH '{sqlite_file}' AS crm (TYPE sqlite, READ_ONLY)")
    unit = TIME_UNITS["W"]
    end = (pd.Timestamp(AS_OF) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    sql = f"""
    WITH d AS (
        SELECT account_id, CAST(CAST(ordered_at AS TIMESTAMP) AS DATE) AS day,
               SUM(amount) AS spend, COUNT(*) AS n
        FROM crm.orders WHERE CAST(ordered_at AS TIMESTAMP) < TIMESTAMP '{end}'
        GROUP BY 1, 2
    ), a AS (
        SELECT account_id, MIN(day) AS first_day, MAX(day) AS last_day, COUNT(*) AS n_days,
               SUM(spend) AS revenue, SUM(n) AS n_orders, arg_min(spend, day) AS first_spend
        FROM d GROUP BY account_id
    )
    SELECT account_id AS customer_id, first_day AS first_purchase, last_day AS last_purchase,
           n_days - 1 AS frequency, (last_day - first_day) / {unit} AS recency,
           (DATE '{AS_OF}' - first_day) / {unit} AS "T",
           CASE WHEN n_days > 1 THEN (revenue - first_spend) / (n_days - 1) ELSE 0 END
               AS monetary_value,
           n_orders, revenue
    FROM a ORDER BY account_id
    """
    s = con.execute(sql).df()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_s": cpu, "version": duckdb.__version__, **_fingerprint(s)}


def step_forecast(db: str, repeat: bool = True) -> dict[str, object]:
    """A full refit + forecast (MAP + Laplace, 1,000 draws, 6 months), saved as a snapshot.

    ``repeat=False`` leaves out the repeat revenue of orders (BG/NBD + Gamma-Gamma), whose
    draws are customers x draws arrays (2M x 1,000 x 8 bytes = 16 GB each at full size).
    """
    from crmkit.forecast.engine import run_forecast
    from crmkit.store import Store

    store = Store.open(db)
    t0, c0 = time.perf_counter(), time.process_time()
    snap = run_forecast(
        store,
        as_of=AS_OF,
        horizon=6,
        draws=1000,
        method="map",
        label="scale",
        include_repeat=repeat,
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "status": snap.status,
        "open_deals": len(snap.coords.get("deal_id", [])),
        "p50_total_first": float(
            snap.quantiles.query("group == 'all' and source == 'total'")["p50"].iloc[0]
        ),
    }


def step_page(db: str) -> dict[str, object]:
    """The manager page built in the kernel from the newest snapshot: first and second build.

    As :func:`crmkit.apps.server.manager_app` does (read the snapshot, what changed since the
    previous one, the page's widgets), but a draft snapshot is shown too: the app shows only
    published ones, and a forecast at this size may be saved as a draft.
    """
    t0 = time.perf_counter()
    from crmkit.apps.changes import page_changes
    from crmkit.apps.manager import ManagerView
    from crmkit.store import Store

    imports = time.perf_counter() - t0
    times, status = [], None
    for _ in range(2):
        t0 = time.perf_counter()
        store = Store.open(db, migrate_db=False)
        snap = store.load_snapshot(include_drafts=True)
        changes = page_changes(store, snap)
        store.close()
        page = ManagerView(snap, changes=changes).widget
        times.append(time.perf_counter() - t0)
        status = f"{snap.status} snapshot, {len(page.children)} widgets"
    return {"imports": imports, "first": times[0], "second": times[1], "status": status}


STEPS = {
    "import": step_import,
    "analyze": step_analyze,
    "summary": step_summary,
    "duckdb": step_duckdb,
    "forecast": step_forecast,
    "page": step_page,
}


def _peak_gib() -> float:
    """Peak resident memory of this process (VmHWM)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_step(name: str, *args: object) -> dict[str, object]:
    """Run one step in a fresh interpreter; its figures and its own peak memory."""
    # the arguments go through stdin: a database URL (with its password) is never a
    # process argument
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
        "from benchmarks.bench_scale import STEPS, _peak_gib; "
        "name, args = json.loads(sys.stdin.read()); out = STEPS[name](*args); "
        "out['peak_gib'] = _peak_gib(); print('@@' + json.dumps(out))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([name, list(args)]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail[:300]}
    return json.loads(lines[-1][2:])


# ---------------------------------------------------------------------- one store
def bench_store(
    label: str,
    db: str,
    files: Path,
    only: set[str],
    sqlite_file: Path | None,
    sources: tuple[str, ...] = SOURCES,
):
    """Import, summarise, forecast and build the page on one store; print as it goes."""
    rows = []

    def show(what: str, r: dict[str, object], extra: str = "") -> None:
        if "error" in r:
            print(f"{label:<10} {what:<34} FAILED: {r['error']}", flush=True)
        else:
            cpu = f" (CPU {r['cpu_s']:.1f} s)" if "cpu_s" in r else ""
            print(
                f"{label:<10} {what:<34} {r['seconds']:8.1f} s{cpu}  peak {r['peak_gib']:.2f} GiB"
                f"{extra}",
                flush=True,
            )
        rows.append((label, what, r))

    if "import" in only:
        for entity in sources:
            r = run_step("import", db, entity, str(files / f"{entity}.csv"))
            extra = "" if "error" in r else f"  {r['rows']:,} rows (table {r['table_rows']:,})"
            show(f"import {entity}", r, extra)
        show("ANALYZE", run_step("analyze", db))
    if "summary" in only:
        variants = [("purchase_summary (store SQL)", ())]
        if label == "PostgreSQL":
            variants = [
                ("purchase_summary, 2 workers", (2,)),
                ("purchase_summary, no parallel", (0,)),
            ]
        for what, extra_args in variants:
            r = run_step("summary", db, *extra_args)
            show(what, r, "" if "error" in r else f"  {r['customers']:,} customers  {_fp(r)}")
        if sqlite_file is not None:
            r = run_step("duckdb", str(sqlite_file))
            if "error" in r and "duckdb" in str(r["error"]).lower():
                print(f"{label:<10} DuckDB not run: {r['error']}")
            else:
                show("DuckDB reading the SQLite file", r, "" if "error" in r else f"  {_fp(r)}")
    if "forecast" in only or "forecast-deals" in only:
        repeat = "forecast" in only
        r = run_step("forecast", db, repeat)
        extra = "" if "error" in r else f"  {r['status']}, {r['open_deals']:,} open deals"
        show("refit + forecast (MAP)" + ("" if repeat else ", no repeat"), r, extra)
    if "page" in only:
        r = run_step("page", db)
        if "error" in r:
            show("manager page (kernel)", r)
        else:
            r["seconds"] = r["second"]
            show(
                "manager page (kernel), 2nd build",
                r,
                f"  first {r['first']:.2f} s, imports {r['imports']:.1f} s, {r['status']}",
            )
    return rows


def _fp(r: dict[str, object]) -> str:
    """Short fingerprint text of a summary."""
    return f"revenue {r['revenue']:,.2f} freq {r['frequency']:,} T {r['T']:,.1f}"


def _pg_url(base: str) -> str:
    """The benchmark's URL: a fresh schema on the given server."""
    import sqlalchemy as sa

    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {PG_SCHEMA}")
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{PG_SCHEMA}"


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/crmkit_scale"))
    ap.add_argument(
        "--only",
        default="import,summary,forecast,page",
        help="comma-separated steps among import, summary, forecast (forecast-deals: without "
        "the repeat revenue of orders), page",
    )
    ap.add_argument("--stores", default="sqlite,pg", help="sqlite, pg or both")
    ap.add_argument("--keep", action="store_true", help="keep the PG schema")
    ap.add_argument(
        "--sources",
        default=",".join(SOURCES),
        help="files to import; fewer than all continue an earlier --keep run's store",
    )
    args = ap.parse_args()
    only = set(args.only.split(","))
    stores = set(args.stores.split(","))
    sources = tuple(n for n in SOURCES if n in args.sources.split(","))
    fresh = "import" in only and sources == SOURCES
    folder = args.cache / f"scale-{args.scale:g}"
    cpu = platform.processor() or platform.machine()
    print(
        f"crmkit scale benchmark, scale {args.scale:g}; {cpu}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    t0 = time.perf_counter()
    info = make_files(folder, args.scale)
    rows = info["rows"]
    print(
        "data: "
        + ", ".join(f"{n:,} {e}" for e, n in rows.items())
        + f" in {folder} (made in {info['seconds']:.0f} s; "
        f"this run {time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    sqlite_file = folder / "bench.db"
    if "sqlite" in stores:
        if fresh:  # the file stays in the cache folder for --only summary reruns
            for p in folder.glob("bench.db*"):
                p.unlink()
        bench_store("SQLite", str(sqlite_file), folder, only, sqlite_file, sources)
    if "pg" in stores:
        base = os.environ.get("CRMKIT_BENCH_PG_URL")
        if not base:
            print("PostgreSQL skipped: set CRMKIT_BENCH_PG_URL (e.g. postgresql+psycopg://...)")
        else:
            url = _pg_url(base) if fresh else _url_of_schema(base)
            bench_store("PostgreSQL", url, folder, only, None, sources)
            if not args.keep:
                _drop_schema(base)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"peak memory of the driver process: {_peak_gib():.2f} GiB")


def _url_of_schema(base: str) -> str:
    """The benchmark schema's URL without recreating it."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{PG_SCHEMA}"


def _drop_schema(base: str) -> None:
    """Drop the benchmark's schema."""
    import sqlalchemy as sa

    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    admin.dispose()


if __name__ == "__main__":
    main()
