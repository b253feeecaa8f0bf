"""Vectorised simulation kernels of the forecast (numba when importable, else plain Python).

Each open deal's monthly win / loss hazards are computed for a modest number of posterior
draws ``P`` and reused by the forecast draws ``d`` with ``d % P == p``, so parameter
uncertainty and outcome noise are both in every draw while the cost stays
O(deals x (P x months + draws)). Random numbers come from a counter-based generator
(SplitMix64 of seed, deal and draw), so results do not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np

from crmkit.models.pipeline.data import DUE_LEVELS, due_level, month_bucket

try:  # numba is optional: the kernels run (slowly) as plain Python without it
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False
    prange = range

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def _hash(key):
    """SplitMix64 finaliser of a 64-bit key."""
    z = key + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _unif(key):
    """Uniform in [0, 1) from a 64-bit key."""
    return (_hash(key) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def ratio_table(mu: np.ndarray, sigma: np.ndarray, size: int = 2048) -> np.ndarray:
    """``(P, size)`` realised/listed ratios at the normal quantiles of each draw's log-normal."""
    from scipy.special import ndtri

    z = ndtri((np.arange(size) + 0.5) / size)
    return np.exp(mu[:, None] + sigma[:, None] * z[None, :])


@njit(cache=True)
def _key(seed, a, b, slot):
    """Counter key of (seed, a, b, slot)."""
    return np.uint64(seed) * np.uint64(0x100000001B3) ^ (
        np.uint64(a) * np.uint64(0x9E3779B1) + np.uint64(b) * np.uint64(4) + np.uint64(slot)
    )


def time_effects(post: dict[str, np.ndarray], first_month: int, months: int) -> np.ndarray:
    """Time-varying logit part ``(P, 2, K, n_age, n_due)``: ahead + age + due + month of quarter.

    With ``post["month_shock"]`` (``(P, 2, H)`` common monthly log multipliers of the months
    from ``post["month_shock_first"]`` on, :mod:`crmkit.models.pipeline.shocks`), forecast
    month ``m`` also gets ``month_shock[:, :, m - month_shock_first]``: zero for months
    before the first (the past the shocks were estimated from), the last column beyond ``H``.
    """
    k = np.arange(months)
    m = first_month + k
    ahead = post["ahead"][:, :, month_bucket(k + 1)]  # (P, 2, K)
    miq = post["miq"][:, :, m % 3]
    base = ahead + miq
    if "month_shock" in post:
        shock = np.asarray(post["month_shock"], np.float64)
        rel = m - int(post["month_shock_first"])
        col = np.clip(rel, 0, shock.shape[2] - 1)
        base = base + np.where(rel[None, None, :] >= 0, shock[:, :, col], 0.0)
    base = base[:, :, :, None, None]
    return (base + post["age"][:, :, None, :, None] + post["due"][:, :, None, None, :]).astype(
        np.float64
    )


def stage_ahead_effects(post: dict[str, np.ndarray], months: int) -> np.ndarray:
    """Stage x months-ahead logit part ``(P, 2, n_stage, K)`` of forecast months ``1..K``.

    From ``post["stage_ahead"]`` ``(P, 2, n_stage, n_ahead)``; zero without it (posteriors
    of models saved before the interaction).
    """
    if "stage_ahead" not in post:
        p = post["stage"].shape[0]
        return np.zeros((p, 2, post["stage"].shape[2], months))
    bucket = month_bucket(np.arange(months) + 1)
    return np.asarray(post["stage_ahead"], np.float64)[:, :, :, bucket]


