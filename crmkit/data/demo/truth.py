"""The ``truth`` dictionary of the demo company: every parameter, and quantities they imply."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from crmkit.data.demo import params
from crmkit.data.demo.clock import Clock
from crmkit.data.demo.marketing import Arrivals, Marketing


def covariate_mix(source_share: dict[str, float]) -> list[tuple[float, float, str, str, str]]:
    """Every (probability, log-odds offset, team, segment, source) cell of the deal population."""
    cells = []
    for seg, team_name, source in itertools.product(params.SEGMENTS, params.TEAMS, source_share):
        w = (
            params.DEAL_SEGMENT_SHARE[seg]
            * params.TEAM_BY_SEGMENT[seg][team_name]
            * source_share[source]
        )
        if w == 0:
            continue
        owners = params.TEAMS[team_name]
        for owner in owners:
            eta = (
                params.TEAM_LOG_ODDS[team_name]
                + params.OWNER_LOG_ODDS[owner]
                + params.SEGMENT_LOG_ODDS[seg]
                + params.SOURCE_LOG_ODDS[source]
            )
            cells.append((w / len(owners), eta, team_name, seg, source))
    return cells


def stage_probabilities(eta: float) -> np.ndarray:
    """Per-stage progression probabilities at log-odds offset ``eta``."""
    return expit(logit(np.array(params.PROGRESSION_PROBABILITY)) + eta)


def win_from_stage(cells: list[tuple[float, float, str, str, str]]) -> np.ndarray:
    """P(win | the deal reached stage k) over a population of covariate cells."""
    w = np.array([c[0] for c in cells])
    prog = np.array([stage_probabilities(c[1]) for c in cells])  # (cells, stages)
    reach = np.concatenate([np.ones((len(cells), 1)), np.cumprod(prog, axis=1)[:, :-1]], axis=1)
    win = np.prod(prog, axis=1)
    return (w @ win) / (w @ reach)


def build_truth(
    *,
    clock: Clock,
    seed: int,
    n_customers: int,
    n_deals: int,
    marketing: Marketing,
    arrivals: Arrivals,
) -> dict:
    """Assemble the JSON-serialisable truth of one generated company."""
    organic_total = float(arrivals.organic_day.sum())
    channel_totals = arrivals.channel_day.sum(axis=1)
    total = organic_total + float(channel_totals.sum())
    source_share = {s: organic_total / total * p for s, p in params.ORGANIC_SOURCES.items()}
    for c, name in enumerate(params.CHANNELS):
        source_share[params.CHANNEL_SOURCE[name]] = float(channel_totals[c]) / total
    cells = covariate_mix(source_share)
    reference = win_from_stage([(1.0, 0.0, "", "", "")])
    population = win_from_stage(cells)
    team_win = {t: float(win_from_stage([c for c in cells if c[2] == t])[0]) for t in params.TEAMS}
    n_weeks = len(marketing.weeks)
    org_week = np.bincount(arrivals.week_of_day, arrivals.organic_day, minlength=n_weeks)
    ch_week = {
        name: np.bincount(arrivals.week_of_day, arrivals.channel_day[c], minlength=n_weeks)
        for c, name in enumerate(params.CHANNELS)
    }
    norm, scale = arrivals.normalisation, arrivals.scale
    segments = {}
    for seg in params.SEGMENTS:
        b, g = params.BGNBD[seg], params.GAMMA_GAMMA[seg]
        segments[seg] = {
            "share": params.SEGMENT_SHARE[seg],
            "bgnbd": dict(b),
            "mean_purchase_rate_per_week": b["r"] / b["alpha"],
            "mean_dropout_probability": b["a"] / (b["a"] + b["b"]),
            "gamma_gamma": dict(g),
            "mean_order_value": g["p"] * g["gamma"] / (g["q"] - 1.0),
            "team_share": dict(params.TEAM_BY_SEGMENT[seg]),
        }
    stages = []
    for k, st in enumerate(params.STAGES):
        stages.append(
            {
                "stage": st,
                "stage_order": k + 1,
                "configured_probability": params.CONFIGURED_PROBABILITY[k],
                "progression_probability_reference": params.PROGRESSION_PROBABILITY[k],
                "win_probability_reference": float(reference[k]),
                "win_probability_population": float(population[k]),
                "mean_days_reference": params.STAGE_MEAN_DAYS[k],
                "lost_reason_probabilities": dict(
                    zip(params.LOST_REASONS, params.LOST_REASON_BY_STAGE[k], strict=True)
                ),
                "activities_per_day": params.ACTIVITY_RATE_PER_DAY[k],
            }
        )
    teams = {
        t: {
            "owners": {o: {"win_log_odds": params.OWNER_LOG_ODDS[o]} for o in owners},
            "win_log_odds": params.TEAM_LOG_ODDS[t],
            "cycle_time_multiplier": params.TEAM_CYCLE_MULTIPLIER[t],
            "close_date_optimism": params.TEAM_CLOSE_OPTIMISM[t],
            "push_mean_days": params.TEAM_PUSH_MEAN_DAYS[t],
            "win_rate_population": team_win[t],
        }
        for t, owners in params.TEAMS.items()
    }
    return {
        "model_version": params.MODEL_VERSION,
        "seed": seed,
        "n_customers": n_customers,
        "n_deals": n_deals,
        "period": {
            "start": str(clock.start.date()),
            "end": str(clock.end.date()),
            "as_of": str(clock.end.date()),
            "end_exclusive": str(clock.end_excl),
            "note": "events at or after end_exclusive are not recorded (open deals are censored)",
        },
        "customers": {
            "segments": segments,
            "time_unit": "week",
            "purchase_seasonality": {
                **params.PURCHASE_SEASONALITY,
                "formula": "rate(t) = lambda * (1 + amplitude * cos(2 pi (u - peak_year_fraction)))"
                ", u = days since 2000-01-01 / 365.25",
            },
            "acquisition": {
                "growth": params.ACQUISITION_GROWTH,
                "formula": "created_at density proportional to 1 + growth * x / L over the period",
                "first_order_at_created_at": True,
            },
            "repeat_orders": "orders with deal_id null; the first is the acquisition order",
            "industries": dict(params.INDUSTRIES),
            "countries": dict(params.COUNTRIES),
        },
        "pipeline": {
            "name": params.PIPELINE,
            "stages": stages,
            "model": "in stage k: stay ~ Gamma(shape, mean_days * team_mult * segment_mult); then "
            "advance (win from the last stage) with p = expit(logit(progression_k) + team + owner "
            "+ segment + source log-odds), else lost at stage k",
            "stage_duration": {"distribution": "gamma", "shape": params.STAGE_SHAPE},
            "teams": teams,
            "segment_win_log_odds": dict(params.SEGMENT_LOG_ODDS),
            "segment_cycle_time_multiplier": dict(params.SEGMENT_CYCLE_MULTIPLIER),
            "source_win_log_odds": dict(params.SOURCE_LOG_ODDS),
            "deal_segment_share": dict(params.DEAL_SEGMENT_SHARE),
            "source_share": source_share,
            "amount": {
                "listed": {
                    "distribution": "lognormal, rounded to 10",
                    "median_by_segment": dict(params.AMOUNT_MEDIAN),
                    "log_sd": params.AMOUNT_LOG_SD,
                },
                "realised_ratio": {
                    "distribution": "lognormal",
                    **params.AMOUNT_RATIO,
                    "mean": float(
                        np.exp(params.AMOUNT_RATIO["mu"] + params.AMOUNT_RATIO["sigma"] ** 2 / 2)
                    ),
                },
            },
            "expected_close_date": {
                "initial": "floor(created + optimism[team] * sum(mean_days) * team_mult * "
                "segment_mult * LogNormal(0, log_sd)) (a date)",
                "log_sd": params.CLOSE_PLAN_LOG_SD,
                "push": "when the date passes and the deal is open, after 1 + Exp(push_lag_mean) "
                "days the owner moves it to floor(that time) + max(1, ceil(Gamma(shape, "
                "push_mean_days[team] / shape))) days",
                "push_lag_mean_days": params.PUSH_LAG_MEAN_DAYS,
                "slip_shape": params.SLIP_SHAPE,
            },
            "quarter_end_pull": {
                "probability": params.QUARTER_PULL_PROBABILITY,
                "days": params.QUARTER_PULL_DAYS,
                "rule": "a win closing within `days` after a quarter starts closes instead on the "
                "previous quarter's last day with `probability`",
            },
        },
        "arrivals": {
            "organic": {
                "base_per_day": params.ORGANIC_BASE_PER_DAY * scale * norm,
                "trend_log_per_year": params.ARRIVAL_TREND_PER_YEAR,
                "seasonality": {**params.ARRIVAL_SEASONALITY, "scale": "log"},
                "quarter_end": {
                    "multiplier": params.QUARTER_END_MULTIPLIER,
                    "days": params.QUARTER_END_DAYS,
                },
                "formula": "per day d: base_per_day * exp(trend * (d + 0.5) / 365.25 + amplitude "
                "* cos(2 pi (u - peak))) * (multiplier if within the last `days` of a quarter)",
                "source_probabilities": dict(params.ORGANIC_SOURCES),
            },
            "total_is_exact": "n_deals deals: the process is conditioned on its total",
            "expected_total": total,
            "weekly_expected": {
                "week_start": [str(w.date()) for w in marketing.weeks],
                "organic": org_week.round(9).tolist(),
                "channels": {k: v.round(9).tolist() for k, v in ch_week.items()},
            },
        },
        "marketing": {
            "scale": scale,
            "normalisation": norm,
            "channels": {
                name: {
                    "source": params.CHANNEL_SOURCE[name],
                    "adstock": {
                        "type": "geometric",
                        "decay": params.ADSTOCK_DECAY[name],
                        "normalised": False,
                    },
                    "saturation": {
                        "type": "hill",
                        "half_saturation": params.HALF_SATURATION[name] * scale,
                        "shape": params.SATURATION_SHAPE[name],
                    },
                    "max_deals_per_week": params.MAX_DEALS_PER_WEEK[name] * scale * norm,
                    "expected_deals": float(channel_totals[c]),
                    "total_spend": float(marketing.spend[marketing.campaign_channel == c].sum()),
                }
                for c, name in enumerate(params.CHANNELS)
            },
            "formula": "extra deals in week w = max_deals_per_week * S(A_w), A_w = x_w + decay * "
            "A_{w-1}, S(A) = A^shape / (A^shape + half_saturation^shape); spread evenly over the "
            "week's days inside the period; a deal from a channel names one of its campaigns "
            "with probability proportional to that campaign's own adstock that week",
        },
        "activities": {
            "types": list(params.ACTIVITY_TYPES),
            "type_probabilities_by_stage": {
                st: list(p)
                for st, p in zip(params.STAGES, params.ACTIVITY_TYPE_BY_STAGE, strict=True)
            },
        },
        "n_weeks": int(n_weeks),
        "forecast_call": forecast_call_truth(),
    }


def forecast_call_truth() -> dict:
    """The known truth of the forecast call: categories, quotas and the managers' calls."""
    bias = params.MANAGER_CALL_BIAS
    return {
        "categories": {
            "rules": "pipeline at creation; entering Proposal: commit with probability "
            "commit_at_proposal, else best_case; entering Negotiation: commit; a close-date "
            "push of an open deal not in commit: omitted with probability rep_drop_probability "
            "(stays omitted unless won); won: closed; lost: omitted. Every change is a "
            "deal_history row (field forecast_category) at the time of its event",
            "commit_at_proposal": params.COMMIT_AT_PROPOSAL,
            "rep_drop_probability": params.REP_DROP_PROBABILITY,
            "commit_optimism": params.COMMIT_OPTIMISM,
            "commit_optimism_meaning": "at month-end origins, the next month's commit roll-up "
            "(open commit deals expected to close by its end) over that month's won deal "
            "revenue, summed over the months, is about 1 + commit_optimism (about 0.14 either "
            "way between seeds of the default company)",
        },
        "quotas": {
            "formula": "owner, month m: max(minimum, round(stretch * B * exp(trend * a / 12) / "
            "rounding) * rounding), B = the owner's won deal revenue in the period's last "
            "base_months months / their number, a = months from the period's last month to m "
            "(negative before); team = sum of its owners; company ('all') = sum of the teams",
            "stretch": params.QUOTA_STRETCH,
            "base_months": params.QUOTA_BASE_MONTHS,
            "trend_log_per_year": params.ARRIVAL_TREND_PER_YEAR,
            "rounding": params.QUOTA_ROUND,
            "minimum": params.QUOTA_MIN,
            "months_after_period": params.QUOTA_MONTHS_AHEAD,
            "period": "M",
        },
        "manager_calls": {
            "formula": "team t, month m, call at time a: round(C * bias[t] / (1 + "
            "commit_optimism) / rounding) * rounding, C = the team's commit roll-up of m as "
            "the deals stood at the end of the day before a (won deal revenue closed in m by "
            "then + open deals in category commit or closed whose expected close date is "
            "before m's end, overdue ones included; omitted deals in none)",
            "made_from": "the commit roll-up known at the call time, not the outcome",
            "commit_optimism": params.COMMIT_OPTIMISM,
            "bias": dict(bias),
            "bias_meaning": "call / (commit roll-up / (1 + commit_optimism)), up to rounding",
            "sandbagging_team": min(bias, key=bias.get),
            "when": "first: the month's first business day; update: the first business day "
            f"from day {params.UPDATE_DAY}; both at {params.CALL_HOUR}:00, if before the "
            "period end",
            "author": "<team> manager",
            "rounding": params.CALL_ROUND,
        },
    }


