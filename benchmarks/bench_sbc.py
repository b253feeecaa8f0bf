"""Simulation-based calibration (SBC) of the pipeline model: NUTS and MAP + Laplace.

Each replication draws the pipeline model's parameters from its prior, simulates deals
shaped like the demo company's (its stages, teams, owners, segments, sources and shares,
scaled down to ``--deals`` deals: :mod:`crmkit.models.pipeline.simulate`) from the model's
own multinomial-logit hazards, fits them with NUTS (:func:`~crmkit.models.pipeline.nuts_fit.
fit_nuts`, thinned to ``--rank-draws`` roughly independent draws) and with MAP + Laplace
(:func:`~crmkit.models.pipeline.map_fit.fit_map_numpy`), and records the rank of the true
value among the posterior draws for the main parameters (the stage x months-ahead
interaction's levels included). A calibrated fit gives uniform
ranks and central intervals that hold the truth as often as they say.

Each method is checked against its own prior: NUTS samples identified, zero-sum group
effects, MAP free effects with a reference-free stage intercept, so the truth is drawn in
each fit's parametrisation (the same draw, projected: ``draw_prior(parametrisation=...)``).

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_sbc.py --reps 100 --deals 300 --method both

Writes benchmarks/results/sbc.md, sbc_nuts.png, sbc_map.png and sbc_ranks_<method>.csv (one
row per replication, method and parameter, written after every replication; ``--from-csv``
redraws the report from them). The two methods can run as two processes (``--method nuts``
and ``--method map``, same seed: the same replications), then ``--from-csv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from crmkit.models.pipeline.map_fit import fit_map_numpy
from crmkit.models.pipeline.model import DEFAULT_PRIORS
from crmkit.models.pipeline.simulate import (
    demo_structure,
    draw_prior,
    main_parameters,
    parameter_values,
    simulate_cells,
)

RESULTS = Path(__file__).resolve().parent / "results"
#: Rank bins: 10, or fewer so each holds 5 replications on average (chi-square's rule).
BINS = 10
BARS = " ▁▂▃▄▅▆▇█"


def thin(flat: dict[str, np.ndarray], chains: int, n: int) -> dict[str, np.ndarray]:
    """``n`` draws spread evenly over each chain of chain-major flat draws."""
    total = next(iter(flat.values())).shape[0]
    per = total // chains
    k = -(-n // chains)
    idx = np.concatenate(
        [c * per + np.linspace(0, per - 1, k).round().astype(int) for c in range(chains)]
    )
    idx = idx[:n]
    return {name: v[idx] for name, v in flat.items()}


def one_fit(method: str, cells, levels, args, seed: int) -> tuple[dict, dict]:
    """Fit one simulated data set; returns (thinned draws, fit figures)."""
    t0 = time.perf_counter()
    if method == "map":
        flat, raw = fit_map_numpy(cells, levels, DEFAULT_PRIORS, n_draws=args.rank_draws, seed=seed)
        info = {"ok": raw["ok"], "divergences": 0, "r_hat_max": np.nan, "ess_bulk_min": np.nan}
    else:
        from crmkit.models.pipeline.nuts_fit import fit_nuts

        flat, raw, _ = fit_nuts(
            cells, levels, DEFAULT_PRIORS, draws=args.draws, tune=args.tune, chains=2, seed=seed
        )
        flat = thin(flat, 2, args.rank_draws)
        info = {
            "ok": raw["ok"],
            "divergences": raw["divergences"],
            "r_hat_max": raw["r_hat_max"],
            "ess_bulk_min": raw["ess_bulk_min"],
        }
    info["seconds"] = time.perf_counter() - t0
    return flat, info


def replicate(rep: int, methods: list[str], args) -> list[dict]:
    """One replication: structure, prior draw, simulation, fits, ranks (rows per parameter)."""
    seed = args.seed * 100_003 + rep
    st = demo_structure(args.deals, seed=seed)
    rows = []
    for method in methods:
        truth = draw_prior(st, seed=seed + 1, parametrisation=method)
        cells, outcomes = simulate_cells(st, truth, seed=seed + 2)
        flat, info = one_fit(method, cells, st.levels, args, seed)
        for name in main_parameters(st.levels):
            true = float(parameter_values(truth, name, st.levels))
            draws = parameter_values(flat, name, st.levels)
            q = np.quantile(draws, [0.05, 0.25, 0.75, 0.95])
            rows.append(
                {
                    "rep": rep,
                    "method": method,
                    "parameter": name,
                    "truth": true,
                    "rank": int((draws < true).sum()),
                    "n_draws": len(draws),
                    "in50": bool(q[1] <= true <= q[2]),
                    "in90": bool(q[0] <= true <= q[3]),
                    "won": int((outcomes["result"] == "won").sum()),
                    "deals": args.deals,
                    "draws": args.draws if method == "nuts" else 0,
                    "tune": args.tune if method == "nuts" else 0,
                    "seed": args.seed,
                    **info,
                }
            )
    return rows


def summarise(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per method and parameter: uniformity p-values, coverage, histogram counts."""
    out = []
    for (method, name), g in ranks.groupby(["method", "parameter"], sort=False):
        n_draws = int(g["n_draws"].iloc[0])
        bins = max(2, min(BINS, len(g) // 5))
        b = np.minimum(g["rank"].to_numpy() * bins // (n_draws + 1), bins - 1)
        counts = np.bincount(b, minlength=bins)
        u = (g["rank"].to_numpy() + 0.5) / (n_draws + 1)
        out.append(
            {
                "method": method,
                "parameter": name,
                "reps": len(g),
                "chi2_p": float(stats.chisquare(counts).pvalue),
                "ks_p": float(stats.kstest(u, "uniform").pvalue),
                "cover50": float(g["in50"].mean()),
                "cover90": float(g["in90"].mean()),
                "counts": counts,
            }
        )
    return pd.DataFrame(out)


def parameter_groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The summary rows of the stage x months-ahead interaction and of the other parameters."""
    inter = summary["parameter"].str.startswith("stage_ahead[")
    parts = [("other parameters", summary[~inter]), ("stage_ahead", summary[inter])]
    return [(label, part) for label, part in parts if len(part)]


def text_hist(counts: np.ndarray) -> str:
    """One line of bars, scaled so twice the uniform count is a full bar."""
    top = 2 * counts.sum() / len(counts)
    return "".join(BARS[min(round(c / top * (len(BARS) - 1)), len(BARS) - 1)] for c in counts)


def figure(summary: pd.DataFrame, method: str, path: Path) -> None:
    """Rank histograms of one method with the 99% band of a uniform histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = summary[summary["method"] == method]
    n = len(sub)
    cols = 4 if n <= 24 else 6
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), squeeze=False)
    for ax, (_, r) in zip(axes.ravel(), sub.iterrows(), strict=False):
        reps = r["reps"]
        bins = len(r["counts"])
        lo, hi = stats.binom.ppf([0.005, 0.995], reps, 1 / bins)
        ax.axhspan(lo, hi, color="0.85")
        ax.axhline(reps / bins, color="0.5", lw=0.8)
        ax.bar(np.arange(bins), r["counts"], width=0.9, color="C0" if method == "nuts" else "C1")
        ax.set_title(
            f"{r['parameter']}\nchi2 p={r['chi2_p']:.2f}, 90%: {r['cover90']:.2f}", fontsize=8
        )
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    label = "NUTS" if method == "nuts" else "MAP + Laplace"
    fig.suptitle(f"SBC rank histograms, pipeline model, {label} ({reps} replications)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine() -> str:
    """CPU, memory and load, one line."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:  # pragma: no cover
        mem = float("nan")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} vCPU {cpu}, {mem:.0f} GiB; `uptime`: {load}"


def report(ranks: pd.DataFrame, summary: pd.DataFrame, args, wall: float, load_start: str) -> str:
    """The results page (markdown)."""
    nuts = ranks[ranks["method"] == "nuts"]
    first = ranks.iloc[0]
    draws = int(nuts["draws"].iloc[0]) if len(nuts) else args.draws
    tune = int(nuts["tune"].iloc[0]) if len(nuts) else args.tune
    reps = ranks.groupby("method")["rep"].nunique().to_dict()
    deals = int(first["deals"])
    cmd = (
        f"nice -n 10 .venv/bin/python benchmarks/bench_sbc.py --reps {max(reps.values())} "
        f"--deals {deals} --draws {draws} --tune {tune} --seed {int(first['seed'])}"
    )
    lines = [
        "# Simulation-based calibration of the pipeline model (issue #17)",
        "",
        f"Command: `{cmd} --method both` (or the same with `--method nuts` and `--method map` "
        "as two processes, then `--from-csv` for this page).",
        f"Replications: {', '.join(f'{m} {n}' for m, n in reps.items())}.",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        + ("" if args.from_csv else f"; wall time {wall / 60:.1f} min."),
        f"Machine: {load_start}",
        "",
        "On the demo generator's structure: each replication draws deals shaped like the demo",
        f"company's ({deals} deals: its 4 stages, 3 teams with their 11 owners, 3 segments, 8",
        "sources, the demo's shares; `crmkit.models.pipeline.simulate.demo_structure`), draws the",
        "pipeline model's parameters from its prior (`DEFAULT_PRIORS`; not the demo's own",
        "parameters), simulates each deal's months won / lost / open from the model's hazards,",
        "and fits. Each method against its own prior: NUTS's group effects sum to zero (owners",
        "within teams), MAP's are free; the truth is the same draw in each parametrisation.",
        f"Ranks among {int(ranks['n_draws'].iloc[0])} posterior draws (NUTS: 2 chains x "
        f"{draws} draws after {tune} tuning, thinned evenly; MAP: Laplace draws).",
        "",
        "## Fits",
        "",
        "| method | fits | median s per fit | fits not ok | divergent fits | divergences | "
        "max R-hat (median) | min bulk ESS (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    fits = ranks.drop_duplicates(["rep", "method"])
    for method, g in fits.groupby("method", sort=False):
        lines.append(
            f"| {method} | {len(g)} | {g['seconds'].median():.1f} | {int((~g['ok']).sum())} | "
            f"{int((g['divergences'] > 0).sum())} | {int(g['divergences'].sum())} | "
            f"{g['r_hat_max'].median():.3f} | {g['ess_bulk_min'].median():.0f} |"
        )
    lines += [
        "",
        "## Calibration per parameter",
        "",
        "Uniformity of the ranks: chi-square over the rank bins and Kolmogorov-Smirnov",
        "p-values (small: not uniform); coverage of the central 50% and 90% posterior intervals",
        "(calibrated: 0.50 and 0.90, give or take two standard errors: see Per method).",
        "Histogram: 10 rank bins (fewer under 50 replications), a full bar is twice the",
        "uniform count; a U shape means too-narrow intervals, a hump too-wide ones, a slope a",
        "bias (ranks counted as posterior draws below the truth: low ranks = posterior too high).",
        "",
        "| method | parameter | reps | chi2 p | KS p | 50% cover | 90% cover | rank histogram |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['method']} | {r['parameter']} | {r['reps']} | {r['chi2_p']:.3f} | "
            f"{r['ks_p']:.3f} | "
            f"{r['cover50']:.2f} | {r['cover90']:.2f} | `{text_hist(r['counts'])}` |"
        )
    lines += [
        "",
        "## Per method",
        "",
        "The stage x months-ahead interaction (`stage_ahead[outcome,stage,months ahead]`, each",
        "stage's deviation from the common months-ahead effect) apart from the others; of k",
        "calibrated parameters about k / 100 have a chi-square p < 0.01 by chance.",
        "",
    ]
    for method, g in summary.groupby("method", sort=False):
        n = int(g["reps"].max())
        lines.append(
            f"- {method} ({n} replications; two standard errors of a coverage: "
            f"±{2 * np.sqrt(0.25 / n):.2f} at 50%, ±{2 * np.sqrt(0.09 / n):.2f} at 90%):"
        )
        for label, part in parameter_groups(g):
            bad = part[part["chi2_p"] < 0.01]["parameter"].tolist()
            lines.append(
                f"  - {label} ({len(part)}): mean coverage 50% {part['cover50'].mean():.2f}, "
                f"90% {part['cover90'].mean():.2f}; parameters with chi-square p < 0.01: "
                f"{', '.join(bad) if bad else 'none'}."
            )
    lines += ["", "![NUTS](sbc_nuts.png)", "", "![MAP + Laplace](sbc_map.png)", ""]
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run the replications, write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--deals", type=int, default=300)
    ap.add_argument("--draws", type=int, default=250, help="NUTS draws per chain (2 chains)")
    ap.add_argument("--tune", type=int, default=300, help="NUTS tuning steps per chain")
    ap.add_argument("--rank-draws", type=int, default=99, help="posterior draws per rank")
    ap.add_argument("--method", choices=("nuts", "map", "both"), default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--from-csv", action="store_true", help="only redraw the report from sbc_ranks_*.csv"
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # arviz's R-hat of the fixed reference levels
    args.out.mkdir(parents=True, exist_ok=True)
    load_start = machine()
    t0 = time.perf_counter()
    if not args.from_csv:
        methods = ["nuts", "map"] if args.method == "both" else [args.method]
        rows: list[dict] = []
        for rep in range(args.reps):
            new = replicate(rep, methods, args)
            rows += new
            ranks = pd.DataFrame(rows)
            for method in methods:  # after every replication, so a stopped run keeps its ranks
                ranks[ranks["method"] == method].to_csv(
                    args.out / f"sbc_ranks_{method}.csv", index=False
                )
            took = ", ".join(
                f"{r['method']} {r['seconds']:.1f} s"
                for r in new
                if r["parameter"] == new[0]["parameter"]
            )
            print(
                f"rep {rep + 1}/{args.reps}: {took} ({(time.perf_counter() - t0) / 60:.1f} min)",
                flush=True,
            )
    parts = [args.out / f"sbc_ranks_{m}.csv" for m in ("nuts", "map")]
    ranks = pd.concat([pd.read_csv(p) for p in parts if p.exists()], ignore_index=True)
    summary = summarise(ranks)
    for _, r in summary.iterrows():
        print(
            f"{r['method']:5s} {r['parameter']:36s} chi2 p {r['chi2_p']:.3f}  "
            f"KS p {r['ks_p']:.3f}  "
            f"50% {r['cover50']:.2f}  90% {r['cover90']:.2f}  {text_hist(r['counts'])}"
        )
    for method, g in summary.groupby("method", sort=False):
        for label, part in parameter_groups(g):
            bad = int((part["chi2_p"] < 0.01).sum())
            print(
                f"{method:5s} {label:16s} ({len(part)}): 50% {part['cover50'].mean():.2f}  "
                f"90% {part['cover90'].mean():.2f}  chi2 p < 0.01: {bad}"
            )
    for method in summary["method"].unique():
        figure(summary, method, args.out / f"sbc_{method}.png")
    page = args.out / "sbc.md"
    verdict = ""  # the hand-written verdict of an earlier page is kept
    if page.exists() and "\n## Verdict" in page.read_text():
        verdict = "## Verdict" + page.read_text().split("\n## Verdict", 1)[1]
    text = report(ranks, summary, args, time.perf_counter() - t0, load_start)
    page.write_text(text + ("\n" + verdict if verdict else ""))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
