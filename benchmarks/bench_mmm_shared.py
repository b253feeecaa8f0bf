"""Marketing-mix fit on ../shared/datasets/mmm_simulated, crmkit beside PyMC-Marketing.

Fits crmkit's :class:`~crmkit.models.mmm.model.MarketingMixModel` on ``mmm_example.csv``
(179 weeks; channels x1, x2; events event_1, event_2; trend; yearly seasonality of order 2;
geometric adstock with l_max 8 and logistic saturation) and prints each channel's total
contribution, its share of the media contribution and its ROAS with 90% intervals. Then runs
PyMC-Marketing's ``MMM`` with the same specification in its own venv (default
``/work/bench-venvs/pymcm``; created with ``python -m venv`` and ``pip install
pymc-marketing`` when missing) and prints the same figures side by side.

    .venv/bin/python benchmarks/bench_mmm_shared.py [--draws 1000] [--venv PATH] [--skip-pymcm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.models.mmm.model import MarketingMixModel

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "datasets" / "mmm_simulated" / "mmm_example.csv").resolve()

PYMCM_SCRIPT = r"""
import json, sys, time
import numpy as np, pandas as pd
from pymc_marketing.mmm import MMM, GeometricAdstock, LogisticSaturation
path, draws, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
df = pd.read_csv(path, parse_dates=["date_week"])
X = df[["date_week", "x1", "x2", "event_1", "event_2", "t"]]
t0 = time.perf_counter()
mmm = MMM(date_column="date_week", channel_columns=["x1", "x2"],
          control_columns=["event_1", "event_2", "t"], adstock=GeometricAdstock(l_max=8),
          saturation=LogisticSaturation(), yearly_seasonality=2)
mmm.fit(X, df["y"], draws=draws, tune=draws, chains=2, cores=2, random_seed=seed,
        progressbar=False, nuts_sampler="nutpie")
secs = time.perf_counter() - t0
c = mmm.compute_channel_contribution_original_scale()  # (chain, draw, date, channel)
tot = c.sum("date").stack(sample=("chain", "draw")).transpose("sample", "channel").values
post = mmm.idata.posterior
decay = post["adstock_alpha"].stack(sample=("chain", "draw")).transpose("sample", ...).values
div = int(mmm.idata.sample_stats["diverging"].sum())
print("JSON" + json.dumps({"total": tot.tolist(), "decay": decay.tolist(), "seconds": secs,
                           "divergences": div}))
"""


def summarise(total: np.ndarray, spend: np.ndarray, channels: list[str]) -> pd.DataFrame:
    """Contribution, share and ROAS per channel with 90% intervals from draws (sample, channel)."""
    share = total / total.sum(axis=1, keepdims=True)
    rows = []
    for j, ch in enumerate(channels):
        row = {"channel": ch}
        for name, arr in (
            ("contribution", total[:, j]),
            ("share", share[:, j]),
            ("roas", total[:, j] / spend[j]),
        ):
            q = np.quantile(arr, [0.05, 0.5, 0.95])
            row[name] = f"{np.mean(arr):.3g} [{q[0]:.3g}, {q[2]:.3g}]"
        rows.append(row)
    return pd.DataFrame(rows)


def ensure_venv(venv: Path) -> Path:
    """The venv's python, creating the venv with pymc-marketing when it is missing."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "pymc-marketing", "nutpie"], check=True
        )
    return py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--venv", default="/work/bench-venvs/pymcm")
    ap.add_argument("--skip-pymcm", action="store_true")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark needs ../shared/datasets beside the repo")
    df = pd.read_csv(DATA, parse_dates=["date_week"])
    channels = ["x1", "x2"]
    spend = df[channels].sum().to_numpy(float)
    t0 = time.perf_counter()
    mmm = MarketingMixModel(
        channels,
        date_column="date_week",
        target="y",
        events=["event_1", "event_2"],
        l_max=8,
        yearly_order=2,
        random_seed=args.seed,
    )
    mmm.fit(df, draws=args.draws, tune=args.draws)
    secs = time.perf_counter() - t0
    total = mmm.contributions(None).sum("date").values
    decay = mmm.idata_.posterior["decay"].stack(s=("chain", "draw")).transpose("s", ...).values
    print(f"crmkit: {secs:.0f} s, diagnostics {mmm.diagnostics_}")
    ours = summarise(total, spend, channels)
    ours["decay"] = [f"{decay[:, j].mean():.2f}" for j in range(2)]
    print(ours.to_string(index=False))
    if args.skip_pymcm:
        return
    py = ensure_venv(Path(args.venv))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(PYMCM_SCRIPT)
    proc = subprocess.run(
        [str(py), fh.name, str(DATA), str(args.draws), str(args.seed)],
        capture_output=True,
        text=True,
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")]
    if not line:
        sys.exit(f"PyMC-Marketing run failed:\n{proc.stderr[-3000:]}")
    res = json.loads(line[-1][4:])
    print(f"\nPyMC-Marketing: {res['seconds']:.0f} s, divergences {res['divergences']}")
    theirs = summarise(np.asarray(res["total"]), spend, channels)
    theirs["decay"] = [f"{np.asarray(res['decay'])[:, j].mean():.2f}" for j in range(2)]
    print(theirs.to_string(index=False))


if __name__ == "__main__":
    main()
