"""Repeat revenue of a seasonal retailer: 90% intervals, interval score and CRPS at 20 cut-offs.

The retailer (:func:`crmkit.data.demo.seasonal_retailer.simulate_seasonal_retailer`): two
years of BG/NBD purchases and Gamma-Gamma spend, with +60% purchase rate and +30% basket
in November and December, customers arriving over the whole span. For each cut-off
(every two weeks from week 53 to week 91, so at least a year of history), fit BG/NBD and
Gamma-Gamma (MAP + Laplace) on the customers acquired by then, forecast their repeat
revenue in the next 13 weeks with purchase and spend noise (posterior predictive), and
compare with what they spent:

- ``standard``: :func:`crmkit.models.clv.models.repeat_purchases` with the spend model;
- the calendar-effect candidates of :data:`CANDIDATES` (the same in
  ``bench_clv_holdout.py``): each fits :func:`crmkit.models.clv.spend.fit_calendar_effects`
  with its settings of the rate effect and the spend effect (None: no spend effect) and
  multiplies the revenue draws by both multipliers
  (:func:`crmkit.models.clv.spend.adjust_revenue`). ``random walk (before #17)`` is the
  calendar effect before issue 17 (random walk on the rate, no seasonality, no spend);
  ``rate + spend (first #17)`` the first version of issue 17 (random walk + seasonality on
  rate and spend); ``default`` is what :func:`fit_calendar_effects` does without settings
  (since 2026-12-05: rate AR(1) or walk with prior 1/2 on the walk, spend effect weighed
  against "no spend effect", both seasonal from 12 months).

Scores of each interval and draw set against the observed total ``y`` (lower is better),
divided by ``y`` so that cut-offs add up:

- interval score of the 90% interval (Gneiting & Raftery 2007):
  ``(u - l) + (2 / 0.1) (l - y)+ + (2 / 0.1) (y - u)+``;
- CRPS of the draws: ``mean|X - y| - mean|X - X'| / 2``.

Run: nice -n 10 .venv/bin/python benchmarks/bench_clv_seasonal.py [n_customers=4000]
     [n_draws=1000] [seed=0]
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from crmkit.data.demo.seasonal_retailer import simulate_seasonal_retailer
from crmkit.data.purchases import purchase_summary
from crmkit.models.clv.calendar import CalendarEffect
from crmkit.models.clv.models import BetaGeo, GammaGamma, repeat_purchases
from crmkit.models.clv.spend import SpendEffect, adjust_revenue, fit_calendar_effects

warnings.simplefilter("ignore")
ALPHA = 0.1
HORIZON_WEEKS = 13
#: Calendar-effect candidates: name -> (CalendarEffect settings, SpendEffect settings or
#: None for no spend effect); ``default`` uses fit_calendar_effects' own defaults.
CANDIDATES: dict[str, tuple[dict, dict | None]] = {
    "random walk (before #17)": ({"half_lives": (), "seasonality": "none"}, None),
    "AR(1) or walk, equal weights": ({"walk_prior": None, "seasonality": "none"}, None),
    "rate + spend (first #17)": ({"half_lives": ()}, {"none_prior": 0.0}),
    "AR(1) or walk 1/2, no spend": ({}, None),
    "AR(1) or walk 1/2 + spend": ({}, {"none_prior": 0.0}),
    "walk + spend or none": ({"half_lives": ()}, {}),
    "AR(1) or walk 1/8 + spend or none": ({"walk_prior": None}, {}),
    "default + season_full 2": ({"season_full": 2.0}, {"season_full": 2.0}),
    "default": ({}, {}),
}
VARIANTS = ("standard", *CANDIDATES)
#: Variants whose intervals are printed per cut-off.
SHOWN = ("standard", "random walk (before #17)", "rate + spend (first #17)", "default")


def fit_candidate(
    name: str,
    tx: pd.DataFrame,
    summary: pd.DataFrame,
    purchase_model: Any,
    spend_model: Any,
    cutoff: object,
    n_periods: int,
) -> tuple[CalendarEffect, SpendEffect | None]:
    """The fitted rate and spend effects of candidate ``name`` (spend None: no spend effect).

    Parameters
    ----------
    name
        A key of :data:`CANDIDATES`.
    tx, summary, purchase_model, spend_model, cutoff, n_periods
        As :func:`crmkit.models.clv.spend.fit_calendar_effects`.

    Returns
    -------
    tuple
        The rate effect and the spend effect (or None).
    """
    rate_kw, spend_kw = CANDIDATES[name]
    if name == "default":
        return fit_calendar_effects(
            tx, summary, purchase_model, spend_model, cutoff, n_periods=n_periods
        )
    return fit_calendar_effects(
        tx,
        summary,
        purchase_model,
        None if spend_kw is None else spend_model,
        cutoff,
        n_periods=n_periods,
        rate=CalendarEffect(**rate_kw),
        spend=None if spend_kw is None else SpendEffect(**spend_kw),
    )


def crps(draws: np.ndarray, y: float) -> float:
    """CRPS of a sample against an observation (energy form, sorted: O(n log n))."""
    x = np.sort(np.asarray(draws, dtype=float))
    n = len(x)
    spread = 2.0 * np.sum(x * (2 * np.arange(1, n + 1) - n - 1)) / n**2
    return float(np.mean(np.abs(x - y)) - 0.5 * spread)


def scores(draws: np.ndarray, y: float) -> dict[str, float]:
    """90% interval, coverage, relative interval score, relative CRPS and median error."""
    lo, med, hi = np.quantile(draws, [ALPHA / 2, 0.5, 1 - ALPHA / 2])
    iscore = (hi - lo) + (2 / ALPHA) * (max(lo - y, 0.0) + max(y - hi, 0.0))
    return {
        "p5": lo,
        "p50": med,
        "p95": hi,
        "covered": bool(lo <= y <= hi),
        "width_rel": (hi - lo) / y,
        "is_rel": iscore / y,
        "crps_rel": crps(draws, y) / y,
        "median_err": med / y - 1.0,
    }


def holdout_revenue(tx: pd.DataFrame, ids: pd.Series, cut: pd.Timestamp, days: int) -> float:
    """Revenue of the customers' purchases in the ``days`` after the cut-off."""
    t = tx[tx["customer_id"].isin(ids)]
    return float(
        t.loc[(t["date"] > cut) & (t["date"] <= cut + pd.Timedelta(days=days)), "amount"].sum()
    )


