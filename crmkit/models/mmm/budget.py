"""Budget allocation with a fitted marketing-mix model.

:func:`optimize_budget` splits a weekly budget across channels to maximise the expected
(posterior-mean) steady-state response (:func:`steady_response`), then evaluates the
posterior draws at the optimum and at the current split, so the gain carries its spread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.models.mmm.model import MarketingMixModel


def steady_response(
    mmm: MarketingMixModel, weekly_spend: np.ndarray, p: dict[str, np.ndarray]
) -> np.ndarray:
    """Weekly contribution per channel once a constant spend has built up, (sample, channel)."""
    carry = (p["decay"][:, None, :] ** np.arange(mmm.l_max)[None, :, None]).sum(axis=1)
    a = np.asarray(weekly_spend, float)[None, None, :] / mmm.scales_["x"] * carry[:, None, :]
    return (mmm.saturate(a, p) * p["beta"][:, None, :])[:, 0, :] * mmm.scales_["y"]


def optimize_budget(
    mmm: MarketingMixModel,
    weekly_budget: float,
    *,
    bounds: dict[str, tuple[float, float]] | None = None,
    current: dict[str, float] | None = None,
    n_draws: int = 500,
    ci: float = 0.9,
) -> dict[str, Any]:
    """Split a weekly budget across channels to maximise the expected weekly outcome.

    The objective is the posterior mean of the steady-state response (the mean over draws
    of each draw's response, not the response at mean parameters), maximised with SLSQP
    under ``sum(spend) == weekly_budget`` and per-channel bounds. The posterior draws are
    then evaluated at the optimum and at ``current`` (default: the last 13 weeks' average
    split scaled to the budget), so the gain carries its uncertainty.

    Parameters
    ----------
    mmm
        A fitted model.
    weekly_budget
        Total spend per week.
    bounds
        ``{channel: (min, max)}`` weekly spend; default ``(0, weekly_budget)``.
    current
        The allocation to compare with.
    n_draws
        Posterior draws.
    ci
        Credible-interval mass.

    Returns
    -------
    dict
        ``allocation`` (DataFrame: channel, current, optimal, response mean / lo / hi at the
        optimum), ``optimal_draws`` and ``current_draws`` (total weekly response per draw),
        ``gain`` (dict: mean, lo, hi, probability the optimum beats current) and ``success``.

    """
    if not np.isfinite(weekly_budget) or weekly_budget <= 0:
        raise ValidationError(
            "budget", [RowError(None, "weekly_budget", "must be > 0", weekly_budget)]
        )
    p = mmm.draws(n_draws)
    chans = mmm.channels
    b = bounds or {}
    unknown = sorted(set(b) - set(chans))
    if unknown:
        raise CrmkitError(f"bounds name unknown channel(s) {unknown}; fitted: {chans}")
    lims = [tuple(b.get(c, (0.0, weekly_budget))) for c in chans]
    if sum(lo for lo, _ in lims) > weekly_budget or sum(hi for _, hi in lims) < weekly_budget:
        raise CrmkitError("the bounds cannot add up to the weekly budget")
    if current is None:
        last = mmm.data_[chans].tail(13).mean().to_numpy(float)
        last = last if last.sum() > 0 else np.ones(len(chans))
        cur = last / last.sum() * weekly_budget
    else:
        cur = np.array([float(current.get(c, 0.0)) for c in chans])
    scale = weekly_budget

    def neg(u: np.ndarray) -> float:
        return -float(steady_response(mmm, u * scale, p).sum(axis=1).mean()) / scale

    x0 = np.clip(cur, [lo for lo, _ in lims], [hi for _, hi in lims]) / scale
    res = optimize.minimize(
        neg,
        x0,
        method="SLSQP",
        bounds=[(lo / scale, hi / scale) for lo, hi in lims],
        constraints=[{"type": "eq", "fun": lambda u: u.sum() - 1.0}],
        options={"maxiter": 500, "ftol": 1e-10},
    )
    best = np.clip(res.x, 0, None) * scale
    r_best = steady_response(mmm, best, p)
    tot_best = r_best.sum(axis=1)
    tot_cur = steady_response(mmm, cur, p).sum(axis=1)
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    alloc = pd.DataFrame(
        {
            "channel": chans,
            "current": cur,
            "optimal": best,
            "response_mean": r_best.mean(axis=0),
            "response_lo": np.quantile(r_best, lo, axis=0),
            "response_hi": np.quantile(r_best, hi, axis=0),
        }
    )
    gain = tot_best - tot_cur
    return {
        "allocation": alloc,
        "optimal_draws": tot_best,
        "current_draws": tot_cur,
        "gain": {
            "mean": float(gain.mean()),
            "lo": float(np.quantile(gain, lo)),
            "hi": float(np.quantile(gain, hi)),
            "p_better": float((gain > 0).mean()),
        },
        "success": bool(res.success),
    }


__all__ = ["optimize_budget", "steady_response"]