def static_effects(post: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> np.ndarray:
    """Per-deal constant logit part ``(P, 2, N)``: stage + group effects (code -1: none)."""
    from crmkit.models.pipeline.data import GROUPS

    out = post["stage"][:, :, codes["stage"]].astype(np.float64)
    for g in GROUPS:
        c = codes[g]
        u = post[f"u_{g}"]
        eff = u[:, :, np.maximum(c, 0)]
        out = out + np.where(c[None, None, :] >= 0, eff, 0.0)
    return out


def hazard_paths(
    post: dict[str, np.ndarray],
    codes: dict[str, np.ndarray],
    *,
    first_month: int,
    months: int,
    frac_first: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of being won / lost in each coming month, per posterior draw and deal.

    Parameters
    ----------
    post
        Posterior draws of the pipeline model (first axis: draw).
    codes
        ``stage``, group codes, ``created_m`` and ``expected_m`` (month indices, -1 unknown).
    first_month
        Month index of the first forecast month.
    months
        Number of months.
    frac_first
        Share of the first month still to come.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(P, N, K)`` unconditional probabilities of winning, resp. losing, in month k.
    """
    static = static_effects(post, codes)  # (P, 2, N)
    tv = time_effects(post, first_month, months)
    k = np.arange(months)
    m = first_month + k
    age_b = month_bucket(m[None, :] - codes["created_m"][:, None])  # (N, K)
    due_b = due_level(m[None, :], codes["expected_m"][:, None])
    eta = static[:, :, :, None] + tv[:, :, k[None, :], age_b, due_b]  # (P, 2, N, K)
    eta = eta + stage_ahead_effects(post, months)[:, :, codes["stage"], :]
    e = np.exp(eta)
    den = 1.0 + e.sum(axis=1)
    hw, hl = e[:, 0] / den, e[:, 1] / den
    hw[..., 0] *= frac_first
    hl[..., 0] *= frac_first
    surv = np.cumprod(1.0 - hw - hl, axis=-1)
    prev = np.concatenate([np.ones_like(surv[..., :1]), surv[..., :-1]], axis=-1)
    return prev * hw, prev * hl


@njit(parallel=True, cache=True)
def _pipeline_kernel(
    static,
    tvflat,
    tvidx,
    saflat,
    stage,
    slip_k,
    amount,
    gidx,
    period_of_k,
    frac_first,
    ratio_tab,
    n_draws,
    n_periods,
    n_groups,
    seed,
):
    """Simulate each open deal's win month and amount; sum into (draw, period, group).

    The odds of month ``k`` are ``static * tvflat[tvidx] * saflat[stage, k]`` (constant,
    time-varying and stage x months-ahead parts, exponentiated).

    Parallel over posterior draws p; draw d belongs to p = d % P, so threads write disjoint
    draws and each p's slice of the output stays in cache while the deals stream past.
    """
    n_p = static.shape[0]
    n = static.shape[2]
    k_max = tvidx.shape[1]
    out = np.zeros((n_draws, n_periods, n_groups))
    acc_win = np.zeros((n_p, n), dtype=np.float32)
    acc_slip = np.zeros((n_p, n), dtype=np.float32)
    for p in prange(n_p):
        cdf = np.empty(k_max)
        for i in range(n):
            sw = static[p, 0, i]  # exp of the constant logit parts
            sl = static[p, 1, i]
            s = stage[i]
            surv = 1.0
            cum = 0.0
            for k in range(k_max):
                t = tvidx[i, k]
                ew = sw * tvflat[p, 0, t] * saflat[p, 0, s, k]
                el = sl * tvflat[p, 1, t] * saflat[p, 1, s, k]
                den = 1.0 + ew + el
                hw = ew / den
                hl = el / den
                if k == 0:
                    hw *= frac_first
                    hl *= frac_first
                cum += surv * hw
                cdf[k] = cum
                surv *= 1.0 - hw - hl
                if k == slip_k[i]:
                    acc_slip[p, i] = 1.0 - cum
            acc_win[p, i] = cum
            d_ = np.int64(p)
            while d_ < n_draws:
                h = _hash(_key(seed, i, d_, 0))
                u = (h >> np.uint64(11)) * (1.0 / 9007199254740992.0)
                if u < cum:
                    k = 0
                    while cdf[k] <= u:
                        k += 1
                    per = period_of_k[k]
                    if per >= 0:
                        val = amount[i] * ratio_tab[p, np.int64(h & np.uint64(2047))]
                        for g in range(gidx.shape[1]):
                            gi = gidx[i, g]
                            if gi >= 0:
                                out[d_, per, gi] += val
                d_ += n_p
    p_win = np.zeros(n)
    p_slip = np.full(n, np.nan)
    for i in prange(n):
        a = 0.0
        b = 0.0
        for p in range(n_p):
            a += acc_win[p, i]
            b += acc_slip[p, i]
        p_win[i] = a / n_p
        if slip_k[i] >= 0 and slip_k[i] < k_max:
            p_slip[i] = b / n_p
    return out, p_win, p_slip


def simulate_pipeline(
    post: dict[str, np.ndarray],
    codes: dict[str, np.ndarray],
    amount: np.ndarray,
    gidx: np.ndarray,
    *,
    first_month: int,
    period_of_k: np.ndarray,
    frac_first: float,
    ratio_mu: np.ndarray,
    ratio_sigma: np.ndarray,
    n_draws: int,
    n_periods: int,
    n_groups: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Revenue draws ``(draw, period, group)`` of open deals, and each deal's P(win), P(slip).

    ``gidx`` (deals x memberships) gives the group columns a deal's revenue is added to
    (-1: none). ``period_of_k`` maps forecast months to periods (-1: beyond the horizon).
    """
    months = len(period_of_k)
    # exponentiated once: the kernel multiplies odds instead of exponentiating sums
    static = np.ascontiguousarray(np.exp(static_effects(post, codes)))
    tv = time_effects(post, first_month, months)  # (P, 2, K, n_age, n_due)
    n_age, n_due = tv.shape[3], tv.shape[4]
    tvflat = np.ascontiguousarray(np.exp(tv.reshape(tv.shape[0], 2, -1)))
    m = first_month + np.arange(months)
    age_b = month_bucket(m[None, :] - codes["created_m"][:, None])
    due_b = due_level(m[None, :], codes["expected_m"][:, None])
    tvidx = ((np.arange(months)[None, :] * n_age + age_b) * n_due + due_b).astype(np.int32)
    saflat = np.ascontiguousarray(np.exp(stage_ahead_effects(post, months)))  # (P, 2, S, K)
    e = codes["expected_m"]
    slip_k = np.where(e >= 0, np.maximum(e - first_month, 0), -1).astype(np.int64)
    return _pipeline_kernel(
        static,
        tvflat,
        np.ascontiguousarray(tvidx),
        saflat,
        np.asarray(codes["stage"], np.int64),
        slip_k,
        np.nan_to_num(amount.astype(np.float64)),
        gidx.astype(np.int64),
        period_of_k.astype(np.int64),
        float(frac_first),
        ratio_table(ratio_mu.astype(np.float64), ratio_sigma.astype(np.float64)),
        int(n_draws),
        int(n_periods),
        int(n_groups),
        int(seed),
    )


@njit(parallel=True, cache=True)
def _newbiz_kernel(counts, cdf, period_of_k, t_amount, t_gidx, t_bounds, n_periods, n_groups, seed):
    """Simulate arrivals' win months and amounts (templates of the win's lag); sum per draw."""
    n_draws, k_max = counts.shape
    n_p = cdf.shape[0]
    n_t = t_amount.shape[0]
    n_lag = t_bounds.shape[0]
    out = np.zeros((n_draws, n_periods, n_groups))
    for d in prange(n_draws):
        p = d % n_p
        for j in range(k_max):
            for i in range(counts[d, j]):
                serial = j * 16777216 + i + 1  # by month and rank: extra deals come last
                u = _unif(_key(seed, serial, d, 3))
                top = cdf[p, j, k_max - 1]
                if u < top:
                    k = j
                    while cdf[p, j, k] <= u:
                        k += 1
                    per = period_of_k[k]
                    if per >= 0 and n_t > 0:
                        lag = min(k - j, n_lag - 1)
                        lo, hi = t_bounds[lag, 0], t_bounds[lag, 1]
                        t = lo + int(_unif(_key(seed, serial, d, 4)) * (hi - lo))
                        for g in range(t_gidx.shape[1]):
                            gi = t_gidx[t, g]
                            if gi >= 0:
                                out[d, per, gi] += t_amount[t]
    return out


def simulate_new_business(
    counts: np.ndarray,
    cdf: np.ndarray,
    period_of_k: np.ndarray,
    t_amount: np.ndarray,
    t_gidx: np.ndarray,
    *,
    n_periods: int,
    n_groups: int,
    seed: int,
    lag_bounds: np.ndarray | None = None,
) -> np.ndarray:
    """Revenue draws ``(draw, period, group)`` of deals not yet created.

    ``counts[d, j]`` new deals are created in forecast month j of draw d; ``cdf[p, j, k]``
    is the probability that such a deal is won by forecast month k; a won deal takes the
    amount and groups of a template (a recently won deal) drawn at random: from the
    templates ``lag_bounds[lag, 0] <= t < lag_bounds[lag, 1]`` of its lag ``k - j`` (the
    last row for longer lags), or from all of them when ``lag_bounds`` is None.
    """
    n_t = len(t_amount)
    bounds = np.array([[0, n_t]]) if lag_bounds is None else np.asarray(lag_bounds)
    if bounds.ndim != 2 or bounds.shape[1] != 2 or not len(bounds):
        raise ValueError("lag_bounds must be (lags, 2) template index ranges")
    if n_t and (bounds.min() < 0 or bounds.max() > n_t or np.any(bounds[:, 1] <= bounds[:, 0])):
        raise ValueError("lag_bounds must be non-empty ranges of template indexes")
    return _newbiz_kernel(
        counts.astype(np.int64),
        np.ascontiguousarray(cdf, dtype=np.float64),
        period_of_k.astype(np.int64),
        t_amount.astype(np.float64),
        t_gidx.astype(np.int64),
        np.ascontiguousarray(bounds, dtype=np.int64),
        int(n_periods),
        int(n_groups),
        int(seed),
    )


__all__ = [
    "DUE_LEVELS",
    "HAVE_NUMBA",
    "hazard_paths",
    "simulate_new_business",
    "simulate_pipeline",
    "stage_ahead_effects",
    "static_effects",
    "time_effects",
]
