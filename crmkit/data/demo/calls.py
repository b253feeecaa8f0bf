"""Demo quotas and team managers' forecast calls, each from a stated formula (known truth).

Quotas (``quotas``): an owner's monthly quota is ``params.QUOTA_STRETCH`` times their mean
monthly won deal revenue over the period's last ``params.QUOTA_BASE_MONTHS`` months, grown
by ``exp(params.ARRIVAL_TREND_PER_YEAR)`` a year from the period's last month (shrunk before
it), rounded to ``params.QUOTA_ROUND`` and at least ``params.QUOTA_MIN``; a team's quota is
the sum of its owners', the company's (name ``"all"``) the sum of the teams'. They run from
the period's first month to ``params.QUOTA_MONTHS_AHEAD`` months after its last, so that a
forecast made at the period end has quotas for its horizon.

Calls (``forecast_calls``): for each team and month, its manager (author ``"<team> manager"``)
calls on the month's first business day and updates the call on the first business day from
the ``params.UPDATE_DAY``-th, both at ``params.CALL_HOUR`` o'clock, from what they knew then:
the team's commit roll-up of the month as the deals stood at the end of the day before the
call (:func:`team_commits`: won deal revenue closed in the month by then plus the open deals
in category ``commit`` (or ``closed``) expected to close by the month's end, overdue ones
included), divided by ``1 + params.COMMIT_OPTIMISM`` (the managers know their reps' commits
are optimistic), times ``params.MANAGER_CALL_BIAS[team]`` (Strategic's manager sandbags),
rounded to ``params.CALL_ROUND``. The calls never see the outcome: a win after a call does not
change it. Only calls made before the period end are recorded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.data.demo import params
from crmkit.data.demo.clock import Clock
from crmkit.store.history import HistoryIndex, deals_as_of

#: Author of a team manager's call.
AUTHOR = "{team} manager"
#: Notes of the month's first call and of its mid-month update.
NOTES = {"first": "first call", "update": "mid-month update"}
#: Categories counting in a commit roll-up (as in the forecast call's roll-ups).
COMMIT_CATEGORIES = ("closed", "commit")
#: Deal columns the managers' roll-ups read (the replay copies only these).
_ROLLUP_COLUMNS = [
    "deal_id", "team", "status", "amount", "created_at", "expected_close_date", "closed_at",
    "forecast_category",
]  # fmt: skip


def _month_starts(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """First days of the months from the one holding ``first`` to the one holding ``last``."""
    return pd.date_range(first.to_period("M").start_time, last.to_period("M").start_time, freq="MS")


def won_by_month(deals: pd.DataFrame, by: str) -> pd.DataFrame:
    """Won deal revenue per month (rows, first days) and ``by`` (columns: owner or team).

    Parameters
    ----------
    deals
        The demo's deals (``status``, ``closed_at``, ``amount`` and the ``by`` column).
    by
        ``"owner"`` or ``"team"``.

    Returns
    -------
    pandas.DataFrame
        Sums of the amounts of won deals by close month; months or names without a win are
        absent (read with ``reindex(..., fill_value=0.0)``).

    """
    won = deals[deals["status"] == "won"]
    month = pd.to_datetime(won["closed_at"]).dt.to_period("M").dt.start_time
    return won.groupby([month.rename("month"), won[by]])["amount"].sum().unstack(fill_value=0.0)


def quota_frame(clock: Clock, deals: pd.DataFrame) -> pd.DataFrame:
    """Monthly quotas of every owner, team and the company (formula in the module docstring).

    Parameters
    ----------
    clock
        The demo's period.
    deals
        The demo's deals.

    Returns
    -------
    pandas.DataFrame
        Columns ``scope``, ``name``, ``period`` (``"M"``), ``period_start`` and ``amount``.

    """
    months = _month_starts(clock.start, clock.end + pd.DateOffset(months=params.QUOTA_MONTHS_AHEAD))
    in_period = _month_starts(clock.start, clock.end)
    base_months = in_period[-params.QUOTA_BASE_MONTHS :]
    owners = [o for team in params.TEAMS.values() for o in team]
    won = won_by_month(deals, "owner").reindex(index=base_months, columns=owners, fill_value=0.0)
    base = won.sum(axis=0).to_numpy() / len(base_months)
    last = in_period[-1]
    ahead = np.array([(m.year - last.year) * 12 + m.month - last.month for m in months])
    growth = np.exp(params.ARRIVAL_TREND_PER_YEAR * ahead / 12.0)
    raw = params.QUOTA_STRETCH * growth[:, None] * base[None, :]  # (months, owners)
    owner_q = np.maximum(np.round(raw / params.QUOTA_ROUND) * params.QUOTA_ROUND, params.QUOTA_MIN)
    parts = [(("owner", o), owner_q[:, j]) for j, o in enumerate(owners)]
    team_total = {}
    for team, members in params.TEAMS.items():
        team_total[team] = owner_q[:, [owners.index(o) for o in members]].sum(axis=1)
        parts.append((("team", team), team_total[team]))
    parts.append((("company", "all"), np.sum(list(team_total.values()), axis=0)))
    n = len(months)
    return pd.DataFrame(
        {
            "scope": pd.array(np.repeat([p[0][0] for p in parts], n), dtype="str"),
            "name": pd.array(np.repeat([p[0][1] for p in parts], n), dtype="str"),
            "period": pd.array(np.full(n * len(parts), "M"), dtype="str"),
            "period_start": np.tile(months.to_numpy("datetime64[ns]"), len(parts)),
            "amount": np.concatenate([p[1] for p in parts]).astype("float64"),
        }
    )


def _business_day(day: pd.Timestamp) -> pd.Timestamp:
    """The day itself if a weekday, else the Monday after it."""
    return day + pd.Timedelta(days=max(0, 7 - day.weekday())) if day.weekday() >= 5 else day


def call_times(clock: Clock) -> pd.DataFrame:
    """When the managers call: per month in the period, the first call and the update.

    Parameters
    ----------
    clock
        The demo's period.

    Returns
    -------
    pandas.DataFrame
        Columns ``month`` (first day), ``kind`` (``"first"`` or ``"update"``) and ``at``
        (the time of the call), only the calls made before the period's end.

    """
    rows = []
    for month in _month_starts(clock.start, clock.end):
        for kind, day in (("first", month), ("update", month.replace(day=params.UPDATE_DAY))):
            at = _business_day(day) + pd.Timedelta(hours=params.CALL_HOUR)
            if clock.start <= at < clock.end_excl:
                rows.append((month, kind, at))
    return pd.DataFrame(rows, columns=["month", "kind", "at"])


def team_commits(clock: Clock, deals: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Each team's commit roll-up of the month as its manager knew it at each call time.

    The deals are replayed (:func:`crmkit.store.history.deals_as_of`) as they stood at the
    end of the day before the call; the rules are the forecast call's
    (:func:`crmkit.forecast.call.category_rollups`) for the month of the call.

    Parameters
    ----------
    clock
        The demo's period.
    deals
        The demo's deals (``deal_id``, ``team``, ``status``, ``amount``, ``created_at``,
        ``expected_close_date``, ``closed_at``, ``forecast_category``).
    history
        Their ``deal_history`` rows (the categories' changes included).

    Returns
    -------
    pandas.DataFrame
        One row per call time (:func:`call_times`) and team, in that order: ``month``,
        ``kind``, ``at``, ``known_at`` (the day whose end the deals are replayed at),
        ``team``, ``closed`` (won deal revenue closed in the month by then) and ``commit``
        (``closed`` plus the open deals in category ``commit`` or ``closed`` whose expected
        close date is before the month's end, overdue ones included).

    """
    teams = list(params.TEAMS)
    times = call_times(clock)
    sub = deals[_ROLLUP_COLUMNS]
    index = HistoryIndex(sub, history)
    closed = np.zeros((len(times), len(teams)))
    commit = np.zeros((len(times), len(teams)))
    known = times["at"].dt.normalize() - pd.Timedelta(days=1)
    for i, (month, day) in enumerate(zip(times["month"], known, strict=True)):
        state = deals_as_of(sub, index, day)
        end = month + pd.DateOffset(months=1)
        amount = pd.to_numeric(state["amount"], errors="coerce").fillna(0.0).to_numpy(float)
        status = state["status"].astype(object).to_numpy()
        closed_at = pd.to_datetime(state["closed_at"])
        won = (status == "won") & ((closed_at >= month) & (closed_at < end)).to_numpy()
        ecd = pd.to_datetime(state["expected_close_date"])
        in_commit = state["forecast_category"].isin(COMMIT_CATEGORIES).to_numpy()
        open_commit = (status == "open") & (ecd < end).to_numpy() & in_commit
        team = state["team"].astype(object).to_numpy()
        for j, t in enumerate(teams):
            member = team == t
            closed[i, j] = amount[won & member].sum()
            commit[i, j] = closed[i, j] + amount[open_commit & member].sum()
    k = len(teams)
    return pd.DataFrame(
        {
            "month": np.repeat(times["month"].to_numpy("datetime64[ns]"), k),
            "kind": np.repeat(times["kind"].to_numpy(), k),
            "at": np.repeat(times["at"].to_numpy("datetime64[ns]"), k),
            "known_at": np.repeat(known.to_numpy("datetime64[ns]"), k),
            "team": np.tile(teams, len(times)),
            "closed": closed.ravel(),
            "commit": commit.ravel(),
        }
    )


