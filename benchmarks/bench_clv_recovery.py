"""Parameter recovery: simulate BG/NBD + Gamma-Gamma from known truth, fit, count 90% coverage.

Run: .venv/bin/python benchmarks/bench_clv_recovery.py [n_seeds] [n_customers] [method]
Default 50 seeds x 4,000 customers with MAP + Laplace (method "nuts" for full NUTS).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.models.clv.models import BetaGeo, GammaGamma

warnings.simplefilter("ignore")
TRUTH = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "gamma": 15.44}


def main() -> None:
    n_seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    method = sys.argv[3] if len(sys.argv) > 3 else "map"
    hits = {k: 0 for k in TRUTH}
    t = time.perf_counter()
    for seed in range(n_seeds):
        sim = simulate_bgnbd_gammagamma(n, seed=1000 + seed)
        kw = {"chains": 2, "tune": 500, "draws": 500} if method == "nuts" else {}
        for cls in (BetaGeo, GammaGamma):
            d = cls(random_seed=seed).fit(sim, method=method, **kw).posterior_draws()
            for k in cls.param_names:
                lo, hi = np.quantile(d[k], [0.05, 0.95])
                hits[k] += bool(lo <= TRUTH[k] <= hi)
    total = sum(hits.values()) / (n_seeds * len(hits))
    print(f"{n_seeds} seeds x {n} customers, method={method}, {time.perf_counter() - t:.0f} s")
    print("90% interval coverage per parameter:", {k: v / n_seeds for k, v in hits.items()})
    print(f"overall coverage: {total:.3f}")


if __name__ == "__main__":
    main()
