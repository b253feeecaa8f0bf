"""Heavy aggregations written as SQL, so that the database server does the work.

Both SQLite and PostgreSQL are supported; only the date arithmetic differs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crmkit.errors import CrmkitError

#: Days per time unit of the purchase summary.
TIME_UNITS = {"D": 1.0, "W": 7.0, "M": 365.25 / 12}


def check_finite(values: object, table: str, column: str) -> None:
    """Refuse a sum that is not a finite number (an infinite or overflowing stored amount).

    Parameters
    ----------
    values
        A sum or an array of sums; None (a sum of no rows) passes.
    table, column
        Where the summed values are stored, for the message.

    Raises
    ------
    CrmkitError
        Naming the table and column.

    """
    if values is None:
        return
    sums = np.atleast_1d(np.asarray(values, dtype="float64"))
    bad = ~np.isfinite(sums)
    if bad.any():
        raise CrmkitError(
            f"{table}.{column}: a sum is not a finite number ({sums[bad][0]}); the table holds "
            f"an infinite or overflowing {column}. Correct or delete that row"
        )


def _day(dialect: str, col: str) -> str:
    """SQL for the calendar day of a timestamp column."""
    return f"DATE({col})" if dialect == "sqlite" else f"CAST({col} AS DATE)"


def _days_between(dialect: str, later: str, earlier: str) -> str:
    """SQL for the number of days between two day expressions."""
    if dialect == "sqlite":
        return f"(julianday({later}) - julianday({earlier}))"
    return f"(({later}) - ({earlier}))"


def _as_day(value: object) -> pd.Timestamp | None:
    """Parse a cut-off value to a day, or None."""
    if value is None:
        return None
    return pd.Timestamp(value).normalize()


def purchase_summary(
    engine: sa.Engine,
    cutoff: object = None,
    *,
    time_unit: str = "W",
    start: object = None,
) -> pd.DataFrame:
    """Per-customer purchase summary at a cut-off, in the buy-till-you-die convention.

    Orders of the same customer on the same day count as one purchase (as in
    Fader, Hardie & Lee 2005 and the lifetimes library).

    Parameters
    ----------
    engine
        The database.
    cutoff
        Last day observed, inclusive (lifetimes' ``observation_period_end``). Orders on
        later days are ignored. Default: the day of the last order.
    time_unit
        ``"D"`` days, ``"W"`` weeks (default) or ``"M"`` months for recency and T.
    start
        Ignore customers whose first purchase is before this day.

    Returns
    -------
    pandas.DataFrame
        One row per customer with a purchase by the cut-off: ``customer_id``,
        ``first_purchase``, ``last_purchase``, ``frequency`` (repeat purchase days),
        ``recency`` and ``T`` (in ``time_unit``), ``monetary_value`` (mean spend per
        repeat purchase day, 0 without repeats), ``n_orders`` and ``revenue``.

    """
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    d = engine.dialect.name
    cut = _as_day(cutoff)
    params: dict[str, object] = {}
    if cut is None:
        with engine.connect() as conn:
            last = conn.execute(
                sa.text(f"SELECT MAX({_day(d, 'ordered_at')}) FROM orders")
            ).scalar()
        if last is None:
            return empty_purchase_summary()
        cut = pd.Timestamp(last)
    # Orders strictly before the day after the cut-off (index-friendly on ordered_at).
    params["end"] = (cut + pd.Timedelta(days=1)).to_pydatetime()
    params["cut"] = cut.date() if d != "sqlite" else cut.strftime("%Y-%m-%d")
    params["unit"] = TIME_UNITS[time_unit]
    start_filter = ""
    if start is not None:
        params["start"] = (
            _as_day(start).date() if d != "sqlite" else _as_day(start).strftime("%Y-%m-%d")
        )
        start_filter = "WHERE a.first_day >= :start"
    cut_expr = ":cut" if d == "sqlite" else "CAST(:cut AS DATE)"
    # Two passes, both along the (account_id, ordered_at, amount) index: each customer's
    # first day, then one grouped scan that also sums the first day's spend. About four
    # times faster on SQLite than grouping by (customer, day) and joining back.
    sql = f"""
    WITH f AS (
        SELECT account_id, {_day(d, "MIN(ordered_at)")} AS first_day
        FROM orders
        WHERE ordered_at < :end
        GROUP BY account_id
    ), agg AS (
        SELECT o.account_id AS account_id,
               MIN(f.first_day) AS first_day,
               {_day(d, "MAX(o.ordered_at)")} AS last_day,
               COUNT(DISTINCT {_day(d, "o.ordered_at")}) AS n_days,
               SUM(o.amount) AS revenue,
               COUNT(*) AS n_orders,
               SUM(CASE WHEN {_day(d, "o.ordered_at")} = f.first_day THEN o.amount ELSE 0 END)
                   AS first_spend
        FROM f JOIN orders o ON o.account_id = f.account_id
        WHERE o.ordered_at < :end
        GROUP BY o.account_id
    )
    SELECT a.account_id AS customer_id,
           a.first_day AS first_purchase,
           a.last_day AS last_purchase,
           a.n_days - 1 AS frequency,
           {_days_between(d, "a.last_day", "a.first_day")} / :unit AS recency,
           {_days_between(d, cut_expr, "a.first_day")} / :unit AS "T",
           CASE WHEN a.n_days > 1 THEN (a.revenue - a.first_spend) / (a.n_days - 1) ELSE 0 END
               AS monetary_value,
           a.n_orders AS n_orders,
           a.revenue AS revenue
    FROM agg a
    {start_filter}
    ORDER BY a.account_id
    """
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if df.empty:
        return empty_purchase_summary()
    df["first_purchase"] = pd.to_datetime(df["first_purchase"])
    df["last_purchase"] = pd.to_datetime(df["last_purchase"])
    for c in ("recency", "T", "monetary_value", "revenue"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
    check_finite(df["revenue"], "orders", "amount")
    for c in ("frequency", "n_orders"):
        df[c] = pd.to_numeric(df[c]).astype("int64")
    df.attrs["cutoff"] = cut.date().isoformat()
    df.attrs["time_unit"] = time_unit
    return df


def empty_purchase_summary() -> pd.DataFrame:
    """A purchase summary with no customers, with the columns and dtypes of a full one.

    Returns
    -------
    pandas.DataFrame
        Zero rows of ``customer_id``, ``first_purchase``, ``last_purchase``, ``frequency``,
        ``recency``, ``T``, ``monetary_value``, ``n_orders`` and ``revenue``.
    """
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=object),
            "first_purchase": pd.Series(dtype="datetime64[ns]"),
            "last_purchase": pd.Series(dtype="datetime64[ns]"),
            "frequency": pd.Series(dtype="int64"),
            "recency": pd.Series(dtype="float64"),
            "T": pd.Series(dtype="float64"),
            "monetary_value": pd.Series(dtype="float64"),
            "n_orders": pd.Series(dtype="int64"),
            "revenue": pd.Series(dtype="float64"),
        }
    )


def _period_sql(dialect: str, col: str, period: str) -> str:
    """SQL for the label of the month (``2026-03``) or quarter (``2026-Q1``) of a date."""
    if period == "M":
        return f"strftime('%Y-%m', {col})" if dialect == "sqlite" else f"to_char({col}, 'YYYY-MM')"
    if period == "Q":
        if dialect == "sqlite":
            return (
                f"strftime('%Y', {col}) || '-Q' || "
                f"CAST((CAST(strftime('%m', {col}) AS INTEGER) + 2) / 3 AS TEXT)"
            )
        return f"to_char({col}, 'YYYY-\"Q\"Q')"
    raise ValueError(f"period must be 'M' or 'Q', not {period!r}")


def pipeline_totals(
    engine: sa.Engine, *, period: str = "M", status: str | None = None
) -> pd.DataFrame:
    """Deal counts and amounts by pipeline, stage, status and period.

    Open deals fall in the period of their expected close date, closed deals in the
    period they closed. The weighted amount multiplies each deal's amount by its
    probability override, else its stage's configured probability (1 for won and 0
    for lost deals), as CRM tools compute a weighted pipeline.

    Parameters
    ----------
    engine
        The database.
    period
        ``"M"`` for months or ``"Q"`` for quarters.
    status
        Only deals with this status (``open``, ``won`` or ``lost``).

    Returns
    -------
    pandas.DataFrame
        Columns ``pipeline, stage, status, period, deals, amount, weighted_amount``.

    """
    d = engine.dialect.name
    when = "CASE WHEN dl.status = 'open' THEN dl.expected_close_date ELSE dl.closed_at END"
    per = _period_sql(d, f"({when})", period)
    params: dict[str, object] = {}
    where = ""
    if status is not None:
        where = "WHERE dl.status = :status"
        params["status"] = status
    sql = f"""
    SELECT dl.pipeline AS pipeline, dl.stage AS stage, dl.status AS status, {per} AS period,
           COUNT(*) AS deals,
           COALESCE(SUM(dl.amount), 0) AS amount,
           COALESCE(SUM(dl.amount * CASE WHEN dl.status = 'won' THEN 1.0
                WHEN dl.status = 'lost' THEN 0.0
                ELSE COALESCE(dl.probability_override, s.probability, 0.0) END), 0)
               AS weighted_amount
    FROM deals dl
    LEFT JOIN stages s ON s.pipeline = dl.pipeline AND s.stage = dl.stage
    {where}
    GROUP BY dl.pipeline, dl.stage, dl.status, {per}, s.stage_order
    ORDER BY dl.pipeline, 4, s.stage_order, dl.stage, dl.status
    """
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    df["deals"] = pd.to_numeric(df["deals"]).astype("int64")
    for c in ("amount", "weighted_amount"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
        check_finite(df[c], "deals", "amount")
    return df
