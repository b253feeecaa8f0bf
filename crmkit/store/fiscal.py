"""The company's fiscal calendar: fiscal years, their 12 periods and 4 quarters, and labels.

A :class:`FiscalCalendar` has a start month (1-12) and a pattern:

- ``"months"``: the fiscal periods are calendar months, the fiscal year starts on the first
  day of ``start_month`` and its quarters are 3 months from there (start month 4: April to
  June, July to September, ...).
- ``"4-4-5"``, ``"4-5-4"``, ``"5-4-4"``: a 52-53-week fiscal year. Every year ends on the
  Saturday nearest the last day of the month before ``start_month`` (December for a
  January start), three days before to three days after it: the "same day of the week
  nearest to the last day of the calendar month" rule of the US 52-53-week tax year
  (26 CFR 1.441-2(a)(1)(iii)(B), described in IRS Publication 538; ASC 270 and IAS 34 accept
  such reporting periods). The year starts the day after the previous year's end, so it has
  52 weeks (364 days) or 53 weeks (371 days). Each quarter is 13 weeks split into periods of
  4, 4 and 5 weeks (or 4-5-4, 5-4-4); the 53rd week goes into the year's last period.

A fiscal year is named by the calendar year in which its last month falls (Salesforce's
default: "fiscal year is based on the ending month"): with start month 4, FY2027 runs from
April 2026 to March 2027, labelled ``"FY27"``.

Labels: with the default calendar (January, months) periods and quarters keep crmkit's
labels ``"2026-11"`` and ``"2026-Q4"`` (from :mod:`crmkit.store.history`); with another start
month fiscal quarters are ``"FY27 Q1"`` (period labels stay ``"2026-11"`` because periods are
calendar months); with a week pattern periods are ``"FY27 P03"`` and quarters ``"FY27 Q1"``.

:func:`fiscal_calendar` reads the calendar from a store's settings (``crmkit config
fiscal_year_start_month=4 fiscal_pattern=4-4-5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.store.history import month_index, month_label, quarter_label
from crmkit.store.settings import get_setting

__all__ = ["FISCAL_WEEKS", "FiscalCalendar", "fiscal_calendar"]

#: Weeks of each period of a quarter, per week pattern.
FISCAL_WEEKS: dict[str, tuple[int, int, int]] = {
    "4-4-5": (4, 4, 5),
    "4-5-4": (4, 5, 4),
    "5-4-4": (5, 4, 4),
}
_PATTERNS = ("months", *FISCAL_WEEKS)
#: The weekday every week-pattern period ends on (Monday is 0).
_SATURDAY = 5
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: The settings' keys in the store's meta table (crmkit.store.settings: ``setting:<name>``).

Bounds = tuple[pd.Timestamp, pd.Timestamp]


def _day(value: object) -> pd.Timestamp:
    """A day as a midnight Timestamp, or a one-line error."""
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError):
        t = pd.NaT
    if t is pd.NaT or pd.isna(t):
        raise CrmkitError(f"not a day: {str(value)[:40]!r}; use YYYY-MM-DD")
    if t.tzinfo is not None:
        t = t.tz_localize(None)
    return t.normalize()


@dataclass(frozen=True)
class FiscalCalendar:
    """A fiscal calendar: the month its year starts in and its period pattern.

    Parameters
    ----------
    start_month
        The month (1-12) the fiscal year starts in; 1 is the calendar year.
    pattern
        ``"months"`` (calendar months) or a week pattern ``"4-4-5"``, ``"4-5-4"``,
        ``"5-4-4"`` (52-53-week years; see the module docstring).

    Raises
    ------
    CrmkitError
        For a month outside 1-12 or an unknown pattern.

    Examples
    --------
    >>> cal = FiscalCalendar(4)
    >>> cal.quarter_of("2026-05-15"), cal.quarter_label("2026-04-01")
    ((2027, 1), 'FY27 Q1')

    """

    start_month: int = 1
    pattern: str = "months"

    def __post_init__(self) -> None:
        """Check the month and the pattern."""
        if isinstance(self.start_month, bool) or not isinstance(self.start_month, int):
            raise CrmkitError(f"fiscal start month {self.start_month!r} is not a month 1-12")
        if not 1 <= self.start_month <= 12:
            raise CrmkitError(f"fiscal start month {self.start_month!r} is not a month 1-12")
        if self.pattern not in _PATTERNS:
            raise CrmkitError(
                f"fiscal pattern {str(self.pattern)[:40]!r} is not one of {', '.join(_PATTERNS)}"
            )

    # ------------------------------------------------------------------ the calendar's kind
    @property
    def is_default(self) -> bool:
        """True for calendar months in calendar years (crmkit's behaviour without settings)."""
        return self.start_month == 1 and self.pattern == "months"

    @property
    def in_weeks(self) -> bool:
        """True for a 4-4-5, 4-5-4 or 5-4-4 week pattern."""
        return self.pattern != "months"

    def describe(self) -> str:
        """One line naming the calendar, e.g. ``"fiscal year from April, 4-4-5 weeks"``."""
        kind = "calendar months" if not self.in_weeks else f"{self.pattern} weeks"
        return f"fiscal year from {_MONTHS[self.start_month - 1]}, {kind}"

    # ------------------------------------------------------------------ years
    def year_bounds(self, fiscal_year: int) -> Bounds:
        """First and last day of a fiscal year (named by the year its last month is in)."""
        return _year_bounds(self.start_month, self.pattern, int(fiscal_year))

    def year_of(self, day: object) -> int:
        """The fiscal year holding ``day``."""
        t = _day(day)
        fy = t.year + (1 if self.start_month > 1 and t.month >= self.start_month else 0)
        start, end = self.year_bounds(fy)
        if t > end:
            return fy + 1
        if t < start:
            return fy - 1
        return fy

    def year_periods(self, fiscal_year: int) -> list[Bounds]:
        """The 12 periods of a fiscal year, ``(first day, last day)`` each, in order."""
        return list(_year_periods(self.start_month, self.pattern, int(fiscal_year)))

    # ------------------------------------------------------------------ periods
    def _locate(self, day: object) -> tuple[int, int]:
        """``(fiscal year, period number 1-12)`` of a day."""
        t = _day(day)
        fy = self.year_of(t)
        for i, (_start, end) in enumerate(_year_periods(self.start_month, self.pattern, fy)):
            if t <= end:
                return fy, i + 1
        raise AssertionError("a fiscal year's periods tile it")  # pragma: no cover

    def period_bounds(self, day: object) -> Bounds:
        """First and last day of the fiscal period (month) holding ``day``.

        Parameters
        ----------
        day
            A day (date, ``"YYYY-MM-DD"`` or Timestamp; a time of day is ignored).

        Returns
        -------
        tuple of pandas.Timestamp
            ``(start, end)``, both days at midnight; ``end`` is the period's last day.
        """
        fy, p = self._locate(day)
        return _year_periods(self.start_month, self.pattern, fy)[p - 1]

    def periods(self, start_day: object, n: int) -> list[Bounds]:
        """``n`` consecutive fiscal periods, the first being the one holding ``start_day``.

        Parameters
        ----------
        start_day
            A day of the first period.
        n
            Number of periods.

        Returns
        -------
        list of tuple
            ``(start, end)`` per period (last days included); they tile without gaps.
        """
        fy, p = self._locate(start_day)
        out: list[Bounds] = []
        while len(out) < int(n):
            out.extend(_year_periods(self.start_month, self.pattern, fy)[p - 1 :])
            fy, p = fy + 1, 1
        return out[: int(n)]

    # ------------------------------------------------------------------ quarters
    def quarter_of(self, day: object) -> tuple[int, int]:
        """``(fiscal year, quarter 1-4)`` of the day."""
        fy, p = self._locate(day)
        return fy, (p - 1) // 3 + 1

    def quarter_bounds(self, day: object) -> Bounds:
        """First and last day of the fiscal quarter holding ``day``."""
        fy, q = self.quarter_of(day)
        year = _year_periods(self.start_month, self.pattern, fy)
        return year[3 * (q - 1)][0], year[3 * q - 1][1]

    def quarters(self, start_day: object, n: int) -> list[Bounds]:
        """``n`` consecutive fiscal quarters, the first being the one holding ``start_day``."""
        out: list[Bounds] = []
        day = _day(start_day)
        while len(out) < int(n):
            bounds = self.quarter_bounds(day)
            out.append(bounds)
            day = bounds[1] + pd.Timedelta(days=1)
        return out

    def bounds(self, kind: str, day: object) -> Bounds:
        """The period (``kind`` ``"M"``) or quarter (``"Q"``) holding ``day``."""
        if kind == "M":
            return self.period_bounds(day)
        if kind == "Q":
            return self.quarter_bounds(day)
        raise CrmkitError(f"period {str(kind)[:40]!r} is not one of M, Q")

    # ------------------------------------------------------------------ labels
    def period_label(self, start: object) -> str:
        """Label of the fiscal period holding ``start``.

        Calendar months keep crmkit's labels (``"2026-11"``); week-pattern periods are
        ``"FY27 P03"`` (fiscal year, period 1-12).
        """
        if not self.in_weeks:
            return month_label(int(month_index(_day(start))))
        fy, p = self._locate(start)
        return f"FY{fy % 100:02d} P{p:02d}"

    def quarter_label(self, start: object) -> str:
        """Label of the fiscal quarter holding ``start``.

        The default calendar keeps crmkit's labels (``"2026-Q4"``); any other is
        ``"FY27 Q1"`` (fiscal year, quarter 1-4).
        """
        if self.is_default:
            return quarter_label(int(month_index(_day(start))) // 3)
        fy, q = self.quarter_of(start)
        return f"FY{fy % 100:02d} Q{q}"

    def label(self, kind: str, start: object) -> str:
        """:meth:`period_label` (``kind`` ``"M"``) or :meth:`quarter_label` (``"Q"``)."""
        if kind == "M":
            return self.period_label(start)
        if kind == "Q":
            return self.quarter_label(start)
        raise CrmkitError(f"period {str(kind)[:40]!r} is not one of M, Q")

    def labels(self, kind: str, days: object) -> pd.Series:
        """:meth:`label` of many days at once (missing days get a missing label).

        Parameters
        ----------
        kind
            ``"M"`` or ``"Q"``.
        days
            Days or times (a Series, an array or a list).

        Returns
        -------
        pandas.Series
            One label per day, in order (index ``0..n-1``).
        """
        raw = days if isinstance(days, pd.Series) else pd.Series(list(days), dtype=object)
        t = pd.to_datetime(raw, format="mixed")
        t = t.dt.tz_localize(None) if t.dt.tz is not None else t
        day = t.dt.normalize().reset_index(drop=True)
        names = {d: self.label(kind, d) for d in day.dropna().unique()}
        return day.map(names)

    # ------------------------------------------------------------------ quota days
    def start_error(self, kind: str, day: object) -> str | None:
        """Why ``day`` cannot be a quota's or call's ``period_start`` (None when it can).

        A period start must be the first day of a fiscal period (``"M"``) or quarter
        (``"Q"``); the reason names the day and the start of the period holding it.
        """
        t = _day(day)
        start = self.bounds(kind, t)[0]
        if start == t:
            return None
        what = "month" if kind == "M" else "quarter"
        if self.is_default:
            if kind == "M":
                return f"period_start {t.date()} is not the first day of a month"
            return (
                f"period_start {t.date()} is not the first day of a quarter "
                "(Jan 1, Apr 1, Jul 1 or Oct 1)"
            )
        return (
            f"period_start {t.date()} is not the first day of a fiscal {what} "
            f"({self.describe()}; that {what} starts {start.date()})"
        )


def fiscal_calendar(store: Any) -> FiscalCalendar:
    """The company's fiscal calendar, from the store's settings.

    Parameters
    ----------
    store
        The database (a :class:`crmkit.store.Store`); its ``fiscal_year_start_month`` and
        ``fiscal_pattern`` settings (:mod:`crmkit.store.settings`) are read.

    Returns
    -------
    FiscalCalendar
        ``FiscalCalendar()`` (calendar months) when neither setting was set.

    Raises
    ------
    CrmkitError
        A stored value that is not a month 1-12 or a known pattern.
    """
    return FiscalCalendar(
        int(str(get_setting(store, "fiscal_year_start_month"))),
        str(get_setting(store, "fiscal_pattern")),
    )


# ---------------------------------------------------------------------- year tables
def _saturday_nearest(day: pd.Timestamp) -> pd.Timestamp:
    """The Saturday nearest ``day`` (three days before to three days after it)."""
    ahead = (_SATURDAY - day.weekday()) % 7
    return day + pd.Timedelta(days=ahead if ahead <= 3 else ahead - 7)


def _nominal_end(start_month: int, fiscal_year: int) -> pd.Timestamp:
    """Last day of the month before ``start_month`` in the fiscal year's last calendar year."""
    end_month = 12 if start_month == 1 else start_month - 1
    return pd.Timestamp(year=fiscal_year, month=end_month, day=1) + pd.offsets.MonthEnd(0)


@lru_cache(maxsize=1024)
def _year_bounds(start_month: int, pattern: str, fiscal_year: int) -> Bounds:
    """First and last day of a fiscal year."""
    if pattern == "months":
        end = _nominal_end(start_month, fiscal_year)
        prev = _nominal_end(start_month, fiscal_year - 1)
        return prev + pd.Timedelta(days=1), end
    end = _saturday_nearest(_nominal_end(start_month, fiscal_year))
    prev = _saturday_nearest(_nominal_end(start_month, fiscal_year - 1))
    return prev + pd.Timedelta(days=1), end


@lru_cache(maxsize=1024)
def _year_periods(start_month: int, pattern: str, fiscal_year: int) -> tuple[Bounds, ...]:
    """The 12 periods of a fiscal year."""
    start, end = _year_bounds(start_month, pattern, fiscal_year)
    out = []
    if pattern == "months":
        for i in range(12):
            first = start + pd.DateOffset(months=i)
            out.append((first, first + pd.offsets.MonthEnd(0)))
        return tuple(out)
    weeks = list(FISCAL_WEEKS[pattern]) * 4
    weeks[-1] += ((end - start).days + 1) // 7 - 52  # the 53rd week, in the last period
    first = start
    for w in weeks:
        last = first + pd.Timedelta(days=7 * w - 1)
        out.append((first, last))
        first = last + pd.Timedelta(days=1)
    return tuple(out)