def manager_calls(clock: Clock, deals: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The team managers' calls (formula in the module docstring), in time order.

    Parameters
    ----------
    clock
        The demo's period.
    deals
        The demo's deals.
    history
        Their ``deal_history`` rows (the managers see the categories as they stood).

    Returns
    -------
    pandas.DataFrame
        The ``forecast_calls`` columns: ``call_id`` (1.. in time order), ``scope``
        (``"team"``), ``name``, ``period`` (``"M"``), ``period_start``, ``amount``,
        ``author``, ``note`` and ``created_at``.

    """
    known = team_commits(clock, deals, history)
    bias = known["team"].map(params.MANAGER_CALL_BIAS).to_numpy(float)
    raw = known["commit"].to_numpy(float) / (1.0 + params.COMMIT_OPTIMISM) * bias
    amount = np.round(raw / params.CALL_ROUND) * params.CALL_ROUND
    n = len(known)
    return pd.DataFrame(
        {
            "call_id": pd.array(np.arange(1, n + 1), dtype="Int64"),
            "scope": pd.array(np.full(n, "team"), dtype="str"),
            "name": pd.array(known["team"].to_numpy(), dtype="str"),
            "period": pd.array(np.full(n, "M"), dtype="str"),
            "period_start": known["month"].to_numpy("datetime64[ns]"),
            "amount": amount.astype("float64"),
            "author": pd.array([AUTHOR.format(team=t) for t in known["team"]], dtype="str"),
            "note": pd.array(known["kind"].map(NOTES).to_numpy(), dtype="str"),
            "created_at": known["at"].to_numpy("datetime64[ns]"),
        }
    )
