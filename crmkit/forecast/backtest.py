"""Rolling-origin backtests of the deal-revenue forecast against what happened, with baselines.

At each origin (a past month end) the models are refitted on what was known then (deal
states rebuilt from ``deal_history`` and the deals' dates,
:func:`crmkit.store.history.deals_as_of`),
the won revenue of the next periods is forecast, and compared with the revenue actually
won. Scores per origin and lead: interval hits (50 / 80 / 95%, central intervals from the
draws), CRPS from samples, and the error of the median. Targets: each single period
ahead (``lead`` 1..h) and the sum of the first ``h`` periods (``lead`` ``"1-h"``).

Baselines, each with a predictive distribution so CRPS and coverage compare fairly:

* ``weighted_pipeline``: each open deal's amount times its stage's configured probability,
  in the period of its expected close date, as CRMs compute it (deals already past their
  expected close date sit in past periods and are not counted); its distribution is that
  of the sum of independent Bernoulli(probability) wins of each deal's amount (the model
  the weighted pipeline's mean implies).
* ``run_rate``: the mean of the last ``k`` complete periods with revenue; its distribution is
  a Student-t with ``k - 1`` degrees of freedom, centre the mean and scale the periods'
  standard deviation times ``sqrt(1 + 1/k)`` (the predictive of a normal sample), floored
  at zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crmkit.forecast.axes import period_axis
from crmkit.forecast.engine import fit_models, forecast_draws, load_frames
from crmkit.models.pipeline.data import deal_frame
from crmkit.store.history import deals_as_of, month_index

LEVELS = (0.5, 0.8, 0.95)


def crps_samples(samples: np.ndarray, y: float) -> float:
    """CRPS of a sample-based predictive distribution at the outcome ``y``.

    Uses ``E|X - y| - E|X - X'| / 2`` with the sorted-sample formula for the second term.
    """
    x = np.sort(np.asarray(samples, float))
    n = len(x)
    term1 = np.mean(np.abs(x - y))
    i = np.arange(1, n + 1)
    term2 = 2.0 * np.sum((2 * i - n - 1) * x) / (n * n)
    return float(term1 - term2 / 2.0)


def score(samples: np.ndarray, y: float) -> dict[str, float]:
    """CRPS, median error and 50/80/95% interval hits of one forecast."""
    out = {
        "crps": crps_samples(samples, y),
        "median": float(np.median(samples)),
        "mean": float(np.mean(samples)),
        "actual": float(y),
    }
    out["median_error"] = out["median"] - y
    for lev in LEVELS:
        lo, hi = np.quantile(samples, [(1 - lev) / 2, (1 + lev) / 2])
        out[f"hit{int(lev * 100)}"] = float(lo <= y <= hi)
    return out


def actual_won(deals: pd.DataFrame, period: str = "M") -> pd.Series:
    """Won revenue per period index (month index, or quarter index for ``"Q"``)."""
    won = deals[deals["status"].eq("won") & deals["closed_at"].notna()]
    m = month_index(won["closed_at"])
    key = m if period == "M" else m // 3
    return pd.Series(won["amount"].fillna(0.0).to_numpy(float)).groupby(key).sum()


def weighted_pipeline_draws(
    state: pd.DataFrame, stages: pd.DataFrame, axis, n_draws: int, seed: int = 0
) -> np.ndarray:
    """Baseline draws ``(draw, period)``: Bernoulli(configured probability) x amount per deal."""
    prob = dict(zip(stages["stage"].astype(str), stages["probability"].astype(float), strict=False))
    open_ = state[state["status"].eq("open")]
    p = open_["stage"].astype(str).map(prob).fillna(0.0).to_numpy(float)
    em = month_index(open_["expected_close_date"])
    k = np.where(em < 0, -1, em - axis.first_month)  # overdue deals sit in past periods
    per = np.where(
        (k >= 0) & (k < axis.months), axis.period_of_k[np.clip(k, 0, axis.months - 1)], -1
    )
    amount = open_["amount"].fillna(0.0).to_numpy(float)
    rng = np.random.default_rng(seed)
    out = np.zeros((n_draws, len(axis.labels)))
    for j in range(len(axis.labels)):
        sel = per == j
        if sel.any():
            wins = rng.random((n_draws, int(sel.sum()))) < p[sel]
            out[:, j] = wins @ amount[sel]
    return out


def run_rate_draws(
    history: pd.Series, n_periods: int, n_draws: int, k: int = 3, seed: int = 0
) -> np.ndarray:
    """Baseline draws ``(draw, period)`` from the last ``k`` periods' revenue (Student-t)."""
    vals = history.to_numpy(float)[-k:]
    rng = np.random.default_rng(seed)
    if len(vals) == 0:
        return np.zeros((n_draws, n_periods))
    mean = vals.mean()
    if len(vals) >= 2:
        sd = vals.std(ddof=1) * np.sqrt(1 + 1 / len(vals))
        t = rng.standard_t(len(vals) - 1, size=(n_draws, n_periods))
    else:
        sd, t = 0.5 * mean, rng.standard_normal((n_draws, n_periods))
    return np.maximum(mean + sd * t, 0.0)


