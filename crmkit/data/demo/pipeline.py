"""Demo pipeline: each new deal's account, stage path, timing, amounts, slips, history, activities.

A deal starts in the first stage. In stage ``k`` it stays a Gamma-distributed time and then
either moves on (from the last stage: is won) with probability
``expit(logit(pi_k) + team + owner + segment + source)`` or is lost there. The owner sets an
expected close date at creation (optimistic by team) and pushes it whenever it passes while
the deal is still open. Everything after the period end is cut off: those deals stay open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from crmkit.data.demo import params
from crmkit.data.demo.clock import Clock, choice, padded_ids, take, vocab
from crmkit.data.demo.customers import OWNER_TEAM, OWNERS, Accounts
from crmkit.data.demo.marketing import NewDeals

N_STAGES = len(params.STAGES)
TEAM_NAMES = tuple(params.TEAMS)
#: Forecast categories, indexed as :func:`simulate_categories` numbers them.
CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")


@dataclass
class DealPaths:
    """Per-deal arrays of the full (uncensored) simulated life of every deal."""

    account: np.ndarray
    segment: np.ndarray
    owner: np.ndarray
    team: np.ndarray
    enter: np.ndarray  # (n, N_STAGES) entry time per stage, NaN if never reached
    close: np.ndarray  # time the deal is won or lost
    won: np.ndarray  # bool
    last_stage: np.ndarray  # stage index at which it closes
    listed: np.ndarray
    realised: np.ndarray
    ecd0: np.ndarray  # initial expected close date (integer day offset)


def assign_accounts(rng: np.random.Generator, acc: Accounts, t: np.ndarray) -> np.ndarray:
    """Pick an account of the deal's segment acquired before the deal (moving one if none)."""
    n = len(t)
    seg = choice(rng, params.DEAL_SEGMENT_SHARE, n)
    account = np.empty(n, dtype=np.int64)
    for s in range(len(params.SEGMENTS)):
        sel = np.flatnonzero(seg == s)
        if len(sel) == 0:
            continue
        pool = np.flatnonzero(acc.segment == s)
        if len(pool) == 0:
            pool = np.arange(len(acc.t0))
        pool = pool[np.argsort(acc.t0[pool], kind="stable")]
        k = np.searchsorted(acc.t0[pool], t[sel], side="right")
        pick = np.floor(rng.random(len(sel)) * k).astype(np.int64)
        account[sel] = pool[pick]
        early = sel[k == 0]  # no account of this segment yet: acquire the first one earlier
        if len(early):
            new_t0 = np.maximum(t[early] - 7.0 * rng.random(len(early)), 0.0)
            np.minimum.at(acc.t0, pool[0], new_t0.min())
    return account


