"""A seasonal retailer: BG/NBD purchases and Gamma-Gamma spend with known yearly seasonality.

Each customer's purchase rate at calendar day ``d`` is ``lambda * rate_season[month(d)]``
and the mean amount of a purchase made that day is the customer's Gamma-Gamma mean times
``spend_season[month(d)]`` (by default +60% purchase rate and +30% basket in November and
December). A common multiplier of the rate is a change of clock for BG/NBD (dropout
happens after purchases), so purchases are simulated in operational time (the integral of
the rate multiplier) and mapped back to calendar days. Customers arrive uniformly over the
whole span, so calendar time and customer age are not confounded as in CDNOW.

The truth (:class:`SeasonalRetailer`) is what a calendar effect fitted on the data should
recover: the seasonal multipliers relative to the year's mean month.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Default purchase-rate multiplier per calendar month (January first): +60% Nov-Dec.
RATE_SEASON = (1.0,) * 10 + (1.6, 1.6)
#: Default multiplier of the mean spend per purchase per calendar month: +30% Nov-Dec.
SPEND_SEASON = (1.0,) * 10 + (1.3, 1.3)
#: Default BG/NBD (per week) and Gamma-Gamma parameters.
PARAMS = {"r": 0.8, "alpha": 6.0, "a": 0.8, "b": 4.0, "p": 6.0, "q": 4.0, "gamma": 150.0}


@dataclass
class SeasonalRetailer:
    """Simulated transactions and the truth behind them."""

    #: ``customer_id``, ``date`` (day), ``amount``: first purchases included.
    transactions: pd.DataFrame
    #: Purchase-rate multiplier per calendar month, January first.
    rate_season: np.ndarray
    #: Spend multiplier per calendar month, January first.
    spend_season: np.ndarray
    #: First and last day of the data.
    start: pd.Timestamp
    end: pd.Timestamp
    #: BG/NBD and Gamma-Gamma parameters (rates per week).
    params: dict[str, float] = field(default_factory=dict)

    def relative(self, which: str = "spend") -> np.ndarray:
        """Month multipliers relative to the year's mean month (geometric), January first."""
        s = np.log(self.rate_season if which == "rate" else self.spend_season)
        return np.exp(s - s.mean())


def simulate_seasonal_retailer(
    n_customers: int = 4000,
    *,
    start: object = "2023-01-01",
    years: float = 2.0,
    rate_season: tuple[float, ...] | np.ndarray = RATE_SEASON,
    spend_season: tuple[float, ...] | np.ndarray = SPEND_SEASON,
    params: dict[str, float] | None = None,
    seed: int | None = 0,
) -> SeasonalRetailer:
    """Simulate a retailer's transactions with yearly purchase-rate and spend seasonality.

    Parameters
    ----------
    n_customers
        Customers, arriving uniformly over the span (their first purchase).
    start
        First day.
    years
        Length of the data in years.
    rate_season, spend_season
        Multipliers of the purchase rate and of the mean spend per calendar month
        (12 positive numbers, January first); all ones for no seasonality.
    params
        ``r``, ``alpha`` (per week), ``a``, ``b``, ``p``, ``q``, ``gamma``; default
        :data:`PARAMS`.
    seed
        Random seed.

    Returns
    -------
    SeasonalRetailer
        The transactions and the truth.

    Raises
    ------
    ValueError
        For seasonal multipliers that are not 12 positive numbers.
    """
    prm = {**PARAMS, **(params or {})}
    rs, ss = (np.asarray(v, dtype=float) for v in (rate_season, spend_season))
    for name, v in (("rate_season", rs), ("spend_season", ss)):
        if v.shape != (12,) or not np.all(np.isfinite(v)) or (v <= 0).any():
            raise ValueError(f"{name} must be 12 positive numbers, January first")
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start).normalize()
    n_days = round(float(years) * 365.25)
    end = t0 + pd.Timedelta(days=n_days - 1)
    days = pd.date_range(t0, end, freq="D")
    month = days.month.to_numpy() - 1
    # operational time (weeks) at the start of each day, and at the end of the last
    op = np.concatenate([[0.0], np.cumsum(rs[month] / 7.0)])
    n = int(n_customers)
    first = np.floor(rng.uniform(0, n_days, n)).astype(np.int64)  # first purchase day
    lam = rng.gamma(prm["r"], 1.0 / prm["alpha"], n)
    drop = rng.beta(prm["a"], prm["b"], n)
    n_max = rng.geometric(drop)  # repeat purchases until dropout
    nu = rng.gamma(prm["q"], 1.0 / prm["gamma"], n)
    op_end = op[-1]
    cust, when = [np.arange(n)], [first.astype(float)]
    u = op[first] + rng.uniform(0, 1, n) * (op[first + 1] - op[first])  # within the first day
    alive = np.ones(n, dtype=bool)
    k = 0
    while alive.any():
        idx = np.flatnonzero(alive)
        u[idx] = u[idx] + rng.exponential(1.0, len(idx)) / lam[idx]
        k += 1
        ok = (u[idx] < op_end) & (k <= n_max[idx])
        hit = idx[ok]
        cust.append(hit)
        when.append(np.searchsorted(op, u[hit], side="right") - 1.0)
        alive[idx[~ok]] = False
    c = np.concatenate(cust)
    d = np.concatenate(when).astype(np.int64)
    d = np.clip(d, 0, n_days - 1)
    amount = rng.gamma(prm["p"], 1.0 / nu[c]) * ss[month[d]]
    tx = pd.DataFrame(
        {"customer_id": c.astype(np.int64), "date": days[d], "amount": np.round(amount, 2)}
    )
    tx = tx.sort_values(["customer_id", "date"], ignore_index=True)
    return SeasonalRetailer(
        transactions=tx, rate_season=rs, spend_season=ss, start=t0, end=end, params=prm
    )