def backtest(
    frames: dict[str, pd.DataFrame],
    origins: Sequence[object],
    *,
    horizon: int = 3,
    period: str = "M",
    draws: int = 1000,
    method: str = "map",
    seed: int = 0,
    run_rate_k: int = 3,
    window_months: int = 24,
    progress: bool = False,
) -> pd.DataFrame:
    """Rolling-origin backtest of the model and both baselines.

    Parameters
    ----------
    frames
        ``deals``, ``deal_history``, ``accounts``, ``stages`` (as the store gives them); the
        deals hold final outcomes, which are hidden from each origin's fit.
    origins
        Cut-off days (usually month ends).
    horizon
        Periods ahead.
    period
        ``"M"`` or ``"Q"``.
    draws
        Forecast draws.
    method
        Fit method of the models (``"map"`` by default for speed).
    seed
        Random seed.
    run_rate_k
        Periods averaged by the run-rate baseline.
    window_months
        Training window of the models.
    progress
        Print one line per origin.

    Returns
    -------
    pandas.DataFrame
        One row per origin, lead (``1..h`` and ``"1-h"``) and forecaster (``model``,
        ``weighted_pipeline``, ``run_rate``) with ``crps``, ``median``, ``mean``, ``actual``,
        ``median_error`` and ``hit50``, ``hit80``, ``hit95``.
    """
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    history = frames.get("deal_history")
    actual = actual_won(deals, period)
    rows: list[dict[str, Any]] = []
    for origin in origins:
        o = pd.Timestamp(origin)
        models = fit_models(
            {**frames, "deals": deals},
            as_of=o,
            method=method,
            seed=seed,
            window_months=window_months,
        )
        res = forecast_draws(
            models,
            frames,
            as_of=o,
            horizon=horizon,
            period=period,
            draws=draws,
            seed=seed,
            include_repeat=False,
        )
        axis = res["axis"]
        rev = res["revenue"].sel(group="all")
        model = (rev.sel(source="pipeline") + rev.sel(source="new_business")).to_numpy()
        state = deals_as_of(deals, history, o)
        wp = weighted_pipeline_draws(state, frames["stages"], axis, draws, seed)
        step = 1 if period == "M" else 3
        p0 = axis.first_month // step
        won_then = actual_won(state, period)
        past = won_then[won_then.index < p0]
        past = past[past.index >= past.index.min()] if len(past) else past
        full = pd.Series(0.0, index=np.arange(past.index.min(), p0)) if len(past) else past
        if len(past):
            full.loc[past.index] = past.to_numpy()
        rr = run_rate_draws(full, horizon, draws, run_rate_k, seed)
        outcome = np.array([actual.get(p0 + j, 0.0) for j in range(horizon)])
        for name, arr in (("model", model), ("weighted_pipeline", wp), ("run_rate", rr)):
            for j in range(horizon):
                rows.append(
                    {
                        "origin": o.date(),
                        "lead": str(j + 1),
                        "forecaster": name,
                        "period": axis.labels[j],
                        **score(arr[:, j], outcome[j]),
                    }
                )
            rows.append(
                {
                    "origin": o.date(),
                    "lead": f"1-{horizon}",
                    "forecaster": name,
                    "period": f"{axis.labels[0]}..{axis.labels[-1]}",
                    **score(arr.sum(axis=1), outcome.sum()),
                }
            )
        if progress:
            m1 = [r for r in rows[-3 * (horizon + 1) :] if r["lead"] == "1"]
            print(o.date(), " ".join(f"{r['forecaster']}={r['crps']:.0f}" for r in m1), flush=True)
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean CRPS, mean absolute median error and interval coverage per lead and forecaster."""
    g = results.assign(abs_median_error=results["median_error"].abs()).groupby(
        ["lead", "forecaster"]
    )
    out = g.agg(
        origins=("crps", "size"),
        crps=("crps", "mean"),
        mae_median=("abs_median_error", "mean"),
        cover50=("hit50", "mean"),
        cover80=("hit80", "mean"),
        cover95=("hit95", "mean"),
    )
    return out.reset_index()


def month_ends(start: object, end: object) -> list[pd.Timestamp]:
    """Month-end days from ``start`` to ``end`` (inclusive)."""
    return list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="ME"))


def recent_backtest(
    store,
    *,
    as_of: object,
    origins: int,
    horizon: int = 3,
    period: str = "M",
    draws: int = 200,
    method: str = "map",
    seed: int = 0,
) -> pd.DataFrame:
    """Backtest from the last month ends whose outcomes are known by ``as_of``, summarised.

    The report and the forecast notebook both call this: the origins are the last
    ``origins`` month ends at least ``horizon`` periods before ``as_of``, so every scored
    period is over by ``as_of``.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    as_of
        The forecast day.
    origins
        Number of month-end origins (each refits the models).
    horizon
        Periods ahead scored.
    period
        ``"M"`` or ``"Q"``.
    draws
        Forecast draws per origin.
    method
        Fit method.
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        :func:`summarise` of the scores (per lead and forecaster).
    """
    months = int(horizon) * (1 if period == "M" else 3)
    last = pd.Timestamp(as_of) - pd.DateOffset(months=months)
    first = last - pd.DateOffset(months=int(origins) + 1)
    ends = month_ends(first, last)[-int(origins) :]
    scores = backtest(
        load_frames(store), ends, horizon=int(horizon), period=period, draws=int(draws),
        method=method, seed=int(seed),
    )  # fmt: skip
    return summarise(scores)


__all__ = [
    "backtest",
    "crps_samples",
    "month_ends",
    "period_axis",
    "recent_backtest",
    "run_rate_draws",
    "score",
    "summarise",
    "weighted_pipeline_draws",
]
