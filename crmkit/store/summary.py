"""A plain-text summary of what a crmkit database holds."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crmkit.errors import CrmkitError
from crmkit.store.aggregates import check_finite
from crmkit.store.core import Store
from crmkit.store.currency import DEFAULT_CURRENCY, converted_deals, rate_table
from crmkit.store.settings import get_setting


def database_summary(store: Store) -> str:
    """Describe a database: row counts, date ranges, deals by status and revenue by year.

    Parameters
    ----------
    store
        The database.

    Returns
    -------
    str
        Several lines of text.

    """
    counts = store.counts()
    reporting = str(get_setting(store, "reporting_currency"))
    lines = [f"crmkit database: {store.url}", f"reporting currency: {reporting}", ""]
    lines.append("rows per entity:")
    lines += [f"  {name:<20} {n:>10,}" for name, n in counts.items()]
    with store.engine.connect() as conn:
        if counts["orders"]:
            lo, hi, total = conn.execute(
                sa.text("SELECT MIN(ordered_at), MAX(ordered_at), SUM(amount) FROM orders")
            ).one()
            check_finite(total, "orders", "amount")
            lines += [
                "",
                f"orders: {pd.Timestamp(lo):%Y-%m-%d} .. {pd.Timestamp(hi):%Y-%m-%d}, "
                f"revenue {total:,.0f} {reporting}",
            ]
        if counts["deals"]:
            rows, problem = _deals_by_status(store, conn, reporting)
            lines += ["", f"deals by status (amounts in {reporting}):"]
            if problem:
                lines += [f"  {s:<8} {n:>8,} deals" for s, n, _ in rows]
                lines.append(f"  amounts not summed: {problem}")
            else:
                check_finite([a for _, _, a in rows], "deals", "amount")
                lines += [
                    f"  {s:<8} {n:>8,} deals, amount {a:>16,.0f} {reporting}" for s, n, a in rows
                ]
            closed = {s: n for s, n, _ in rows if s in ("won", "lost")}
            if sum(closed.values()):
                rate = closed.get("won", 0) / sum(closed.values())
                lines.append(f"  win rate on closed deals: {rate:.1%}")
    snaps = store.list_snapshots()
    lines += ["", f"forecast snapshots: {len(snaps)}"]
    if len(snaps):
        s = snaps.iloc[0]
        lines.append(f"  newest: #{s.snapshot_id} as of {s.as_of:%Y-%m-%d}, {s.horizon} periods")
    return "\n".join(lines)


def _deals_by_status(
    store: Store, conn: sa.Connection, reporting: str
) -> tuple[list[tuple[str, int, float]], str | None]:
    """Deal count and amount per status in the reporting currency, or a missing-rate problem.

    Deals all in the reporting currency are summed in SQL; otherwise each amount converts
    at its day's rate first (:func:`crmkit.store.currency.converted_deals`; open deals at
    the last day of the data).
    """
    foreign = conn.execute(
        sa.text("SELECT COUNT(*) FROM deals WHERE COALESCE(currency, :d) <> :r"),
        {"d": DEFAULT_CURRENCY, "r": reporting},
    ).scalar()
    if not foreign:
        rows = conn.execute(
            sa.text(
                "SELECT status, COUNT(*), COALESCE(SUM(amount), 0) FROM deals "
                "GROUP BY status ORDER BY status"
            )
        ).all()
        return [(s, int(n), float(a)) for s, n, a in rows], None
    deals = store.read("deals")
    counts = deals.groupby("status").size()
    try:
        conv = converted_deals(deals, rate_table(store), reporting)
    except CrmkitError as exc:
        return [(str(s), int(n), float("nan")) for s, n in counts.items()], str(exc)
    sums = conv.groupby("status")["amount"].sum(min_count=0)
    return [(str(s), int(n), float(sums[s])) for s, n in counts.items()], None


def last_data_day(store: Store) -> str | None:
    """Return the last day with a deal created or closed or an order placed, as ISO text.

    Parameters
    ----------
    store
        The database.

    Returns
    -------
    str or None
        ``YYYY-MM-DD``, or None for an empty database.
    """
    days = []
    with store.engine.connect() as conn:
        for sql in (
            "SELECT MAX(created_at) FROM deals",
            "SELECT MAX(closed_at) FROM deals",
            "SELECT MAX(ordered_at) FROM orders",
        ):
            v = conn.execute(sa.text(sql)).scalar()
            if v is not None:
                days.append(pd.Timestamp(v).normalize())
    return max(days).date().isoformat() if days else None
