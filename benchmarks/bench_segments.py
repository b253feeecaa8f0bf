"""RFM scores and named segments for 1M customers (issue 3 target: at most 10 s).

Times, on a purchase summary already in memory (the store computes it in SQL; see
bench_summary.py for that part):
- ``rfm_scores`` + ``rfm_segments`` with ids in store order (sorted) and shuffled;
- ``segment_summary`` with the trend over the orders, ``clv_tiers``;
- ``cohort_table`` (customers and revenue) over the orders.
With ``--store`` it also loads a SQLite store and times the whole path
``store.purchase_summary`` -> ``rfm_scores`` -> ``rfm_segments``.
With ``--clv N`` it times the segment explorer's CLV on N customers simulated from BG/NBD and
Gamma-Gamma: ``customer_value`` (MLE fits + CLV draws), tiers, and ``segment_clv`` (sums of
draws) for the RFM-like segments, and exits.

    .venv/bin/python benchmarks/bench_segments.py [--customers 1000000] [--orders 5000000] \
        [--store] [--only-rfm] [--repeat 3]
    .venv/bin/python benchmarks/bench_segments.py --clv 20000 [--clv-draws 100]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.data.purchases import purchase_summary
from crmkit.segments import (
    clv_tiers,
    cohort_table,
    rfm_scores,
    rfm_segments,
    segment_summary,
)

CUTOFF = pd.Timestamp("2025-12-31")


def make_orders(n_customers: int, n_orders: int, seed: int = 0) -> pd.DataFrame:
    """Orders over three years with skewed purchase counts (many one-time buyers)."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill(np.arange(n_customers).astype(str), 7))
    weights = rng.gamma(0.5, 1.0, n_customers)
    # every customer orders at least once, the rest of the orders go to skewed favourites
    extra = rng.choice(n_customers, size=max(n_orders - n_customers, 0), p=weights / weights.sum())
    who = np.concatenate([np.arange(n_customers), extra])[:n_orders]
    n_orders = len(who)
    start = np.datetime64("2023-01-01T00:00:00")
    when = start + rng.integers(0, 3 * 365 * 24 * 3600, n_orders).astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(n_orders).astype(str)),
            "account_id": ids[who],
            "ordered_at": when.astype("datetime64[ns]"),
            "amount": np.round(rng.gamma(2.0, 30.0, n_orders), 2),
        }
    )


