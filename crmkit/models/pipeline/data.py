"""Training data of the pipeline model: landmark exposures aggregated into count cells.

At each month end ``o`` of the training window ("landmark") every open deal is looked at
as it was then (stage, age, expected close date, from :func:`crmkit.store.history.deals_as_of`)
and followed for ``k = 1..K`` months: in each month it is won, lost, or stays open.
A month of a deal is seen from several landmarks; each such trial is weighted by one over
the number of landmarks that see it, so every deal-month counts once in total and the
posterior is not overconfident. Deals still open at the cut-off are censored: their
months count as "stayed open" and nothing more, so deals that never close do not become
future wins. Trials are summed into cells (stage x months-ahead x age x due-status x
month of the quarter x groups), the sufficient statistics of the multinomial likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmkit.store.history import HistoryIndex, deals_as_of, end_of_day, month_end, month_index

#: Lower edges of the month buckets used for months-ahead and age.
MONTH_EDGES = np.array([1, 2, 3, 4, 7, 13])
#: Due-status levels: months between the trial month and the expected close month.
DUE_LEVELS = (
    "unknown",
    "due in 3+",
    "due in 2",
    "due next",
    "due now",
    "late 1",
    "late 2",
    "late 3+",
)
GROUPS = ("owner", "team", "segment", "source")
NONE = "(none)"
#: Prior sd of the stage x months-ahead interaction (each stage's deviation from the common
#: months-ahead effect, on the logit scale; prior key ``stage_ahead_sigma``): the main
#: effects' ``effect_sigma``. At 0.5 the one-month hazards of the stages stayed pulled
#: towards the common months-ahead curve (the in-sample wins of the early stage too high).
STAGE_AHEAD_SIGMA = 1.0


def month_bucket(months: np.ndarray) -> np.ndarray:
    """Bucket index 0..5 of month counts (1, 2, 3, 4-6, 7-12, 13+); <1 goes to 0."""
    return np.clip(np.searchsorted(MONTH_EDGES, months, side="right") - 1, 0, len(MONTH_EDGES) - 1)


def stage_ahead_code(stage: np.ndarray, ahead: np.ndarray, n_stage: int) -> np.ndarray:
    """Code of the stage x months-ahead interaction: 0 (reference) at months-ahead level 0.

    ``1 + stage * (n_ahead - 1) + (ahead - 1)`` otherwise, with ``n_ahead`` the number of
    months-ahead levels and ``n_stage`` the stage levels (the unseen one included), so codes
    run ``0 .. n_stage * (n_ahead - 1)``.
    """
    stage = np.asarray(stage, dtype=np.int64)
    ahead = np.asarray(ahead, dtype=np.int64)
    n_free = len(MONTH_EDGES) - 1
    if np.any((stage < 0) | (stage >= n_stage)):
        raise ValueError("stage codes must lie in 0 .. n_stage - 1")
    return np.where(ahead <= 0, 0, 1 + stage * n_free + (ahead - 1)).astype(np.int64)


def stage_ahead_levels(n_stage: int) -> int:
    """Number of codes of :func:`stage_ahead_code` (the reference included)."""
    return 1 + n_stage * (len(MONTH_EDGES) - 1)


def stage_ahead_matrix(coded: np.ndarray, n_stage: int) -> np.ndarray:
    """Effects by code ``(..., codes)`` (code 0 the reference) as ``(..., n_stage, n_ahead)``.

    The months-ahead level 0 column is zero (the reference).
    """
    coded = np.asarray(coded, dtype=float)
    n_free = len(MONTH_EDGES) - 1
    free = coded[..., 1:].reshape(*coded.shape[:-1], n_stage, n_free)
    return np.concatenate([np.zeros((*free.shape[:-1], 1)), free], axis=-1)


def stage_ahead_coded(matrix: np.ndarray) -> np.ndarray:
    """Effects ``(..., n_stage, n_ahead)`` as effects by code ``(..., codes)``.

    The inverse of :func:`stage_ahead_matrix`: code ``c`` of :func:`stage_ahead_code` picks
    the effect of its (stage, months ahead), code 0 the reference (zero). Raises
    ValueError when a months-ahead level 0 entry (the reference) is not zero.
    """
    matrix = np.asarray(matrix, dtype=float)
    if np.any(matrix[..., 0] != 0.0):
        raise ValueError("stage_ahead effects must be zero at months-ahead level 0 (reference)")
    free = matrix[..., 1:].reshape(*matrix.shape[:-2], -1)
    return np.concatenate([np.zeros((*free.shape[:-1], 1)), free], axis=-1)


def _cells_stage_ahead(cells: pd.DataFrame, levels: Levels) -> np.ndarray:
    """:func:`stage_ahead_code` of the cells' ``stage`` and ``ahead`` codes."""
    return stage_ahead_code(
        cells["stage"].to_numpy(np.int64), cells["ahead"].to_numpy(np.int64), len(levels.stage) + 1
    )


