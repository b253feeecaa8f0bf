"""Backtest on the demo company (known truth) and the time of a full refit + forecast.

1. Rolling origin: month ends from ``--first`` to ``--last``, forecasting the won deal
   revenue of the next 1-3 months (pipeline + new business; repeat revenue is scored by
   the CLV benchmarks). Target (issue 5): 80% intervals cover 75-85% of outcomes and 50%
   intervals 45-55%.
2. ``--calls``: whose forecast to trust (issue 16): from the 20th of the same months (after
   the managers' mid-month calls), the model's P50 against the commit and best-case roll-ups,
   the managers' calls and the run rate (:func:`crmkit.forecast.backtest.call_backtest`),
   per forecaster and per team on the periods the managers called.
   After the summary, the model and the weighted pipeline against the run rate (issue 17):
   the mean paired CRPS difference per lead with its 90% Diebold-Mariano (HLN) interval
   (:func:`crmkit.forecast.skill.compare`). ``--seeds 42,1,2`` backtests several
   simulated demo companies (``generate_demo(seed=s)``; default 42, the demo's own), writes
   one CSV with a ``seed`` column and pools their origins (the interval's lags never cross
   companies).
3. ``--refit``: the default demo written to a SQLite file, then ``run_forecast`` (fit of all
   models, 12 monthly periods, 1,000 draws, snapshot saved) timed. Target: <= 2 minutes on
   2 cores.

Run: ``.venv/bin/python benchmarks/bench_backtest_demo.py [--method map] [--seeds 42,1,2]
[--calls] [--refit]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmkit.data.demo.company import build_demo, generate_demo  # noqa: E402
from crmkit.forecast.backtest import (  # noqa: E402
    backtest,
    call_backtest,
    month_ends,
    summarise,
    summarise_calls,
)
from crmkit.forecast.skill import compare  # noqa: E402


def print_scores(res: pd.DataFrame) -> None:
    """Print the summary, leads 1-3 pooled, and the comparison with the run rate."""
    print(summarise(res).round(3).to_string(index=False))
    single = res[res["lead"].isin(["1", "2", "3"])].assign(lead="1,2,3 pooled")
    print(summarise(single).round(3).to_string(index=False))
    cols = ["lead", "forecaster", "origins", "score", "baseline_score", "diff", "diff_lo",
            "diff_hi", "skill", "win_share", "verdict"]  # fmt: skip
    print("CRPS minus the run rate's (negative: better), 90% DM-HLN interval (overlap 3):")
    print(compare(res, "run_rate", metric="crps")[cols].round(3).to_string(index=False))


def _seeds(text: str) -> list[int]:
    """Comma-separated whole numbers (``--seeds``); argparse shows a bad one in one line."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not whole numbers separated by commas: {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("no seed given")
    return seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="map")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seeds", default="42", type=_seeds, help="demo company seeds, e.g. 42,1,2")
    ap.add_argument("--first", default="2025-01-31")
    ap.add_argument("--last", default="2026-07-31")
    ap.add_argument("--refit", action="store_true", help="also time a full refit + forecast")
    ap.add_argument("--skip-backtest", action="store_true")
    ap.add_argument("--calls", action="store_true", help="also score the forecast call")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_backtest.csv"))
    args = ap.parse_args()
    if not args.skip_backtest:
        seeds = args.seeds
        origins = month_ends(args.first, args.last)
        t0 = time.perf_counter()
        parts = []
        for s in seeds:
            print(f"demo company seed={s}", flush=True)
            part = backtest(
                generate_demo(seed=s).frames, origins, horizon=3, draws=args.draws,
                method=args.method, progress=True, sources=True,
            )  # fmt: skip
            parts.append(part.assign(seed=s) if len(seeds) > 1 else part)
        res = pd.concat(parts, ignore_index=True)
        secs = time.perf_counter() - t0
        res.to_csv(args.out, index=False)
        pd.set_option("display.width", 160)
        for s in seeds if len(seeds) > 1 else []:
            print(f"--- seed {s}")
            print_scores(res[res["seed"].eq(s)].drop(columns="seed"))
        if len(seeds) > 1:
            print(
                f"--- pooled over seeds {','.join(map(str, seeds))} ({len(origins)} origins each)"
            )
        print_scores(res)
        print(
            f"method={args.method} draws={args.draws} origins={len(origins)} "
            f"seeds={','.join(map(str, seeds))} seconds={secs:.1f}"
        )
    if args.calls:
        demo = generate_demo()
        origins = [d.replace(day=20) for d in month_ends(args.first, args.last)]
        t0 = time.perf_counter()
        calls = call_backtest(demo.frames, origins, draws=args.draws, method=args.method)
        secs = time.perf_counter() - t0
        calls.to_csv(Path(args.out).with_name("demo_call_backtest.csv"), index=False)
        pd.set_option("display.width", 160)
        print(summarise_calls(calls).round(3).to_string(index=False))
        print(summarise_calls(calls, by_group=True).round(3).to_string(index=False))
        print(f"call backtest: origins={len(origins)} seconds={secs:.1f}")
    if args.refit:
        from crmkit.forecast.engine import run_forecast
        from crmkit.forecast.tables import forecast_to_json
        from crmkit.store import Store

        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp) / "demo.db")
            build_demo(store, validate=False)
            t0 = time.perf_counter()
            snap = run_forecast(
                store, as_of="2026-10-31", horizon=12, draws=1000, method=args.method, target=None
            )
            secs = time.perf_counter() - t0
            out = forecast_to_json(snap)
            print(
                f"refit + forecast ({args.method}, 12 months, 1000 draws): {secs:.1f} s; "
                f"diagnostics ok={snap.diagnostics['ok']}"
            )
            for k, v in snap.diagnostics["models"].items():
                print("  ", k, v)
            from crmkit.data.demo import params

            truth, prob = {}, 1.0
            for stage, p_next in reversed(
                list(zip(params.STAGES, params.PROGRESSION_PROBABILITY, strict=True))
            ):
                prob *= p_next
                truth[stage] = prob
            print("   stage probabilities (truth at zero offsets = product of progressions):")
            for r in snap.parameters["tables"]["stage_probabilities"]:
                print(
                    f"     {r['stage']}: configured {r['configured']:.0%}, learned "
                    f"{r['learned_mean']:.0%} [{r['learned_p10']:.0%}-{r['learned_p90']:.0%}]"
                    f", truth {truth.get(r['stage'], float('nan')):.0%}"
                )
            for p in out["periods"][:3]:
                print(
                    "  ",
                    p["period"],
                    {
                        s: round(p[s]["p50"])
                        for s in ("pipeline", "new_business", "repeat", "total")
                    },
                )
            store.close()


if __name__ == "__main__":
    main()
