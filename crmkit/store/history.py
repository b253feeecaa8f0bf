"""Deal state as it was on a past date, rebuilt from ``deal_history`` and the deals' own dates.

Backtests and the pipeline model need the pipeline "as it was": which deals existed,
which were open, and their stage, amount and expected close date on that day. The
rules, applied per deal and tracked field:

* a deal exists on day ``t`` when ``created_at`` is on or before ``t``;
* a field's value on ``t`` is the ``new_value`` of its last history row changed on or
  before ``t``; when every row is later, the ``old_value`` of the first later row (or its
  ``new_value`` when that row records the initial value, as imports write it at import
  time); without history rows, the current value;
* ``closed_at`` wins over history for the status: a deal closed after ``t`` was open on
  ``t`` (its ``closed_at`` is cleared), one closed on or before ``t`` has its final status.

Month arithmetic used across the forecast lives here too (``month_index``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmkit.store.schema import DEAL_TRACKED_FIELDS

_NUMERIC = {"amount"}
_DATES = {"expected_close_date"}


def month_index(values: pd.Series | pd.DatetimeIndex | pd.Timestamp) -> np.ndarray | int:
    """Months since year 0 (``year * 12 + month - 1``) of timestamps; -1 for missing ones."""
    if isinstance(values, pd.Timestamp):
        return int(values.year * 12 + values.month - 1)
    s = pd.to_datetime(pd.Series(values))
    out = (s.dt.year * 12 + s.dt.month - 1).to_numpy(dtype="float64")
    return np.where(np.isnan(out), -1, out).astype(np.int64)


def month_end(index: int) -> pd.Timestamp:
    """The last day of a month index (``year * 12 + month - 1``), at midnight."""
    return pd.Timestamp(year=index // 12, month=index % 12 + 1, day=1) + pd.offsets.MonthEnd(0)


def month_label(index: int) -> str:
    """Label ``"2026-11"`` of a month index."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def quarter_label(index: int) -> str:
    """Label ``"2026-Q4"`` of a quarter index (``month index // 3``)."""
    return f"{index // 4:04d}-Q{index % 4 + 1}"


def end_of_day(day: object) -> pd.Timestamp:
    """The last instant of a day (so that ``<=`` comparisons include the whole day)."""
    return pd.Timestamp(day).normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def _convert(field: str, text: pd.Series) -> np.ndarray:
    """Convert history text values back to the field's type (as a numpy array)."""
    if field in _NUMERIC:
        return pd.to_numeric(text, errors="coerce").to_numpy("float64")
    if field in _DATES:
        return pd.to_datetime(text, errors="coerce", format="mixed").to_numpy("datetime64[ns]")
    return text.astype(object).to_numpy()


class HistoryIndex:
    """Deal history sorted and parsed once, for fast "value as of" look-ups at many dates.

    Parameters
    ----------
    deals
        The deals (their ``deal_id`` order defines the positions used).
    history
        ``deal_history`` rows.
    """

    def __init__(self, deals: pd.DataFrame, history: pd.DataFrame | None) -> None:
        ids = deals["deal_id"].astype(str).to_numpy()
        self.n = len(ids)
        self.fields: dict[str, tuple] = {}
        if history is None or history.empty:
            return
        pos = pd.Series(np.arange(self.n), index=pd.Index(ids))
        h = history[["deal_id", "changed_at", "field", "old_value", "new_value"]].copy()
        h["pos"] = pd.Series(h["deal_id"].astype(str).to_numpy()).map(pos).to_numpy()
        h = h[h["pos"].notna()]
        h["pos"] = h["pos"].astype(np.int64)
        h["t"] = pd.to_datetime(h["changed_at"]).to_numpy("datetime64[ns]")
        if "history_id" in history:
            h["hid"] = history.loc[h.index, "history_id"].to_numpy()
        else:
            h["hid"] = np.arange(len(h))
        for f in DEAL_TRACKED_FIELDS:
            hf = h[h["field"].astype(str).to_numpy() == f].sort_values(["pos", "t", "hid"])
            if hf.empty:
                continue
            deal = hf["pos"].to_numpy()
            counts = np.bincount(deal, minlength=self.n)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            new = _convert(f, hf["new_value"])
            old = _convert(f, hf["old_value"])
            old_known = hf["old_value"].notna().to_numpy()
            self.fields[f] = (deal, hf["t"].to_numpy(), counts, starts, new, old, old_known)

    @classmethod
    def of(cls, deals: pd.DataFrame, history: pd.DataFrame | HistoryIndex | None) -> HistoryIndex:
        """``history`` itself when already an index (built on ``deals``), else parsed now."""
        return history if isinstance(history, HistoryIndex) else cls(deals, history)

    def values_as_of(self, field: str, t: pd.Timestamp) -> tuple[np.ndarray, np.ndarray] | None:
        """``(values, known)`` per deal position at ``t``; None without history for the field."""
        if field not in self.fields:
            return None
        deal, times, counts, starts, new, old, old_known = self.fields[field]
        before = np.bincount(deal[times <= np.datetime64(t)], minlength=self.n)
        has_before = before > 0
        has_after = before < counts
        idx_b = np.where(has_before, starts + before - 1, 0)
        idx_a = np.where(has_after, starts + before, 0)
        values = new[idx_b].copy() if len(new) else new
        after_val = np.where(old_known[idx_a], old[idx_a], new[idx_a])
        use_after = ~has_before & has_after
        values[use_after] = after_val[use_after]
        return values, has_before | has_after


