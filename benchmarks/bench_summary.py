"""Per-customer purchase summary in the database: 1M customers and 5M orders, SQLite and PostgreSQL.

Target (issue 2): at most 20 s for the summary itself. Loading is timed and printed too.

    .venv/bin/python benchmarks/bench_summary.py --customers 1000000 --orders 5000000 \
        [--pg postgresql+psycopg://crm:crm@127.0.0.1:5432/crm]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crmkit.store import Store


def make_frames(n_customers: int, n_orders: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Accounts and orders with skewed purchase counts over three years."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.arange(n_customers).astype(str))
    weights = rng.gamma(0.5, 1.0, n_customers)
    who = rng.choice(n_customers, size=n_orders, p=weights / weights.sum())
    start = np.datetime64("2023-01-01T00:00:00")
    when = start + rng.integers(0, 3 * 365 * 24 * 3600, n_orders).astype("timedelta64[s]")
    accounts = pd.DataFrame(
        {"account_id": ids, "name": ids, "created_at": pd.Timestamp("2023-01-01")}
    )
    orders = pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(n_orders).astype(str)),
            "account_id": ids[who],
            "ordered_at": when,
            "amount": np.round(rng.gamma(2.0, 30.0, n_orders), 2),
        }
    )
    return {"accounts": accounts, "orders": orders}


def bench(store: Store, frames: dict[str, pd.DataFrame], label: str) -> None:
    """Load the frames and time the summary."""
    t0 = time.perf_counter()
    store.insert_many(frames, validate=False)
    load_s = time.perf_counter() - t0
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE orders"))
            conn.commit()
    t0 = time.perf_counter()
    s = store.purchase_summary("2025-12-31")
    summary_s = time.perf_counter() - t0
    print(
        f"{label:<11} load {load_s:7.1f} s   purchase_summary {summary_s:6.1f} s   "
        f"customers {len(s):,}   repeat buyers {(s['frequency'] > 0).sum():,}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--pg", help="PostgreSQL URL (a fresh schema is made and dropped)")
    args = ap.parse_args()
    frames = make_frames(args.customers, args.orders)
    print(f"{args.customers:,} customers, {args.orders:,} orders")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench.db")
        bench(store, frames, "SQLite")
        store.close()
    if args.pg:
        admin = sa.create_engine(args.pg)
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS bench_summary CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA bench_summary")
        sep = "&" if "?" in args.pg else "?"
        store = Store.open(f"{args.pg}{sep}options=-csearch_path%3Dbench_summary")
        bench(store, frames, "PostgreSQL")
        store.close()
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA bench_summary CASCADE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
