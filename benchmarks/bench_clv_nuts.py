"""NUTS wall time of crmkit's BG/NBD (and Pareto/NBD) on CDNOW: 2 chains x 1000 tune x 1000 draws.

Run: .venv/bin/python benchmarks/bench_clv_nuts.py [bgnbd|paretonbd] [sample|master]
Prints wall time (including compilation), posterior means and diagnostics.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

from crmkit.datasets_cdnow import load_cdnow_transactions, summary_from_transactions
from crmkit.models.clv import BetaGeo, ParetoNBD

warnings.simplefilter("ignore")


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "bgnbd"
    which = sys.argv[2] if len(sys.argv) > 2 else "sample"
    s = summary_from_transactions(load_cdnow_transactions(which))
    cls = BetaGeo if kind == "bgnbd" else ParetoNBD
    t = time.perf_counter()
    m = cls(random_seed=1).fit(s, method="nuts", chains=2, tune=1000, draws=1000)
    wall = time.perf_counter() - t
    print(
        f"crmkit {cls.__name__} {which} n={len(s)} NUTS 2x(1000+1000): {wall:.1f} s "
        f"(load avg {os.getloadavg()[0]:.1f})"
    )
    print("means", {k: round(v, 4) for k, v in m.params_.items()})
    print("sd", {k: round(float(m.idata_.posterior[k].std()), 4) for k in m.param_names})
    print(m.diagnostics_summary())


if __name__ == "__main__":
    main()
