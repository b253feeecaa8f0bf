"""Repeat revenue from existing customers: BG/NBD + Gamma-Gamma draws per coming month.

Repeat revenue is the orders not linked to a deal (orders with a ``deal_id`` are the
revenue of a won deal, already counted by the pipeline). For each posterior draw, the
expected purchases of each customer (account) in each month (BG/NBD, from
:mod:`crmkit.models.clv.models`) times its expected spend (Gamma-Gamma, or the mean order value
when too few repeat buyers) are summed over the customers sharing their groups (a cell), in
chunks: no customers x draws array, so two million customers fit in memory. Each cell's sum
gets purchase noise (a gamma with the variance of a compound Poisson whose order values have
a coefficient of variation of 1). Revenue is allocated to ``all``, to the account's segment,
owner and the owner's team.

With a year of order history (``calendar="auto"``), the calendar effects of
:mod:`crmkit.models.clv.calendar` and :mod:`crmkit.models.clv.spend` are fitted on the
weekly residuals of the two models: a common multiplier of the purchase rate (a random
walk or a mean-reverting AR(1), weighed by the data, plus 12 monthly seasonal effects) and
one of the spend per purchase (a random walk plus 12 monthly effects, weighed against "no
spend effect" by its marginal likelihood), so a busy, big-basket December is forecast as
one and a spend that does not move adds no spread. Each draw's monthly revenue is then
multiplied by a draw of both multipliers, and its purchase count by the rate multiplier
(joint, draw by draw). The
diagnostics' ``calendar`` entry describes both effects (with P(no spend effect)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.data.purchases import purchase_summary
from crmkit.forecast.params import parameter_draws

WEEKS_PER_MONTH = 365.25 / 12 / 7
#: Values of ``repeat_draws``' ``calendar``: fit the calendar effects with a year of history
#: (``"auto"``), with 8 weeks (``"on"``) or never (``"off"``).
CALENDAR = ("auto", "on", "off")
#: Weeks of order history from which each value of ``calendar`` fits the effects.
CALENDAR_MIN_WEEKS = {"auto": 52, "on": 8, "off": None}
#: Weeks of history the calendar effects look back at most.
CALENDAR_MAX_WEEKS = 260


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
    param_draws: int | None = None,
    chunk_size: int = 20_000,
    calendar: str = "auto",
    fitted: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Repeat revenue draws ``(draw, period, group)`` and the fit's diagnostics.

    Customers sharing their groups form a cell; for each parameter draw the expected
    purchases and revenue of each cell and month are summed over its customers
    (:func:`crmkit.models.clv.predictions.expected_totals`, exact, in chunks of customers:
    nothing of size customers x draws is built), and the purchase noise is drawn per cell
    with a fixed seed, so the draws do not depend on ``chunk_size``.

    Parameters
    ----------
    orders, accounts
        The store's ``orders`` (``account_id``, ``ordered_at``, ``amount``, ``deal_id``) and
        ``accounts`` (``account_id``, ``segment``, ``owner``).
    group_index, owner_team
        Index of each group (``all``, ``segment=..``, ``owner=..``, ``team=..``) and the
        team of each owner.
    as_of
        The forecast day.
    month_edges_weeks
        The ends of the forecast months in weeks after ``as_of`` (the first month may be
        partial).
    period_of_k, n_periods
        The period of each month (-1: none) and the number of periods.
    n_draws, param_draws
        Forecast draws and the parameter draws they cycle through (None:
        :func:`crmkit.forecast.params.parameter_draws` of the customers).
    method, seed
        Fitting method and seed.
    chunk_size
        Customers per chunk of the sums (memory only; the draws do not depend on it).
    calendar
        ``"auto"``: multiply by the calendar effects on purchase rate and spend
        (:func:`crmkit.models.clv.spend.fit_calendar_effects`) when the orders span at
        least 52 weeks; ``"on"``: from 8 weeks; ``"off"``: never.
    fitted
        When given, receives the fitted purchase model under ``"repeat"`` (for the model
        checks, which would otherwise fit the same BG/NBD again).

    Returns
    -------
    tuple
        Draws ``(n_draws, n_periods, groups)`` and the diagnostics of the fits.
    """
    if calendar not in CALENDAR:
        raise ValueError(f"calendar must be one of {CALENDAR}, not {calendar!r}")
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
    from crmkit.models.clv.predictions import expected_totals

    bg = BetaGeo(random_seed=seed).fit(data, method=method)
    if fitted is not None:
        fitted["repeat"] = bg
    edges = np.concatenate([[0.0], np.maximum(np.asarray(month_edges_weeks, float), 0.0)])
    cells, cell_of = _cells(data, accounts, group_index, owner_team)
    x, t_x, T = (data[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    if param_draws is None:
        param_draws = parameter_draws(n_draws, len(data))
    pdraws = bg.posterior_draws(param_draws)  # as BetaGeo.expected_purchases thins them
    # (P, cells, months): expected purchases and revenue summed over each cell's customers
    mean_n = _per_cell(expected_totals("bgnbd", pdraws, x, t_x, T, edges, segment=cell_of,
                                       chunk_size=chunk_size), len(cells))  # fmt: skip
    repeaters = data[data["frequency"] > 0]
    spend_diag: dict = {}
    gg = None
    if len(repeaters) >= 20:
        gg = GammaGamma(random_seed=seed).fit(repeaters, method=method)
        totals = expected_totals(
            "bgnbd", pdraws, x, t_x, T, edges,
            spend_draws=gg.posterior_draws(param_draws),
            mean_spend=data["monetary_value"].to_numpy(float),
            segment=cell_of, chunk_size=chunk_size,
        )  # fmt: skip
        mean_rev = _per_cell(totals, len(cells))
        spend_diag = gg.diagnostics_
    else:
        mean_rev = mean_n * float(repeaters["monetary_value"].mean())
    mean_rev, mean_n = mean_rev.transpose(0, 2, 1), mean_n.transpose(0, 2, 1)  # (P, months, j)
    # purchase noise per cell of customers sharing their groups, so group sums stay sums
    rng = np.random.default_rng(seed + 7)
    pick = np.arange(n_draws) % mean_n.shape[0]
    mr, mn = mean_rev[pick], np.maximum(mean_n[pick], 1e-9)
    effects, cal_diag = _calendar_effects(orders, data, bg, gg, as_of, calendar)
    if effects is not None:
        rate, spend = effects
        m_rate = rate.multiplier_draws(edges, n_draws, noise=True, seed=seed + 11)
        m_spend = (
            np.ones_like(m_rate)
            if spend is None
            else spend.multiplier_draws(edges, n_draws, noise=True, seed=seed + 12)
        )
        mr = mr * (m_rate * m_spend)[:, :, None]
        mn = mn * m_rate[:, :, None]
    shape = mn / 2.0  # compound Poisson with order-value CV 1: variance = 2 * n * spend^2
    noise = rng.gamma(shape, 1.0 / shape)
    monthly = np.einsum("dmj,jg->dmg", mr * noise, cells)  # (draw, months, groups)
    for k, per in enumerate(period_of_k):
        if per >= 0:
            out[:, per, :] += monthly[:, k, :]
    diag = dict(bg.diagnostics_)
    diag.update({"method": method, "customers": len(data), "gamma_gamma": spend_diag})
    diag["param_draws"] = int(param_draws)
    diag["calendar"] = cal_diag
    diag["ok"] = bool(
        diag.get("ok", True) and spend_diag.get("ok", True) and cal_diag.get("ok", True)
    )
    return out, diag


def _calendar_effects(
    orders: pd.DataFrame, data: pd.DataFrame, bg, gg, as_of: object, calendar: str
) -> tuple[tuple | None, dict]:
    """The fitted rate and spend effects (or None) and what was done, for the diagnostics."""
    weeks = int(np.floor(float(data["T"].max())))
    need = CALENDAR_MIN_WEEKS[calendar]
    if need is None or weeks < need:
        why = "off" if need is None else f"{weeks} weeks of orders (fitted from {need})"
        return None, {"ok": True, "fitted": False, "message": f"calendar effects not used: {why}"}
    from crmkit.models.clv.spend import fit_calendar_effects

    o = orders[orders["deal_id"].isna()] if "deal_id" in orders else orders
    tx = pd.DataFrame(
        {
            "customer_id": o["account_id"].to_numpy(),
            "date": pd.to_datetime(o["ordered_at"]).to_numpy(),
            "amount": pd.to_numeric(o["amount"]).to_numpy(dtype=float),
        }
    )
    n = min(weeks, CALENDAR_MAX_WEEKS)
    rate, spend = fit_calendar_effects(tx, data, bg, gg, as_of, n_periods=n)
    ok = bool(rate.diagnostics_["ok"] and (spend is None or spend.diagnostics_["ok"]))
    info = {
        "ok": ok,
        "fitted": True,
        "weeks": n,
        "rate": rate.describe(),
        "spend": None if spend is None else spend.describe(),
        "message": "" if ok else "a calendar effect's grid posterior is not finite",
    }
    return (rate, spend), info


def _per_cell(result: tuple[np.ndarray, np.ndarray], n_cells: int) -> np.ndarray:
    """``expected_totals``' (P, segments, months) laid out on cells 0..n_cells-1."""
    totals, labels = result
    full = np.zeros((totals.shape[0], n_cells, totals.shape[2]))
    full[:, labels.astype(np.int64), :] = totals
    return full


def _cells(
    data: pd.DataFrame,
    accounts: pd.DataFrame | None,
    group_index: dict[str, int],
    owner_team: dict[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct group memberships ``(cells, groups)`` (sorted rows) and each customer's cell."""
    n = len(data)
    seg = owner = None
    if accounts is not None and len(accounts):
        a = accounts.drop_duplicates("account_id").set_index("account_id")
        seg = data["customer_id"].map(a["segment"]) if "segment" in a else None
        owner = data["customer_id"].map(a["owner"]) if "owner" in a else None
    # membership depends only on (segment, owner): build it once per distinct pair
    codes, values = [], []
    for col in (seg, owner):
        if col is None:
            codes.append(np.zeros(n, dtype=np.int64))
            values.append(None)
        else:
            c, v = pd.factorize(col, use_na_sentinel=False)
            codes.append(c.astype(np.int64))
            values.append(np.asarray(v, dtype=object))
    key = codes[0] * (int(codes[1].max(initial=0)) + 1) + codes[1]
    pairs, pair_of = np.unique(key, return_inverse=True)
    span = int(codes[1].max(initial=0)) + 1
    member = np.zeros((len(pairs), len(group_index)))
    member[:, group_index["all"]] = 1.0
    for i, k in enumerate(pairs):
        for kind, vals, code in (("segment", values[0], k // span), ("owner", values[1], k % span)):
            if vals is None:
                continue
            v = vals[code]
            gi = group_index.get(f"{kind}={v}")
            if gi is not None:
                member[i, gi] = 1.0
            if kind == "owner" and isinstance(v, str) and v in owner_team:
                ti = group_index.get(f"team={owner_team[v]}")
                if ti is not None:
                    member[i, ti] = 1.0
    cells, cell_of_pair = np.unique(member, axis=0, return_inverse=True)
    return cells, cell_of_pair.ravel()[pair_of.ravel()]