def require_stage_ahead(cells: pd.DataFrame, levels: Levels) -> np.ndarray:
    """The cells' ``stage_ahead`` codes, checked against their ``stage`` and ``ahead`` codes.

    Cells come from :func:`landmark_cells`, the SBC simulator or a saved model's restore,
    which all set the column (:func:`with_stage_ahead`); the fits read it and never derive
    it. Cells without it, or with codes that are not :func:`stage_ahead_code` of their
    stage and months ahead, are a programming error (no user input builds cells), so a
    ValueError, not a :class:`~crmkit.errors.CrmkitError`.

    Parameters
    ----------
    cells
        Training cells (factor codes and counts).
    levels
        Their levels (the stage count sets the codes).

    Returns
    -------
    numpy.ndarray
        The ``stage_ahead`` codes (int64; a view of the column where possible, no copy of
        the cells).

    Raises
    ------
    ValueError
        One line naming the missing column, or the first row whose code is wrong.
    """
    if "stage_ahead" not in cells.columns:
        raise ValueError(
            "cells lack the column 'stage_ahead' (the stage x months-ahead code): build them "
            "with landmark_cells or simulate_cells, or add it with with_stage_ahead(cells, levels)"
        )
    code = cells["stage_ahead"].to_numpy(np.int64)
    want = _cells_stage_ahead(cells, levels)
    bad = np.flatnonzero(code != want)
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"cells row {cells.index[i]!r}: column 'stage_ahead' is {int(code[i])}, not "
            f"{int(want[i])}, the code of its stage and months ahead (rebuild it with "
            "with_stage_ahead(cells, levels))"
        )
    return code


def with_stage_ahead(cells: pd.DataFrame, levels: Levels) -> pd.DataFrame:
    """``cells`` with the derived column ``stage_ahead`` (:func:`stage_ahead_code`) set.

    A new column goes before the counts (``n_stay``, ...), with the other factor codes.
    The builders of cells call it (:func:`landmark_cells`, the SBC simulator, a saved
    model's restore); the fits only check the column (:func:`require_stage_ahead`).
    """
    code = _cells_stage_ahead(cells, levels)
    out = cells.copy()
    if "stage_ahead" in out.columns:
        out["stage_ahead"] = code
        return out
    counts = [i for i, c in enumerate(out.columns) if str(c).startswith("n_")]
    out.insert(counts[0] if counts else len(out.columns), "stage_ahead", code)
    return out


def due_level(trial_month: np.ndarray, expected_month: np.ndarray) -> np.ndarray:
    """Due-status level (index into DUE_LEVELS); expected month -1 means unknown."""
    d = np.clip(trial_month - expected_month, -3, 3) + 4
    return np.where(expected_month < 0, 0, d).astype(np.int64)


def is_quarter_end(month: np.ndarray) -> np.ndarray:
    """1 where a month index is March, June, September or December."""
    return (np.asarray(month) % 3 == 2).astype(np.int64)


def last_full_month(as_of: object) -> int:
    """Index of the last calendar month fully observed on ``as_of``."""
    t = pd.Timestamp(as_of).normalize()
    m = month_index(t)
    return m if (t + pd.Timedelta(days=1)).month != t.month else m - 1


