"""The purchase summary in pandas: frequency, recency, T and monetary value per customer.

This is the one pandas builder of the buy-till-you-die summary (Fader, Hardie & Lee 2005,
the lifetimes library). The store computes the same table in SQL
(:func:`crmkit.store.aggregates.purchase_summary`); this one serves data that is not in a
store: reference datasets (CDNOW), frames already in memory (the repeat-revenue source of
the forecast) and benchmarks. Both count the purchases of one customer on one day as one
purchase and give the same columns and numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.store.aggregates import TIME_UNITS, empty_purchase_summary

#: Columns of a purchase summary, in order.
SUMMARY_COLUMNS = (
    "customer_id",
    "first_purchase",
    "last_purchase",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "n_orders",
    "revenue",
)


def purchase_summary(
    transactions: pd.DataFrame,
    cutoff: object = None,
    *,
    time_unit: str = "W",
    start: object = None,
    first_purchase_by: object = None,
    customer: str = "customer_id",
    date: str = "date",
    amount: str = "amount",
) -> pd.DataFrame:
    """Per-customer purchase summary at a cut-off, in the buy-till-you-die convention.

    Purchases of the same customer on the same day count as one purchase.

    Parameters
    ----------
    transactions
        One row per order, with a customer, a date (or timestamp) and an amount column.
    cutoff
        Last day observed, inclusive. Later orders are ignored. Default: the day of the
        last order.
    time_unit
        ``"D"`` days, ``"W"`` weeks (default) or ``"M"`` months (:data:`TIME_UNITS`)
        for recency and T.
    start
        Leave out customers whose first purchase is before this day.
    first_purchase_by
        Leave out customers whose first purchase is after this day (a cohort).
    customer, date, amount
        Names of the columns of ``transactions`` (e.g. ``"account_id"``,
        ``"ordered_at"`` for the store's orders).

    Returns
    -------
    pandas.DataFrame
        One row per customer with a purchase by the cut-off, sorted by customer:
        ``customer_id``, ``first_purchase``, ``last_purchase`` (days), ``frequency``
        (repeat purchase days), ``recency`` and ``T`` (in ``time_unit``),
        ``monetary_value`` (mean spend per repeat purchase day, 0 without repeats),
        ``n_orders`` and ``revenue``. ``attrs`` hold ``cutoff`` (ISO day) and
        ``time_unit``.

    Raises
    ------
    ValueError
        For an unknown ``time_unit``.
    """
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    unit = TIME_UNITS[time_unit]
    tx = pd.DataFrame(
        {
            "customer_id": transactions[customer].to_numpy(),
            "day": pd.to_datetime(transactions[date]).dt.normalize().to_numpy(),
            "amount": pd.to_numeric(transactions[amount]).to_numpy(dtype=float),
        }
    )
    if cutoff is not None:
        cut = pd.Timestamp(cutoff).normalize()
    elif len(tx):
        cut = pd.Timestamp(tx["day"].max())
    else:
        return empty_purchase_summary()
    tx = tx[tx["day"] <= cut]
    days = (
        tx.groupby(["customer_id", "day"], sort=True)["amount"]
        .agg(amount="sum", n_orders="size")
        .reset_index()
    )
    first_day = days.groupby("customer_id", sort=True)["day"].transform("min")
    keep = pd.Series(True, index=days.index)
    if start is not None:
        keep &= first_day >= pd.Timestamp(start).normalize()
    if first_purchase_by is not None:
        keep &= first_day <= pd.Timestamp(first_purchase_by).normalize()
    days = days[keep].assign(first_spend=days["amount"].where(days["day"] == first_day, 0.0))
    if days.empty:
        out = empty_purchase_summary()
        out.attrs.update(cutoff=cut.date().isoformat(), time_unit=time_unit)
        return out
    g = days.groupby("customer_id", sort=True)
    first, last = g["day"].min(), g["day"].max()
    freq = (g.size() - 1).astype("int64")
    revenue = g["amount"].sum()
    repeat_spend = (revenue - g["first_spend"].sum()).to_numpy()
    f = freq.to_numpy()
    out = pd.DataFrame(
        {
            "customer_id": first.index.to_numpy(),
            "first_purchase": first.to_numpy(),
            "last_purchase": last.to_numpy(),
            "frequency": f,
            "recency": (last - first).dt.days.to_numpy() / unit,
            "T": (cut - first).dt.days.to_numpy() / unit,
            "monetary_value": np.where(f > 0, repeat_spend / np.maximum(f, 1), 0.0),
            "n_orders": g["n_orders"].sum().to_numpy().astype("int64"),
            "revenue": revenue.to_numpy(),
        }
    )
    out.attrs.update(cutoff=cut.date().isoformat(), time_unit=time_unit)
    return out