def run(tx: pd.DataFrame, cut: pd.Timestamp, n_draws: int, seed: int) -> list[dict]:
    """One cut-off: every variant's scores."""
    s = purchase_summary(tx, cut, time_unit="W", customer="customer_id", date="date")
    s = s[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    bg = BetaGeo(random_seed=seed).fit(s, method="map")
    gg = GammaGamma(random_seed=seed).fit(s[s["frequency"] > 0], method="map")
    h = HORIZON_WEEKS
    rev = repeat_purchases(
        bg, s, spend_model=gg, periods=1, period_length=h, noise=True, n_draws=n_draws, seed=seed
    )
    weeks = int(np.floor(s["T"].max()))
    y = holdout_revenue(tx, s["customer_id"], cut, 7 * h)
    draws = {"standard": rev}
    for name in CANDIDATES:
        rate, spend = fit_candidate(name, tx, s, bg, gg, cut, weeks)
        draws[name] = adjust_revenue(rev, rate, spend, seed=seed + 1)
    return [
        {
            "cutoff": cut.date().isoformat(),
            "variant": k,
            "observed": y,
            **scores(v.to_numpy().ravel(), y),
        }
        for k, v in draws.items()
    ]


def main() -> None:
    n_customers = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    n_draws = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    sim = simulate_seasonal_retailer(n_customers, seed=seed)
    tx = sim.transactions
    cuts = [sim.start + pd.Timedelta(days=7 * w - 1) for w in range(53, 93, 2)]
    t0 = time.perf_counter()
    rows: list[dict] = []
    for c in cuts:
        r = run(tx, c, n_draws, seed)
        rows += r
        print(
            c.date(),
            f"observed {r[0]['observed']:,.0f}",
            " | ".join(
                f"{x['variant']}: {x['p5']:,.0f}-{x['p95']:,.0f}{'' if x['covered'] else ' *'}"
                for x in r
                if x["variant"] in SHOWN
            ),
            flush=True,
        )
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    agg = out.groupby("variant", sort=False).agg(
        coverage=("covered", "mean"),
        n=("covered", "size"),
        median_width=("width_rel", "median"),
        interval_score=("is_rel", "mean"),
        crps=("crps_rel", "mean"),
        median_abs_err=("median_err", lambda e: float(np.median(np.abs(e)))),
    )
    print(agg.round(3).to_string())
    print(
        f"{n_customers} customers, {len(tx):,} transactions, {n_draws} draws: "
        f"{time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