def deal_frame(deals: pd.DataFrame, accounts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Deals with a ``segment`` column (from their account) and group columns filled."""
    out = deals.copy()
    if "segment" not in out.columns:
        if accounts is not None and len(accounts) and "segment" in accounts:
            seg = accounts.set_index("account_id")["segment"]
            out["segment"] = out["account_id"].map(seg)
        else:
            out["segment"] = None
    for g in GROUPS:
        if g not in out.columns:
            out[g] = None
        out[g] = out[g].astype(object).where(out[g].notna(), NONE).astype(str)
    return out


@dataclass
class Levels:
    """The category levels of each factor, so codes mean the same at fit and forecast."""

    stage: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def code(self, name: str, values: pd.Series) -> np.ndarray:
        """Integer codes of values; unseen values get the extra last code (prior only)."""
        levels = self.stage if name == "stage" else self.groups[name]
        lookup = {v: i for i, v in enumerate(levels)}
        return values.astype(str).map(lookup).fillna(len(levels)).to_numpy(np.int64)


def landmark_cells(
    deals: pd.DataFrame,
    history: pd.DataFrame | HistoryIndex | None,
    as_of: object,
    *,
    window_months: int = 24,
    max_ahead: int = 12,
    groups: tuple[str, ...] = GROUPS,
) -> tuple[pd.DataFrame, Levels]:
    """Weighted won / lost / stayed-open counts per cell from landmarks before ``as_of``.

    Parameters
    ----------
    deals
        Deals as from :func:`deal_frame` (current values; outcomes after ``as_of`` are
        ignored).
    history
        ``deal_history`` rows (or None), or a :class:`HistoryIndex` already built on
        ``deals`` in the same order.
    as_of
        Cut-off day: only what was known by then is used.
    window_months
        Number of month-end landmarks before the cut-off.
    max_ahead
        Months a deal is followed from each landmark.
    groups
        The groups (of :data:`GROUPS`, in that order) whose levels make cells; a group left
        out has no column and no levels (the model has no effect of it).

    Returns
    -------
    (pandas.DataFrame, Levels)
        One row per cell with factor codes ``stage, ahead, age, due, miq``, the codes of
        ``groups`` and the derived code ``stage_ahead`` (:func:`stage_ahead_code`, set after
        the aggregation, so it adds no cells), then the weighted counts ``n_stay, n_win,
        n_lose``; and the levels used.
    """
    groups = tuple(g for g in GROUPS if g in groups)
    deals = deals.reset_index(drop=True).copy()
    deals["_pos"] = np.arange(len(deals))
    hindex = HistoryIndex.of(deals, history)
    now = deals_as_of(deals, hindex, as_of)
    m_end = last_full_month(as_of)
    closed_m = month_index(now["closed_at"])
    outcome = np.where(now["status"].eq("won"), 1, np.where(now["status"].eq("lost"), 2, 0))
    fin_closed = np.full(len(deals), -1, np.int64)
    fin_out = np.zeros(len(deals), np.int64)
    fin_closed[now["_pos"].to_numpy()] = closed_m
    fin_out[now["_pos"].to_numpy()] = outcome
    closed_months = closed_m[(outcome > 0) & (closed_m >= 0)]
    # months before the first recorded close are missing data, not months deals stayed open
    first_close = int(closed_months.min()) if len(closed_months) else m_end + 1
    stages = sorted(now["stage"].astype(str).unique().tolist())
    levels = Levels(stages, {g: sorted(now[g].astype(str).unique().tolist()) for g in groups})
    first_lm = m_end - window_months
    parts = []
    for lm in range(first_lm, m_end):
        state = deals_as_of(deals, hindex, month_end(lm))
        state = state[state["status"].eq("open")]
        if state.empty:
            continue
        pos = state["_pos"].to_numpy()
        cm = month_index(state["created_at"])
        em = month_index(state["expected_close_date"])
        codes = {"stage": levels.code("stage", state["stage"])}
        for g in groups:
            codes[g] = levels.code(g, state[g])
        k_max = min(max_ahead, m_end - lm)
        n = len(state)
        k = np.tile(np.arange(1, k_max + 1), n)
        idx = np.repeat(np.arange(n), k_max)
        trial_m = lm + k
        c_m = fin_closed[pos][idx]
        out = fin_out[pos][idx]
        closed = (out > 0) & (c_m >= 0)
        alive = ~closed | (c_m >= trial_m)
        res = np.where(closed & (c_m == trial_m), out, 0)
        n_cover = np.minimum(np.minimum(max_ahead, trial_m - cm[idx]), trial_m - first_lm)
        w = 1.0 / np.maximum(n_cover, 1)
        sel = alive & (trial_m >= first_close)
        frame = {
            "stage": codes["stage"][idx][sel],
            "ahead": month_bucket(k[sel]),
            "age": month_bucket((trial_m - cm[idx])[sel]),
            "due": due_level(trial_m[sel], em[idx][sel]),
            "miq": trial_m[sel] % 3,
        }
        for g in groups:
            frame[g] = codes[g][idx][sel]
        df = pd.DataFrame(frame)
        r = res[sel]
        ws = w[sel]
        df["n_stay"] = np.where(r == 0, ws, 0.0)
        df["n_win"] = np.where(r == 1, ws, 0.0)
        df["n_lose"] = np.where(r == 2, ws, 0.0)
        parts.append(df)
    keys = ["stage", "ahead", "age", "due", "miq", *groups]
    if not parts:
        empty = pd.DataFrame({c: pd.Series(dtype="int64") for c in keys})
        for c in ("n_stay", "n_win", "n_lose"):
            empty[c] = pd.Series(dtype="float64")
        return with_stage_ahead(empty, levels), levels
    cells = pd.concat(parts, ignore_index=True).groupby(keys, as_index=False).sum()
    return with_stage_ahead(cells, levels), levels


def amount_ratios(
    deals: pd.DataFrame,
    history: pd.DataFrame | None,
    as_of: object,
    *,
    index: HistoryIndex | None = None,
) -> np.ndarray:
    """Won amount over the amount first listed, for deals won by ``as_of`` (positive only).

    ``index``: the history already parsed for these deals (:class:`HistoryIndex`), if any.
    """
    now = deals_as_of(deals, history if index is None else index, as_of)
    won = now[now["status"].eq("won") & now["amount"].gt(0)]
    listed = won["amount"].to_numpy(float)
    if history is not None and len(history):
        h = history[(history["field"] == "amount") & history["deal_id"].isin(won["deal_id"])]
        h = h[h["changed_at"] <= end_of_day(as_of)].sort_values(["deal_id", "changed_at"])
        first = pd.to_numeric(h.groupby("deal_id")["new_value"].first(), errors="coerce")
        listed = won["deal_id"].map(first).fillna(won["amount"]).to_numpy(float)
    if "listed_amount" in won.columns:
        listed = won["listed_amount"].fillna(pd.Series(listed, index=won.index)).to_numpy(float)
    ok = listed > 0
    return won["amount"].to_numpy(float)[ok] / listed[ok]
