"""The forecast's axes: the periods after ``as_of``, the revenue sources and the groups.

Forecast draws are an ``xarray.DataArray`` named ``revenue`` with dims
:data:`REVENUE_DIMS` ``(sample, period, source, group)`` (:func:`revenue_array`).
:func:`period_axis` maps the simulated months to the reported periods (months or
quarters), :data:`SOURCES` names the sources (the :data:`SOURCE_PARTS` and their ``total``,
which :func:`add_total` sums draw by draw), and :func:`group_axis` / :func:`memberships` give
the roll-up groups (``all``, ``team=..``, ``owner=..``, ``segment=..``) and the groups each
deal counts in. Sources and groups are always selected by name, never by position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError
from crmkit.store.fiscal import FiscalCalendar
from crmkit.store.history import month_index
from crmkit.store.snapshots import REVENUE, REVENUE_DIMS, REVENUE_UNITS

#: The revenue sources whose sum is the total.
SOURCE_PARTS = ("pipeline", "new_business", "repeat")
#: The sources of deal revenue, which quotas, forecast categories and managers' calls are
#: about (repeat orders are no one's booking).
DEAL_SOURCES = ("pipeline", "new_business")
#: The sources of the revenue draws: the parts, then ``total``.
SOURCES = (*SOURCE_PARTS, "total")
#: Human names of the sources.
SOURCE_NAMES = {
    "pipeline": "Open pipeline",
    "new_business": "New business",
    "repeat": "Repeat customers",
    "total": "Total",
}
GROUP_BYS = ("team", "owner", "segment")


@dataclass
class PeriodAxis:
    """Forecast months and the periods they fall in.

    ``bounds`` holds each period's first and last day (midnight Timestamps): every date a
    forecast puts into a period (won deals closed to date, expected close dates, quotas'
    period starts) goes by these boundaries, never by month arithmetic.
    """

    first_month: int
    period_of_k: np.ndarray
    labels: list[str]
    period_months: list[list[int]]
    frac_first: float
    bounds: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    calendar: FiscalCalendar = field(default_factory=FiscalCalendar)

    @property
    def months(self) -> int:
        """Number of simulated months."""
        return len(self.period_of_k)

    def period_of(self, days: object) -> np.ndarray:
        """Position of each day's period on the axis (-1 outside the axis' periods)."""
        t = pd.to_datetime(pd.Series(np.atleast_1d(np.asarray(days, dtype=object))))
        t = t.dt.normalize().to_numpy("datetime64[ns]")
        out = np.full(len(t), -1, dtype=np.int64)
        for i, (start, end) in enumerate(self.bounds):
            out[(t >= np.datetime64(start)) & (t <= np.datetime64(end))] = i
        return out


def period_axis(
    as_of: object, horizon: int, period: str = "M", calendar: FiscalCalendar | None = None
) -> PeriodAxis:
    """The forecast periods after ``as_of``: the current one (if not over) and the next ones.

    When ``as_of`` is a period's last day the first period is the next one; otherwise the
    first period is the current one, of which only the rest is forecast.

    Parameters
    ----------
    as_of
        The day of the forecast.
    horizon
        Number of periods (at least 1).
    period
        ``"M"`` (months) or ``"Q"`` (quarters).
    calendar
        The company's fiscal calendar (:func:`crmkit.store.fiscal.fiscal_calendar`); quarters
        are its fiscal quarters and labels its labels. None: calendar months and quarters
        (``FiscalCalendar()``).

    Returns
    -------
    PeriodAxis
        The simulated months (from ``first_month``), the period of each, the period labels
        (``"2026-11"`` or ``"2026-Q4"``; ``"FY27 Q1"`` for fiscal quarters of a year not
        starting in January), the months of each period, the share of the first month still
        to come and each period's first and last day.

    Raises
    ------
    CrmkitError
        A bad period or horizon, or a 4-4-5 / 4-5-4 / 5-4-4 week calendar: the forecast
        simulates calendar months, which do not split into week periods.
    """
    if period not in ("M", "Q"):
        raise CrmkitError(f"period must be 'M' or 'Q', not {period!r}")
    if int(horizon) < 1:
        raise CrmkitError(f"horizon must be at least 1, not {horizon!r}")
    cal = FiscalCalendar() if calendar is None else calendar
    if cal.in_weeks:
        raise CrmkitError(
            f"fiscal_pattern {cal.pattern}: the forecast simulates calendar months, which do "
            f"not split into {cal.pattern} week periods; forecast with fiscal_pattern months"
        )
    t = pd.Timestamp(as_of).normalize()
    m = month_index(t)
    dim = t.days_in_month
    if t.day == dim:
        first, frac = m + 1, 1.0
    else:
        first, frac = m, (dim - t.day) / dim
    step = 1 if period == "M" else 3
    # fiscal quarters are 3 calendar months from the start month: shift the month index so
    # that the fiscal year's first month is a multiple of 3 (no shift for January)
    shift = (cal.start_month - 1) % step
    p0 = (first - shift) // step
    months = list(range(first, (p0 + horizon) * step + shift))
    period_of_k = np.array([(mm - shift) // step - p0 for mm in months], dtype=np.int64)
    labels, groups, bounds = [], [], []
    for i in range(horizon):
        p = p0 + i
        start_m = p * step + shift
        start = pd.Timestamp(year=start_m // 12, month=start_m % 12 + 1, day=1)
        bounds.append(cal.bounds(period, start))
        labels.append(cal.label(period, start))
        groups.append([mm for mm in months if (mm - shift) // step == p])
    return PeriodAxis(first, period_of_k, labels, groups, frac, bounds, cal)


def calendar_parameters(calendar: FiscalCalendar | None) -> dict[str, object]:
    """The fiscal calendar as a snapshot keeps it: ``{"start_month": 4, "pattern": "months"}``.

    Parameters
    ----------
    calendar
        The forecast's calendar; None is the default calendar.

    Returns
    -------
    dict
        JSON-ready, for ``snap.parameters["calendar"]`` (:func:`snapshot_calendar` reads it).
    """
    cal = FiscalCalendar() if calendar is None else calendar
    return {"start_month": cal.start_month, "pattern": cal.pattern}


def snapshot_calendar(parameters: Mapping[str, Any] | None) -> FiscalCalendar:
    """The fiscal calendar a snapshot was made with (from its ``parameters``).

    Parameters
    ----------
    parameters
        ``snap.parameters``; a snapshot saved before fiscal calendars has no ``calendar``
        entry and was made with calendar months and quarters.

    Returns
    -------
    FiscalCalendar
    """
    saved = (parameters or {}).get("calendar") or {}
    return FiscalCalendar(int(saved.get("start_month", 1)), str(saved.get("pattern", "months")))


def group_axis(frame: pd.DataFrame, accounts: pd.DataFrame | None = None) -> list[str]:
    """Group labels: ``all``, then ``team=..``, ``owner=..``, ``segment=..`` seen in the data.

    Parameters
    ----------
    frame
        Deals with ``team``, ``owner`` and ``segment`` columns.
    accounts
        Accounts whose ``segment`` and ``owner`` values are added (repeat revenue).

    Returns
    -------
    list of str
        ``"all"`` first, then each group by's values in sorted order (``(none)`` left out).
    """
    labels = ["all"]
    for g in GROUP_BYS:
        vals = set(frame[g].dropna().astype(str))
        if g == "segment" and accounts is not None and "segment" in accounts:
            vals |= set(accounts["segment"].dropna().astype(str))
        if g == "owner" and accounts is not None and "owner" in accounts:
            vals |= set(accounts["owner"].dropna().astype(str))
        labels += [f"{g}={v}" for v in sorted(vals) if v != "(none)"]
    return labels


def revenue_array(n_draws: int, periods: list[str], groups: list[str]) -> xr.DataArray:
    """Zero revenue draws ``(sample, period, source, group)`` labelled for a forecast.

    Parameters
    ----------
    n_draws
        Number of draws (``sample``).
    periods
        Period labels.
    groups
        Group labels (from :func:`group_axis`).

    Returns
    -------
    xarray.DataArray
        Named ``revenue``, coordinates ``period``, ``source`` (:data:`SOURCES`) and
        ``group``; attribute ``units`` (currency amounts of each period).
    """
    return xr.DataArray(
        np.zeros((int(n_draws), len(periods), len(SOURCES), len(groups))),
        dims=REVENUE_DIMS,
        coords={"period": list(periods), "source": list(SOURCES), "group": list(groups)},
        name=REVENUE,
        attrs={"units": REVENUE_UNITS},
    )


def add_total(revenue: xr.DataArray) -> xr.DataArray:
    """Set the ``total`` source of revenue draws to the sum of the parts, draw by draw.

    Parameters
    ----------
    revenue
        Revenue draws with a ``source`` dim holding :data:`SOURCES`; changed in place.

    Returns
    -------
    xarray.DataArray
        ``revenue``.
    """
    parts = [revenue.sel(source=s) for s in SOURCE_PARTS]
    revenue.loc[{"source": "total"}] = parts[0] + parts[1] + parts[2]
    return revenue


def deal_revenue(revenue: xr.DataArray) -> xr.DataArray:
    """Return the deal revenue of revenue draws: the :data:`DEAL_SOURCES` summed, draw by draw.

    Parameters
    ----------
    revenue
        Revenue draws with a ``source`` dim holding :data:`SOURCES`.

    Returns
    -------
    xarray.DataArray
        ``revenue`` without its ``source`` dim.
    """
    return revenue.sel(source=list(DEAL_SOURCES)).sum("source")


def memberships(frame: pd.DataFrame, index: dict[str, int]) -> np.ndarray:
    """``(rows, 4)`` group columns (all, team, owner, segment) of each deal; -1 when none.

    Parameters
    ----------
    frame
        Deals with ``team``, ``owner`` and ``segment`` columns.
    index
        Position of each group label (from :func:`group_axis`).

    Returns
    -------
    numpy.ndarray
        int64 group positions, column 0 being ``all``.
    """
    cols = [np.zeros(len(frame), np.int64)]
    for g in GROUP_BYS:
        cols.append(
            frame[g].astype(str).map(lambda v, g=g: index.get(f"{g}={v}", -1)).to_numpy(np.int64)
        )
    return np.stack(cols, axis=1)


__all__ = [
    "DEAL_SOURCES",
    "GROUP_BYS",
    "SOURCES",
    "SOURCE_NAMES",
    "SOURCE_PARTS",
    "PeriodAxis",
    "add_total",
    "calendar_parameters",
    "deal_revenue",
    "group_axis",
    "memberships",
    "period_axis",
    "revenue_array",
    "snapshot_calendar",
]
