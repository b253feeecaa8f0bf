"""Speed and memory of a forecast from fitted models: 100k open deals x 24 months x 4,000 draws.

The pipeline model is fitted (MAP) on a small simulated company; 100,000 open deals are
then drawn at random over its stages, owners, ages and expected close dates, and their
revenue is simulated per month for 24 months with 4,000 draws, summed into the
(draw, period, group) roll-up. The numba kernels are compiled (and cached) by a warm-up
call first. Target (issue 5): at most 10 s and 4 GiB.

Run: ``.venv/bin/python benchmarks/bench_forecast.py [--deals 100000] [--draws 4000]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmkit.models.pipeline.data import GROUPS, deal_frame  # noqa: E402
from crmkit.models.pipeline.kernels import simulate_pipeline  # noqa: E402
from crmkit.models.pipeline.model import PipelineModel  # noqa: E402
from tests.sim_deals import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--param-draws", type=int, default=100)
    args = ap.parse_args()
    sim = simulate(n_months=30, arrivals=40, seed=0)
    model = PipelineModel(method="map", draws=500, chains=1).fit(
        deal_frame(sim["deals"], sim["accounts"]), sim["deal_history"], as_of="2024-04-30"
    )
    rng = np.random.default_rng(0)
    n = args.deals
    first = 2024 * 12 + 4
    codes = {"stage": rng.integers(0, len(model.levels_.stage), n)}
    for g in GROUPS:
        codes[g] = rng.integers(0, len(model.levels_.groups[g]), n)
    codes["created_m"] = first - 1 - rng.integers(0, 18, n)
    codes["expected_m"] = np.where(rng.random(n) < 0.1, -1, first + rng.integers(-3, 9, n))
    amount = rng.lognormal(8.5, 0.8, n)
    n_groups = 40
    gidx = np.stack(
        [
            np.zeros(n, np.int64),
            1 + rng.integers(0, 5, n),
            6 + rng.integers(0, 30, n),
            36 + rng.integers(0, 4, n),
        ],
        axis=1,
    )
    post = model.posterior_subset(args.param_draws, 0)
    mu, sig = model.amount_.draws(args.param_draws, 0)
    period_of_k = np.arange(args.months)
    kw = dict(
        first_month=first,
        period_of_k=period_of_k,
        frac_first=1.0,
        ratio_mu=mu,
        ratio_sigma=sig,
        n_periods=args.months,
        n_groups=n_groups,
        seed=0,
    )
    t0 = time.perf_counter()
    small = {k: v[:1000] for k, v in codes.items()}
    simulate_pipeline(post, small, amount[:1000], gidx[:1000], n_draws=100, **kw)
    warm = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    rev, p_win, _ = simulate_pipeline(post, codes, amount, gidx, n_draws=args.draws, **kw)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"deals={n} months={args.months} draws={args.draws} param_draws={args.param_draws}")
    print(
        f"warm-up (compile or cache load) {warm:.1f} s; forecast {secs:.2f} s "
        f"(CPU {cpu:.1f} s over all threads); "
        f"peak RSS {rss:.0f} MiB (before forecast {rss0:.0f} MiB)"
    )
    tot = rev[:, :, 0].sum(axis=1)
    print(
        f"total over 24 months: p10 {np.quantile(tot, 0.1):,.0f}  p50 {np.median(tot):,.0f}  "
        f"p90 {np.quantile(tot, 0.9):,.0f}; mean P(win) {p_win.mean():.3f}"
    )


if __name__ == "__main__":
    main()