def simulate_paths(
    rng: np.random.Generator, clock: Clock, acc: Accounts, deals: NewDeals, account: np.ndarray
) -> DealPaths:
    """Simulate every deal's stages, close, amounts and initial expected close date."""
    n = len(deals.t)
    seg = acc.segment[account]
    owner = acc.owner[account]
    team = np.array([TEAM_NAMES.index(OWNER_TEAM[o]) for o in range(len(OWNERS))])[owner]
    seg_names = np.array(params.SEGMENTS)
    eta = (
        np.array([params.TEAM_LOG_ODDS[x] for x in TEAM_NAMES])[team]
        + np.array([params.OWNER_LOG_ODDS[x] for x in OWNERS])[owner]
        + np.array([params.SEGMENT_LOG_ODDS[x] for x in params.SEGMENTS])[seg]
        + np.array([params.SOURCE_LOG_ODDS[x] for x in deals.source])
    )
    mult = (
        np.array([params.TEAM_CYCLE_MULTIPLIER[x] for x in TEAM_NAMES])[team]
        * np.array([params.SEGMENT_CYCLE_MULTIPLIER[x] for x in params.SEGMENTS])[seg]
    )
    enter = np.full((n, N_STAGES), np.nan)
    enter[:, 0] = deals.t
    close = np.zeros(n)
    won = np.zeros(n, dtype=bool)
    last = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for k in range(N_STAGES):
        idx = np.flatnonzero(alive)
        mean = params.STAGE_MEAN_DAYS[k] * mult[idx]
        leave = enter[idx, k] + rng.gamma(params.STAGE_SHAPE, mean / params.STAGE_SHAPE)
        ok = rng.random(len(idx)) < expit(logit(params.PROGRESSION_PROBABILITY[k]) + eta[idx])
        last[idx] = k
        if k < N_STAGES - 1:
            enter[idx[ok], k + 1] = leave[ok]
            close[idx[~ok]] = leave[~ok]
            alive[idx[~ok]] = False
        else:
            close[idx] = leave
            won[idx[ok]] = True
    _quarter_pull(rng, clock, enter[:, -1], close, won)
    listed = np.maximum(
        np.round(
            rng.lognormal(
                np.log(np.array([params.AMOUNT_MEDIAN[x] for x in seg_names])[seg]),
                params.AMOUNT_LOG_SD,
            ),
            -1,
        ),
        10.0,
    )
    ratio = rng.lognormal(params.AMOUNT_RATIO["mu"], params.AMOUNT_RATIO["sigma"], n)
    realised = np.round(listed * ratio, 2)
    expected_cycle = np.sum(params.STAGE_MEAN_DAYS) * mult
    optimism = np.array([params.TEAM_CLOSE_OPTIMISM[x] for x in TEAM_NAMES])[team]
    plan = optimism * expected_cycle * rng.lognormal(0.0, params.CLOSE_PLAN_LOG_SD, n)
    ecd0 = np.floor(deals.t + plan)
    return DealPaths(account, seg, owner, team, enter, close, won, last, listed, realised, ecd0)


def _quarter_pull(
    rng: np.random.Generator,
    clock: Clock,
    neg_enter: np.ndarray,
    close: np.ndarray,
    won: np.ndarray,
) -> None:
    """Pull some wins closing early in a quarter back to the previous quarter's last day."""
    idx = np.flatnonzero(won)
    if len(idx) == 0:
        return
    when = pd.DatetimeIndex(clock.to_datetime(close[idx]))
    q_start = when.to_period("Q").start_time.normalize()
    q_day = (q_start - clock.start).days.to_numpy().astype(float)
    new = q_day - 1.0 + (8.0 + 10.0 * rng.random(len(idx))) / 24.0
    pull = (
        (close[idx] - q_day < params.QUARTER_PULL_DAYS)
        & (rng.random(len(idx)) < params.QUARTER_PULL_PROBABILITY)
        & (new > neg_enter[idx])
    )
    close[idx[pull]] = new[pull]


