"""NUTS wall time of crmkit's CLV models: CDNOW (BG/NBD, Pareto/NBD) and 1M simulated customers.

Run (each prints its own command line, load average, wall and CPU time, peak RSS, posterior
means with Monte Carlo standard errors, R-hat, ESS and divergences):

  .venv/bin/python benchmarks/bench_clv_nuts.py bgnbd sample
  .venv/bin/python benchmarks/bench_clv_nuts.py bgnbd master
  .venv/bin/python benchmarks/bench_clv_nuts.py paretonbd sample 4
  .venv/bin/python benchmarks/bench_clv_nuts.py bggg million

Arguments: KIND (bgnbd, paretonbd, or bggg = BG/NBD then Gamma-Gamma), DATA (sample,
master: CDNOW; million: 1,000,000 simulated customers, T uniform 0-52 weeks on a day grid,
for which the distance of each posterior mean from the simulator's truth is printed in
posterior sd),
CHAINS (default 2), SAMPLER (default: crmkit's choice, i.e. "nutpie-numba"; or "nutpie",
"nutpie-pyfunc", "pymc"). Always 1,000 tuning and 1,000 draws per chain, seed 1.
`bench_clv_nuts.py export million /tmp/clv_million.csv` writes the simulated data for
`bench_clv_pymcm.py`.
"""

from __future__ import annotations

import inspect
import os
import resource
import sys
import time
import warnings

import arviz as az

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.models.clv.models import BetaGeo, GammaGamma, ParetoNBD

warnings.simplefilter("ignore")


def peak_gib() -> float:
    """Peak resident memory of this process, GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.1f}"


def data(which: str):
    """A purchase summary (with monetary_value for the simulated data)."""
    if which == "million":
        return simulate_bgnbd_gammagamma(1_000_000, T_min=0.0, T_max=52.0, seed=1)
    from crmkit.data.cdnow import load_cdnow_transactions, summary_from_transactions

    return summary_from_transactions(load_cdnow_transactions(which))


def truth() -> dict[str, float]:
    """The simulator's true parameters (its defaults)."""
    sig = inspect.signature(simulate_bgnbd_gammagamma).parameters
    return {k: sig[k].default for k in ("r", "alpha", "a", "b", "p", "q", "gamma")}


def fit(cls, df, chains: int, sampler: str | None, known: dict[str, float] | None = None):
    """Fit one model by NUTS and print its figures."""
    kw = {"chains": chains, "tune": 1000, "draws": 1000}
    if sampler is not None:
        kw["sampler"] = sampler
    load0 = load()
    wall, cpu = time.perf_counter(), time.process_time()
    m = cls(random_seed=1).fit(df, method="nuts", **kw)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    post, names = m.idata_.posterior, m.param_names
    mcse = az.mcse(post)
    d = m.diagnostics_
    stats = m.idata_.sample_stats
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else float("nan")
    print(
        f"{cls.__name__} n={len(df)} NUTS {chains}x(1000+1000) sampler={d['sampler']}: "
        f"wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {peak_gib():.2f} GiB "
        f"(load avg {load0} before, {load()} after)"
    )
    print(
        "  means +- MCSE:",
        ", ".join(f"{k} {float(post[k].mean()):.4g} +- {float(mcse[k]):.2g}" for k in names),
    )
    print("  posterior sd:", ", ".join(f"{k} {float(post[k].std()):.3g}" for k in names))
    if known is not None:
        z = {k: (float(post[k].mean()) - known[k]) / float(post[k].std()) for k in names}
        print(
            "  (mean - truth) / sd:",
            ", ".join(f"{k} {z[k]:+.2f} (truth {known[k]:g})" for k in names),
        )
    print(
        f"  max R-hat {d['r_hat_max']:.4f}, min ESS bulk {d['ess_bulk_min']:.0f}, "
        f"tail {d['ess_tail_min']:.0f}, divergences {d['divergences']}, "
        f"mean leapfrog steps {steps:.1f}, ok={d['ok']}",
        flush=True,
    )
    return wall


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "bgnbd"
    which = sys.argv[2] if len(sys.argv) > 2 else "sample"
    chains = int(sys.argv[3]) if len(sys.argv) > 3 and kind != "export" else 2
    sampler = sys.argv[4] if len(sys.argv) > 4 else None
    print("$ .venv/bin/python benchmarks/bench_clv_nuts.py", " ".join(sys.argv[1:]))
    if kind == "export":  # write the data for bench_clv_pymcm.py
        cols = ["customer_id", "frequency", "recency", "T"]
        data(which)[cols].to_csv(sys.argv[3], index=False)
        return
    t = time.perf_counter()
    df = data(which)
    print(f"data {which}: {len(df)} customers in {time.perf_counter() - t:.1f} s", flush=True)
    classes = {"bgnbd": [BetaGeo], "paretonbd": [ParetoNBD], "bggg": [BetaGeo, GammaGamma]}
    known = truth() if which == "million" else None
    total = sum(fit(cls, df, chains, sampler, known) for cls in classes[kind])
    if len(classes[kind]) > 1:
        print(f"total fit wall {total:.1f} s, peak RSS {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
