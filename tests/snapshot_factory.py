"""A forecast snapshot built by hand, following the contract in crmkit.forecast.snapshot.

The app and report tests read snapshots only; this one has known structure: two teams
(north: ann and bob; south: cy), two segments (SMB, Enterprise), three sources and their
total, monthly periods, a target on the company total and some extra tables.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.store import Snapshot

QUANTILES = {"p05": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95}
OWNERS = {"ann": "north", "bob": "north", "cy": "south"}
SEGMENT_SHARE = {"SMB": 0.4, "Enterprise": 0.6}
SOURCES = ["pipeline", "new_business", "repeat", "total"]
#: Share of the company's past revenue each team had (the ``actuals`` table's team rows).
TEAM_SHARE = {"north": 0.6, "south": 0.4}


def make_fake_snapshot(
    *,
    seed: int = 0,
    n_draws: int = 400,
    as_of: dt.date = dt.date(2026, 11, 15),
    horizon: int = 3,
    scale: float = 1.0,
    target: float | None = 1_100_000.0,
    label: str = "fake",
    forecast_call: bool = False,
) -> Snapshot:
    """Return a contract-shaped snapshot with random but consistent roll-ups.

    With ``forecast_call=True`` it also holds the issue #16 tables ``forecast_call``,
    ``attainment`` and ``open_deals`` (computed from its draws as the design says, see
    :func:`_call_tables`) and the per-deal arrays (``deal_*``) that
    :func:`crmkit.forecast.compare.compare_snapshots` reads; the deals differ with ``seed``.
    """
    rng = np.random.default_rng(seed)
    first = pd.Period(as_of, freq="M")
    periods = [str(first + i) for i in range(horizon)]
    n_p = len(periods)

    # owner-level draws of pipeline and new business (sample, period)
    owner_draws = {
        o: {
            "pipeline": rng.gamma(6.0, 12_000.0 * scale * (1.5 - 0.3 * i), size=(n_draws, n_p))
            * np.linspace(1.2, 0.6, n_p),
            "new_business": rng.gamma(3.0, 9_000.0 * scale, size=(n_draws, n_p))
            * np.linspace(0.3, 1.0, n_p),
        }
        for i, o in enumerate(OWNERS)
    }
    repeat_seg = {
        s: rng.gamma(8.0, 5_000.0 * scale * share, size=(n_draws, n_p))
        for s, share in SEGMENT_SHARE.items()
    }
    groups: dict[str, dict[str, np.ndarray]] = {}
    zero = np.zeros((n_draws, n_p))
    for o in OWNERS:
        groups[f"owner={o}"] = {**owner_draws[o], "repeat": zero}
    for t in sorted(set(OWNERS.values())):
        members = [o for o, team in OWNERS.items() if team == t]
        groups[f"team={t}"] = {
            src: sum(owner_draws[o][src] for o in members) for src in ("pipeline", "new_business")
        } | {"repeat": zero}
    pipe_all = sum(owner_draws[o]["pipeline"] for o in OWNERS)
    new_all = sum(owner_draws[o]["new_business"] for o in OWNERS)
    for s, share in SEGMENT_SHARE.items():
        groups[f"segment={s}"] = {
            "pipeline": pipe_all * share,
            "new_business": new_all * share,
            "repeat": repeat_seg[s],
        }
    groups = {
        "all": {"pipeline": pipe_all, "new_business": new_all, "repeat": sum(repeat_seg.values())}
    } | groups
    for g in groups.values():
        g["total"] = g["pipeline"] + g["new_business"] + g["repeat"]
    group_labels = list(groups)
    revenue = xr.DataArray(
        np.stack(
            [np.stack([groups[g][s] for g in group_labels], axis=-1) for s in SOURCES], axis=-2
        ),
        dims=("sample", "period", "source", "group"),
        coords={"period": periods, "source": SOURCES, "group": group_labels},
        name="revenue",
    )

    # revenue already won in the first (current) period, per group and source
    closed = {g: {s: 0.0 for s in SOURCES} for g in group_labels}
    won = {"ann": 40_000.0, "bob": 25_000.0, "cy": 30_000.0}
    for o, amount in won.items():
        closed[f"owner={o}"]["pipeline"] = amount * scale
        closed[f"team={OWNERS[o]}"]["pipeline"] += amount * scale
    closed["all"]["pipeline"] = sum(won.values()) * scale
    for s, share in SEGMENT_SHARE.items():
        closed[f"segment={s}"]["pipeline"] = closed["all"]["pipeline"] * share
        closed[f"segment={s}"]["repeat"] = 10_000.0 * share * scale
    closed["all"]["repeat"] = 10_000.0 * scale
    for g in group_labels:
        closed[g]["total"] = sum(closed[g][s] for s in SOURCES[:3])

    rows = []
    for g in group_labels:
        group_by, group = ("all", "all") if g == "all" else g.split("=", 1)
        for s in SOURCES:
            for pi, p in enumerate(periods):
                d = revenue.sel(period=p, source=s, group=g).to_numpy()
                c = closed[g][s] if pi == 0 else 0.0
                tgt = target / horizon if (target and g == "all" and s == "total") else np.nan
                row = {"group_by": group_by, "group": group, "source": s, "period": p}
                row["mean"] = float(d.mean())
                row |= {k: float(np.quantile(d, q)) for k, q in QUANTILES.items()}
                row["closed_to_date"] = c
                row["target"] = tgt
                row["p_target"] = float(np.mean(c + d >= tgt)) if np.isfinite(tgt) else np.nan
                rows.append(row)
    quantiles = pd.DataFrame(rows)

    past = [str(first - i) for i in range(6, 0, -1)]
    actuals = []
    for p in past:
        pipe, new, rep, total = _actual(rng, scale)
        amounts = {"deals": pipe + new, "repeat": rep, "total": total}
        for g, share in {"all": 1.0, **{f"team={t}": v for t, v in TEAM_SHARE.items()}}.items():
            actuals += [
                {"group": g, "period": p, "source": s, "amount": float(a * share)}
                for s, a in amounts.items()
            ]
    stage_probabilities = [
        {"pipeline": "default", "stage": st, "configured": cfg, "learned_mean": lm,
         "learned_p10": lm - 0.06, "learned_p90": lm + 0.07}
        for st, cfg, lm in [
            ("Qualification", 0.1, 0.08),
            ("Discovery", 0.25, 0.19),
            ("Proposal", 0.6, 0.47),
            ("Negotiation", 0.8, 0.71),
        ]
    ]  # fmt: skip
    deals = []
    for i in range(24):
        owner = list(OWNERS)[i % 3]
        deals.append(
            {
                "deal_id": f"D{i:03d}",
                "name": f"Deal {i}",
                "owner": owner,
                "team": OWNERS[owner],
                "segment": "SMB" if i % 2 else "Enterprise",
                "stage": stage_probabilities[i % 4]["stage"],
                "amount": float(5_000 + 1_000 * i),
                "expected_close_date": str(as_of + dt.timedelta(days=5 + i)),
                "p_win": round(0.2 + 0.03 * i, 3),
                "p_slip": round(0.95 - 0.035 * i, 3),
            }
        )
    pipeline_by_stage = [
        {"pipeline": "default", "stage": st["stage"], "team": OWNERS[o], "owner": o,
         "n_deals": 3 + k, "amount": 50_000.0 * (k + 1) * scale}
        for k, st in enumerate(stage_probabilities)
        for o in OWNERS
    ]  # fmt: skip
    campaign_roi = [
        {"campaign_id": "C1", "name": "Spring webinar", "channel": "webinar", "cost": 20_000.0,
         "revenue_p10": 15_000.0, "revenue_p50": 42_000.0, "revenue_p90": 80_000.0},
        {"campaign_id": "C2", "name": "Search ads", "channel": "search", "cost": 35_000.0,
         "revenue_p10": 10_000.0, "revenue_p50": 30_000.0, "revenue_p90": 55_000.0},
    ]  # fmt: skip
    backtest = [
        {"origin": "2026-05-31", "horizon": 3, "coverage_p10_p90": 0.78, "mape_p50": 0.14},
        {"origin": "2026-08-31", "horizon": 3, "coverage_p10_p90": 0.83, "mape_p50": 0.11},
    ]
    tables = {
        "stage_probabilities": stage_probabilities,
        "at_risk_deals": deals,
        "actuals": actuals,
        "pipeline_by_stage": pipeline_by_stage,
        "campaign_roi": campaign_roi,
        "backtest": backtest,
    }
    draws: dict = {"revenue": revenue}
    coords: dict = {}
    if forecast_call:
        deal_arrays = _deal_arrays(np.random.default_rng(1000 + seed), as_of, scale)
        coords["deal_id"] = deal_arrays.pop("deal_id")
        draws |= deal_arrays
        tables |= _call_tables(revenue, closed, periods, coords["deal_id"], deal_arrays)
    return Snapshot(
        as_of=as_of,
        horizon=horizon,
        period="M",
        quantiles=quantiles,
        draws=draws,
        coords=coords,
        dims={k: ["deal_id"] for k in draws if k.startswith("deal_")},
        parameters={
            "as_of": str(as_of),
            "horizon": horizon,
            "period": "M",
            "draws": n_draws,
            "target": target,
            "methods": {"pipeline": "fake", "new_business": "fake", "repeat": "fake"},
            "seed": seed,
            "data": {"deals": 24},
            "tables": tables,
        },
        diagnostics={
            "ok": True,
            "models": {
                m: {
                    "r_hat_max": 1.004,
                    "ess_bulk_min": 812.0,
                    "divergences": 0,
                    "method": "fake",
                    "ok": True,
                }
                for m in ("pipeline", "new_business", "repeat")
            },
            "messages": [],
        },
        label=label,
    )


def _actual(rng: np.random.Generator, scale: float) -> list[float]:
    """Random past revenue by source, with its total last."""
    parts = [
        rng.uniform(150_000, 250_000),
        rng.uniform(20_000, 60_000),
        rng.uniform(30_000, 50_000),
    ]
    parts = [p * scale for p in parts]
    return [*parts, sum(parts)]


#: Quota of each owner per period in :func:`_call_tables` (teams and the company: sums).
OWNER_QUOTAS = {"ann": 150_000.0, "bob": 120_000.0, "cy": 140_000.0}
#: Manager calls in :func:`_call_tables`: (group, first period?) -> call; names need escaping.
CALLS = {
    "team=north": {"call": 310_000.0, "call_author": "Dana <b>& Co</b>",
                   "call_note": "<script>alert(1)</script> two deals at risk",
                   "call_at": "2026-11-14T09:30:00"},
    "all": {"call": 620_000.0, "call_author": "Eve", "call_note": None,
            "call_at": "2026-11-13T16:00:00"},
}  # fmt: skip


def _deal_arrays(rng: np.random.Generator, as_of: dt.date, scale: float) -> dict:
    """Per-deal arrays of the open deals D000..D029, a random ~85 % of them, by seed."""
    ids = [f"D{i:03d}" for i in range(30) if rng.random() > 0.15]
    n = len(ids)
    month0 = as_of.year * 12 + as_of.month - 1
    amount = np.array([5_000.0 + 1_000.0 * int(i[1:]) for i in ids]) * scale
    amount = np.where(rng.random(n) < 0.2, amount * 1.5, amount)
    p_win = rng.uniform(0.1, 0.9, n)
    stages = np.array(["Qualification", "Discovery", "Proposal", "Negotiation"])
    return {
        "deal_id": ids,
        "deal_p_win": p_win,
        "deal_expected": amount * p_win,
        "deal_amount": amount,
        "deal_expected_month": month0 + rng.integers(0, 3, n),
        "deal_stage": stages[rng.integers(0, 4, n)],
    }


def _call_tables(
    revenue: xr.DataArray,
    closed: dict[str, dict[str, float]],
    periods: list[str],
    deal_ids: list[str],
    deal_arrays: dict,
) -> dict[str, list[dict]]:
    """The ``forecast_call``, ``attainment`` and ``open_deals`` tables, from the draws.

    Categories: each owner's commit is the won revenue plus 60 % of its mean forecast, best
    case adds 30 %, pipeline 50 % more; teams and the company are the sums of their owners.
    Quotas: :data:`OWNER_QUOTAS` per owner and period (sums for teams and the company).
    """
    teams = sorted(set(OWNERS.values()))
    members = {"all": list(OWNERS)} | {f"team={t}": [o for o in OWNERS if OWNERS[o] == t]
                                       for t in teams}  # fmt: skip
    members |= {f"owner={o}": [o] for o in OWNERS}
    calls, attainment = [], []
    for g, owners in members.items():
        for pi, p in enumerate(periods):
            won = sum(closed[f"owner={o}"]["pipeline"] for o in owners) if pi == 0 else 0.0
            cat = {"closed": won, "commit": won, "best_case": won, "pipeline": won}
            for o in owners:
                m = float(revenue.sel(period=p, source="total", group=f"owner={o}").mean())
                cat["commit"] += round(0.6 * m)
                cat["best_case"] += round(0.9 * m)
                cat["pipeline"] += round(1.4 * m)
            so_far = closed[g]["total"] if pi == 0 else 0.0
            sums = revenue.sel(period=p, source="total", group=g).to_numpy() + so_far
            call = CALLS.get(g) if pi == 0 else None
            calls.append(
                {"group": g, "period": p, **cat,
                 **{k: float(np.quantile(sums, q)) for k, q in
                    (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))},
                 "p_commit": float(np.mean(sums >= cat["commit"])),
                 "p_best_case": float(np.mean(sums >= cat["best_case"])),
                 **(call or dict.fromkeys(("call", "call_author", "call_note", "call_at")))}
            )  # fmt: skip
            quota = sum(OWNER_QUOTAS[o] for o in owners)
            att = sums / quota
            attainment.append(
                {"group": g, "period": p, "quota": quota, "closed_to_date": so_far,
                 "attainment_to_date": so_far / quota, "expected_attainment": float(att.mean()),
                 "att_p10": float(np.quantile(att, 0.1)), "att_p50": float(np.median(att)),
                 "att_p90": float(np.quantile(att, 0.9)), "p_attain": float(np.mean(att >= 1.0))}
            )  # fmt: skip
    open_deals = [
        {
            "deal_id": d,
            "p_win": float(pw),
            "p_slip": float(1 - pw) / 2,
            "expected_revenue": float(e),
        }
        for d, pw, e in zip(
            deal_ids, deal_arrays["deal_p_win"], deal_arrays["deal_expected"], strict=True
        )
    ]
    return {"forecast_call": calls, "attainment": attainment, "open_deals": open_deals}


def backtest_scores(n: int, model_gap: float) -> pd.DataFrame:
    """Backtest rows: model and run rate at ``n`` monthly origins, lead 1-3 (model + gap)."""
    from crmkit.forecast.backtest import month_ends

    rows = []
    for i, o in enumerate(month_ends("2024-01-01", "2026-12-31")[:n]):
        for name, crps in (("model", 100.0 + model_gap + (i % 3)), ("run_rate", 100.0 + i % 2)):
            rows.append(
                {"origin": o.date(), "lead": "1-3", "forecaster": name, "crps": crps,
                 "median_error": 5.0, "hit50": 1.0, "hit80": 1.0, "hit95": 0.0}
            )  # fmt: skip
    return pd.DataFrame(rows)


def backtest_with_verdict(n: int = 12, model_gap: float = -50.0) -> pd.DataFrame:
    """:func:`backtest_scores` summarised with the run-rate verdict, as the report stores it."""
    from crmkit.forecast.backtest import summarise
    from crmkit.forecast.skill import with_run_rate_verdict

    scores = backtest_scores(n, model_gap)
    return with_run_rate_verdict(summarise(scores), scores)