def simulate_slips(
    rng: np.random.Generator, clock: Clock, paths: DealPaths
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Push overdue expected close dates: ((deal, at, old, new) per push, final date per deal)."""
    push_mean = np.array([params.TEAM_PUSH_MEAN_DAYS[x] for x in TEAM_NAMES])[paths.team]
    horizon = np.minimum(paths.close, clock.length)
    ecd = paths.ecd0.copy()
    active = np.ones(len(ecd), dtype=bool)
    out: list[tuple[np.ndarray, ...]] = []
    while active.any():
        idx = np.flatnonzero(active)
        at = ecd[idx] + 1.0 + rng.exponential(params.PUSH_LAG_MEAN_DAYS, len(idx))
        do = at < horizon[idx]
        idx, at = idx[do], at[do]
        step = np.maximum(
            np.ceil(rng.gamma(params.SLIP_SHAPE, push_mean[idx] / params.SLIP_SHAPE)), 1.0
        )
        new = np.floor(at) + step
        out.append((idx, at, ecd[idx].copy(), new))
        ecd[idx] = new
        active[:] = False
        active[idx] = True
    if not out:
        empty = np.zeros(0)
        return (empty.astype(np.int64), empty, empty, empty), ecd
    pushes = tuple(np.concatenate(x) for x in zip(*out, strict=True))
    return pushes, ecd


def simulate_categories(
    rng: np.random.Generator,
    clock: Clock,
    paths: DealPaths,
    pushes: tuple[np.ndarray, ...],
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Move each deal's forecast category with its stages, pushes and close.

    ``pipeline`` at creation; on entering Proposal ``commit`` with probability
    ``params.COMMIT_AT_PROPOSAL`` (the reps' optimism) else ``best_case``; on entering
    Negotiation ``commit``; at a push of the close date of an open deal not yet in commit,
    ``omitted`` with probability ``params.REP_DROP_PROBABILITY`` (the rep drops it; later
    stage moves leave it there); ``closed`` when won; ``omitted`` when lost. Changes after the
    period end are cut off.

    Parameters
    ----------
    rng
        The categories' own random generator.
    clock
        The period.
    paths
        The deals' simulated lives.
    pushes
        ``(deal, at, old, new)`` close-date pushes from :func:`simulate_slips`.

    Returns
    -------
    tuple
        ``((deal, at, old, new), final)``: the category changes (old and new as text, old
        None at creation), in time order per deal, and each deal's category index (into
        :data:`CATEGORIES`) at the period end.

    """
    n = len(paths.close)
    L = clock.length
    p_deal, p_at = pushes[0], pushes[1]
    at_proposal = rng.random(n) < params.COMMIT_AT_PROPOSAL
    prop_t = paths.enter[:, 2]
    neg_t = paths.enter[:, 3]
    commit_t = np.nan_to_num(np.where(at_proposal, prop_t, neg_t), nan=np.inf)
    drop = (p_at < commit_t[p_deal]) & (rng.random(len(p_deal)) < params.REP_DROP_PROBABILITY)
    drop_t = np.full(n, np.inf)
    np.minimum.at(drop_t, p_deal[drop], p_at[drop])
    until = np.minimum(drop_t, L)
    every = np.arange(n)
    p_ok = np.flatnonzero(np.nan_to_num(prop_t, nan=np.inf) < until)
    n_ok = np.flatnonzero(np.nan_to_num(neg_t, nan=np.inf) < until)
    d_ok = np.flatnonzero(drop_t < L)
    c_ok = np.flatnonzero(paths.close < L)
    deal = np.concatenate((every, p_ok, n_ok, d_ok, c_ok))
    at = np.concatenate(
        (paths.enter[:, 0], prop_t[p_ok], neg_t[n_ok], drop_t[d_ok], paths.close[c_ok])
    )
    new = np.concatenate(
        (
            np.full(n, 0),
            np.where(at_proposal[p_ok], 2, 1),
            np.full(len(n_ok), 2),
            np.full(len(d_ok), 4),
            np.where(paths.won[c_ok], 3, 4),
        )
    )
    # creation, stage moves, drop, close: at equal times in that order
    kind = np.repeat(np.arange(5), [n, len(p_ok), len(n_ok), len(d_ok), len(c_ok)])
    order = np.lexsort((kind, at, deal))
    deal, at, new = deal[order], at[order], new[order]
    first = np.ones(len(deal), dtype=bool)
    first[1:] = deal[1:] != deal[:-1]
    old = np.roll(new, 1)
    old[first] = -1
    keep = first | (new != old)
    deal, at, old, new = deal[keep], at[keep], old[keep], new[keep]
    final = np.zeros(n, dtype=np.int64)
    last = np.ones(len(deal), dtype=bool)
    last[:-1] = deal[1:] != deal[:-1]
    final[deal[last]] = new[last]
    names = np.array(CATEGORIES, dtype=object)
    old_text = np.where(old < 0, None, names[np.maximum(old, 0)])
    return (deal, at, old_text, names[new]), final


def _date_text(clock: Clock, day: np.ndarray) -> np.ndarray:
    """Day offsets as ISO date strings."""
    return np.datetime_as_string(clock.to_date(day), unit="D").astype(object)


def _float_text(x: np.ndarray) -> np.ndarray:
    """Floats as the store writes them into the history (``repr(float)``)."""
    return np.array([repr(float(v)) for v in x], dtype=object)


def build_deal_frames(
    rng: np.random.Generator,
    clock: Clock,
    deals: NewDeals,
    paths: DealPaths,
    account_ids: np.ndarray,
    account_names: np.ndarray,
    campaign_ids: np.ndarray,
    *,
    rng_categories: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    """Cut the simulated lives at the period end into deals, deal_history and activities."""
    n = len(deals.t)
    L = clock.length
    stages = vocab(params.STAGES)
    owners = vocab(OWNERS)
    deal_ids = padded_ids("D", n)
    closed = paths.close < L
    reached = np.nan_to_num(paths.enter, nan=np.inf) < L
    stage_now = np.where(closed, paths.last_stage, reached.sum(axis=1) - 1)
    status = np.where(closed, np.where(paths.won, "won", "lost"), "open").astype(object)
    won_obs = closed & paths.won
    lost_obs = closed & ~paths.won
    pushes, ecd = simulate_slips(rng, clock, paths)
    reason = np.full(n, -1)
    for k in range(N_STAGES):
        sel = np.flatnonzero(lost_obs & (paths.last_stage == k))
        reason[sel] = rng.choice(
            len(params.LOST_REASONS), len(sel), p=params.LOST_REASON_BY_STAGE[k]
        )
    cat_events, category = simulate_categories(rng_categories, clock, paths, pushes)
    categories = vocab(CATEGORIES)
    product = take(vocab(params.PRODUCTS), rng.integers(0, len(params.PRODUCTS), n))
    name = pd.Series(take(account_names, paths.account)) + " - " + pd.Series(product)
    deal_frame = pd.DataFrame(
        {
            "deal_id": deal_ids,
            "account_id": take(account_ids, paths.account),
            "name": name.array,
            "owner": take(owners, paths.owner),
            "team": take(vocab(TEAM_NAMES), paths.team),
            "pipeline": params.PIPELINE,
            "stage": take(stages, stage_now),
            "status": pd.array(status, dtype="str"),
            "amount": np.where(won_obs, paths.realised, paths.listed),
            "currency": "USD",
            "created_at": clock.to_datetime(deals.t).astype("datetime64[ns]"),
            "expected_close_date": clock.to_date(ecd).astype("datetime64[ns]"),
            "closed_at": np.where(
                closed, clock.to_datetime(paths.close), np.datetime64("NaT")
            ).astype("datetime64[ns]"),
            "probability_override": np.nan,
            "forecast_category": take(categories, category),
            "lost_reason": take(vocab(params.LOST_REASONS), reason),
            "source": pd.array(deals.source, dtype="str"),
            "campaign_id": take(campaign_ids, deals.campaign),
        }
    )
    history = _history(clock, deals, paths, deal_ids, owners, won_obs, closed, pushes, cat_events)
    activities = _activities(rng, clock, paths, deal_ids, account_ids, owners)
    return {"deals": deal_frame, "deal_history": history, "activities": activities}


def _history(
    clock, deals, paths, deal_ids, owners, won_obs, closed, pushes, cat_events
) -> pd.DataFrame:
    """Deal history rows: creation values, stage moves, close-date pushes, closes, categories."""
    n = len(deal_ids)
    L = clock.length
    parts: list[dict[str, np.ndarray]] = []
    every = np.arange(n)
    none = np.full(n, None, dtype=object)

    def add(idx, at, field, old, new, rank):
        parts.append(
            dict(
                deal=idx,
                at=at,
                field=np.full(len(idx), field, dtype=object),
                old=old,
                new=new,
                rank=np.full(len(idx), rank),
            )
        )

    add(every, deals.t, "stage", none, np.full(n, params.STAGES[0], dtype=object), 0)
    add(every, deals.t, "status", none, np.full(n, "open", dtype=object), 1)
    add(every, deals.t, "amount", none, _float_text(paths.listed), 2)
    add(every, deals.t, "expected_close_date", none, _date_text(clock, paths.ecd0), 3)
    for k in range(1, N_STAGES):
        idx = np.flatnonzero(np.nan_to_num(paths.enter[:, k], nan=np.inf) < L)
        add(
            idx,
            paths.enter[idx, k],
            "stage",
            np.full(len(idx), params.STAGES[k - 1], dtype=object),
            np.full(len(idx), params.STAGES[k], dtype=object),
            0,
        )
    p_deal, p_at, p_old, p_new = pushes
    add(p_deal, p_at, "expected_close_date", _date_text(clock, p_old), _date_text(clock, p_new), 3)
    idx = np.flatnonzero(closed)
    add(
        idx,
        paths.close[idx],
        "status",
        np.full(len(idx), "open", dtype=object),
        np.where(paths.won[idx], "won", "lost").astype(object),
        1,
    )
    idx = np.flatnonzero(won_obs & (paths.realised != paths.listed))
    add(
        idx,
        paths.close[idx],
        "amount",
        _float_text(paths.listed[idx]),
        _float_text(paths.realised[idx]),
        2,
    )
    c_deal, c_at, c_old, c_new = cat_events
    add(c_deal, c_at, "forecast_category", c_old, c_new, 4)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    at = clock.to_datetime(cat["at"]).astype("datetime64[ns]")
    order = np.lexsort((cat["rank"], cat["deal"], at))
    m = len(order)
    return pd.DataFrame(
        {
            "history_id": pd.array(np.arange(1, m + 1), dtype="Int64"),
            "deal_id": take(deal_ids, cat["deal"][order]),
            "changed_at": at[order],
            "changed_by": take(owners, paths.owner[cat["deal"][order]]),
            "field": pd.array(cat["field"][order], dtype="str"),
            "old_value": pd.array(cat["old"][order], dtype="str"),
            "new_value": pd.array(cat["new"][order], dtype="str"),
        }
    )


def _activities(rng, clock, paths, deal_ids, account_ids, owners) -> pd.DataFrame:
    """Draw calls, e-mails and meetings at a stage-dependent rate while a deal is in a stage."""
    L = clock.length
    exits = np.column_stack([paths.enter[:, 1:], np.full(len(deal_ids), np.nan)])
    last_exit = np.where(np.isnan(exits), paths.close[:, None], exits)
    deal_l, t_l, stage_l = [], [], []
    for k in range(N_STAGES):
        idx = np.flatnonzero(np.nan_to_num(paths.enter[:, k], nan=np.inf) < L)
        lo = paths.enter[idx, k]
        hi = np.minimum(last_exit[idx, k], L)
        count = rng.poisson(params.ACTIVITY_RATE_PER_DAY[k] * np.maximum(hi - lo, 0.0))
        rep = np.repeat(np.arange(len(idx)), count)
        deal_l.append(idx[rep])
        t_l.append(lo[rep] + rng.random(len(rep)) * (hi - lo)[rep])
        stage_l.append(np.full(len(rep), k))
    deal = np.concatenate(deal_l)
    t = np.concatenate(t_l)
    stage = np.concatenate(stage_l)
    types = vocab(params.ACTIVITY_TYPES)
    kind = np.empty(len(deal), dtype=np.int64)
    for k in range(N_STAGES):
        sel = np.flatnonzero(stage == k)
        kind[sel] = rng.choice(len(types), len(sel), p=params.ACTIVITY_TYPE_BY_STAGE[k])
    order = np.argsort(t, kind="stable")
    deal, t, stage, kind = deal[order], t[order], stage[order], kind[order]
    note = pd.Series(take(types, kind)) + " during " + pd.Series(take(vocab(params.STAGES), stage))
    return pd.DataFrame(
        {
            "activity_id": padded_ids("ACT", len(deal), max(7, len(str(len(deal))))),
            "account_id": take(account_ids, paths.account[deal]),
            "deal_id": take(deal_ids, deal),
            "type": take(types, kind),
            "at": clock.to_datetime(t).astype("datetime64[ns]"),
            "owner": take(owners, paths.owner[deal]),
            "note": note.array,
        }
    )
