"""Cohort retention tables: customers grouped by the period of their first purchase."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from crmkit.errors import RowError, ValidationError

#: Period codes :func:`cohort_table` accepts: months, quarters, weeks (Monday to Sunday).
PERIODS = {"M": "M", "Q": "Q", "W": "W"}


def _customer_column(orders: pd.DataFrame) -> str:
    """Name of the customer column of an orders frame (account_id or customer_id)."""
    for c in ("account_id", "customer_id"):
        if c in orders.columns:
            return c
    raise ValidationError("orders", [RowError(None, "account_id", "column missing")])


def cohort_table(
    orders: pd.DataFrame,
    *,
    period: str = "M",
    value: Literal["customers", "revenue"] = "customers",
    rate: bool = False,
    end: object = None,
) -> pd.DataFrame:
    """Retention table: cohorts of first purchase x periods since the first purchase.

    Parameters
    ----------
    orders
        Orders with ``account_id`` (or ``customer_id``), ``ordered_at`` and, for
        revenue, ``amount`` (as read by ``store.read("orders")``).
    period
        ``"M"`` months (default), ``"Q"`` quarters or ``"W"`` weeks.
    value
        ``"customers"``: customers of the cohort who ordered in that period;
        ``"revenue"``: the cohort's revenue in that period.
    rate
        Divide every row by its period-0 value: for customers the retention rate (share
        of the cohort still buying), for revenue the revenue relative to the first period.
    end
        The last day observed (default: the last order). Cells a cohort has not reached
        by then are NaN; observed periods without orders are 0.

    Returns
    -------
    pandas.DataFrame
        Index ``cohort`` (a ``PeriodIndex``, every period from the first cohort to the
        last, empty cohorts included as rows of NaN), columns ``0, 1, ...`` named
        ``periods_since_first``; ``float64``. ``attrs`` records ``value``, ``period``
        and ``rate``.

    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {sorted(PERIODS)}, not {period!r}")
    if value not in ("customers", "revenue"):
        raise ValueError(f"value must be 'customers' or 'revenue', not {value!r}")
    cust = _customer_column(orders)
    needed = ["ordered_at"] + (["amount"] if value == "revenue" else [])
    missing = [c for c in needed if c not in orders.columns]
    if missing:
        raise ValidationError("orders", [RowError(None, c, "column missing") for c in missing])
    when = pd.to_datetime(orders["ordered_at"])
    bad = np.flatnonzero(when.isna().to_numpy())
    if len(bad):
        raise ValidationError(
            "orders", [RowError(int(i) + 1, "ordered_at", "missing order time") for i in bad]
        )
    freq = PERIODS[period]
    ordinal = when.dt.to_period(freq).array.asi8
    if end is not None:
        end_day = pd.Timestamp(end).normalize()
        last = int(end_day.to_period(freq).ordinal)
        keep = (when < end_day + pd.Timedelta(days=1)).to_numpy()
    else:
        last = int(ordinal.max()) if len(ordinal) else 0
        keep = np.ones(len(ordinal), dtype=bool)
    codes, _ = pd.factorize(orders[cust])
    frame = pd.DataFrame({"c": codes, "p": ordinal})
    if value == "revenue":
        frame["v"] = pd.to_numeric(orders["amount"]).to_numpy(dtype=np.float64)
    frame = frame[keep]
    if frame.empty:
        out = pd.DataFrame(index=pd.PeriodIndex([], freq=freq, name="cohort"), dtype="float64")
        out.columns.name = "periods_since_first"
        out.attrs.update(value=value, period=period, rate=rate)
        return out
    first = frame.groupby("c")["p"].transform("min")
    frame["cohort"] = first.to_numpy()
    frame["age"] = (frame["p"] - first).to_numpy()
    if value == "customers":
        cells = frame.drop_duplicates(["c", "age"]).groupby(["cohort", "age"]).size()
    else:
        cells = frame.groupby(["cohort", "age"])["v"].sum()
    lo = int(frame["cohort"].min())
    n_cohorts, n_ages = last - lo + 1, last - lo + 1
    grid = np.zeros((n_cohorts, n_ages), dtype=np.float64)
    ci = cells.index.get_level_values("cohort").to_numpy() - lo
    ai = cells.index.get_level_values("age").to_numpy()
    grid[ci, ai] = cells.to_numpy(dtype=np.float64)
    rows = np.arange(n_cohorts)[:, None]
    cols = np.arange(n_ages)[None, :]
    grid[rows + cols > n_cohorts - 1] = np.nan  # not reached by the end of observation
    has_cohort = np.zeros(n_cohorts, dtype=bool)
    has_cohort[np.unique(frame["cohort"].to_numpy() - lo)] = True
    grid[~has_cohort] = np.nan
    if rate:
        with np.errstate(divide="ignore", invalid="ignore"):
            grid = grid / grid[:, :1]
    index = pd.PeriodIndex.from_ordinals(np.arange(lo, last + 1), freq=freq, name="cohort")
    out = pd.DataFrame(grid, index=index, columns=pd.RangeIndex(n_ages, name="periods_since_first"))
    out.attrs.update(value=value, period=period, rate=rate)
    return out


def cohort_sizes(orders: pd.DataFrame, *, period: str = "M") -> pd.Series:
    """Count the new customers per period of first purchase.

    Parameters
    ----------
    orders
        Orders with ``account_id`` (or ``customer_id``) and ``ordered_at``.
    period
        ``"M"``, ``"Q"`` or ``"W"``.

    Returns
    -------
    pandas.Series
        ``int64`` customers per cohort, indexed like :func:`cohort_table`.

    """
    table = cohort_table(orders, period=period, value="customers")
    return (
        table[0].fillna(0).astype("int64").rename("customers")
        if len(table)
        else pd.Series(dtype="int64", name="customers")
    )
