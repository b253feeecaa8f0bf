"""Marketing-mix model speed: 3 years weekly, 5 channels (issue 6 target: <= 60 s on 2 cores).

Times a full NUTS fit (default settings: 2 chains x 1000 tune + 1000 draws, nutpie when
importable), compilation included, and the posterior computations an analyst then runs
(ROAS, contributions, response curves, a 13-week scenario, a budget allocation).

    .venv/bin/python benchmarks/bench_mmm_speed.py [--weeks 156] [--channels 5] \\
        [--sampler nutpie|pymc]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from crmkit.models.mmm import budget, scenario
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm


def _cpu() -> float:
    """CPU seconds of this process so far (all threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _loadavg() -> str:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weeks", type=int, default=156)
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--sampler", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    c = args.channels
    df, _ = simulate_mmm(
        args.weeks,
        decay=[0.2 + 0.5 * i / max(c - 1, 1) for i in range(c)],
        lam=[1.5 + 0.5 * i for i in range(c)],
        beta=[300.0 - 30 * i for i in range(c)],
        seed=args.seed,
    )
    channels = [f"x{i + 1}" for i in range(c)]
    print(f"cpus={os.cpu_count()} loadavg={_loadavg()} weeks={args.weeks} channels={c}")
    cpu_imports = _cpu()
    t0 = time.perf_counter()
    mmm = MarketingMixModel(
        channels, random_seed=args.seed, sampler_config={"sampler": args.sampler}
    )
    mmm.fit(df)
    fit_s = time.perf_counter() - t0
    cpu_s = _cpu()
    d = mmm.diagnostics_
    print(
        f"fit: {fit_s:.1f} s (sampler={d.get('sampler')}, r_hat_max={d['r_hat_max']:.3f}, "
        f"ess_bulk_min={d['ess_bulk_min']:.0f}, divergences={d['divergences']}, ok={d['ok']})"
    )
    print(
        f"  of which compile {d.get('compile_seconds')} s; process CPU: imports "
        f"{cpu_imports:.1f} s, fit {cpu_s - cpu_imports:.1f} s (compile single-threaded, the "
        f"2 chains on 2 threads); loadavg now {_loadavg()}"
    )
    t1 = time.perf_counter()
    mmm.roas()
    mmm.contribution_summary()
    mmm.response_curves()
    base = scenario.baseline_plan(mmm, 13)
    scenario.scenario(mmm, base.assign(x1=base["x1"] * 1.5))
    budget.optimize_budget(mmm, float(base[channels].iloc[0].sum()))
    print(
        "outputs (ROAS, contributions, curves, scenario, allocation): "
        f"{time.perf_counter() - t1:.1f} s"
    )
    print(f"TOTAL fit + outputs: {time.perf_counter() - t0:.1f} s (target fit <= 60 s)")
    print(f"loadavg at the end: {_loadavg()}")


if __name__ == "__main__":
    main()
