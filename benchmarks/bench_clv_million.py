"""1M simulated customers: BG/NBD + Gamma-Gamma fit time, and 12-month revenue prediction time.

Run: .venv/bin/python benchmarks/bench_clv_million.py [fit|predict] [method] [n_customers]
Prints wall time and peak resident memory (resource.getrusage, whole process). The BG/NBD
totals use numba kernels compiled on first use and cached on disk (``cache=True``): the
first run after an installation or a change of the kernels includes the compilation.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import warnings

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.models.clv.models import BetaGeo, GammaGamma, repeat_purchases
from crmkit.models.inference.diagnostics import summary_line

warnings.simplefilter("ignore")


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "predict"
    method = sys.argv[2] if len(sys.argv) > 2 else "mle"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    sim = simulate_bgnbd_gammagamma(n, T_min=0.0, T_max=52.0, seed=1)
    print(f"simulated {n} customers, peak {peak_gib():.2f} GiB", flush=True)
    kw = {"chains": 2, "tune": 1000, "draws": 1000} if method == "nuts" else {}
    t = time.perf_counter()
    bg = BetaGeo(random_seed=1).fit(sim, method=method, **kw)
    gg = GammaGamma(random_seed=1).fit(sim, method=method, **kw)
    fit_s = time.perf_counter() - t
    print(f"fit BG/NBD + Gamma-Gamma ({method}): {fit_s:.1f} s, peak {peak_gib():.2f} GiB")
    print(summary_line(bg.diagnostics_), "|", summary_line(gg.diagnostics_), flush=True)
    if what == "predict":
        t = time.perf_counter()
        rev = repeat_purchases(bg, sim, periods=12, spend_model=gg, n_draws=1000)
        pred_s = time.perf_counter() - t
        tot = rev.sum("period")
        print(
            f"predict 12 months x 1000 draws for {n} customers: {pred_s:.1f} s, "
            f"peak {peak_gib():.2f} GiB; 12-month revenue P10/P50/P90 "
            f"{[round(float(v)) for v in tot.quantile([0.1, 0.5, 0.9])]}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
