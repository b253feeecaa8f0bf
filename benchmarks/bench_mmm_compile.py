"""Marketing-mix model fit time by phase: build, nutpie compile (twice), sampling.

CPU seconds per phase tell the compile cost (single-threaded, paid on every fit) from the
sampling cost (2 chains on 2 threads) whatever the machine's load; ``pymc`` runs PyMC's
own NUTS instead, for comparison.

    .venv/bin/python benchmarks/bench_mmm_compile.py [nutpie|pymc] [--weeks 156]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm


def _cpu() -> float:
    """CPU seconds of this process so far (all threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sampler", nargs="?", default="nutpie", choices=("nutpie", "pymc"))
    ap.add_argument("--weeks", type=int, default=156)
    ap.add_argument("--channels", type=int, default=5)
    args = ap.parse_args()
    c = args.channels
    df, _ = simulate_mmm(
        args.weeks,
        decay=[0.2 + 0.5 * i / max(c - 1, 1) for i in range(c)],
        lam=[1.5 + 0.5 * i for i in range(c)],
        beta=[300.0 - 30 * i for i in range(c)],
        seed=0,
    )
    mmm = MarketingMixModel([f"x{i + 1}" for i in range(c)], random_seed=0)
    print(f"loadavg {os.getloadavg()}; CPU after imports {_cpu():.1f} s")
    t0, c0 = time.perf_counter(), _cpu()
    model = mmm.build_model(df)
    print(f"build: {time.perf_counter() - t0:.1f} s wall, {_cpu() - c0:.1f} s CPU")
    if args.sampler == "nutpie":
        import nutpie

        for k in range(2):
            t0, c0 = time.perf_counter(), _cpu()
            compiled = nutpie.compile_pymc_model(model, var_names=mmm.param_names)
            print(f"compile #{k + 1}: {time.perf_counter() - t0:.1f} s wall, {_cpu() - c0:.1f} CPU")
        t0, c0 = time.perf_counter(), _cpu()
        nutpie.sample(
            compiled, draws=1000, tune=1000, chains=2, cores=2, seed=0, progress_bar=False
        )
        print(f"sampling: {time.perf_counter() - t0:.1f} s wall, {_cpu() - c0:.1f} s CPU")
    else:
        import pymc as pm

        t0 = time.perf_counter()
        with model:
            pm.sample(
                draws=1000,
                tune=1000,
                chains=2,
                cores=2,
                random_seed=0,
                progressbar=False,
                compute_convergence_checks=False,
            )
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(
            f"pm.sample: {time.perf_counter() - t0:.1f} s wall, "
            f"{ru.ru_utime + ru.ru_stime:.1f} s CPU in the chain processes"
        )
    print(f"loadavg {os.getloadavg()}")


if __name__ == "__main__":
    main()
