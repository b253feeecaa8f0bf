"""Gamma-Gamma NUTS on CDNOW master with the default q > 1 prior: numba kernel vs PyMC graph.

Run: ``.venv/bin/python benchmarks/bench_gg_prior.py``. Prints, per sampler, the ``fit()`` wall
time, the load average, R-hat, bulk ESS, divergences and the posterior means of p, q, gamma
(published maximum-likelihood values, Fader, Hardie & Lee 2005: p 6.25, q 3.74, gamma 15.44).
Results: ``benchmarks/results/clv_nuts.md``.
"""

from __future__ import annotations

import os
import time

from crmkit.data.cdnow import load_cdnow_summary
from crmkit.models.clv.models import GammaGamma


def main() -> None:
    """Fit the default-prior Gamma-Gamma by NUTS with each sampler and print the figures."""
    df = load_cdnow_summary()
    df = df[df["frequency"] > 0]
    for sampler in ("nutpie-numba", "nutpie"):
        t0 = time.perf_counter()
        m = GammaGamma(random_seed=1).fit(
            df, method="nuts", chains=2, tune=1000, draws=1000, sampler=sampler
        )
        wall = time.perf_counter() - t0
        d = m.diagnostics_
        post = m.idata_.posterior
        means = {k: round(float(post[k].mean()), 3) for k in ("p", "q", "gamma")}
        print(
            f"{sampler}: {wall:.1f} s (load {os.getloadavg()[0]:.1f}), sampler {d['sampler']}, "
            f"R-hat {d['r_hat_max']:.4f}, bulk ESS {d['ess_bulk_min']:.0f}, "
            f"{d['divergences']} divergences, means {means}, q min {float(post['q'].min()):.3f}"
        )


if __name__ == "__main__":
    main()
