"""Quotas and the managers' forecast calls: adding a call, the calls as they stood on a day.

A manager's call is a number for an owner, a team or the company (``scope``; the company's
``name`` is ``"all"``) and a month or quarter (``period`` ``"M"`` or ``"Q"`` starting on
``period_start``, the first day of that month or quarter of the company's fiscal calendar,
:mod:`crmkit.store.fiscal`), with its author, a note and the
time it was made. Calls are only ever added: a later call of the same
``(scope, name, period, period_start)`` supersedes an earlier one, so the ``forecast_calls``
rows are the calls' history and :func:`calls_as_of` rebuilds what stood on any past day.

Quotas (``quotas``) have the same key and one amount each; they are edited in place
(versioned rows) and imported with ``crmkit import quotas quotas.csv``.

Owners, teams and the company are named as in forecast snapshots: :func:`group_of` gives
``"all"``, ``"owner=<name>"`` or ``"team=<name>"``.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import sqlalchemy as sa

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.store.core import Store
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.frames import to_records
from crmkit.store.schema import CALL_SCOPES, COMPANY_NAME, TABLES, entity

__all__ = [
    "CALL_COLUMNS",
    "add_call",
    "calls_as_of",
    "group_of",
    "period_label",
    "quota_frame",
]

#: Key of a quota and of a call: who and which period.
KEY = ("scope", "name", "period", "period_start")
#: Columns of :func:`calls_as_of`.
CALL_COLUMNS = (*KEY, "amount", "author", "note", "created_at")
#: Longest text quoted in an error message.
_SHOWN = 40


def group_of(scope: str, name: str) -> str:
    """Return the snapshot group of an owner, a team or the company.

    Parameters
    ----------
    scope
        ``"owner"``, ``"team"`` or ``"company"``.
    name
        The owner's or team's name (ignored for the company).

    Returns
    -------
    str
        ``"all"`` for the company, ``"owner=<name>"`` or ``"team=<name>"``.

    Raises
    ------
    CrmkitError
        For another scope.

    Examples
    --------
    >>> group_of("team", "East"), group_of("company", "all")
    ('team=East', 'all')

    """
    if scope == "company":
        return COMPANY_NAME
    if scope in ("owner", "team"):
        return f"{scope}={name}"
    raise CrmkitError(f"scope {_short(scope)} is not one of {', '.join(CALL_SCOPES)}")


def period_label(period: str, period_start: object, calendar: FiscalCalendar | None = None) -> str:
    """Return a snapshot's label of the period starting on ``period_start``.

    Parameters
    ----------
    period
        ``"M"`` (label ``"2026-11"``) or ``"Q"`` (label ``"2026-Q4"``).
    period_start
        A day of the period (normally its first).
    calendar
        The company's fiscal calendar (:func:`crmkit.store.fiscal.fiscal_calendar`): ``"Q"``
        is its fiscal quarter (``"FY27 Q1"`` for a year not starting in January) and ``"M"``
        its fiscal period. None: calendar months and quarters.

    Returns
    -------
    str

    Examples
    --------
    >>> period_label("Q", "2026-10-01"), period_label("M", "2026-11-01")
    ('2026-Q4', '2026-11')
    >>> period_label("Q", "2026-04-01", FiscalCalendar(4))
    'FY27 Q1'

    """
    if period not in ("M", "Q"):
        raise CrmkitError(f"period {_short(period)} is not one of M, Q")
    return (calendar or FiscalCalendar()).label(period, pd.Timestamp(period_start))


def add_call(
    store: Store,
    *,
    scope: str,
    name: str,
    period: str,
    period_start: object,
    amount: float,
    author: str,
    note: str | None = None,
    at: object = None,
) -> int:
    """Record a manager's forecast call; it supersedes earlier calls of the same key.

    Parameters
    ----------
    store
        The store.
    scope
        ``"owner"``, ``"team"`` or ``"company"`` (case and spaces are ignored).
    name
        The owner's or team's name; ``"all"`` for the company (the default when empty).
    period
        ``"M"`` or ``"Q"``.
    period_start
        The first day of the fiscal month or quarter (the store's fiscal calendar).
    amount
        The called revenue: a finite number, at least 0.
    author
        Who makes the call (not empty).
    note
        Free text (optional).
    at
        When the call was made (default: now, UTC, to the second).

    Returns
    -------
    int
        The new call's ``call_id``.

    Raises
    ------
    ValidationError
        When a value breaks a rule (one line naming the field, the reason and the value);
        nothing is written.

    """
    from crmkit.store.validation import validate  # on demand: pyarrow only for writers

    if scope == "company" and (name is None or (isinstance(name, str) and not name.strip())):
        name = COMPANY_NAME
    row = {
        "scope": _strip(scope),
        "name": _strip(name),
        "period": _strip(period),
        "period_start": period_start,
        "amount": _amount(amount),
        "author": _strip(author),
        "note": _strip(note),
        "created_at": _now() if at is None else at,
    }
    frame = pd.DataFrame([row]).astype(object)
    result = validate("forecast_calls", frame, calendar=fiscal_calendar(store))
    if result.errors:
        raise ValidationError("forecast_calls", [_named(e) for e in result.errors])
    spec = entity("forecast_calls")
    record = to_records(spec, result.clean.drop(columns=["call_id"]))[0]
    with store.transaction() as conn:
        res = conn.execute(sa.insert(TABLES["forecast_calls"]).values(**record))
        return int(res.inserted_primary_key[0])


def calls_as_of(calls: pd.DataFrame, at: object) -> pd.DataFrame:
    """Return the call that stood for each key at a time: the latest made on or before it.

    Parameters
    ----------
    calls
        ``forecast_calls`` rows (``store.read("forecast_calls")``).
    at
        A time; a day (a ``datetime.date``, ``"YYYY-MM-DD"`` or a timestamp at midnight)
        counts whole, so calls made during it stand.

    Returns
    -------
    pandas.DataFrame
        One row per ``(scope, name, period, period_start)`` with a call by then, columns
        :data:`CALL_COLUMNS`, sorted by key. Of calls made at the same time, the one added
        last (highest ``call_id``) stands.

    Raises
    ------
    CrmkitError
        When ``at`` is not a time.

    """
    t = _instant(at)
    missing = [c for c in CALL_COLUMNS if c not in calls.columns]
    if missing:
        raise CrmkitError(f"forecast calls lack column(s) {', '.join(missing)}")
    if calls.empty:
        return calls.loc[:, list(CALL_COLUMNS)].reset_index(drop=True)
    df = calls.copy()
    df["created_at"] = pd.to_datetime(df["created_at"])
    df["period_start"] = pd.to_datetime(df["period_start"])
    order = df["call_id"] if "call_id" in df.columns else pd.Series(range(len(df)), index=df.index)
    df["_order"] = order.to_numpy()
    df = df[df["created_at"] <= t]
    df = df.sort_values(["created_at", "_order"], kind="stable")
    latest = df.groupby(list(KEY), sort=True, dropna=False).tail(1)
    latest = latest.sort_values(list(KEY), kind="stable")
    return latest.loc[:, list(CALL_COLUMNS)].reset_index(drop=True)


def quota_frame(store: Store) -> pd.DataFrame:
    """Return the quotas with their snapshot group and period label.

    Parameters
    ----------
    store
        The store.

    Returns
    -------
    pandas.DataFrame
        Columns ``scope``, ``name``, ``period``, ``period_start`` (datetime64), ``amount``,
        ``group`` (:func:`group_of`) and ``label`` (:func:`period_label` in the store's
        fiscal calendar), sorted by key.

    """
    q = store.read("quotas", columns=[*KEY, "amount"])
    cal = fiscal_calendar(store)
    q["group"] = [group_of(s, n) for s, n in zip(q["scope"], q["name"], strict=True)]
    q["label"] = [
        period_label(p, d, cal) for p, d in zip(q["period"], q["period_start"], strict=True)
    ]
    return q.reset_index(drop=True)


def _now() -> dt.datetime:
    """The current time, naive UTC, to the second."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _strip(v: object) -> object:
    """Text without surrounding spaces (empty text is missing); other values as given."""
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


def _amount(v: object) -> object:
    """An amount as given, but a non-finite float kept as text so the validator names it."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _named(error: RowError) -> RowError:
    """The error of the one row of a call, naming the offending value (no row number)."""
    reason = error.reason
    if error.value is not None and str(error.value) not in reason:
        reason = f"{reason} (got {_short(error.value)})"
    return RowError(None, error.field, reason, error.value)


def _short(v: object) -> str:
    """A value for a message: quoted and cut to a few dozen characters."""
    text = str(v)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _instant(at: object) -> pd.Timestamp:
    """The last instant counted by ``at``: the end of a day, or the time itself."""
    try:
        t = pd.Timestamp(at)
    except (TypeError, ValueError):
        raise CrmkitError(f"not a time: {_short(at)}; use YYYY-MM-DD[ HH:MM[:SS]]") from None
    if t is pd.NaT or pd.isna(t):
        raise CrmkitError(f"not a time: {_short(at)}; use YYYY-MM-DD[ HH:MM[:SS]]")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    is_day = (isinstance(at, dt.date) and not isinstance(at, dt.datetime)) or t == t.normalize()
    if is_day:
        return t.normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return t
