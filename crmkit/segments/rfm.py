"""RFM scores (quintiles 1 to 5), the standard named RFM segments, and CLV tiers.

Scores are computed from the store's purchase summary
(:meth:`crmkit.Store.purchase_summary`), one row per customer:

- **R** (recency): days from the customer's last purchase day to the cut-off. Fewer
  days is better, so the most recent fifth of customers scores 5.
- **F** (frequency): number of purchase days, ``frequency + 1`` (orders on the same day
  count once, as in the buy-till-you-die summary). More is better.
- **M** (monetary): by default the mean spend per purchase day, ``revenue / purchases``,
  counting every purchase including the first (``monetary="total"`` uses the total
  revenue instead). The mean keeps M from repeating F: a customer who buys often but
  little scores high on F and low on M.

Each score is a quintile of the customers' *ranks*, so every score holds a fifth of
the customers (sizes differ by at most one). Ties are broken deterministically, as
pandas' ``rank(method="first")`` on data sorted by the tie-breakers: equal recencies
and equal mean spends by ``customer_id``; equal purchase counts first by total revenue
(the bigger buyer ranks higher), then by ``customer_id``. The result does not depend on
the row order of the input. The price of equal-sized quintiles is that equal raw values
can straddle two adjacent scores: when a third of the customers bought once, one-time
buyers fill F = 1 and the bigger spenders among them take F = 2.

Named segments are read from a table of rules, :data:`SEGMENT_RULES`, applied in its
row order; the first rule a customer matches gives the segment.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from crmkit.errors import RowError, ValidationError

#: Columns :func:`rfm_scores` needs in the purchase summary.
SUMMARY_COLUMNS = ("customer_id", "last_purchase", "frequency", "revenue")

#: The standard named RFM segments, as data: inclusive ranges of the R, F and M scores.
#: Rules are tried in this order and the first match wins. The default rules follow the
#: widely used recency x frequency grid (M is reported, and may be used by custom rule
#: tables, but does not move a customer between these segments), with the grid's
#: "hibernating" corner split into Hibernating (R = 2) and Lost (R = 1). They do not
#: overlap, and together cover all 125 score combinations::
#:
#:     R \ F   1               2               3               4           5
#:     5       New             Potential Loy.  Potential Loy.  Champions   Champions
#:     4       Promising       Potential Loy.  Potential Loy.  Loyal       Loyal
#:     3       About to Sleep  About to Sleep  Need Attention  Loyal       Loyal
#:     2       Hibernating     Hibernating     At Risk         At Risk     Can't Lose Them
#:     1       Lost            Lost            At Risk         At Risk     Can't Lose Them
SEGMENT_RULES = pd.DataFrame(
    [
        ("Champions", 5, 5, 4, 5, 1, 5, "Bought recently, buy often: reward, ask for reviews."),
        ("Loyal", 3, 4, 4, 5, 1, 5, "Buy often, fairly recently: upsell, loyalty programme."),
        (
            "Potential Loyalist",
            4,
            5,
            2,
            3,
            1,
            5,
            "Recent customers with a few purchases: offer membership.",
        ),
        ("New", 5, 5, 1, 1, 1, 5, "Bought most recently, once or rarely: onboard them."),
        ("Promising", 4, 4, 1, 1, 1, 5, "Recent but rare buyers: build awareness."),
        ("Need Attention", 3, 3, 3, 3, 1, 5, "Middle recency and frequency: limited offers."),
        ("About to Sleep", 3, 3, 1, 2, 1, 5, "Middle recency, rare buyers: reactivate."),
        ("Can't Lose Them", 1, 2, 5, 5, 1, 5, "Bought most often, long ago: win them back."),
        ("At Risk", 1, 2, 3, 4, 1, 5, "Bought often, long ago: personal outreach."),
        ("Hibernating", 2, 2, 1, 2, 1, 5, "Rare buyers, long ago: low-cost reminders."),
        ("Lost", 1, 1, 1, 2, 1, 5, "Rare buyers, longest ago: ignore or a last offer."),
    ],
    columns=["segment", "r_min", "r_max", "f_min", "f_max", "m_min", "m_max", "description"],
)

_SCORE_COLS = ("r", "f", "m")


def _missing_columns(df: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    """Raise ValidationError naming the columns of ``needed`` that ``df`` lacks."""
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValidationError(what, [RowError(None, c, "column missing") for c in missing])


def quantile_scores(order: np.ndarray, n_scores: int = 5) -> np.ndarray:
    """Score positions of a sort order 1..n_scores in equal-sized groups.

    Parameters
    ----------
    order
        Indices that sort the customers from worst to best (``np.lexsort`` output).
    n_scores
        Number of groups.

    Returns
    -------
    numpy.ndarray
        ``int64`` scores aligned with the original rows: the first ``n / n_scores``
        positions of ``order`` score 1, the last score ``n_scores``.

    """
    n = len(order)
    scores = np.empty(n, dtype=np.int64)
    if n:
        scores[order] = np.arange(n, dtype=np.int64) * n_scores // n + 1
    return scores


def _rank_key(x: np.ndarray) -> np.ndarray:
    """Non-negative integers ordered like ``x`` (equal values equal): shifted ints, else ranks."""
    if np.issubdtype(x.dtype, np.integer) and len(x):
        lo, hi = int(x.min()), int(x.max())
        if hi - lo <= 4 * len(x) + 16:
            return x.astype(np.int64) - lo
    return np.unique(x, return_inverse=True)[1].astype(np.int64).reshape(-1)


def sort_order(*keys: np.ndarray) -> np.ndarray:
    """Indices sorting rows by the first key, ties by the next ones (like ``np.lexsort``).

    The keys are folded into one ``int64`` key when it cannot overflow, as one integer
    sort is several times faster than ``np.lexsort`` on a million rows. Rows equal on
    every key come in no particular order: end with a unique key (e.g. an id rank).

    Parameters
    ----------
    keys
        Equal-length arrays, most significant first.

    Returns
    -------
    numpy.ndarray
        The sorting permutation.
    """
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    top = 0
    for k in keys:
        r = _rank_key(np.asarray(k))
        size = int(r.max()) + 1 if len(r) else 1
        if (top + 1) * size >= 2**62:
            return np.lexsort(tuple(reversed(keys)))
        combined = combined * size + r
        top = (top + 1) * size - 1
    return np.argsort(combined)


def _id_rank(ids: pd.Series) -> np.ndarray:
    """Integer codes that sort like the customer ids (cheap when already sorted)."""
    if ids.is_monotonic_increasing:
        return np.arange(len(ids), dtype=np.int64)
    order = ids.argsort(kind="stable").to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def rfm_scores(
    summary: pd.DataFrame,
    *,
    cutoff: object = None,
    monetary: Literal["mean", "total"] = "mean",
) -> pd.DataFrame:
    """Score every customer 1 to 5 on recency, frequency and monetary value.

    Parameters
    ----------
    summary
        The store's purchase summary (:meth:`crmkit.Store.purchase_summary`): needs
        ``customer_id``, ``last_purchase``, ``frequency`` (repeat purchase days) and
        ``revenue``.
    cutoff
        The day recency is measured to. Default: the summary's own cut-off
        (``summary.attrs["cutoff"]``, set by the store), else the latest last purchase.
    monetary
        ``"mean"`` (default): mean spend per purchase day; ``"total"``: total revenue.

    Returns
    -------
    pandas.DataFrame
        One row per customer, in the summary's order: ``customer_id``,
        ``recency_days``, ``purchases``, ``monetary``, ``r_score``, ``f_score``,
        ``m_score`` (``int64``, 1 = worst fifth, 5 = best fifth), ``rfm_code`` (e.g.
        ``"545"``) and ``rfm_score`` (the same as a number, 545).

    Raises
    ------
    ValidationError
        When a column is missing, a customer appears twice, or a last purchase falls
        after the cut-off.

    """
    _missing_columns(summary, SUMMARY_COLUMNS, "purchase summary")
    if monetary not in ("mean", "total"):
        raise ValueError(f"monetary must be 'mean' or 'total', not {monetary!r}")
    ids = summary["customer_id"].reset_index(drop=True)
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        errors = [
            RowError(int(i) + 1, "customer_id", "customer appears more than once", ids.iloc[i])
            for i in np.flatnonzero(dup)
        ]
        raise ValidationError("purchase summary", errors)
    last = pd.to_datetime(summary["last_purchase"]).reset_index(drop=True).dt.normalize()
    if cutoff is None:
        cutoff = summary.attrs.get("cutoff")
    cut = pd.Timestamp(cutoff).normalize() if cutoff is not None else last.max()
    missing = np.flatnonzero(last.isna().to_numpy())
    if len(missing):
        errors = [RowError(int(i) + 1, "last_purchase", "missing") for i in missing]
        raise ValidationError("purchase summary", errors)
    recency_days = ((cut - last).dt.days).to_numpy(dtype=np.int64)
    bad = np.flatnonzero(recency_days < 0)
    if len(bad):
        errors = [
            RowError(int(i) + 1, "last_purchase", f"after the cut-off {cut:%Y-%m-%d}", last.iloc[i])
            for i in bad
        ]
        raise ValidationError("purchase summary", errors)
    purchases = summary["frequency"].to_numpy(dtype=np.int64) + 1
    revenue = summary["revenue"].to_numpy(dtype=np.float64)
    money = revenue / purchases if monetary == "mean" else revenue
    id_rank = _id_rank(ids)
    # Worst first; ties by the later keys.
    r = quantile_scores(sort_order(-recency_days, id_rank))
    f = quantile_scores(sort_order(purchases, revenue, id_rank))
    m = quantile_scores(sort_order(money, id_rank))
    number = r * 100 + f * 10 + m
    return pd.DataFrame(
        {
            "customer_id": ids,
            "recency_days": recency_days.astype(np.int64),
            "purchases": purchases,
            "monetary": money,
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "rfm_code": pd.Series(number).astype(str),
            "rfm_score": number,
        }
    )


def _rule_table(rules: pd.DataFrame) -> np.ndarray:
    """Map every (R, F, M) score triple to the index of the first rule it matches (-1: none)."""
    lut = np.full((5, 5, 5), -1, dtype=np.int64)
    grid = np.arange(1, 6)
    for i, row in enumerate(rules.itertuples(index=False)):
        rm = (grid >= row.r_min) & (grid <= row.r_max)
        fm = (grid >= row.f_min) & (grid <= row.f_max)
        mm = (grid >= row.m_min) & (grid <= row.m_max)
        hit = rm[:, None, None] & fm[None, :, None] & mm[None, None, :]
        lut[hit & (lut == -1)] = i
    return lut


def check_segment_rules(rules: pd.DataFrame) -> list[tuple[int, int, int]]:
    """Validate a segment-rule table and return the score triples it leaves uncovered.

    Parameters
    ----------
    rules
        A table shaped like :data:`SEGMENT_RULES`.

    Returns
    -------
    list of tuple
        ``(r, f, m)`` score combinations that match no rule (empty for a complete table).

    Raises
    ------
    ValidationError
        For a missing column, a duplicated segment name, or a bound outside 1..5 or
        with min > max, naming the rule row and the field.

    """
    cols = ("segment", *(f"{s}_{b}" for s in _SCORE_COLS for b in ("min", "max")))
    _missing_columns(rules, cols, "segment rules")
    errors = []
    for i, row in enumerate(rules.itertuples(index=False), start=1):
        for s in _SCORE_COLS:
            lo, hi = getattr(row, f"{s}_min"), getattr(row, f"{s}_max")
            for name, v in ((f"{s}_min", lo), (f"{s}_max", hi)):
                if not (isinstance(v, (int, np.integer)) and 1 <= v <= 5):
                    errors.append(RowError(i, name, "must be an integer score 1..5", v))
            if isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and lo > hi:
                errors.append(RowError(i, f"{s}_min", f"greater than {s}_max ({hi})", lo))
    for i in np.flatnonzero(rules["segment"].duplicated().to_numpy()):
        errors.append(
            RowError(int(i) + 1, "segment", "segment name used twice", rules["segment"].iloc[i])
        )
    if errors:
        raise ValidationError("segment rules", errors)
    lut = _rule_table(rules)
    return [(int(r) + 1, int(f) + 1, int(m) + 1) for r, f, m in np.argwhere(lut == -1)]


def rules_markdown(rules: pd.DataFrame | None = None) -> str:
    """Render a segment-rule table as Markdown, for docs that must match the code.

    Parameters
    ----------
    rules
        A table shaped like :data:`SEGMENT_RULES` (the default).

    Returns
    -------
    str
        A Markdown table: order, segment, R, F and M ranges, description.

    """
    rules = SEGMENT_RULES if rules is None else rules

    def rng(lo: int, hi: int) -> str:
        return "any" if (lo, hi) == (1, 5) else str(lo) if lo == hi else f"{lo}-{hi}"

    lines = ["| # | segment | R | F | M | description |", "|---|---|---|---|---|---|"]
    for i, row in enumerate(rules.itertuples(index=False), start=1):
        lines.append(
            f"| {i} | {row.segment} | {rng(row.r_min, row.r_max)} | {rng(row.f_min, row.f_max)}"
            f" | {rng(row.m_min, row.m_max)} | {getattr(row, 'description', '')} |"
        )
    return "\n".join(lines) + "\n"


def rfm_segments(rfm: pd.DataFrame, rules: pd.DataFrame | None = None) -> pd.DataFrame:
    """Give every customer the named RFM segment of the first rule its scores match.

    Parameters
    ----------
    rfm
        Output of :func:`rfm_scores` (needs ``r_score``, ``f_score``, ``m_score``).
    rules
        Rule table shaped like :data:`SEGMENT_RULES` (the default), tried in row order.

    Returns
    -------
    pandas.DataFrame
        ``rfm`` with a column ``rfm_segment``: a categorical whose categories are the
        segment names in rule order.

    Raises
    ------
    ValidationError
        When the rules are malformed, or some customer's scores match no rule (the
        error names the customer's row and scores).

    """
    rules = SEGMENT_RULES if rules is None else rules
    _missing_columns(rfm, ("r_score", "f_score", "m_score"), "rfm scores")
    check_segment_rules(rules)
    lut = _rule_table(rules)
    scores = [rfm[f"{s}_score"].to_numpy(dtype=np.int64) for s in _SCORE_COLS]
    out_of_range = np.zeros(len(rfm), dtype=bool)
    for s in scores:
        out_of_range |= (s < 1) | (s > 5)
    if out_of_range.any():
        raise ValidationError(
            "rfm scores",
            [
                RowError(int(i) + 1, "r_score/f_score/m_score", "score outside 1..5")
                for i in np.flatnonzero(out_of_range)
            ],
        )
    codes = lut[scores[0] - 1, scores[1] - 1, scores[2] - 1]
    missed = np.flatnonzero(codes < 0)
    if len(missed):
        errors = [
            RowError(
                int(i) + 1,
                "rfm_code",
                "scores match no segment rule",
                f"{scores[0][i]}{scores[1][i]}{scores[2][i]}",
            )
            for i in missed
        ]
        raise ValidationError("rfm segments", errors)
    names = list(rules["segment"])
    out = rfm.copy()
    out["rfm_segment"] = pd.Categorical.from_codes(codes, categories=names)
    return out


def clv_tiers(
    clv: pd.Series,
    n_tiers: int = 4,
    *,
    labels: list[str] | None = None,
) -> pd.Series:
    """Cut customers into equal-sized tiers by a CLV point estimate, best tier first.

    Parameters
    ----------
    clv
        CLV point estimate (e.g. the posterior mean) per customer, indexed by customer.
    n_tiers
        Number of tiers (each holds ``1 / n_tiers`` of the customers, sizes differing by
        at most one; ties broken by the index order, as ``rank(method="first")``).
    labels
        Tier names from the highest CLV to the lowest. Default ``"Tier 1"`` (top) to
        ``"Tier n"``.

    Returns
    -------
    pandas.Series
        Categorical of tier labels (categories best tier first), same index as ``clv``;
        missing CLVs get no tier (NaN).

    """
    if n_tiers < 1:
        raise ValueError(f"n_tiers must be at least 1, not {n_tiers}")
    labels = labels or [f"Tier {i}" for i in range(1, n_tiers + 1)]
    if len(labels) != n_tiers:
        raise ValueError(f"{len(labels)} labels given for {n_tiers} tiers")
    values = pd.to_numeric(clv, errors="raise").to_numpy(dtype=np.float64)
    ok = ~np.isnan(values)
    codes = np.full(len(values), -1, dtype=np.int64)
    pos = np.flatnonzero(ok)
    # Descending CLV, ties by position: a stable sort of -value.
    order = pos[np.argsort(-values[pos], kind="stable")]
    if len(order):
        codes[order] = np.arange(len(order)) * n_tiers // len(order)
    cat = pd.Categorical.from_codes(codes, categories=labels)
    return pd.Series(cat, index=clv.index, name="clv_tier")
