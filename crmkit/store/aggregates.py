"""Heavy aggregations written as SQL, so that the database server does the work.

Both SQLite and PostgreSQL are supported; only the date arithmetic differs.
"""

from __future__ import annotations

from operator import itemgetter

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
    start_filter = ""
    if start is not None:
        day = _as_day(start)
        params["start"] = day.date() if d != "sqlite" else day.strftime("%Y-%m-%d")
        start_filter = f"WHERE {_day(d, 'a.first_at')} >= :start"
    with engine.connect() as conn:
        result = conn.execute(sa.text(_summary_sql(d, start_filter)), params)
        # the driver's plain tuples: a million SQLAlchemy Row objects cost seconds (the SQL
        # declares no column types, so SQLAlchemy would not convert any value)
        rows = result.cursor.fetchall()
        result.close()
    if not rows:
        return empty_purchase_summary()
    return _summary_frame(rows, cut, time_unit)


#: SQL of a timestamp's or date's day as days since 1970-01-01 (an integer).
_EPOCH_DAY = {
    "sqlite": "CAST(julianday(DATE({x})) - 2440587.5 AS INTEGER)",
    "postgresql": "(CAST({x} AS DATE) - DATE '1970-01-01')",
}


def _summary_sql(dialect: str, start_filter: str) -> str:
    """SQL of the per-customer aggregates: ids, first and last day, days, revenue, spends."""
    if dialect == "sqlite":
        # One scan along the covering index (account_id, ordered_at, amount) groups by
        # customer; the first day's spend, needed only for customers with repeat days, is a
        # range seek on the same index (orders before the day after the first order).
        return f"""
        WITH a AS (
            SELECT account_id, MIN(ordered_at) AS first_at, MAX(ordered_at) AS last_at,
                   COUNT(DISTINCT DATE(ordered_at)) AS n_days, SUM(amount) AS revenue,
                   COUNT(*) AS n_orders
            FROM orders
            WHERE ordered_at < :end
            GROUP BY account_id
        )
        SELECT a.account_id, {_EPOCH_DAY["sqlite"].format(x="a.first_at")},
               {_EPOCH_DAY["sqlite"].format(x="a.last_at")}, a.n_days, a.revenue,
               a.n_orders,
               CASE WHEN a.n_days > 1 THEN (
                   SELECT SUM(o.amount) FROM orders o
                   WHERE o.account_id = a.account_id AND o.ordered_at < DATE(a.first_at, '+1 day')
               ) ELSE a.revenue END
        FROM a
        {start_filter}
        ORDER BY a.account_id
        """
    # PostgreSQL: one scan along the same index grouped by (customer, day), then by
    # customer; the first day's spend is the earliest day's. (Parallel workers do not speed
    # this up on two cores: see benchmarks/RESULTS.md, "Scale".)
    return f"""
    WITH dd AS (
        SELECT account_id, CAST(ordered_at AS DATE) AS day, SUM(amount) AS spend,
               COUNT(*) AS n
        FROM orders
        WHERE ordered_at < :end
        GROUP BY account_id, CAST(ordered_at AS DATE)
    ), a AS (
        SELECT account_id, MIN(day) AS first_at, MAX(day) AS last_day, COUNT(*) AS n_days,
               SUM(spend) AS revenue, SUM(n) AS n_orders,
               (ARRAY_AGG(spend ORDER BY day))[1] AS first_spend
        FROM dd
        GROUP BY account_id
    )
    SELECT a.account_id, {_EPOCH_DAY["postgresql"].format(x="a.first_at")},
           {_EPOCH_DAY["postgresql"].format(x="a.last_day")}, a.n_days, a.revenue, a.n_orders,
           a.first_spend
    FROM a
    {start_filter}
    ORDER BY a.account_id
    """


def _summary_frame(rows: list[tuple], cut: pd.Timestamp, time_unit: str) -> pd.DataFrame:
    """The purchase summary from the SQL's rows, computed column-wise."""
    kinds = (object, "int64", "int64", "int64", "float64", "int64", "float64")
    # one column at a time straight from the tuples (3x faster than zip(*rows) and asarray)
    ids, first, last, days, rev, n_orders, first_spend = (
        np.fromiter(map(itemgetter(i), rows), dtype=kind, count=len(rows))
        for i, kind in enumerate(kinds)
    )
    first_day = pd.Series(first.astype("datetime64[D]").astype("datetime64[us]"))
    last_day = pd.Series(last.astype("datetime64[D]").astype("datetime64[us]"))
    check_finite(rev, "orders", "amount")
    repeat = rev - first_spend
    unit = TIME_UNITS[time_unit]
    freq = days - 1
    df = pd.DataFrame(
        {
            "customer_id": ids,
            "first_purchase": first_day.to_numpy(),
            "last_purchase": last_day.to_numpy(),
            "frequency": freq,
            "recency": (last_day - first_day).dt.days.to_numpy() / unit,
            "T": (cut - first_day).dt.days.to_numpy() / unit,
            "monetary_value": np.where(freq > 0, repeat / np.maximum(freq, 1), 0.0),
            "n_orders": n_orders,
            "revenue": rev,
        }
    )
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