def timed(label: str, fn, *args, **kwargs):
    """Run ``fn`` once, print and return its result and seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"  {label:<46} {dt:7.2f} s wall {cpu:7.2f} s cpu")
    return result, dt


def rfm_pipeline(summary: pd.DataFrame) -> pd.DataFrame:
    """RFM scores and named segments."""
    return rfm_segments(rfm_scores(summary))


def clv_timing(n: int, n_draws: int) -> None:
    """Time the CLV the segment explorer computes, on ``n`` simulated customers."""
    from crmkit.data.cdnow import simulate_bgnbd_gammagamma
    from crmkit.segments import customer_clv_tiers, customer_value, segment_clv

    data = simulate_bgnbd_gammagamma(n, seed=5)
    data["customer_id"] = [f"C{i:07d}" for i in range(n)]
    print(f"CLV for {n:,} customers, {n_draws} draws, 12 months:")
    timed("import crmkit.models.clv.models (PyMC)", __import__, "crmkit.models.clv.models")
    clv, t_fit = timed("customer_value (BG/NBD + Gamma-Gamma MLE, draws)", customer_value,
                       data, n_draws=n_draws)  # fmt: skip
    tiers, _ = timed("customer_clv_tiers", customer_clv_tiers, clv)
    labels = pd.Series(np.random.default_rng(1).integers(0, 11, n).astype(str), index=tiers.index)
    _, t_seg = timed("segment_clv, 11 segments (sums of draws)", segment_clv, clv, labels)
    _, t_tier = timed("segment_clv, CLV tiers", segment_clv, clv, tiers)
    print(f"  first view (fit + tiers + one segmentation): {t_fit + t_seg:.2f} s; "
          f"each further segmentation {max(t_seg, t_tier):.2f} s")  # fmt: skip


def main() -> None:
    """Build the data, run the timings and print them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--store", action="store_true", help="also time the path from SQLite")
    ap.add_argument("--only-rfm", action="store_true", help="time only the RFM target")
    ap.add_argument("--repeat", type=int, default=3, help="RFM runs (the best is kept)")
    ap.add_argument("--clv", type=int, default=0, help="time only the CLV of N customers")
    ap.add_argument("--clv-draws", type=int, default=100, help="CLV parameter draws")
    args = ap.parse_args()
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.clv:
        clv_timing(args.clv, args.clv_draws)
        print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return

    print(f"data: {args.customers:,} customers, {args.orders:,} orders over three years")
    orders, _ = timed("generate orders", make_orders, args.customers, args.orders)
    summary, _ = timed(
        "purchase summary (pandas, not timed in target)",
        purchase_summary,
        orders,
        CUTOFF,
        time_unit="D",
        customer="account_id",
        date="ordered_at",
    )
    n = len(summary)
    print(f"  customers with an order: {n:,}; one-time buyers: {(summary.frequency == 0).sum():,}")

    print(f"RFM (target <= 10 s for 1M customers), best of {args.repeat}:")
    shuffled = summary.sample(frac=1.0, random_state=1).reset_index(drop=True)
    shuffled.attrs = summary.attrs
    t_sorted = t_shuf = float("inf")
    for i in range(args.repeat):
        seg, t = timed(f"rfm_scores + rfm_segments (ids sorted) #{i + 1}", rfm_pipeline, summary)
        t_sorted = min(t_sorted, t)
        seg2, t = timed(f"rfm_scores + rfm_segments (shuffled) #{i + 1}", rfm_pipeline, shuffled)
        t_shuf = min(t_shuf, t)
    same = seg.set_index("customer_id")["rfm_code"].equals(
        seg2.set_index("customer_id")["rfm_code"].loc[seg["customer_id"]]
    )
    print(f"  same scores whatever the row order: {same}")
    sizes = seg["rfm_segment"].value_counts(sort=False)
    print("  segment sizes: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))

    if args.only_rfm:
        report(t_sorted, t_shuf)
        return
    print("segment summaries and cohorts:")
    timed("segment_summary (sizes, shares)", segment_summary, seg, summary, column="rfm_segment")
    timed(
        "segment_summary with monthly trend over orders",
        segment_summary,
        seg,
        summary,
        orders=orders,
        column="rfm_segment",
    )
    clv = pd.Series(summary["revenue"].to_numpy(), index=summary["customer_id"])
    timed("clv_tiers (4 tiers)", clv_tiers, clv, 4)
    timed("cohort_table customers (monthly)", cohort_table, orders)
    timed("cohort_table revenue rates (monthly)", cohort_table, orders, value="revenue", rate=True)

    if args.store:
        from crmkit.store import Store

        print("end to end from a SQLite store:")
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp) / "bench.db")
            accounts = pd.DataFrame(
                {
                    "account_id": summary["customer_id"],
                    "name": summary["customer_id"],
                    "created_at": pd.Timestamp("2023-01-01"),
                }
            )
            timed(
                "load accounts + orders (validate=False)",
                store.insert_many,
                {"accounts": accounts, "orders": orders},
                validate=False,
            )
            db_summary, t_sum = timed("store.purchase_summary", store.purchase_summary, CUTOFF)
            _, t_rfm = timed("rfm_scores + rfm_segments", rfm_pipeline, db_summary)
            print(f"  {'total from the database':<46} {t_sum + t_rfm:7.2f} s")
            store.close()

    report(t_sorted, t_shuf)


def report(t_sorted: float, t_shuf: float) -> None:
    """Print peak memory, the load and the verdict on the target."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    worst = max(t_sorted, t_shuf)
    print(f"RFM target <= 10 s: {'met' if worst <= 10.0 else 'MISSED'} ({worst:.2f} s wall)")


if __name__ == "__main__":
    main()
