"""PyMC-Marketing's BetaGeoModel / ParetoNBDModel on CDNOW, same priors and draws as crmkit.

Run in its own venv (not crmkit's):
  python3 -m venv /work/bench-venvs/pymcm && /work/bench-venvs/pymcm/bin/pip install pymc-marketing
  /work/bench-venvs/pymcm/bin/python benchmarks/bench_clv_pymcm.py KIND WHICH [CHAINS] [DRAWS]
(KIND bgnbd or paretonbd, WHICH sample or master, or a CSV with customer_id, frequency,
recency, T such as the 1M simulated customers written by
`.venv/bin/python benchmarks/bench_clv_nuts.py export million /tmp/clv_million.csv`).
Reads the CDNOW files directly (no crmkit import). Pareto/NBD as in issue 4:
  timeout 1800 /work/bench-venvs/pymcm/bin/python benchmarks/bench_clv_pymcm.py paretonbd sample 4
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

warnings.simplefilter("ignore")
CDNOW = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "cdnow"


def summary(which: str) -> pd.DataFrame:
    if which.endswith(".csv"):
        return pd.read_csv(which, usecols=["customer_id", "frequency", "recency", "T"])
    if which == "sample":
        raw = pd.read_csv(
            CDNOW / "CDNOW_sample.txt",
            sep=r"\s+",
            header=None,
            names=["m", "customer_id", "date", "n", "amount"],
        )
    else:
        raw = pd.read_csv(
            CDNOW / "CDNOW_master.txt",
            sep=r"\s+",
            header=0,
            names=["customer_id", "date", "n", "amount"],
        )
    raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    cal = raw[raw["date"] <= "1997-09-30"].drop_duplicates(["customer_id", "date"])
    g = cal.groupby("customer_id")["date"]
    first, last, n = g.min(), g.max(), g.size()
    end = pd.Timestamp("1997-09-30")
    return pd.DataFrame(
        {
            "customer_id": first.index,
            "frequency": (n - 1).to_numpy(),
            "recency": ((last - first).dt.days / 7).to_numpy(),
            "T": ((end - first).dt.days / 7).to_numpy(),
        }
    )


def main() -> None:
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel, ParetoNBDModel

    kind = sys.argv[1] if len(sys.argv) > 1 else "bgnbd"
    which = sys.argv[2] if len(sys.argv) > 2 else "sample"
    chains = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    draws = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    print("$", sys.executable, "benchmarks/bench_clv_pymcm.py", " ".join(sys.argv[1:]))
    print(f"load avg before {os.getloadavg()[0]:.1f}", flush=True)
    df = summary(which)
    if kind == "bgnbd":
        cfg = {
            "r": Prior("HalfNormal", sigma=10.0),
            "alpha": Prior("HalfNormal", sigma=100.0),
            "a": Prior("HalfNormal", sigma=10.0),
            "b": Prior("HalfNormal", sigma=10.0),
        }
        model = BetaGeoModel(data=df, model_config=cfg)
        names = ["r", "alpha", "a", "b"]
    else:
        cfg = {
            "r": Prior("HalfNormal", sigma=10.0),
            "alpha": Prior("HalfNormal", sigma=100.0),
            "s": Prior("HalfNormal", sigma=10.0),
            "beta": Prior("HalfNormal", sigma=100.0),
        }
        model = ParetoNBDModel(data=df, model_config=cfg)
        names = ["r", "alpha", "s", "beta"]
    t = time.perf_counter()
    idata = model.fit(
        method="mcmc",
        nuts_sampler="nutpie",
        chains=chains,
        tune=draws,
        draws=draws,
        random_seed=1,
        progressbar=False,
    )
    wall = time.perf_counter() - t
    print(
        f"pymc-marketing {type(model).__name__} {which} n={len(df)} "
        f"NUTS {chains}x({draws}+{draws}): {wall:.1f} s (load avg {os.getloadavg()[0]:.1f})"
    )
    post = idata.posterior
    print("means", {k: round(float(post[k].mean()), 4) for k in names})
    print("sd", {k: round(float(post[k].std()), 4) for k in names})


if __name__ == "__main__":
    main()
