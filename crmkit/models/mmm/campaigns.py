"""Campaign results: cost, attributed deals and orders, won revenue, ROI, with Bayesian spread.

A deal belongs to a campaign through ``deals.campaign_id`` (and to a source through
``deals.source``); orders belong to a campaign through their ``deal_id``. Counts and
revenue to date are plain sums. So that a campaign with three deals is not over-read, its
win rate and revenue per won deal are estimated with partial pooling by channel
(conjugate empirical Bayes, fast and exact given the pooled priors):

* win rate: ``won_i ~ Binomial(closed_i, p_i)``, ``p_i ~ Beta(m_ch * k_ch, (1 - m_ch) * k_ch)``
  where the channel mean ``m_ch`` is the channel's pooled win rate shrunk towards the overall
  rate and the concentration ``k_ch`` maximises the channel's beta-binomial marginal
  likelihood; the posterior of ``p_i`` is a Beta;
* revenue per won deal: log amounts ``~ Normal(mu_i, s_ch)``, ``mu_i ~ Normal(mu_ch, tau_ch)``
  (method-of-moments ``tau_ch``); the posterior of ``mu_i`` is normal and the revenue per won
  deal is ``exp(mu_i + s_ch^2 / 2)``.

From their draws: the expected value of a deal, the projected revenue (won to date plus
the open deals' expected value), the projected ROI and the cost per won deal, each with a
credible interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from crmkit.errors import CrmkitError

#: Label of deals or spend without a campaign / source.
NONE = "(none)"


def _betabinom_loglike(log_k: float, m: float, won: np.ndarray, n: np.ndarray) -> float:
    """Beta-binomial log marginal likelihood of campaigns at mean ``m``, concentration e^log_k."""
    k = np.exp(log_k)
    a, b = m * k, (1 - m) * k
    return float(np.sum(special.betaln(won + a, n - won + b) - special.betaln(a, b)))


def beta_prior(
    won: np.ndarray,
    n: np.ndarray,
    *,
    overall: float,
    strength: float = 10.0,
    k_bounds: tuple[float, float] = (2.0, 500.0),
) -> tuple[float, float]:
    """Pooled Beta prior ``(a, b)`` of the win rates of one channel's campaigns.

    Parameters
    ----------
    won, n
        Won and closed deals per campaign.
    overall
        Win rate over every channel, the mean the channel is shrunk towards.
    strength
        Weight, in deals, of ``overall`` in the channel mean.
    k_bounds
        Range of the concentration (prior deals) searched.

    Returns
    -------
    (float, float)
        ``a`` and ``b`` of the Beta prior.

    """
    won, n = np.asarray(won, float), np.asarray(n, float)
    m = (won.sum() + strength * overall) / (n.sum() + strength)
    m = float(np.clip(m, 1e-3, 1 - 1e-3))
    keep = n > 0
    if keep.sum() < 2:
        k = 20.0
    else:
        res = optimize.minimize_scalar(
            lambda lk: -_betabinom_loglike(lk, m, won[keep], n[keep]),
            bounds=tuple(np.log(k_bounds)),
            method="bounded",
        )
        k = float(np.exp(res.x))
    return m * k, (1 - m) * k


def _normal_pool(
    logs: list[np.ndarray], prior_mu: float, prior_sd: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Posterior mean / sd of each group's mean log amount, pooled towards their channel."""
    all_logs = np.concatenate(logs) if any(len(v) for v in logs) else np.array([])
    s = float(np.std(all_logs, ddof=1)) if len(all_logs) > 2 else 0.5
    s = max(s, 0.05)
    means = np.array([v.mean() for v in logs if len(v)])
    ns = np.array([len(v) for v in logs if len(v)])
    mu_ch = float(np.average(means, weights=ns)) if len(means) else prior_mu
    if len(means) >= 2:
        tau2 = max(float(np.var(means, ddof=1)) - s**2 / float(np.mean(ns)), 0.01**2)
    else:
        tau2 = prior_sd**2
    n = np.array([len(v) for v in logs], float)
    xbar = np.array([v.mean() if len(v) else mu_ch for v in logs])
    prec = n / s**2 + 1.0 / tau2
    return (n / s**2 * xbar + mu_ch / tau2) / prec, np.sqrt(1.0 / prec), s


