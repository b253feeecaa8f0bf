"""CDNOW holdout at several cut-offs: standard BTYD intervals against calendar-time effects.

For each cut-off week c (the cohort: first purchase in weeks 1-12 of 1997), fit the
standard models (BG/NBD or Pareto/NBD, and Gamma-Gamma; MAP + Laplace) on weeks 1..c,
forecast the cohort's repeat transactions and repeat revenue in weeks c+1..78 in three
equal periods, with purchase and spend noise (posterior predictive), and compare with what
happened:

- ``standard``: :func:`crmkit.models.clv.models.repeat_purchases` with ``noise=True``
  (with the Gamma-Gamma model for revenue);
- the calendar-effect candidates of ``bench_clv_seasonal.CANDIDATES`` (the same on the
  seasonal retailer), each :func:`crmkit.models.clv.spend.fit_calendar_effects` on
  weeks 1..c with its settings: purchases times the rate multiplier, revenue by
  :func:`crmkit.models.clv.spend.adjust_revenue` (rate and spend multipliers).
  ``random walk (before #17)`` is the default before issue 17 (random walk on the log
  rate, no seasonality, no spend effect); ``AR(1) or walk, equal weights`` the option
  before issue 17; ``rate + spend (first #17)`` the first version of issue 17; ``default``
  what :func:`fit_calendar_effects` does without settings. Seasonal terms start once the
  history spans 12 months, i.e. at cut-off 60.

Reported per row: P5 / P50 / P95 of the total to week 78 and of the first third of the
horizon, whether the observed value is inside the 90% interval, the interval width, the
interval score (Gneiting & Raftery 2007: width + (2 / 0.1) x miss distance) and the CRPS of
the draws, all relative to the observed value. Coverage and mean scores over all rows at
the end. Nothing is tuned to a cut-off: the same priors everywhere.

Run: nice -n 10 .venv/bin/python benchmarks/bench_clv_holdout.py [sample|master] [bgnbd,paretonbd]
     [cut-offs, default 26,32,39,45,52,60] [n_draws, default 1000]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from bench_clv_seasonal import CANDIDATES, fit_candidate, scores

from crmkit.data.cdnow import load_cdnow_transactions, merge_same_day, summary_from_transactions
from crmkit.models.clv.models import BetaGeo, GammaGamma, ParetoNBD, repeat_purchases
from crmkit.models.clv.spend import adjust_revenue

warnings.simplefilter("ignore")
START = pd.Timestamp("1997-01-01")
END = pd.Timestamp("1998-06-30")
COHORT = pd.Timestamp("1997-03-25")  # the CDNOW cohort: first purchase in weeks 1-12
MODELS = {"bgnbd": BetaGeo, "paretonbd": ParetoNBD}


def week(n: int) -> pd.Timestamp:
    """Last day of week n (week 1 = 1997-01-01 .. 01-07)."""
    return START + pd.Timedelta(days=7 * n - 1)


def holdout_by_period(tx, ids, cut, h, n_periods, revenue=False):
    """Observed repeat purchase days (or their revenue) of the customers per forecast period."""
    days = merge_same_day(tx)
    days = days[days["customer_id"].isin(ids)]
    age = (days["date"] - cut).dt.days.to_numpy() / 7.0
    k = np.ceil(age / (h / n_periods) - 1e-9).astype(int) - 1
    ok = (age > 0) & (k < n_periods)
    w = days["amount"].to_numpy(float)[ok] if revenue else None
    return np.bincount(k[ok], weights=w, minlength=n_periods)


def q(a):
    return np.quantile(a, [0.05, 0.5, 0.95])


def run(tx, kind, c, n_draws, seed=0):
    cut = week(c)
    s = summary_from_transactions(tx, cut, END, first_purchase_by=COHORT)
    m = MODELS[kind](random_seed=seed).fit(s, method="map")
    gg = GammaGamma(random_seed=seed).fit(s[s["frequency"] > 0], method="map")
    h = (END - cut).days / 7.0
    obs = holdout_by_period(tx, s["customer_id"], cut, h, 3)
    obs_rev = holdout_by_period(tx, s["customer_id"], cut, h, 3, revenue=True)
    kw = {"periods": 3, "period_length": h / 3, "noise": True, "n_draws": n_draws, "seed": seed}
    std = repeat_purchases(m, s, **kw)
    std_rev = repeat_purchases(m, s, spend_model=gg, **kw)
    forecasts = [("standard", std, std_rev)]
    for name in CANDIDATES:
        rate, spend = fit_candidate(name, tx, s, m, gg, cut, c)
        forecasts.append(
            (
                name,
                rate.adjust(std, seed=seed + 1),
                adjust_revenue(std_rev, rate, spend, seed=seed + 1),
            )
        )
    rows = []
    for name, da, da_rev in forecasts:
        for measure, arr, ob in (("purchases", da, obs), ("revenue", da_rev, obs_rev)):
            a = arr.to_numpy()
            for what, vals, o in (
                ("to week 78", a.sum(1), ob.sum()),
                ("first third", a[:, 0], ob[0]),
            ):
                rows.append(
                    {
                        "model": kind,
                        "cutoff": c,
                        "horizon_wk": round(h if what == "to week 78" else h / 3, 1),
                        "measure": measure,
                        "total": what,
                        "forecast": name,
                        "observed": round(float(o)),
                        **scores(vals, float(o)),
                    }
                )
    return rows, rate, spend  # the default's (the last candidate)


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
            r, rate, spend = run(tx, kind, c, n_draws)
            rows += r
            for row in r:  # as they come: a long run can be read before it ends
                print(
                    {
                        k: round(float(v), 3 if abs(v) < 10 else 1) if isinstance(v, float) else v
                        for k, v in row.items()
                    }
                )
            print(
                f"{which} {kind} cut-off {c}, default: {rate.describe()}; "
                f"{spend.describe()} (P(no spend effect) {spend.summary()['p_none']:.2f})",
                flush=True,
            )
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(out.round(2).to_string(index=False))
    cov = out.groupby(["measure", "total", "forecast"], sort=False).agg(
        coverage=("covered", "mean"),
        n=("covered", "size"),
        median_width=("width_rel", "median"),
        interval_score=("is_rel", "mean"),
        crps=("crps_rel", "mean"),
    )
    print(cov.round(3).to_string())
    allrows = out.groupby(["measure", "forecast"], sort=False).agg(
        coverage=("covered", "mean"),
        n=("covered", "size"),
        interval_score=("is_rel", "mean"),
        crps=("crps_rel", "mean"),
    )
    print(allrows.round(3).to_string())
    print(f"{which}: {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