def deals_as_of(
    deals: pd.DataFrame, history: pd.DataFrame | HistoryIndex | None, as_of: object
) -> pd.DataFrame:
    """The deals that existed on ``as_of``, with the values they had that day.

    Parameters
    ----------
    deals
        Current deals (``store.read("deals")``).
    history
        Their ``deal_history`` rows (or a :class:`HistoryIndex` built on the same deals),
        or None to rebuild from dates alone.
    as_of
        A day; the whole day counts (changes made on it are included).

    Returns
    -------
    pandas.DataFrame
        The same columns, one row per deal created by then; ``status``, ``stage``,
        ``amount``, ``expected_close_date`` and ``closed_at`` as of that day.
    """
    t = end_of_day(as_of)
    index = HistoryIndex.of(deals, history)
    created = pd.to_datetime(deals["created_at"]).to_numpy("datetime64[ns]")
    keep = created <= np.datetime64(t)
    out = deals.copy()
    for f in DEAL_TRACKED_FIELDS:
        if f not in out.columns:
            continue
        got = index.values_as_of(f, t)
        if got is None:
            continue
        values, known = got
        if f in _NUMERIC:
            cur = out[f].astype("float64").to_numpy()
            out[f] = np.where(known, values.astype("float64"), cur)
        elif f in _DATES:
            cur = pd.to_datetime(out[f]).to_numpy("datetime64[ns]")
            out[f] = np.where(known, values, cur)
        elif f != "status":
            cur = out[f].astype(object).to_numpy()
            out[f] = np.where(known, values, cur)
    # the status follows closed_at: closed later means open then; closed by then, final status
    closed = pd.to_datetime(out["closed_at"]).to_numpy("datetime64[ns]")
    later = ~np.isnat(closed) & (closed > np.datetime64(t))
    status = out["status"].astype(object).to_numpy()
    got = index.values_as_of("status", t)
    if got is not None:  # deals without closed_at: trust the history's status
        values, known = got
        no_close = np.isnat(closed) & known
        status = np.where(no_close, values, status)
    status = np.where(later, "open", status)
    out["status"] = status
    out["closed_at"] = np.where(later, np.datetime64("NaT"), closed)
    out["closed_at"] = pd.to_datetime(out["closed_at"])
    return out[keep].reset_index(drop=True)


def won_revenue_by_month(deals: pd.DataFrame) -> pd.Series:
    """Won amount per close month index (final amounts of deals with status won)."""
    won = deals[(deals["status"] == "won") & deals["closed_at"].notna()]
    if won.empty:
        return pd.Series(dtype="float64")
    m = month_index(won["closed_at"])
    return pd.Series(won["amount"].fillna(0.0).to_numpy(float)).groupby(m).sum()