def attributed_counts(
    campaigns: pd.DataFrame, deals: pd.DataFrame, orders: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Cost and what each campaign brought, to date (no model).

    Parameters
    ----------
    campaigns
        The store's ``campaigns``.
    deals
        The store's ``deals`` (``campaign_id``, ``status``, ``amount``, ``source``).
    orders
        The store's ``orders`` (optional), linked to campaigns through ``deal_id``.

    Returns
    -------
    pandas.DataFrame
        One row per campaign: campaign_id, name, channel, start_date, period (quarter of the
        start), cost, deals, open, won, lost, won_revenue, orders, order_revenue, roi (won
        revenue / cost - 1), cost_per_won.

    """
    need = {"campaign_id", "status", "amount"} - set(deals.columns)
    if need:
        raise CrmkitError(f"deals lack column(s) {sorted(need)}")
    d = deals[deals["campaign_id"].notna()].copy()
    d["campaign_id"] = d["campaign_id"].astype(str)
    d["amount"] = d["amount"].astype(float).fillna(0.0)
    g = d.groupby("campaign_id")
    counts = pd.DataFrame(
        {
            "deals": g.size(),
            "open": g["status"].apply(lambda s: int(s.eq("open").sum())),
            "won": g["status"].apply(lambda s: int(s.eq("won").sum())),
            "lost": g["status"].apply(lambda s: int(s.eq("lost").sum())),
            "won_revenue": d[d["status"].eq("won")].groupby("campaign_id")["amount"].sum(),
        }
    )
    out = campaigns[["campaign_id", "name", "channel", "start_date", "cost"]].copy()
    out["campaign_id"] = out["campaign_id"].astype(str)
    out["cost"] = out["cost"].astype(float).fillna(0.0)
    out["start_date"] = pd.to_datetime(out["start_date"])
    out["period"] = out["start_date"].dt.to_period("Q").astype(str)
    out = out.merge(counts, left_on="campaign_id", right_index=True, how="left")
    for c in ("deals", "open", "won", "lost"):
        out[c] = out[c].fillna(0).astype("int64")
    out["won_revenue"] = out["won_revenue"].astype(float).fillna(0.0)
    if orders is not None and len(orders):
        o = orders[orders["deal_id"].notna()].merge(
            d[["deal_id", "campaign_id"]], on="deal_id", how="inner"
        )
        og = o.groupby("campaign_id")["amount"]
        out = out.merge(
            pd.DataFrame({"orders": og.size(), "order_revenue": og.sum()}),
            left_on="campaign_id",
            right_index=True,
            how="left",
        )
    else:
        out["orders"], out["order_revenue"] = 0, 0.0
    out["orders"] = out["orders"].fillna(0).astype("int64")
    out["order_revenue"] = out["order_revenue"].astype(float).fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["roi"] = np.where(out["cost"] > 0, out["won_revenue"] / out["cost"] - 1.0, np.nan)
        out["cost_per_won"] = np.where(out["won"] > 0, out["cost"] / out["won"], np.nan)
    return out.reset_index(drop=True)


def source_results(deals: pd.DataFrame, orders: pd.DataFrame | None = None) -> pd.DataFrame:
    """Deals, win rate, won revenue and orders by source (no source: ``(none)``).

    Parameters
    ----------
    deals
        The store's ``deals``.
    orders
        The store's ``orders`` (optional), attributed to a source through ``deal_id``.

    Returns
    -------
    pandas.DataFrame
        source, deals, open, won, lost, won_revenue, orders, order_revenue, win_rate
        (won / closed).

    """
    d = deals.assign(
        source=deals["source"].astype(object).where(deals["source"].notna(), NONE),
        amount=deals["amount"].astype(float).fillna(0.0),
    )
    d["won_amount"] = d["amount"].where(d["status"].eq("won"), 0.0)
    for st in ("open", "won", "lost"):
        d[st] = d["status"].eq(st).astype("int64")
    out = d.groupby("source").agg(
        deals=("status", "size"),
        open=("open", "sum"),
        won=("won", "sum"),
        lost=("lost", "sum"),
        won_revenue=("won_amount", "sum"),
    )
    if orders is not None and len(orders):
        o = orders[orders["deal_id"].notna()].merge(d[["deal_id", "source"]], on="deal_id")
        og = o.groupby("source")["amount"]
        out["orders"] = og.size().reindex(out.index, fill_value=0).astype("int64")
        out["order_revenue"] = og.sum().reindex(out.index, fill_value=0.0).astype(float)
    else:
        out["orders"], out["order_revenue"] = 0, 0.0
    out = out.reset_index()
    closed = out["won"] + out["lost"]
    out["win_rate"] = np.where(closed > 0, out["won"] / closed.where(closed > 0, 1), np.nan)
    return out.sort_values("deals", ascending=False, ignore_index=True)


def campaign_results(
    campaigns: pd.DataFrame,
    deals: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    *,
    n_draws: int = 2000,
    ci: float = 0.9,
    seed: int = 0,
    return_draws: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, Any]]:
    """Campaign results with win rates and revenue per deal partially pooled by channel.

    Parameters
    ----------
    campaigns, deals, orders
        Store tables (see :func:`attributed_counts`).
    n_draws
        Posterior draws per campaign.
    ci
        Credible-interval mass (0.9: 5% and 95% quantiles).
    seed
        Random seed of the draws.
    return_draws
        Also return the draws ``{"win_rate", "revenue_per_won", "projected_revenue",
        "roi"}``, each ``(campaign, draw)``.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`attributed_counts` plus, each with ``_lo`` / ``_hi``:
        ``win_rate`` (pooled posterior mean), ``revenue_per_won``, ``value_per_deal``
        (win rate x revenue per won deal), ``projected_revenue`` (won to date plus the open
        deals' expected value), ``projected_roi`` and ``projected_cost_per_won`` (what
        this campaign's deals will have brought once its open deals close), and
        ``expected_roi`` and ``expected_cost_per_won`` (deals x pooled value per deal: the
        campaign's underlying performance, shrunk towards its channel so that a campaign
        with one lucky deal is not read as a 200x return). NaN where cost or deals are 0.

    """
    res = attributed_counts(campaigns, deals, orders)
    d = deals[deals["campaign_id"].notna() & deals["status"].eq("won")]
    d = d[d["amount"].astype(float).fillna(0) > 0]
    logs_by = {
        k: np.log(v.to_numpy(float)) for k, v in d.groupby(d["campaign_id"].astype(str))["amount"]
    }
    closed = (res["won"] + res["lost"]).to_numpy(float)
    won = res["won"].to_numpy(float)
    total_closed = closed.sum()
    overall = (won.sum() + 1) / (total_closed + 2)
    all_logs = np.concatenate(list(logs_by.values())) if logs_by else np.array([np.log(1.0)])
    g_mu, g_sd = float(np.mean(all_logs)), float(max(np.std(all_logs), 0.5))
    rng = np.random.default_rng(seed)
    n = len(res)
    p_draws = np.zeros((n, n_draws))
    v_draws = np.zeros((n, n_draws))
    a_post = np.zeros(n)
    b_post = np.zeros(n)
    for _ch, idx in res.groupby("channel").indices.items():
        a, b = beta_prior(won[idx], closed[idx], overall=overall)
        a_post[idx], b_post[idx] = a + won[idx], b + closed[idx] - won[idx]
        p_draws[idx] = rng.beta(a_post[idx][:, None], b_post[idx][:, None], (len(idx), n_draws))
        logs = [logs_by.get(cid, np.array([])) for cid in res["campaign_id"].iloc[idx]]
        m, sd, s = _normal_pool(logs, g_mu, g_sd)
        mu = rng.normal(m[:, None], sd[:, None], (len(idx), n_draws))
        v_draws[idx] = np.exp(mu + s**2 / 2)
    value = p_draws * v_draws
    n_deals = res["deals"].to_numpy(float)[:, None]
    n_open = res["open"].to_numpy(float)[:, None]
    projected = res["won_revenue"].to_numpy(float)[:, None] + n_open * value
    cost = res["cost"].to_numpy(float)[:, None]
    exp_won = won[:, None] + n_open * p_draws
    with np.errstate(divide="ignore", invalid="ignore"):
        roi = np.where(cost > 0, projected / cost - 1.0, np.nan)
        cpw = np.where(exp_won > 0, cost / exp_won, np.nan)
        exp_roi = np.where((cost > 0) & (n_deals > 0), n_deals * value / cost - 1.0, np.nan)
        exp_cpw = np.where(n_deals > 0, cost / (n_deals * p_draws), np.nan)
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    res["win_rate"] = a_post / (a_post + b_post)
    for name, arr in (
        ("win_rate", p_draws),
        ("revenue_per_won", v_draws),
        ("value_per_deal", value),
        ("projected_revenue", projected),
        ("projected_roi", roi),
        ("projected_cost_per_won", cpw),
        ("expected_roi", exp_roi),
        ("expected_cost_per_won", exp_cpw),
    ):
        ok = np.isfinite(arr).all(axis=1)
        safe = np.where(ok[:, None], arr, 0.0)
        if name != "win_rate":
            res[name] = np.where(ok, safe.mean(axis=1), np.nan)
        res[f"{name}_lo"] = np.where(ok, np.quantile(safe, lo, axis=1), np.nan)
        res[f"{name}_hi"] = np.where(ok, np.quantile(safe, hi, axis=1), np.nan)
    if return_draws:
        return res, {
            "win_rate": p_draws,
            "revenue_per_won": v_draws,
            "projected_revenue": projected,
            "roi": roi,
        }
    return res


def campaign_results_from_store(store, **kwargs: Any) -> pd.DataFrame:
    """Run :func:`campaign_results` on the store's campaigns, deals and orders.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    **kwargs
        Passed to :func:`campaign_results`.

    Returns
    -------
    pandas.DataFrame

    """
    return campaign_results(
        store.read("campaigns"), store.read("deals"), store.read("orders"), **kwargs
    )


def campaign_table(
    results: pd.DataFrame,
    *,
    channels: list[str] | None = None,
    periods: list[str] | None = None,
    sort_by: str = "channel",
    ascending: bool = True,
) -> pd.DataFrame:
    """Filter campaign results by channel and period and sort them.

    Parameters
    ----------
    results
        Output of :func:`campaign_results`.
    channels, periods
        Keep only these channels / periods (quarters like ``"2025Q1"``); all when None.
    sort_by
        Any column; ``"channel"`` and ``"period"`` sort by that then by start date.
    ascending
        Sort direction.

    Returns
    -------
    pandas.DataFrame

    """
    if sort_by not in results.columns:
        raise CrmkitError(f"cannot sort by {sort_by!r}; columns: {list(results.columns)}")
    out = results
    if channels:
        out = out[out["channel"].isin(channels)]
    if periods:
        out = out[out["period"].isin(periods)]
    keys = [sort_by, "start_date"] if sort_by in ("channel", "period") else [sort_by]
    return out.sort_values(keys, ascending=ascending, ignore_index=True, na_position="last")


def channel_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Totals per channel: campaigns, cost, deals, won, won revenue, ROI to date.

    Returns
    -------
    pandas.DataFrame

    """
    g = results.groupby("channel")
    out = g[["cost", "deals", "open", "won", "lost", "won_revenue"]].sum()
    out.insert(0, "campaigns", g.size())
    out["roi"] = np.where(out["cost"] > 0, out["won_revenue"] / out["cost"] - 1.0, np.nan)
    return out.reset_index()


def roas_prior(
    campaigns: pd.DataFrame,
    deals: pd.DataFrame,
    channels: list[str],
    *,
    target: str = "new_deals",
    orders: pd.DataFrame | None = None,
    sigma: float = 0.7,
    weak_sigma: float = 1.5,
    min_deals: int = 10,
) -> dict[str, dict[str, Any]]:
    """A ROAS prior per channel from campaign attribution, for the marketing-mix model.

    A channel's attributed ROAS is what its campaigns' deals brought (``target``: deals,
    their listed amount, or their orders' revenue) per unit of the campaigns' cost (budget
    where no cost is recorded). The prior on the channel's ROAS is LogNormal centred there
    with ``sigma`` (0.7: the 90% interval spans a factor of about 3 either way, room for
    attribution that over- or under-counts); a channel with fewer than ``min_deals``
    attributed deals gets the pooled ROAS of all channels with ``weak_sigma``.

    Parameters
    ----------
    campaigns, deals, orders
        The store's tables (``orders`` for ``target="revenue"``).
    channels
        The model's channels, in its order.
    target
        The model's outcome: ``"new_deals"``, ``"new_deal_value"`` or ``"revenue"``.
    sigma, weak_sigma
        Log-scale spread of informed and of pooled channels.
    min_deals
        Attributed deals a channel needs for its own centre.

    Returns
    -------
    dict
        ``{"roas": {"dist": "LogNormal", "mu": [...], "sigma": [...]}}`` for
        ``MarketingMixModel(..., effect_prior="roas", model_config=...)``.

    """
    if target not in ("new_deals", "new_deal_value", "revenue"):
        raise CrmkitError(f"target must be new_deals, new_deal_value or revenue, not {target!r}")
    camp = campaigns.assign(channel=campaigns["channel"].astype(str))
    money = camp["cost"].astype(float)
    if "budget" in camp:
        money = money.fillna(camp["budget"].astype(float))
    money = money.fillna(0.0)
    cost = money.groupby(camp["channel"]).sum()
    d = deals[deals["campaign_id"].notna()].merge(
        camp[["campaign_id", "channel"]], on="campaign_id", how="inner"
    )
    if target == "new_deals":
        value = pd.Series(1.0, index=d.index)
    elif target == "new_deal_value":
        value = d["amount"].astype(float).fillna(0.0)
    else:
        if orders is None:
            raise CrmkitError("target 'revenue' needs the orders table")
        rev = orders.groupby("deal_id")["amount"].sum() if "deal_id" in orders else pd.Series()
        value = d["deal_id"].map(rev).astype(float).fillna(0.0)
    got = value.groupby(d["channel"]).sum()
    n = d.groupby("channel").size()
    total_cost = float(cost.reindex(channels).fillna(0.0).sum())
    pooled = float(got.reindex(channels).fillna(0.0).sum()) / max(total_cost, 1e-12)
    mu, sd = [], []
    for ch in channels:
        c, g, k = float(cost.get(ch, 0.0)), float(got.get(ch, 0.0)), int(n.get(ch, 0))
        if k >= min_deals and c > 0 and g > 0:
            mu.append(float(np.log(g / c)))
            sd.append(float(sigma))
        else:
            mu.append(float(np.log(max(pooled, 1e-12))))
            sd.append(float(weak_sigma))
    return {"roas": {"dist": "LogNormal", "mu": mu, "sigma": sd}}
