"""Customer lifetime value for segmentation: CLV draws per customer, tiers, CLV per segment.

The CLV of a customer is the discounted expected revenue of its repeat purchases over a
horizon (BG/NBD purchases times Gamma-Gamma spend, :mod:`crmkit.models.clv.models`), as posterior
draws ``(sample, customer_id)``. A segment's expected CLV is a sum of draws: for each draw,
the sum over the segment's customers, so its interval is the interval of that sum, never a
sum of per-customer intervals or means. The intervals carry the parameter uncertainty of
the fit; they do not add purchase noise.

The fit is quick enough for a widget (``method="mle"`` by default: maximum likelihood with
a normal approximation of its uncertainty), and :func:`store_customer_value` keeps the
result for a store until its orders change.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.segments.rfm import clv_tiers
from crmkit.segments.summary import NO_SEGMENT

if TYPE_CHECKING:
    import xarray as xr

    from crmkit.store import Store

#: Columns of the purchase summary the CLV models read.
SUMMARY_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value")
#: Fewest customers, and fewest with a repeat purchase, for a CLV fit.
MIN_CUSTOMERS, MIN_REPEATERS = 20, 10
#: Interval of a segment's CLV: its 10th and 90th percentiles.
LOWER, UPPER = 0.1, 0.9
#: Fits kept by :func:`store_customer_value` (newest last).
_CACHE: OrderedDict[tuple, xr.DataArray] = OrderedDict()
_CACHE_SIZE = 4


def customer_value(
    summary: pd.DataFrame,
    *,
    method: str = "mle",
    periods: int = 12,
    discount_rate: float = 0.0,
    n_draws: int = 100,
    seed: int = 0,
) -> xr.DataArray:
    """Fit BG/NBD and Gamma-Gamma to a purchase summary and return each customer's CLV draws.

    Parameters
    ----------
    summary
        Purchase summary with :data:`SUMMARY_COLUMNS` (``recency`` and ``T`` in weeks, as
        :meth:`crmkit.Store.purchase_summary` gives with ``time_unit="W"``).
    method
        Fitting method of both models (``"mle"``, ``"map"``, ``"advi"`` or ``"nuts"``).
    periods
        Horizon in calendar months.
    discount_rate
        Discount rate per month.
    n_draws
        Parameter draws.
    seed
        Seed of the fits and of the thinning.

    Returns
    -------
    xarray.DataArray
        CLV draws, dims ``("sample", "customer_id")``; attributes name the method and the
        fits' diagnostics (``diagnostics_ok``).

    Raises
    ------
    CrmkitError
        When there are too few customers or repeat buyers for the models.

    """
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise CrmkitError(f"the purchase summary lacks the column(s) {missing}")
    data = summary[list(SUMMARY_COLUMNS)].reset_index(drop=True)
    n_rep = int((data["frequency"] > 0).sum())
    if len(data) < MIN_CUSTOMERS or n_rep < MIN_REPEATERS:
        raise CrmkitError(
            f"{len(data)} customers with purchases, {n_rep} of them repeat buyers: too few for "
            f"a CLV model (at least {MIN_CUSTOMERS} and {MIN_REPEATERS} needed)"
        )
    from crmkit.models.clv.models import BetaGeo, GammaGamma, customer_lifetime_value
    from crmkit.models.clv.predictions import month_length

    purchases = BetaGeo(time_unit="W", random_seed=seed).fit(data, method=method)
    spend = GammaGamma(time_unit="W", random_seed=seed).fit(
        data[data["frequency"] > 0], method=method
    )
    # Without discounting only the horizon's end matters: one period of the whole horizon
    # gives the same CLV for a twelfth of the work.
    steps, length = (periods, None) if discount_rate else (1, periods * month_length("W"))
    clv = customer_lifetime_value(
        purchases,
        spend,
        data,
        periods=steps,
        period_length=length,
        discount_rate=discount_rate,
        n_draws=n_draws,
        seed=seed,
    )
    clv.attrs.update(method=method, periods=periods, discount_rate=discount_rate)
    return clv


def store_customer_value(
    store: Store,
    *,
    cutoff: object = None,
    method: str = "mle",
    periods: int = 12,
    discount_rate: float = 0.0,
    n_draws: int = 100,
    seed: int = 0,
) -> xr.DataArray:
    """CLV draws of the store's customers (:func:`customer_value`), kept until orders change.

    The purchase summary is computed in the database on every call (it is quick); the fit
    and the draws are reused while the summary and the settings are the same.

    Parameters
    ----------
    store
        The database.
    cutoff
        Last day observed (default: the day of the last order).
    method, periods, discount_rate, n_draws, seed
        See :func:`customer_value`.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "customer_id")``; customers without a purchase are not in it.

    """
    summary = store.purchase_summary(cutoff, time_unit="W")
    fingerprint = int(pd.util.hash_pandas_object(summary[list(SUMMARY_COLUMNS)]).sum())
    key = (str(store.url), fingerprint, len(summary), method, periods, discount_rate, n_draws, seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    clv = customer_value(
        summary,
        method=method,
        periods=periods,
        discount_rate=discount_rate,
        n_draws=n_draws,
        seed=seed,
    )
    _CACHE[key] = clv
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return clv


def expected_clv(clv: xr.DataArray) -> pd.Series:
    """Each customer's expected CLV (the mean of its draws), indexed by ``customer_id``."""
    values = np.asarray(clv.transpose("sample", "customer_id").to_numpy()).mean(axis=0)
    index = pd.Index(clv["customer_id"].to_numpy(), name="customer_id")
    return pd.Series(values, index=index, name="clv")


