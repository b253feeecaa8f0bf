"""CDNOW holdout at several cut-offs: standard BTYD intervals against a calendar-time effect.

For each cut-off week c (the cohort: first purchase in weeks 1-12 of 1997), fit the
standard model (MAP + Laplace) on weeks 1..c, forecast the cohort's repeat transactions in
weeks c+1..78 in three equal periods, with purchase noise (posterior predictive), and
compare with what happened:

- ``standard``: :func:`crmkit.models.clv.models.repeat_purchases` with ``noise=True``;
- ``random walk``: the same draws times a log-rate random walk fitted to the weekly
  residuals of weeks 1..c (the default :class:`~crmkit.models.clv.calendar.CalendarEffect`);
- ``AR(1) or walk``: ``CalendarEffect(half_lives=...)``, which also weighs mean-reverting
  alternatives (half-lives of a week to 16 months).

Reported per row: P5 / P50 / P95 of the total to week 78 and of the first third of the
horizon, whether the observed value is inside the 90% interval, and the interval width
relative to the observed value. Coverage over all rows at the end. Nothing is tuned to a
cut-off: the same priors everywhere.

Run: .venv/bin/python benchmarks/bench_clv_holdout.py [sample|master] [bgnbd,paretonbd]
     [cut-offs, default 26,32,39,45,52,60] [n_draws, default 1000]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

from crmkit.data.cdnow import load_cdnow_transactions, summary_from_transactions
from crmkit.models.clv.calendar import CalendarEffect, repeat_counts_by_period
from crmkit.models.clv.models import BetaGeo, ParetoNBD, repeat_purchases

warnings.simplefilter("ignore")
START = pd.Timestamp("1997-01-01")
END = pd.Timestamp("1998-06-30")
COHORT = pd.Timestamp("1997-03-25")  # the CDNOW cohort: first purchase in weeks 1-12
MODELS = {"bgnbd": BetaGeo, "paretonbd": ParetoNBD}


def week(n: int) -> pd.Timestamp:
    """Last day of week n (week 1 = 1997-01-01 .. 01-07)."""
    return START + pd.Timedelta(days=7 * n - 1)


def holdout_by_period(tx, ids, cut, h, n_periods):
    """Observed repeat purchase days of the customers in each forecast period."""
    days = tx.assign(date=tx["date"].dt.normalize())[["customer_id", "date"]].drop_duplicates()
    days = days[days["customer_id"].isin(ids)]
    age = (days["date"] - cut).dt.days.to_numpy() / 7.0
    k = np.ceil(age / (h / n_periods) - 1e-9).astype(int) - 1
    return np.bincount(k[(age > 0) & (k < n_periods)], minlength=n_periods)


def q(a):
    return np.quantile(a, [0.05, 0.5, 0.95])


def run(tx, kind, c, n_draws, seed=0):
    cut = week(c)
    s = summary_from_transactions(tx, cut, END, first_purchase_by=COHORT)
    m = MODELS[kind](random_seed=seed).fit(s, method="map")
    h = (END - cut).days / 7.0
    obs = holdout_by_period(tx, s["customer_id"], cut, h, 3)
    std = repeat_purchases(
        m, s, periods=3, period_length=h / 3, noise=True, n_draws=n_draws, seed=seed
    )
    past = repeat_counts_by_period(tx, s["customer_id"], cut, c)
    walk = CalendarEffect().fit(past, purchase_model=m, summary=s)  # the default: random walk
    eff = CalendarEffect(half_lives=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)).fit(
        past, purchase_model=m, summary=s
    )
    rows = []
    forecasts = (
        ("standard", std),
        ("random walk", walk.adjust(std, seed=seed + 1)),
        ("AR(1) or walk", eff.adjust(std, seed=seed + 1)),
    )
    for name, da in forecasts:
        a = da.to_numpy()
        for what, vals, o in (
            ("to week 78", a.sum(1), obs.sum()),
            ("first third", a[:, 0], obs[0]),
        ):
            lo, med, hi = q(vals)
            rows.append(
                {
                    "model": kind,
                    "cutoff": c,
                    "horizon_wk": round(h if what == "to week 78" else h / 3, 1),
                    "total": what,
                    "forecast": name,
                    "observed": int(o),
                    "p5": lo,
                    "p50": med,
                    "p95": hi,
                    "covered": bool(lo <= o <= hi),
                    "width_rel": (hi - lo) / o,
                }
            )
    return rows, walk.summary(), eff.summary()


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "sample"
    kinds = (sys.argv[2] if len(sys.argv) > 2 else "bgnbd,paretonbd").split(",")
    cuts = [int(v) for v in (sys.argv[3] if len(sys.argv) > 3 else "26,32,39,45,52,60").split(",")]
    n_draws = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    tx = load_cdnow_transactions(which)
    rows = []
    t0 = time.perf_counter()
    for kind in kinds:
        for c in cuts:
            r, summ, ar = run(tx, kind, c, n_draws)
            rows += r
            for row in r:  # as they come: a long run can be read before it ends
                print(
                    {k: round(float(v), 1) if isinstance(v, float) else v for k, v in row.items()}
                )
            print(
                f"{which} {kind} cut-off {c}: random walk sigma/week "
                f"{summ['sigma_per_period']:.3f}, tau {summ['tau']:.3f}, "
                f"level {summ['level']:+.3f} (sd {summ['level_sd']:.3f}); AR(1) or walk: "
                f"phi {ar['phi']:.3f}, P(random walk) {ar['p_random_walk']:.2f}",
                flush=True,
            )
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(out.round(2).to_string(index=False))
    cov = out.groupby(["total", "forecast"]).agg(
        coverage=("covered", "mean"), n=("covered", "size"), median_width=("width_rel", "median")
    )
    print(cov.round(2).to_string())
    print(f"{which}: {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
