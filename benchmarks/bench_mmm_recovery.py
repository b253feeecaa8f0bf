"""Marketing-mix model recovery: how often the 90% intervals hold the truth.

Simulates ``--datasets`` data sets from known geometric adstock, logistic saturation and
effects (random truth per data set: decay in [0.1, 0.7], steepness in [1, 4], maximum
weekly effect in [100, 400]), fits each with NUTS, and counts how often the 90% credible
interval holds the true ROAS, decay and total media contribution of each channel.

With ``--demo`` (``--datasets 0``: the demo only) it also fits the demo company's weekly
new deals (Hill saturation as the generator uses, or ``--demo-saturation logistic``) and
compares each channel's contribution (deals brought) with the truth
in ``demo_truth``.

With ``--roas-prior`` the fits use the ROAS parametrisation (``effect_prior="roas"``): on
simulated data the prior is centred on the true ROAS times a random factor
``exp(N(0, 0.5))`` (a lift test with its error) with sigma 0.7; on the demo it comes from
the campaign attribution (:func:`crmkit.models.mmm.campaigns.roas_prior`).

With ``--lift-tests N`` (demo only) the demo fit is also calibrated with ``N`` simulated lift
tests per channel (``MarketingMixModel(lift_tests=...)``): 13-week windows spread over the
data, each measuring the channel's true incremental deals in the window (from the generator's
adstock and Hill curve) plus normal noise with a relative standard error ``--lift-sd``
(default 0.2), reported with that standard error. The demo has no lift-test table; the tests
stand in for the holdout or geo tests a marketing team runs.

    .venv/bin/python benchmarks/bench_mmm_recovery.py [--datasets 10] [--weeks 156] [--demo] \\
        [--demo-saturation hill|logistic] [--roas-prior] [--lift-tests 2] [--lift-sd 0.2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from crmkit.models.mmm.model import MarketingMixModel, mmm_frame, simulate_mmm


def one(seed: int, weeks: int, draws: int, roas_prior: bool = False) -> dict[str, list[bool]]:
    rng = np.random.default_rng(1000 + seed)
    c = 3
    decay = list(rng.uniform(0.1, 0.7, c))
    lam = list(rng.uniform(1.0, 4.0, c))
    beta = list(rng.uniform(100, 400, c))
    df, truth = simulate_mmm(weeks, decay=decay, lam=lam, beta=beta, noise=50.0, seed=seed)
    kw: dict = {}
    if roas_prior:
        err = np.exp(rng.normal(0.0, 0.5, c))
        mu = [
            float(np.log(truth["roas"][ch] * e))
            for ch, e in zip(truth["channels"], err, strict=True)
        ]
        kw = {
            "effect_prior": "roas",
            "model_config": {"roas": {"dist": "LogNormal", "mu": mu, "sigma": [0.7] * c}},
        }
    mmm = MarketingMixModel(truth["channels"], random_seed=seed, **kw).fit(
        df, draws=draws, tune=draws
    )
    r = mmm.roas(ci=0.9).set_index("channel")
    post = mmm.idata_.posterior
    dq = post["decay"].quantile([0.05, 0.95], ("chain", "draw")).values
    hits: dict[str, list[bool]] = {"roas": [], "decay": [], "contribution": []}
    for j, ch in enumerate(truth["channels"]):
        hits["roas"].append(bool(r.loc[ch, "roas_lo"] <= truth["roas"][ch] <= r.loc[ch, "roas_hi"]))
        hits["decay"].append(bool(dq[0, j] <= decay[j] <= dq[1, j]))
        tc = truth["contributions"][:, j].sum()
        hits["contribution"].append(
            bool(r.loc[ch, "contribution_lo"] <= tc <= r.loc[ch, "contribution_hi"])
        )
    d = mmm.diagnostics_
    print(
        f"seed {seed}: roas {hits['roas']} decay {hits['decay']} "
        f"(rhat {d['r_hat_max']:.3f}, div {d['divergences']}, {d['seconds']:.0f} s)",
        flush=True,
    )
    return hits


def demo_lift_tests(
    company, df, chans: list[str], n_tests: int, rel_sd: float, seed: int = 7
) -> list[dict]:
    """Simulated lift tests: true incremental deals of 13-week windows plus noise."""
    from crmkit.data.demo.marketing import geometric_adstock, hill_saturation

    truth = company.truth["marketing"]["channels"]
    rng = np.random.default_rng(seed)
    dates = pd.to_datetime(df["date"])
    n = len(df)
    tests = []
    for k, ch in enumerate(chans):
        t = truth[ch]
        adstock = geometric_adstock(df[ch].to_numpy(float)[None, :], t["adstock"]["decay"])[0]
        sat = hill_saturation(adstock, t["saturation"]["half_saturation"], t["saturation"]["shape"])
        weekly = t["max_deals_per_week"] * sat
        weekly *= t["expected_deals"] / weekly.sum()  # the truth's total over the fit weeks
        for j in range(n_tests):
            # windows spread over the data, shifted per channel so tests do not overlap
            start = int((j + 0.5) * n / n_tests + 13 * (k - len(chans) / 2)) % (n - 13)
            true = float(weekly[start : start + 13].sum())
            sd = max(rel_sd * true, 0.5)
            tests.append(
                {
                    "channel": ch,
                    "start": str(dates.iloc[start].date()),
                    "end": str(dates.iloc[start + 12].date()),
                    "delta": true + float(rng.normal(0.0, sd)),
                    "sd": sd,
                    "true": true,
                }
            )
    return tests


def demo(
    draws: int,
    saturation: str = "hill",
    roas_prior: bool = False,
    lift_tests: int = 0,
    lift_sd: float = 0.2,
) -> None:
    from crmkit.data.demo.company import generate_demo
    from crmkit.models.mmm.campaigns import roas_prior as campaign_roas_prior

    company = generate_demo()
    f = company.frames
    df = mmm_frame(f["channel_spend"], f["deals"], target="new_deals")
    truth = company.truth["marketing"]["channels"]
    chans = [c for c in truth if c in df.columns]
    kw: dict = {}
    if roas_prior:
        kw = {
            "effect_prior": "roas",
            "model_config": campaign_roas_prior(f["campaigns"], f["deals"], chans),
        }
        print("ROAS prior from campaigns:", kw["model_config"]["roas"])
    if lift_tests:
        tests = demo_lift_tests(company, df, chans, lift_tests, lift_sd)
        for t in tests:
            print(
                f"lift test {t['channel']} {t['start']}..{t['end']}: measured "
                f"{t['delta']:.1f} +- {t['sd']:.1f} (true {t['true']:.1f})"
            )
        kw["lift_tests"] = [{k: v for k, v in t.items() if k != "true"} for t in tests]
    mmm = MarketingMixModel(chans, saturation=saturation, random_seed=0, **kw).fit(
        df, draws=draws, tune=draws
    )
    r = mmm.roas(ci=0.9).set_index("channel")
    print(
        f"demo company ({len(df)} weeks, target new deals per week; diagnostics {mmm.diagnostics_})"
    )
    print(
        "| channel | true deals from channel | fitted [90%] | width | true decay "
        "| fitted decay [90%] |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    dq = mmm.idata_.posterior["decay"].quantile([0.05, 0.5, 0.95], ("chain", "draw")).values
    held = narrow = 0
    for j, ch in enumerate(chans):
        t = truth[ch]
        lo, hi = r.loc[ch, "contribution_lo"], r.loc[ch, "contribution_hi"]
        held += lo <= t["expected_deals"] <= hi
        narrow += hi - lo <= t["expected_deals"]
        print(
            f"| {ch} | {t['expected_deals']:.0f} | {r.loc[ch, 'contribution']:.0f} "
            f"[{lo:.0f}-{hi:.0f}] | {hi - lo:.0f} | "
            f"{t['adstock']['decay']} | {dq[1, j]:.2f} [{dq[0, j]:.2f}-{dq[2, j]:.2f}] |"
        )
    print(
        f"{held} of {len(chans)} intervals hold the truth; {narrow} of {len(chans)} are at most "
        "as wide as the true value"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=10)
    ap.add_argument("--weeks", type=int, default=156)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--demo-saturation", default="hill", choices=("hill", "logistic"))
    ap.add_argument("--roas-prior", action="store_true")
    ap.add_argument("--lift-tests", type=int, default=0)
    ap.add_argument("--lift-sd", type=float, default=0.2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    tot: dict[str, list[bool]] = {"roas": [], "decay": [], "contribution": []}
    for s in range(args.datasets):
        for k, v in one(s, args.weeks, args.draws, args.roas_prior).items():
            tot[k] += v
    if args.datasets:
        print(f"\n{args.datasets} data sets x 3 channels, {args.weeks} weeks, 90% intervals:")
    for k, v in tot.items() if args.datasets else ():
        print(f"  {k}: {np.mean(v):.0%} of {len(v)} intervals hold the truth")
    if args.demo:
        demo(args.draws, args.demo_saturation, args.roas_prior, args.lift_tests, args.lift_sd)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