def true_win_probability(deals: pd.DataFrame, accounts: pd.DataFrame, truth: dict) -> pd.Series:
    """The true probability that each deal is eventually won, given the stage it is in.

    A deal in stage ``k`` (reached and not yet left) is won with probability
    ``prod_{j >= k} expit(logit(P_advance_j) + team + owner + segment + source)``; the time
    it has spent there does not matter in the demo model. Use it on deals that are open at
    some as-of date (with the stage they had then) to check a model's calibration.

    Parameters
    ----------
    deals
        Deals with ``deal_id``, ``account_id``, ``owner``, ``team``, ``source`` and ``stage``.
    accounts
        Accounts with ``account_id`` and ``segment``.
    truth
        The demo company's truth.

    Returns
    -------
    pandas.Series
        Probabilities indexed by ``deal_id``.
    """
    pl = truth["pipeline"]
    segment = deals["account_id"].map(accounts.set_index("account_id")["segment"])
    owner_off = {o: v["win_log_odds"] for t in pl["teams"].values() for o, v in t["owners"].items()}
    eta = (
        deals["team"].map({t: v["win_log_odds"] for t, v in pl["teams"].items()})
        + deals["owner"].map(owner_off)
        + segment.map(pl["segment_win_log_odds"])
        + deals["source"].map(pl["source_win_log_odds"])
    ).to_numpy(dtype=float)
    order = {s["stage"]: k for k, s in enumerate(pl["stages"])}
    stage = deals["stage"].map(order).to_numpy(dtype=float)
    prog = logit(np.array([s["progression_probability_reference"] for s in pl["stages"]]))
    p = expit(prog[None, :] + eta[:, None])
    ahead = np.arange(len(prog))[None, :] >= stage[:, None]
    win = np.prod(np.where(ahead, p, 1.0), axis=1)
    win[np.isnan(stage) | np.isnan(eta)] = np.nan
    return pd.Series(win, index=deals["deal_id"].to_numpy(), name="true_win_probability")
