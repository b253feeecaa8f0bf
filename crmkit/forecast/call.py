"""The forecast call: category roll-ups, quotas and manager calls beside the model's forecast.

Sales teams put each deal in a forecast category (``closed``, ``commit``, ``best_case``,
``pipeline``, ``omitted``; :data:`crmkit.store.schema.FORECAST_CATEGORIES`) and compare the
roll-ups with quotas and the manager's own number. This module computes the snapshot's three
tables of that call (records in ``snap.parameters["tables"]``, see
:mod:`crmkit.forecast.snapshot`):

``forecast_call``
    One record per group (``all``, every ``team=..`` and ``owner=..``) and period:
    ``closed``, ``commit``, ``best_case``, ``pipeline`` (:func:`category_rollups`), the
    model's ``p10`` / ``p50`` / ``p90`` of closed to date + forecast deal revenue
    (:func:`crmkit.forecast.axes.deal_revenue`: pipeline and new business; repeat orders
    are in no quota or call),
    ``p_commit`` = P(closed_to_date + forecast >= commit) and ``p_best_case`` likewise,
    from the draws, and the latest manager call made by ``as_of`` (``call``,
    ``call_author``, ``call_note``, ``call_at``; None without one).
``attainment``
    One record per group and period with a quota: ``quota``, ``closed_to_date``,
    ``attainment_to_date``, ``expected_attainment`` (mean of (closed_to_date + forecast) /
    quota), ``att_p10`` / ``att_p50`` / ``att_p90`` and ``p_attain`` = P(closed_to_date +
    forecast >= quota).
``open_deals``
    One record per deal open at ``as_of``: ``p_win`` (won within the first forecast
    period), ``p_slip`` and ``expected_revenue`` (within the horizon), from the forecast's
    per-deal simulation.

The roll-ups are as sales teams know them: Commit = Closed + Commit, Best Case = Commit +
Best Case, Pipeline = Best Case + Pipeline. Nothing here samples a model except
:func:`first_period_win`, which reuses the forecast's posterior draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import PeriodAxis, deal_revenue, period_axis, snapshot_calendar
from crmkit.models.pipeline.kernels import hazard_paths
from crmkit.store.calls import calls_as_of, group_of, period_label
from crmkit.store.fiscal import FiscalCalendar
from crmkit.store.history import deals_as_of, end_of_day
from crmkit.store.schema import FORECAST_CATEGORIES, TABLES

#: Group dimensions of the forecast call (besides the company, ``all``).
CALL_GROUP_BYS = ("team", "owner")
#: Columns of :func:`category_rollups`.
ROLLUP_COLUMNS = ("group", "period", "closed", "commit", "best_case", "pipeline")
#: Open deals' categories that count in each roll-up (closed revenue is the won deals').
ROLLUP_CATEGORIES = {
    "commit": ("closed", "commit"),
    "best_case": ("closed", "commit", "best_case"),
    "pipeline": ("closed", "commit", "best_case", "pipeline"),
}
_SPELLINGS = {c.replace("_", ""): c for c in FORECAST_CATEGORIES}


def _categories(deals: pd.DataFrame) -> np.ndarray:
    """Each deal's category, normalised; a missing one is ``pipeline``; unknown ones refused."""
    if "forecast_category" not in deals:
        return np.full(len(deals), "pipeline", dtype=object)
    raw = deals["forecast_category"]
    out = np.empty(len(deals), dtype=object)
    for i, v in enumerate(raw.to_numpy(object)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            out[i] = "pipeline"
            continue
        key = str(v).strip().lower().replace("_", "").replace(" ", "")
        if key not in _SPELLINGS:
            deal = deals["deal_id"].iloc[i] if "deal_id" in deals else i
            raise CrmkitError(
                f"deal {deal}: field 'forecast_category': {str(v)[:40]!r} is not one of "
                f"{', '.join(FORECAST_CATEGORIES)}"
            )
        out[i] = _SPELLINGS[key]
    return out


def _member(deals: pd.DataFrame, group: str) -> np.ndarray:
    """Boolean mask of the deals counting in ``group`` (``all``, ``team=..``, ``owner=..``)."""
    if group == "all":
        return np.ones(len(deals), dtype=bool)
    dim, _, value = group.partition("=")
    if dim not in deals.columns or not value:
        raise CrmkitError(f"forecast call: group {group!r} is not 'all' or a deals column=value")
    return deals[dim].astype(object).astype(str).eq(value).to_numpy()


def category_rollups(
    deals: pd.DataFrame,
    *,
    as_of: object,
    axis: PeriodAxis,
    groups: Iterable[str],
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecast-category roll-ups per group and period, as the deals stood on ``as_of``.

    Parameters
    ----------
    deals
        The store's deals (``deal_id``, ``status``, ``amount``, ``closed_at``,
        ``expected_close_date``, ``forecast_category``, ``created_at`` and the group columns
        ``owner`` and ``team``).
    as_of
        The forecast's day: deals created later are left out, deals closed later are open,
        and stage, amount, expected close date and category are those of that day.
    axis
        The forecast's periods (:func:`crmkit.forecast.axes.period_axis`).
    groups
        Group labels: ``"all"``, ``"team=<name>"``, ``"owner=<name>"``.
    history
        ``deal_history`` rows (the values of ``as_of`` are rebuilt from them); None: the
        deals' current values.

    Returns
    -------
    pandas.DataFrame
        One row per group and period (in the given orders): ``closed`` (won revenue closed
        in the period up to ``as_of``, whatever the deal's category), ``commit`` (closed plus
        the open deals in category ``commit`` or ``closed`` expected to close in the period),
        ``best_case`` (commit plus ``best_case`` deals) and ``pipeline`` (best case plus
        ``pipeline`` deals and those without a category). An open deal expected to close
        before the first period counts in the first period; one expected after the last
        period or without an expected close date counts in none; ``omitted`` deals are in
        no roll-up.

    Raises
    ------
    CrmkitError
        A deal's category is not one of the categories (naming the deal and the value).
    """
    state = deals_as_of(deals, history, as_of)
    t = end_of_day(as_of)
    starts = [start for start, _end in axis.bounds]  # the axis' (fiscal) period boundaries
    ends = [end_of_day(end) for _start, end in axis.bounds]
    amount = pd.to_numeric(state["amount"], errors="coerce").fillna(0.0).to_numpy(float)
    status = state["status"].astype(object).to_numpy()
    n_per = len(axis.bounds)

    # won deals: the period of their close date, up to as_of
    closed_at = pd.to_datetime(state["closed_at"])
    won_slot = np.full(len(state), -1)
    is_won = (status == "won") & closed_at.notna().to_numpy() & (closed_at <= t).to_numpy()
    for i in range(n_per):
        inside = ((closed_at >= starts[i]) & (closed_at <= ends[i])).to_numpy()
        won_slot[is_won & inside] = i

    # open deals: the period of their expected close date (overdue ones: the first)
    cat = _categories(state)
    ecd = pd.to_datetime(state["expected_close_date"])
    open_slot = np.full(len(state), -1)
    is_open = status == "open"
    for i in range(n_per):
        inside = (ecd <= ends[i]).to_numpy() & (True if i == 0 else (ecd >= starts[i]).to_numpy())
        open_slot[is_open & ecd.notna().to_numpy() & inside & (open_slot < 0)] = i

    rows = []
    for g in groups:
        member = _member(state, g)
        for i, label in enumerate(axis.labels):
            closed = float(amount[member & (won_slot == i)].sum())
            row: dict[str, Any] = {"group": g, "period": label, "closed": closed}
            in_period = member & (open_slot == i)
            for roll, cats in ROLLUP_CATEGORIES.items():
                row[roll] = closed + float(amount[in_period & np.isin(cat, cats)].sum())
            rows.append(row)
    return pd.DataFrame(rows, columns=list(ROLLUP_COLUMNS))


def first_period_win(
    pipe: Any, open_deals: pd.DataFrame, axis: PeriodAxis, *, n_p: int, seed: int
) -> np.ndarray:
    """Each open deal's chance of being won within the first forecast period.

    Parameters
    ----------
    pipe
        The fitted :class:`~crmkit.models.pipeline.model.PipelineModel` of the forecast.
    open_deals
        The forecast's open deals (``result["deals"]`` of
        :func:`crmkit.forecast.engine.forecast_draws`), in the model's order of
        ``pipe.open_deals()``.
    axis
        The forecast's periods.
    n_p, seed
        The forecast's posterior draw count and seed (the same posterior draws it used).

    Returns
    -------
    numpy.ndarray
        P(won within the first period) per deal, averaged over the posterior draws; the same
        hazards as the forecast's simulation, so it never exceeds the deal's ``p_win`` over
        the horizon.
    """
    state = pipe.open_deals()
    ids = state["deal_id"].astype(str).to_numpy()
    if not np.array_equal(ids, open_deals["deal_id"].astype(str).to_numpy()):
        raise CrmkitError("forecast call: the open deals are not the pipeline model's")
    if not len(state):
        return np.zeros(0)
    post = pipe.posterior_subset(n_p, seed)
    codes = pipe.deal_codes(state)
    months = int(np.sum(axis.period_of_k == 0))
    out = np.empty(len(state))
    step = 500
    for lo in range(0, len(state), step):
        part = {k: v[lo : lo + step] for k, v in codes.items()}
        win, _ = hazard_paths(
            post, part, first_month=axis.first_month, months=months, frac_first=axis.frac_first
        )
        out[lo : lo + step] = win.sum(axis=-1).mean(axis=0)
    return out


def _keyed(frame: pd.DataFrame | None, kind: str, calendar: FiscalCalendar) -> pd.DataFrame:
    """Rows of one period kind with their ``group`` and period ``label`` (in ``calendar``)."""
    cols = ["scope", "name", "period", "period_start"]
    if frame is None or frame.empty or not set(cols) <= set(frame.columns):
        return pd.DataFrame(columns=[*cols, "group", "label"])
    f = frame[frame["period"].astype(str) == kind].copy()
    f["group"] = [group_of(s, n) for s, n in zip(f["scope"], f["name"], strict=True)]
    f["label"] = [period_label(kind, s, calendar) for s in f["period_start"]]
    return f


def _num(x: object) -> float | None:
    """A finite float, or None."""
    v = float(x)
    return v if np.isfinite(v) else None


def _text(x: object) -> str | None:
    """Text, or None for a missing value."""
    return None if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)


def call_tables(
    snap: Any,
    frames: Mapping[str, pd.DataFrame],
    calls: pd.DataFrame | None = None,
    quotas: pd.DataFrame | None = None,
    *,
    open_deals: pd.DataFrame | None = None,
) -> dict[str, list[dict]]:
    """The forecast call's tables of a snapshot, ready for ``snap.parameters["tables"]``.

    Parameters
    ----------
    snap
        The forecast's :class:`~crmkit.store.Snapshot` (``as_of``, ``horizon``, ``period``,
        ``quantiles`` and the ``revenue`` draws are used).
    frames
        The store's tables the forecast read: ``deals`` and ``deal_history``.
    calls
        The store's ``forecast_calls`` rows (all of them: the latest made by ``as_of`` counts),
        or None.
    quotas
        The store's ``quotas`` rows, or None. Quotas and calls of another period kind than
        the snapshot's, or of a group or period the snapshot does not have, are left out.
    open_deals
        The forecast's open deals with ``deal_id``, ``p_win_period`` (P(won within the
        first period), :func:`first_period_win`), ``p_slip`` and ``expected_revenue``;
        None: no ``open_deals`` table.

    Returns
    -------
    dict
        ``{"forecast_call": [...], "attainment": [...]}`` and ``"open_deals"`` when open
        deals were given (records as this module's docstring describes; probabilities are
        numbers in [0, 1], missing values None).
    """
    kind = snap.period
    calendar = snapshot_calendar(snap.parameters)
    axis = period_axis(snap.as_of, snap.horizon, kind, calendar)
    # quotas, categories and manager calls are about deals: repeat orders are no one's
    # booking, so the model's side is deal revenue (pipeline + new business), not the total
    revenue = deal_revenue(snap.revenue)
    labels = [str(p) for p in revenue.coords["period"].values]
    if labels != list(axis.labels):
        raise CrmkitError(f"forecast call: the snapshot's periods {labels} are not its axis'")
    groups = [
        str(g)
        for g in revenue.coords["group"].values
        if g == "all" or str(g).split("=", 1)[0] in CALL_GROUP_BYS
    ]
    roll = category_rollups(
        frames["deals"], as_of=snap.as_of, axis=axis, groups=groups,
        history=frames.get("deal_history"),
    )  # fmt: skip
    q = snap.quantiles
    tot = q[q["source"].eq("total")]
    ctd = {
        ("all" if by == "all" else f"{by}={g}", p): float(c)
        for by, g, p, c in zip(
            tot["group_by"], tot["group"], tot["period"], tot["closed_to_date"], strict=True
        )
    }
    arr = revenue.transpose("sample", "period", "group").to_numpy().astype(float)
    pos_p = {p: i for i, p in enumerate(labels)}
    pos_g = {str(g): i for i, g in enumerate(revenue.coords["group"].values)}

    def total(period: str, group: str) -> np.ndarray:
        """The forecast's total draws of a period and group."""
        return arr[:, pos_p[period], pos_g[group]]

    made = _keyed(calls_as_of(calls, snap.as_of) if calls is not None else None, kind, calendar)
    made = made.set_index(["group", "label"]) if len(made) else made
    forecast_call = []
    for r in roll.itertuples(index=False):
        draws = ctd.get((r.group, r.period), 0.0) + total(r.period, r.group)
        p10, p50, p90 = np.quantile(draws, [0.1, 0.5, 0.9])
        rec = {
            "group": r.group,
            "period": r.period,
            "closed": float(r.closed),
            "commit": float(r.commit),
            "best_case": float(r.best_case),
            "pipeline": float(r.pipeline),
            "p10": float(p10),
            "p50": float(p50),
            "p90": float(p90),
            "p_commit": float(np.mean(draws >= r.commit)),
            "p_best_case": float(np.mean(draws >= r.best_case)),
            "call": None,
            "call_author": None,
            "call_note": None,
            "call_at": None,
        }
        if len(made) and (r.group, r.period) in made.index:
            c = made.loc[(r.group, r.period)]
            c = c.iloc[-1] if isinstance(c, pd.DataFrame) else c
            rec["call"] = float(c["amount"])
            rec["call_author"] = _text(c["author"])
            rec["call_note"] = _text(c.get("note"))
            rec["call_at"] = pd.Timestamp(c["created_at"]).isoformat()
        forecast_call.append(rec)

    attainment = []
    quota = _keyed(quotas, kind, calendar)
    for r in quota.sort_values(["label", "group"]).itertuples(index=False):
        if r.group not in groups or r.label not in labels:
            continue
        amount = float(r.amount)
        closed = ctd.get((r.group, r.label), 0.0)
        draws = closed + total(r.label, r.group)
        rec = {"group": r.group, "period": r.label, "quota": amount, "closed_to_date": closed}
        if amount > 0:
            att = draws / amount
            a10, a50, a90 = np.quantile(att, [0.1, 0.5, 0.9])
            rec |= {
                "attainment_to_date": closed / amount,
                "expected_attainment": float(att.mean()),
                "att_p10": float(a10),
                "att_p50": float(a50),
                "att_p90": float(a90),
                "p_attain": float(np.mean(draws >= amount)),
            }
        else:  # a zero quota has no attainment ratio; it is reached whatever happens
            rec |= dict.fromkeys(
                ("attainment_to_date", "expected_attainment", "att_p10", "att_p50", "att_p90")
            )
            rec["p_attain"] = 1.0
        attainment.append(rec)

    out: dict[str, list[dict]] = {"forecast_call": forecast_call, "attainment": attainment}
    if open_deals is not None:
        out["open_deals"] = [
            {
                "deal_id": str(d),
                "p_win": _num(w),
                "p_slip": _num(s),
                "expected_revenue": _num(e),
            }
            for d, w, s, e in zip(
                open_deals["deal_id"],
                open_deals["p_win_period"],
                open_deals["p_slip"],
                open_deals["expected_revenue"],
                strict=True,
            )
        ]
    return out


def read_call_frames(store: Any) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The store's ``forecast_calls`` and ``quotas`` rows; None for a table it lacks.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.

    Returns
    -------
    (pandas.DataFrame or None, pandas.DataFrame or None)
        Calls and quotas.
    """
    out = [store.read(name) if name in TABLES else None for name in ("forecast_calls", "quotas")]
    return out[0], out[1]


__all__ = [
    "CALL_GROUP_BYS",
    "ROLLUP_CATEGORIES",
    "ROLLUP_COLUMNS",
    "call_tables",
    "category_rollups",
    "first_period_win",
    "read_call_frames",
]
