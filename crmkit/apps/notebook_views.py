"""Small views the forecast notebook (``notebooks/03_forecast.ipynb``) shows, one call a section.

The notebook holds only its parameters and calls; the pieces that are not already a function
of :mod:`crmkit.forecast.engine`, :mod:`crmkit.apps.dashboard`, :mod:`crmkit.forecast.backtest` or
:mod:`crmkit.models.clv.models` live here.
"""

from __future__ import annotations

import warnings

import pandas as pd

from crmkit.apps import dashboard as db
from crmkit.errors import CrmkitError
from crmkit.store import Snapshot, Store

__all__ = [
    "clv_by_segment",
    "compare_with_previous",
    "customer_outlook",
    "fit_clv",
    "rollup_table",
    "short_backtest",
]


def rollup_table(snap: Snapshot, dimension: str) -> pd.DataFrame:
    """Total revenue over the horizon of each team, owner or segment.

    Parameters
    ----------
    snap
        The forecast snapshot.
    dimension
        ``"team"``, ``"owner"`` or ``"segment"``.

    Returns
    -------
    pandas.DataFrame
        One row per value of ``dimension``: ``closed_to_date``, ``mean``, ``p10``, ``p50``,
        ``p90`` (closed plus forecast, all sources), largest P50 first.
    """
    options = db.filter_options(snap)
    if dimension not in options:
        raise CrmkitError(f"roll up by one of {sorted(options)}, not {dimension!r}")
    cols = ["closed_to_date", "mean", "p10", "p50", "p90"]
    rows = []
    for value in options[dimension]:
        head = db.headline(snap, db.Filter(**{dimension: value})).loc["total"]
        rows.append({dimension: value, **head[cols].to_dict()})
    out = pd.DataFrame(rows, columns=[dimension, *cols])
    return out.sort_values("p50", ascending=False, kind="stable").reset_index(drop=True)


def compare_with_previous(store: Store, snap: Snapshot) -> dict[str, pd.DataFrame]:
    """Compare a snapshot with the one saved before it (as the report does).

    Parameters
    ----------
    store
        The database holding both snapshots (and the current deals).
    snap
        The newer snapshot.

    Returns
    -------
    dict of DataFrame
        :func:`crmkit.forecast.compare.compare_with_previous` output: ``compare_snapshots``'
        frames plus ``"previous"`` (one row with the previous snapshot's id and as-of day);
        empty frames when there is no earlier snapshot.
    """
    from crmkit.forecast.compare import compare_with_previous as compare

    return compare(store, snap)


def short_backtest(
    store: Store,
    *,
    as_of: object,
    origins: int = 2,
    horizon: int = 3,
    draws: int = 200,
    method: str = "map",
    seed: int = 0,
) -> pd.DataFrame:
    """Backtest from the last few month ends whose outcomes are known by ``as_of``.

    Parameters
    ----------
    store
        The database.
    as_of
        The forecast day; origins end ``horizon`` months before it.
    origins
        Number of month-end origins (each refits the models).
    horizon
        Months ahead scored.
    draws
        Forecast draws per origin.
    method
        Fit method.
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        :func:`crmkit.forecast.backtest.recent_backtest` (as the report runs it): the
        summarised scores per lead and forecaster.
    """
    from crmkit.forecast.backtest import recent_backtest

    return recent_backtest(
        store, as_of=as_of, origins=origins, horizon=horizon, draws=draws, method=method,
        seed=seed,
    )  # fmt: skip


def fit_clv(summary: pd.DataFrame, *, method: str = "map", seed: int = 0) -> tuple:
    """Fit BG/NBD and Gamma-Gamma on a purchase summary.

    Parameters
    ----------
    summary
        ``store.purchase_summary(...)``.
    method
        ``"map"``, ``"mle"``, ``"advi"`` or ``"nuts"``.
    seed
        Random seed.

    Returns
    -------
    tuple
        The fitted ``(BetaGeo, GammaGamma)``.
    """
    from crmkit.models.clv.models import BetaGeo, GammaGamma

    unit = "W"
    bgf = BetaGeo(time_unit=unit, random_seed=seed).fit(summary, method=method)
    ggf = GammaGamma(time_unit=unit, random_seed=seed).fit(summary, method=method)
    return bgf, ggf


def customer_outlook(
    purchase_model, summary: pd.DataFrame, *, n: int = 10, t: float = 52.0
) -> pd.DataFrame:
    """P(alive) and expected purchases in the next ``t`` time units for the first ``n`` customers.

    Parameters
    ----------
    purchase_model
        A fitted :class:`crmkit.models.clv.models.BetaGeo` (or ``ParetoNBD``).
    summary
        Purchase summary.
    n
        Number of customers shown (the most frequent buyers first).
    t
        Window length in the model's time unit.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``frequency``, ``recency``, ``T``, ``p_alive``, ``expected_purchases``
        (posterior means).
    """
    top = summary.sort_values(["frequency", "customer_id"], ascending=[False, True]).head(n)
    top = top.reset_index(drop=True)
    alive = purchase_model.probability_alive(top).mean("sample").to_numpy()
    expected = purchase_model.expected_purchases(t, top).mean("sample").to_numpy()
    out = top[["customer_id", "frequency", "recency", "T"]].copy()
    out["p_alive"] = alive
    out["expected_purchases"] = expected
    return out


def clv_by_segment(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    periods: int = 12,
    discount_rate: float = 0.01,
) -> pd.DataFrame:
    """Expected customer lifetime value per account segment.

    Parameters
    ----------
    purchase_model, spend_model
        Fitted BG/NBD (or Pareto/NBD) and Gamma-Gamma models.
    summary
        Purchase summary (``customer_id`` is the ``account_id``).
    accounts
        ``store.read("accounts")`` with ``account_id`` and ``segment``.
    periods
        Horizon in months.
    discount_rate
        Discount rate per month.

    Returns
    -------
    pandas.DataFrame
        One row per segment: ``customers``, ``clv_mean`` (mean expected CLV of a customer),
        ``clv_total`` and its P10 / P90 over the posterior draws, largest total first.
        Warns when the Gamma-Gamma ``q`` estimate is at most 1: the population mean spend
        ``p gamma / (q - 1)`` given to customers without repeat purchases is then undefined.
    """
    from crmkit.models.clv.models import customer_lifetime_value

    q = float(getattr(spend_model, "params_", {}).get("q", 2.0))
    if q <= 1.0:
        warnings.warn(
            f"Gamma-Gamma q = {q:.3g} <= 1: the mean spend of customers without repeat "
            "purchases is undefined, so their CLV is not meaningful",
            stacklevel=2,
        )

    clv = customer_lifetime_value(
        purchase_model, spend_model, summary, periods=periods, discount_rate=discount_rate
    )
    seg = accounts.set_index("account_id")["segment"].astype(object)
    labels = seg.reindex(summary["customer_id"].astype(str)).fillna("unknown").to_numpy()
    draws = clv.to_numpy()  # (sample, customer)
    rows = []
    for s in sorted(set(labels)):
        keep = labels == s
        totals = draws[:, keep].sum(axis=1)
        rows.append(
            {
                "segment": s,
                "customers": int(keep.sum()),
                "clv_mean": float(draws[:, keep].mean()),
                "clv_total": float(totals.mean()),
                "clv_total_p10": float(pd.Series(totals).quantile(0.1)),
                "clv_total_p90": float(pd.Series(totals).quantile(0.9)),
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("clv_total", ascending=False, kind="stable").reset_index(drop=True)
