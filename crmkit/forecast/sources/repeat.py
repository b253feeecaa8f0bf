"""Repeat revenue from existing customers: BG/NBD + Gamma-Gamma draws per coming month.

Repeat revenue is the orders not linked to a deal (orders with a ``deal_id`` are the
revenue of a won deal, already counted by the pipeline). Each customer (account) gets
posterior draws of its expected purchases in each month (BG/NBD, from
:mod:`crmkit.models.clv.models`) times its expected spend (Gamma-Gamma, or the mean order value
when too few repeat buyers); the sum over customers gets purchase noise (a gamma with the
variance of a compound Poisson whose order values have a coefficient of variation of 1).
Revenue is allocated to ``all``, to the account's segment, owner and the owner's team.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.data.purchases import purchase_summary

WEEKS_PER_MONTH = 365.25 / 12 / 7


def repeat_summary(orders: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """Purchase summary (weeks) of orders without a deal, up to and including ``as_of``."""
    o = orders[orders["deal_id"].isna()] if "deal_id" in orders else orders
    s = purchase_summary(o, as_of, time_unit="W", customer="account_id", date="ordered_at")
    return s[["customer_id", "frequency", "recency", "T", "monetary_value"]]


def repeat_draws(
    orders: pd.DataFrame | None,
    accounts: pd.DataFrame | None,
    group_index: dict[str, int],
    owner_team: dict[str, str],
    *,
    as_of: object,
    month_edges_weeks: np.ndarray,
    period_of_k: np.ndarray,
    n_periods: int,
    n_draws: int,
    method: str = "map",
    seed: int = 0,
    param_draws: int = 100,
) -> tuple[np.ndarray, dict]:
    """Repeat revenue draws ``(draw, period, group)`` and the fit's diagnostics.

    ``month_edges_weeks`` are the ends of the forecast months in weeks after ``as_of``
    (the first month may be partial).
    """
    n_groups = len(group_index)
    out = np.zeros((n_draws, n_periods, n_groups))
    if orders is None or orders.empty:
        return out, {"ok": True, "method": "none", "message": "no orders: no repeat revenue"}
    data = repeat_summary(orders, as_of)
    if len(data) < 20 or (data["frequency"] > 0).sum() < 10:
        return out, {
            "ok": True,
            "method": "none",
            "message": f"{len(data)} customers: too few for a repeat-revenue model",
        }
    from crmkit.models.clv.models import BetaGeo, GammaGamma

    bg = BetaGeo(random_seed=seed).fit(data, method=method)
    edges = np.concatenate([[0.0], month_edges_weeks])
    cum = np.stack(
        [
            np.asarray(bg.expected_purchases(float(t), data, n_draws=param_draws))
            if t > 0
            else np.zeros((param_draws, len(data)))
            for t in edges
        ],
        axis=-1,
    )
    per_month = np.diff(cum, axis=-1)  # (P, customers, months)
    repeaters = data[data["frequency"] > 0]
    spend_diag: dict = {}
    if len(repeaters) >= 20:
        gg = GammaGamma(random_seed=seed).fit(repeaters, method=method)
        spend = np.asarray(gg.expected_spend(data, n_draws=param_draws))
        spend_diag = gg.diagnostics_
    else:
        spend = np.full((param_draws, len(data)), float(repeaters["monetary_value"].mean()))
    rev = per_month * spend[:, :, None]
    # membership of each customer in the groups
    seg = owner = None
    if accounts is not None and len(accounts):
        a = accounts.set_index("account_id")
        seg = data["customer_id"].map(a["segment"]) if "segment" in a else None
        owner = data["customer_id"].map(a["owner"]) if "owner" in a else None
    member = np.zeros((len(data), n_groups))
    member[:, group_index["all"]] = 1.0
    for kind, values in (("segment", seg), ("owner", owner)):
        if values is None:
            continue
        for i, v in enumerate(values.to_numpy()):
            gi = group_index.get(f"{kind}={v}")
            if gi is not None:
                member[i, gi] = 1.0
            if kind == "owner" and isinstance(v, str) and v in owner_team:
                ti = group_index.get(f"team={owner_team[v]}")
                if ti is not None:
                    member[i, ti] = 1.0
    # purchase noise per cell of customers sharing their groups, so group sums stay sums
    cells, cell_of = np.unique(member, axis=0, return_inverse=True)
    onehot = np.zeros((len(data), len(cells)))
    onehot[np.arange(len(data)), cell_of.ravel()] = 1.0
    mean_rev = np.einsum("pcm,cj->pmj", rev, onehot)  # (P, months, cells)
    mean_n = np.einsum("pcm,cj->pmj", per_month, onehot)
    rng = np.random.default_rng(seed + 7)
    pick = np.arange(n_draws) % param_draws
    mr, mn = mean_rev[pick], np.maximum(mean_n[pick], 1e-9)
    shape = mn / 2.0  # compound Poisson with order-value CV 1: variance = 2 * n * spend^2
    noise = rng.gamma(shape, 1.0 / shape)
    monthly = np.einsum("dmj,jg->dmg", mr * noise, cells)  # (draw, months, groups)
    for k, per in enumerate(period_of_k):
        if per >= 0:
            out[:, per, :] += monthly[:, k, :]
    diag = dict(bg.diagnostics_)
    diag.update({"method": method, "customers": len(data), "gamma_gamma": spend_diag})
    diag["ok"] = bool(diag.get("ok", True) and spend_diag.get("ok", True))
    return out, diag