def customer_clv_tiers(
    clv: xr.DataArray, n_tiers: int = 4, *, labels: list[str] | None = None
) -> pd.Series:
    """Cut customers into equal-sized CLV tiers by their expected CLV, best tier first.

    Parameters
    ----------
    clv
        CLV draws ``(sample, customer_id)``, e.g. from :func:`store_customer_value`.
    n_tiers, labels
        See :func:`crmkit.segments.clv_tiers`.

    Returns
    -------
    pandas.Series
        Categorical ``clv_tier`` indexed by ``customer_id``.

    """
    return clv_tiers(expected_clv(clv), n_tiers, labels=labels)


def segment_clv(clv: xr.DataArray, labels: pd.Series) -> pd.DataFrame:
    """Expected CLV of each segment with its 80% interval, from sums of draws.

    For each draw, the CLVs of a segment's customers are summed; the segment's expected
    CLV is the mean of those sums and its interval their 10th to 90th percentiles.
    Customers in ``labels`` without CLV draws (no purchase) add zero.

    Parameters
    ----------
    clv
        CLV draws ``(sample, customer_id)``.
    labels
        Segment of each customer, indexed by customer id (missing: :data:`NO_SEGMENT`).
        A categorical keeps its categories' order, empty ones included.

    Returns
    -------
    pandas.DataFrame
        One row per segment: ``segment``, ``clv_customers`` (customers with CLV draws),
        ``expected_clv``, ``clv_low`` and ``clv_high`` (10th and 90th percentiles of the
        segment's total) and ``clv_share`` (the segment's share of the expected total).

    """
    if isinstance(labels.dtype, pd.CategoricalDtype):
        lab = labels
        if lab.isna().any():
            if NO_SEGMENT not in lab.cat.categories:
                lab = lab.cat.add_categories([NO_SEGMENT])
            lab = lab.fillna(NO_SEGMENT)
        names = list(lab.cat.categories)
    else:
        lab = labels.astype(object).where(labels.notna(), NO_SEGMENT).astype(str)
        names = sorted(set(lab))
    draws = np.asarray(clv.transpose("sample", "customer_id").to_numpy(), dtype=np.float64)
    ids = pd.Index(clv["customer_id"].to_numpy())
    pos = ids.get_indexer(lab.index)
    modelled = pos >= 0
    code = pd.Index(names).get_indexer(np.asarray(lab.astype(object))[modelled])
    # one column per segment: the sum over its customers, for every draw
    onehot = np.zeros((len(ids), len(names)))
    onehot[pos[modelled], code] = 1.0
    totals = draws @ onehot
    mean = totals.mean(axis=0)
    grand = mean.sum()
    return pd.DataFrame(
        {
            "segment": names,
            "clv_customers": onehot.sum(axis=0).astype(np.int64),
            "expected_clv": mean,
            "clv_low": np.quantile(totals, LOWER, axis=0),
            "clv_high": np.quantile(totals, UPPER, axis=0),
            "clv_share": mean / grand if grand > 0 else np.zeros(len(names)),
        }
    )
