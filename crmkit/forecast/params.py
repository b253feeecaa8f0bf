"""The forecast's parameters, checked once for every caller: the CLI, the engine and the report.

:func:`validate_forecast_parameters` checks ``as_of``, ``horizon``, ``period``, ``draws``,
``target``, ``method`` and ``seed`` together and either returns them normalised or raises
one :class:`~crmkit.errors.ValidationError` naming every bad parameter with its value and
the reason. :func:`check_forecast_parameters` returns the problems instead of raising, for a
caller with parameters of its own (the report, :func:`crmkit.apps.report.validate_parameters`).

The rules:

- ``as_of``: a real day (a date or ``"YYYY-MM-DD"``), not after today, and within the
  data's span: from the first data day to the last one plus :data:`AS_OF_GRACE_DAYS`
  (:func:`data_span`; without a span only the calendar is checked);
- ``period``: ``"M"`` or ``"Q"``; ``horizon``: a whole number of periods from 1 to
  :data:`MAX_HORIZON` (36 months or 12 quarters);
- ``draws``: a whole number within :data:`DRAWS_RANGE`;
- ``target``: None, a finite amount > 0 for every period, or ``{period label: amount}``
  whose labels are periods of the forecast;
- ``method``: one of :data:`METHODS`; ``seed``: a whole number >= 0.

The default day of a forecast is :func:`default_as_of`: today, or the last data day when
the data end earlier, never a future day (rows dated after today do not move it).
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.schema import TABLES

#: Fit methods :func:`crmkit.forecast.engine.run_forecast` accepts: ``"auto"`` (its default)
#: is NUTS when the data sample in about 2 minutes, else MAP
#: (:func:`crmkit.forecast.engine.resolve_method`).
METHODS = ("auto", "map", "nuts", "advi")
#: Largest horizon, in periods, by period kind (three years either way).
MAX_HORIZON = {"M": 36, "Q": 12}
#: Smallest and largest number of forecast draws.
DRAWS_RANGE = (10, 100_000)
#: Days after the last data day that ``as_of`` may still be.
AS_OF_GRACE_DAYS = 366
#: Parameter draws x units (open deals, customers) a forecast spends on parameter draws at
#: most; below it every forecast draw has its own posterior draw (:func:`parameter_draws`).
PARAM_BUDGET = 4_000_000
#: The fewest posterior draws the forecast draws cycle through.
MIN_PARAM_DRAWS = 100
#: The dated columns that make the data's span: (table, column).
SPAN_COLUMNS = (
    ("deals", "created_at"),
    ("deals", "closed_at"),
    ("orders", "ordered_at"),
)


@dataclass(frozen=True)
class DataSpan:
    """The days the store's deals and orders cover.

    Parameters
    ----------
    first
        The first day with a deal created or an order placed.
    last
        The last day, not after today, with a deal created or closed or an order placed.
    future_rows
        Deals and orders dated after today (left out of ``last``).
    """

    first: dt.date
    last: dt.date
    future_rows: int = 0

    def latest_as_of(self, today: dt.date | None = None) -> dt.date:
        """The latest allowed ``as_of``: the last data day plus the grace, not after today."""
        today = today or dt.date.today()
        return min(self.last + dt.timedelta(days=AS_OF_GRACE_DAYS), today)

    def describe(self) -> str:
        """The span as text, e.g. ``"2022-11-01 .. 2026-10-31"``."""
        return f"{self.first} .. {self.last}"


def data_span(store: Any, *, today: dt.date | None = None) -> DataSpan | None:
    """The span of a store's deals and orders, computed in SQL.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    today
        The day after which rows count as future-dated (default: today).

    Returns
    -------
    DataSpan or None
        None when the store holds no deals and no orders.
    """
    today = today or dt.date.today()
    cutoff = dt.datetime.combine(today, dt.time.max)
    firsts, lasts, future = [], [], 0
    with store.engine.connect() as conn:
        for table, column in SPAN_COLUMNS:
            col = TABLES[table].c[column]
            lo = conn.execute(sa.select(sa.func.min(col))).scalar()
            hi = conn.execute(sa.select(sa.func.max(col)).where(col <= cutoff)).scalar()
            future += conn.execute(sa.select(sa.func.count()).where(col > cutoff)).scalar() or 0
            if lo is not None and column != "closed_at":
                firsts.append(_day(lo))
            if hi is not None:
                lasts.append(_day(hi))
    if not firsts:
        return None
    first = min(firsts)
    last = max(lasts) if lasts else first
    return DataSpan(first=first, last=max(last, first), future_rows=int(future))


def parameter_draws(draws: int, units: int, budget: int = PARAM_BUDGET) -> int:
    """How many posterior draws the forecast's ``draws`` cycle through.

    Each forecast draw takes posterior draw ``d % P``. With few posterior draws the
    forecast's quantiles carry their Monte Carlo error: at ``P = 100`` the P50 of a
    three-month total moved by up to 14% between seeds on the Maven backtest (issue #17).
    So ``P`` is ``draws`` while ``P x units`` (open deals, or customers) stays within
    ``budget``, and never below :data:`MIN_PARAM_DRAWS`.

    Parameters
    ----------
    draws
        Forecast draws.
    units
        Open deals (or customers) whose hazards (or expected purchases) are computed per
        posterior draw.
    budget
        Posterior draws x units at most (memory and time of the per-draw arrays).

    Returns
    -------
    int
        ``min(draws, max(MIN_PARAM_DRAWS, budget // units))``.
    """
    return int(min(int(draws), max(MIN_PARAM_DRAWS, int(budget) // max(int(units), 1))))


def _day(value: object) -> dt.date:
    """A database date or datetime (or its text) as a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.datetime.fromisoformat(str(value)).date()


def default_as_of(span: DataSpan | None, *, today: dt.date | None = None) -> str:
    """The default forecast day: today, or the last data day when the data end before today.

    Parameters
    ----------
    span
        The data's span (:func:`data_span`).
    today
        Today (default: the system's today).

    Returns
    -------
    str
        ``YYYY-MM-DD``, never after ``today``.

    Raises
    ------
    CrmkitError
        When there are no data (``span`` is None).
    """
    if span is None:
        raise CrmkitError("the database has no deals or orders; nothing to forecast")
    today = today or dt.date.today()
    return min(today, span.last).isoformat()


def _shown(value: object, width: int = 40) -> str:
    """``repr`` of a value, truncated."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_int(x: object) -> bool:
    """Tell whether ``x`` is a whole number (and not a bool)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_amount(x: object) -> bool:
    """Tell whether ``x`` is a finite real number > 0 (not a bool)."""
    return (
        isinstance(x, numbers.Real)
        and not isinstance(x, bool)
        and math.isfinite(float(x))
        and float(x) > 0
    )


def _as_day(as_of: object) -> dt.date | None:
    """``as_of`` as a date, or None when it is not one."""
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    if isinstance(as_of, str):
        try:
            return dt.date.fromisoformat(as_of.strip())
        except ValueError:
            return None
    return None


def check_forecast_parameters(
    span: DataSpan | None,
    *,
    as_of: object,
    horizon: object,
    period: object = "M",
    draws: object = 1000,
    target: object = None,
    method: object = "map",
    seed: object = 0,
    today: dt.date | None = None,
    calendar: FiscalCalendar | None = None,
) -> tuple[dict, list[RowError]]:
    """Check the forecast's parameters and return them normalised, with the problems found.

    Parameters
    ----------
    span
        The data's span (:func:`data_span`), or None to check ``as_of`` against the calendar
        only.
    as_of, horizon, period, draws, target, method, seed, today
        As in :func:`validate_forecast_parameters`.
    calendar
        The fiscal calendar whose period labels a ``{label: amount}`` target names (None:
        calendar months and quarters).

    Returns
    -------
    values : dict
        ``as_of`` (``"YYYY-MM-DD"``), ``horizon``, ``period``, ``draws``, ``target`` (None,
        a float or ``{label: float}``), ``method`` and ``seed``; meaningful only when there
        are no problems.
    problems : list of RowError
        One per bad parameter (``field`` the parameter's name); empty when all are good.
    """
    errors: list[RowError] = []
    today = today or dt.date.today()

    def bad(name: str, reason: str, value: object) -> None:
        errors.append(RowError(None, name, f"{reason}, got {_shown(value)}", value))

    day = _as_day(as_of)
    if day is None:
        bad("as_of", "must be a real day written YYYY-MM-DD", as_of)
    elif day > today:
        bad("as_of", f"{day} is in the future (today is {today}); a forecast is made as of a "
            "past day", as_of)  # fmt: skip
    elif span is not None and not span.first <= day <= span.latest_as_of(today):
        bad("as_of", f"{day} is outside the data, which span {span.describe()}; pick a day "
            f"from {span.first} to {span.latest_as_of(today)}", as_of)  # fmt: skip
    period_ok = period in MAX_HORIZON
    if not period_ok:
        bad("period", "must be 'M' (months) or 'Q' (quarters)", period)
    limit = MAX_HORIZON.get(str(period), MAX_HORIZON["M"])
    horizon_ok = _is_int(horizon) and 1 <= int(horizon) <= limit  # type: ignore[arg-type]
    if not horizon_ok:
        bad("horizon", f"must be a whole number of periods from 1 to {limit}", horizon)
    lo, hi = DRAWS_RANGE
    if not _is_int(draws) or not lo <= int(draws) <= hi:  # type: ignore[arg-type]
        bad("draws", f"must be a whole number from {lo} to {hi}", draws)
    norm_target = _check_target(
        target, day if period_ok and horizon_ok else None, horizon, period, bad, calendar
    )
    if method not in METHODS:
        bad("method", f"must be one of {', '.join(METHODS)}", method)
    if not _is_int(seed) or int(seed) < 0:  # type: ignore[arg-type]
        bad("seed", "must be a whole number >= 0", seed)
    values = {
        "as_of": str(day) if day is not None else None,
        "horizon": int(horizon) if _is_int(horizon) else horizon,  # type: ignore[arg-type]
        "period": str(period),
        "draws": int(draws) if _is_int(draws) else draws,  # type: ignore[arg-type]
        "target": norm_target,
        "method": str(method),
        "seed": int(seed) if _is_int(seed) else seed,  # type: ignore[arg-type]
    }
    return values, errors


def _check_target(
    target: object,
    day: dt.date | None,
    horizon: object,
    period: object,
    bad,
    calendar: FiscalCalendar | None = None,
):
    """The target normalised (None, a float or ``{label: float}``); problems go to ``bad``."""
    if target is None:
        return None
    reason = "must be a finite amount > 0, {period: amount}, or None"
    if isinstance(target, dict):
        if not target or not all(_is_amount(v) for v in target.values()):
            bad("target", reason, target)
            return target
        if day is not None:
            from crmkit.forecast.axes import period_axis

            kind = str(period)
            labels = period_axis(day, int(horizon), kind, calendar).labels  # type: ignore[arg-type]
            unknown = [k for k in target if k not in labels]
            if unknown:
                bad("target", f"names periods {', '.join(map(str, unknown))} that the forecast "
                    f"does not have (its periods: {', '.join(labels)})", target)  # fmt: skip
                return target
        return {str(k): float(v) for k, v in target.items()}
    if not _is_amount(target):
        bad("target", reason, target)
        return target
    return float(target)  # type: ignore[arg-type]


def validate_forecast_parameters(
    span: Any,
    *,
    as_of: object,
    horizon: object,
    period: object = "M",
    draws: object = 1000,
    target: object = None,
    method: object = "map",
    seed: object = 0,
    today: dt.date | None = None,
    what: str = "forecast parameters",
) -> dict:
    """Check the forecast's parameters; return them normalised or name every bad one.

    Parameters
    ----------
    span
        A :class:`crmkit.Store` (its :func:`data_span` is used), a :class:`DataSpan`, or
        None to check ``as_of`` against the calendar only (a store without data, too).
    as_of
        The forecast day: a date or ``"YYYY-MM-DD"``, not after today, within the data.
    horizon
        Number of periods: 1-36 months or 1-12 quarters.
    period
        ``"M"`` or ``"Q"``.
    draws
        Forecast draws, within :data:`DRAWS_RANGE`.
    target
        None, a finite amount > 0 per period, or ``{period label: amount}``.
    method
        One of :data:`METHODS`.
    seed
        Random seed, a whole number >= 0.
    today
        The day ``as_of`` may not exceed (default: today).
    what
        What the parameters are, for the error message.

    Returns
    -------
    dict
        ``as_of`` as ``"YYYY-MM-DD"``, ``horizon``, ``period``, ``draws``, ``target``
        (None, a float or ``{label: float}``), ``method`` and ``seed``.

    Raises
    ------
    ValidationError
        One problem per bad parameter, each naming it, its value and the reason.
    """
    calendar = None
    if span is not None and not isinstance(span, DataSpan):
        calendar = fiscal_calendar(span)  # target labels are the store's fiscal periods
        span = data_span(span, today=today)
    values, errors = check_forecast_parameters(
        span, as_of=as_of, horizon=horizon, period=period, draws=draws, target=target,
        method=method, seed=seed, today=today, calendar=calendar,
    )  # fmt: skip
    if errors:
        raise ValidationError(what, errors)
    return values


__all__ = [
    "AS_OF_GRACE_DAYS",
    "DRAWS_RANGE",
    "MAX_HORIZON",
    "METHODS",
    "MIN_PARAM_DRAWS",
    "PARAM_BUDGET",
    "DataSpan",
    "check_forecast_parameters",
    "data_span",
    "default_as_of",
    "parameter_draws",
    "validate_forecast_parameters",
]
