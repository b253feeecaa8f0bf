"""Per-segment size, revenue share and revenue trend."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from crmkit.errors import RowError, ValidationError
from crmkit.segments.cohorts import PERIODS, _customer_column

#: Label of customers without a segment.
NO_SEGMENT = "(none)"
#: Segment columns looked for, in this order, when a frame is given without ``column``.
SEGMENT_COLUMNS = ("segment", "rfm_segment", "clv_tier")


def segment_labels(assignments: pd.Series | pd.DataFrame, column: str | None = None) -> pd.Series:
    """Normalise segment assignments to a Series: index customer id, values segment.

    Parameters
    ----------
    assignments
        A Series indexed by customer id, or a frame with ``customer_id`` or
        ``account_id`` and a segment column.
    column
        The frame's segment column (default: the first of :data:`SEGMENT_COLUMNS`).

    Returns
    -------
    pandas.Series
        Named ``segment``, one row per customer (a customer listed twice is an error);
        missing labels become :data:`NO_SEGMENT`; a categorical keeps
        its categories (in order) so that empty segments are still reported.

    """
    if isinstance(assignments, pd.DataFrame):
        ids = next((c for c in ("customer_id", "account_id") if c in assignments.columns), None)
        if ids is None:
            raise ValidationError(
                "segment assignments", [RowError(None, "customer_id", "column missing")]
            )
        if column is None:
            column = next((c for c in SEGMENT_COLUMNS if c in assignments.columns), None)
        if column is None or column not in assignments.columns:
            raise ValidationError(
                "segment assignments", [RowError(None, column or "segment", "column missing")]
            )
        s = pd.Series(assignments[column].to_numpy(), index=pd.Index(assignments[ids], name=None))
        if isinstance(assignments[column].dtype, pd.CategoricalDtype):
            s = s.astype(assignments[column].dtype)
    else:
        s = assignments.copy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        if s.isna().any():
            if NO_SEGMENT not in s.cat.categories:
                s = s.cat.add_categories([NO_SEGMENT])
            s = s.fillna(NO_SEGMENT)
    else:
        s = s.astype(object).where(s.notna(), NO_SEGMENT).astype(str)
    s.index.name = "customer_id"
    if not s.index.is_unique:
        dup = np.flatnonzero(s.index.duplicated())
        raise ValidationError(
            "segment assignments",
            [
                RowError(int(i) + 1, "customer_id", "customer assigned twice", s.index[i])
                for i in dup
            ],
        )
    return s.rename("segment")


def segment_summary(
    assignments: pd.Series | pd.DataFrame,
    summary: pd.DataFrame,
    *,
    orders: pd.DataFrame | None = None,
    period: str = "M",
    column: str | None = None,
    end: object = None,
) -> pd.DataFrame:
    """Size, revenue and revenue share of each segment, and its latest revenue trend.

    Parameters
    ----------
    assignments
        Segment per customer (see :func:`segment_labels`).
    summary
        Purchase summary with ``customer_id`` and ``revenue``
        (:meth:`crmkit.Store.purchase_summary`). Assigned customers it lacks count with
        zero revenue; customers it has but the assignments lack are left out.
    orders
        Orders (``account_id``, ``ordered_at``, ``amount``) to add the trend columns.
    period
        Period of the trend: ``"M"``, ``"Q"`` or ``"W"``.
    column
        Segment column when ``assignments`` is a frame.
    end
        Last day observed (default: the day of the last order). The trend compares the
        last two *complete* periods up to it: a period that ends after ``end`` is left out.

    Returns
    -------
    pandas.DataFrame
        One row per segment (category order for categorical labels, else by revenue,
        largest first): ``segment``, ``customers``, ``customer_share``, ``revenue``,
        ``revenue_share``, ``revenue_per_customer``; with ``orders`` also
        ``last_period`` (the label of the last complete period), ``revenue_last``,
        ``revenue_previous`` (the period before) and ``revenue_change``
        (``last / previous - 1``; NaN without previous revenue).

    """
    labels = segment_labels(assignments, column)
    if "customer_id" not in summary.columns or "revenue" not in summary.columns:
        missing = [c for c in ("customer_id", "revenue") if c not in summary.columns]
        raise ValidationError(
            "purchase summary", [RowError(None, c, "column missing") for c in missing]
        )
    rev = summary.set_index("customer_id")["revenue"]
    revenue = rev.reindex(labels.index).fillna(0.0).to_numpy(dtype=np.float64)
    frame = pd.DataFrame({"segment": labels.to_numpy(), "revenue": revenue})
    if isinstance(labels.dtype, pd.CategoricalDtype):
        frame["segment"] = pd.Categorical(labels.to_numpy(), categories=labels.cat.categories)
    g = frame.groupby("segment", observed=False, sort=True)["revenue"]
    out = pd.DataFrame({"customers": g.size(), "revenue": g.sum()})
    if not isinstance(labels.dtype, pd.CategoricalDtype):
        out = out.sort_values(["revenue", "customers"], ascending=False, kind="stable")
    total_c, total_r = out["customers"].sum(), out["revenue"].sum()
    out["customers"] = out["customers"].astype("int64")
    out["customer_share"] = out["customers"] / total_c if total_c else np.nan
    out["revenue_share"] = out["revenue"] / total_r if total_r else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["revenue_per_customer"] = out["revenue"] / out["customers"].replace(0, np.nan)
    out = out[["customers", "customer_share", "revenue", "revenue_share", "revenue_per_customer"]]
    if orders is not None:
        trend = segment_trend(labels, orders, period=period)
        if len(trend):
            end_day = pd.to_datetime(orders["ordered_at"]).max().normalize()
            if end is not None:
                end_day = pd.Timestamp(end).normalize()
                trend = trend[trend.index.start_time <= end_day]
            if len(trend) and trend.index[-1].end_time.normalize() > end_day:
                trend = trend.iloc[:-1]  # the last period is not complete
        if len(trend):
            last = trend.iloc[-1].reindex(out.index).fillna(0.0)
            prev = (
                trend.iloc[-2].reindex(out.index).fillna(0.0)
                if len(trend) > 1
                else pd.Series(0.0, index=out.index)
            )
            out["last_period"] = str(trend.index[-1])
        else:
            last = prev = pd.Series(0.0, index=out.index)
            out["last_period"] = None
        out["revenue_last"] = last.to_numpy()
        out["revenue_previous"] = prev.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            out["revenue_change"] = np.where(prev > 0, last / prev.where(prev > 0) - 1, np.nan)
    out.index = pd.Index(out.index.astype(str), name="segment")
    return out.reset_index()


def segment_trend(
    assignments: pd.Series | pd.DataFrame,
    orders: pd.DataFrame,
    *,
    period: str = "M",
    value: Literal["revenue", "customers"] = "revenue",
    column: str | None = None,
) -> pd.DataFrame:
    """Revenue (or buying customers) of each segment per period.

    Parameters
    ----------
    assignments
        Segment per customer (see :func:`segment_labels`); orders of other customers
        are left out.
    orders
        Orders with ``account_id`` (or ``customer_id``), ``ordered_at``, ``amount``.
    period
        ``"M"``, ``"Q"`` or ``"W"``.
    value
        ``"revenue"`` (sum of amounts) or ``"customers"`` (customers with an order).
    column
        Segment column when ``assignments`` is a frame.

    Returns
    -------
    pandas.DataFrame
        Index ``period`` (every period from the first order to the last), one column
        per segment, ``float64``, 0 where a segment had no orders.

    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {sorted(PERIODS)}, not {period!r}")
    labels = segment_labels(assignments, column)
    cust = _customer_column(orders)
    freq = PERIODS[period]
    if isinstance(labels.dtype, pd.CategoricalDtype):
        names = [str(c) for c in labels.cat.categories]
        label_codes = labels.cat.codes.to_numpy()
    else:
        label_codes, uniques = pd.factorize(labels, sort=True)
        names = [str(c) for c in uniques]
    # factorize first: looking up each distinct customer once is much faster than per order
    order_codes, order_ids = pd.factorize(orders[cust])
    pos = np.where(order_codes >= 0, labels.index.get_indexer(order_ids)[order_codes], -1)
    keep = pos >= 0
    pos = pos[keep]
    if not len(pos):
        return pd.DataFrame(index=pd.PeriodIndex([], freq=freq, name="period"), dtype="float64")
    ordinal = pd.to_datetime(orders["ordered_at"]).dt.to_period(freq).array.asi8[keep]
    lo = int(ordinal.min())
    n_per, n_seg = int(ordinal.max()) - lo + 1, len(names)
    if value == "revenue":
        amount = pd.to_numeric(orders["amount"]).to_numpy(dtype=np.float64)[keep]
        key = (ordinal - lo) * n_seg + label_codes[pos]
        cells = np.bincount(key, weights=amount, minlength=n_per * n_seg)
    else:  # customers with an order: count each (period, customer) once
        pairs = np.unique((ordinal - lo) * len(labels) + pos)
        per, who = np.divmod(pairs, len(labels))
        cells = np.bincount(per * n_seg + label_codes[who], minlength=n_per * n_seg)
    index = pd.PeriodIndex.from_ordinals(np.arange(lo, lo + n_per), freq=freq, name="period")
    columns = pd.Index(names, name="segment")
    return pd.DataFrame(
        cells.reshape(n_per, n_seg).astype(np.float64), index=index, columns=columns
    )
