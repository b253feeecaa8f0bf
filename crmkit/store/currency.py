"""Money in more than one currency: dated exchange rates and conversion to the reporting currency.

Each deal keeps the currency it was sold in (``deals.currency``); every sum, model, chart and
report works in the database's reporting currency (the setting ``reporting_currency``,
:mod:`crmkit.store.settings`). The ``exchange_rates`` table holds, per currency, a rate and
the day it is valid from; a rate holds until the next ``valid_from`` of the same currency.

A rate is the number of units of ``currency`` per ONE unit of the reporting currency
(Salesforce's ``ConversionRate`` convention), so ``amount in reporting = amount / rate``.
The reporting currency itself needs no rate (rate 1). When the table also holds rates for
the reporting currency (the rates were written against another base, e.g. after
``crmkit config reporting_currency=EUR`` on a table of rates per USD), amounts are rebased
through it: ``amount * rate(reporting) / rate(currency)`` on the same day, so changing the
reporting currency never mislabels a sum.

Which day: a won or lost deal converts at its ``closed_at`` day, an open deal (or one that
closes after the forecast day) at the forecast's ``as_of`` (:func:`conversion_days`); its
history's amount values at the same day as the deal. A deal without a currency is in the
column's default currency (``USD``, as an import without the column stores it).

A conversion that lacks a rate raises a one-line :class:`~crmkit.errors.CrmkitError` listing
every missing currency and the first day it is needed (:func:`missing_rates`): a sum of
unconverted amounts would be a wrong number that looks right.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.store.history import end_of_day
from crmkit.store.schema import entity

__all__ = [
    "DEFAULT_CURRENCY",
    "conversion_days",
    "convert",
    "converted_deals",
    "converted_history",
    "currency_factor",
    "factors",
    "missing_rates",
    "missing_rates_message",
    "rate_table",
    "rates_on",
    "scale_amounts",
]

#: The currency of a deal stored without one (the ``deals.currency`` column default).
DEFAULT_CURRENCY: str = str(entity("deals").column("currency").default)
_SPAN = np.int64(1 << 21)  # days per currency block in the search key (> 5,700 years)
_OFFSET = np.int64(1 << 20)  # makes days since 1970 positive (1900-01-01 is -25,567)


def rate_table(store) -> pd.DataFrame:
    """Return the stored exchange rates, sorted by currency and day.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.

    Returns
    -------
    pandas.DataFrame
        Columns ``currency``, ``valid_from`` (datetime64, a day) and ``rate`` (float).
    """
    return _clean_rates(store.read("exchange_rates"))


def _clean_rates(rates: pd.DataFrame | None) -> pd.DataFrame:
    """Rates with typed columns, sorted; rows missing a value dropped."""
    cols = ["currency", "valid_from", "rate"]
    if rates is None or rates.empty:
        return pd.DataFrame(
            {
                "currency": pd.Series([], dtype=object),
                "valid_from": pd.Series([], dtype="datetime64[ns]"),
                "rate": pd.Series([], dtype="float64"),
            }
        )
    r = rates[cols].dropna().copy()
    r["currency"] = r["currency"].astype(str)
    r["valid_from"] = pd.to_datetime(r["valid_from"]).dt.normalize().astype("datetime64[ns]")
    r["rate"] = r["rate"].astype("float64")
    return r.sort_values(["currency", "valid_from"], kind="stable").reset_index(drop=True)


def _codes(currencies: object) -> np.ndarray:
    """Currency codes as an object array; missing ones become :data:`DEFAULT_CURRENCY`."""
    s = pd.Series(currencies, dtype=object) if not isinstance(currencies, pd.Series) else currencies
    return s.astype(object).where(s.notna(), DEFAULT_CURRENCY).to_numpy(dtype=object)


def _day_numbers(days: object) -> np.ndarray:
    """Days since 1970-01-01 as int64 (NaT: the minimum int64)."""
    ts = pd.to_datetime(pd.Series(days), format="ISO8601").dt.normalize().to_numpy("datetime64[D]")
    return ts.astype("int64")


def rates_on(currencies: object, days: object, rates: pd.DataFrame) -> np.ndarray:
    """Return each currency's rate valid on its day (NaN where the table has none).

    Parameters
    ----------
    currencies
        Currency codes, one per value.
    days
        The day of each value (dates or timestamps; the time of day is ignored).
    rates
        The exchange rates (:func:`rate_table`).

    Returns
    -------
    numpy.ndarray
        float64: the rate with the latest ``valid_from`` on or before the day, NaN when the
        currency has no rate that early (or the day is missing).
    """
    codes = _codes(currencies)
    day = _day_numbers(days)
    out = np.full(len(codes), np.nan)
    r = _clean_rates(rates)
    if r.empty or not len(codes):
        return out
    names = pd.Index(r["currency"].unique())
    r_code = names.get_indexer(r["currency"]).astype("int64")
    r_key = r_code * _SPAN + r["valid_from"].to_numpy("datetime64[D]").astype("int64") + _OFFSET
    q_code = names.get_indexer(codes).astype("int64")
    known = (q_code >= 0) & (day != np.iinfo(np.int64).min)
    q_key = q_code * _SPAN + np.where(known, day, 0) + _OFFSET
    idx = np.searchsorted(r_key, q_key, side="right") - 1
    hit = known & (idx >= 0)
    hit[hit] &= r_code[idx[hit]] == q_code[hit]
    out[hit] = r["rate"].to_numpy()[idx[hit]]
    return out


def factors(currencies: object, days: object, rates: pd.DataFrame, reporting: str) -> np.ndarray:
    """Return the factor turning each amount into the reporting currency (NaN: a rate missing).

    Parameters
    ----------
    currencies, days
        Each amount's currency and day.
    rates
        The exchange rates (:func:`rate_table`).
    reporting
        The reporting currency.

    Returns
    -------
    numpy.ndarray
        1 for amounts in ``reporting``; ``rate(reporting) / rate(currency)`` on the day
        otherwise, where ``rate(reporting)`` is 1 when the table has no rate for it.
    """
    codes = _codes(currencies)
    own = codes == reporting
    out = np.ones(len(codes))
    if own.all():
        return out
    r = _clean_rates(rates)
    other = ~own
    rate = rates_on(codes[other], pd.Series(days).to_numpy()[other], r)
    base = np.ones(int(other.sum()))
    if (r["currency"] == reporting).any():
        base = rates_on(
            np.full(len(base), reporting, dtype=object), pd.Series(days).to_numpy()[other], r
        )
    out[other] = base / rate
    return out


def missing_rates(
    currencies: object, days: object, rates: pd.DataFrame, reporting: str
) -> list[tuple[str, dt.date]]:
    """List the currencies lacking a rate, each with the first day one is needed.

    Parameters
    ----------
    currencies, days
        Each amount's currency and day.
    rates
        The exchange rates (:func:`rate_table`).
    reporting
        The reporting currency.

    Returns
    -------
    list of (str, datetime.date)
        Sorted by currency; empty when every amount converts. When the table holds rates
        for the reporting currency too, a day it lacks one lists the reporting currency.
    """
    codes = _codes(currencies)
    other = codes != reporting
    if not other.any():
        return []
    r = _clean_rates(rates)
    day = pd.to_datetime(pd.Series(days).to_numpy()[other]).normalize()
    frame = pd.DataFrame({"currency": codes[other], "day": day})
    frame = frame[frame["day"].notna()]
    rate = rates_on(frame["currency"].to_numpy(), frame["day"], r)
    lacking = [frame.loc[np.isnan(rate)]]
    if (r["currency"] == reporting).any():
        base = rates_on(np.full(len(frame), reporting, dtype=object), frame["day"], r)
        lacking.append(frame.loc[np.isnan(base)].assign(currency=reporting))
    gaps = pd.concat(lacking).groupby("currency")["day"].min().sort_index()
    return [(str(c), d.date()) for c, d in gaps.items()]


def missing_rates_message(missing: list[tuple[str, dt.date]], reporting: str) -> str:
    """The one-line error for missing rates (every currency and the first day it is needed)."""
    listed = ", ".join(f"{c} from {d}" for c, d in missing)
    return (
        f"no exchange rate to convert to the reporting currency {reporting} for: {listed}; "
        "add the rates (crmkit import exchange_rates FILE with columns currency,valid_from,rate"
        f" = units of the currency per 1 {reporting}) or change reporting_currency "
        "(crmkit config)"
    )


def convert(
    amounts: object, currencies: object, days: object, rates: pd.DataFrame, reporting: str
) -> np.ndarray:
    """Convert amounts to the reporting currency, each at its day's rate.

    Parameters
    ----------
    amounts
        The amounts (NaN stays NaN).
    currencies
        Each amount's currency (missing: :data:`DEFAULT_CURRENCY`).
    days
        Each amount's day.
    rates
        The exchange rates (:func:`rate_table`).
    reporting
        The reporting currency.

    Returns
    -------
    numpy.ndarray
        float64 amounts in ``reporting``; amounts already in it are returned unchanged.

    Raises
    ------
    CrmkitError
        A rate is missing: one line listing every missing currency and the first day it is
        needed (:func:`missing_rates`).
    """
    values = np.asarray(pd.Series(amounts).to_numpy(dtype="float64", na_value=np.nan))
    f = factors(currencies, days, rates, reporting)
    need = np.isnan(f) & ~np.isnan(values)
    if need.any():
        codes = _codes(currencies)[need]
        day = pd.Series(days).to_numpy()[need]
        missing = missing_rates(codes, day, rates, reporting)
        raise CrmkitError(missing_rates_message(missing, reporting))
    out = values.copy()
    change = f != 1.0
    out[change] = values[change] * f[change]
    return out


def conversion_days(deals: pd.DataFrame, as_of: object = None) -> pd.Series:
    """Return the day each deal's amount converts at.

    Parameters
    ----------
    deals
        Deals with ``status``, ``created_at`` and ``closed_at``.
    as_of
        The forecast day. None: the last day of the deals' data (latest ``created_at`` or
        ``closed_at``).

    Returns
    -------
    pandas.Series
        Days (datetime64, midnight), aligned with ``deals``: ``closed_at`` for deals won or
        lost by ``as_of``, ``as_of`` for the others (open then).
    """
    closed = pd.to_datetime(deals["closed_at"])
    if as_of is None:
        last = pd.concat([pd.to_datetime(deals["created_at"]), closed]).max()
        day = pd.Timestamp(last).normalize() if pd.notna(last) else pd.Timestamp.today()
    else:
        day = pd.Timestamp(as_of).normalize()
    done = deals["status"].isin(["won", "lost"]) & closed.notna() & (closed <= end_of_day(day))
    out = closed.dt.normalize().where(done, day)
    return out.astype("datetime64[ns]")


def converted_deals(
    deals: pd.DataFrame, rates: pd.DataFrame, reporting: str, as_of: object = None
) -> pd.DataFrame:
    """Return the deals with their amounts in the reporting currency.

    Parameters
    ----------
    deals
        The deals (``amount``, ``currency``, ``status``, ``created_at``, ``closed_at``).
    rates
        The exchange rates (:func:`rate_table`).
    reporting
        The reporting currency.
    as_of
        The forecast day (:func:`conversion_days`).

    Returns
    -------
    pandas.DataFrame
        A copy: ``amount`` converted (won and lost deals at their close day, open ones at
        ``as_of``), ``currency`` the reporting code, and the original values kept in
        ``amount_original`` and ``currency_original``.

    Raises
    ------
    CrmkitError
        A rate is missing (every missing currency and its first day, in one line).
    """
    out = deals.copy()
    days = conversion_days(deals, as_of)
    out["amount_original"] = deals["amount"]
    out["currency_original"] = _codes(deals["currency"])
    out["amount"] = convert(deals["amount"], deals["currency"], days, rates, reporting)
    out["currency"] = reporting
    return out


def converted_history(
    history: pd.DataFrame,
    deals: pd.DataFrame,
    rates: pd.DataFrame,
    reporting: str,
    as_of: object = None,
) -> pd.DataFrame:
    """Return deal history whose ``amount`` values are in the reporting currency.

    Parameters
    ----------
    history
        ``deal_history`` rows (values as text).
    deals
        The deals as stored (their currency and conversion day, :func:`conversion_days`).
    rates, reporting, as_of
        As in :func:`converted_deals`.

    Returns
    -------
    pandas.DataFrame
        A copy; ``old_value`` and ``new_value`` of ``amount`` rows of deals in another
        currency converted at the deal's conversion day (text, as stored); other rows as
        given.

    Raises
    ------
    CrmkitError
        A rate is missing.
    """
    out = history.copy()
    if history.empty:
        return out
    per_deal = pd.DataFrame(
        {
            "currency": _codes(deals["currency"]),
            "day": conversion_days(deals, as_of).to_numpy(),
        },
        index=deals["deal_id"].astype(str).to_numpy(),
    )
    rows = (history["field"] == "amount").to_numpy()
    ids = history["deal_id"].astype(str).to_numpy()[rows]
    look = per_deal.reindex(ids)
    foreign = look["currency"].notna().to_numpy() & (look["currency"] != reporting).to_numpy()
    if not foreign.any():
        return out
    where = np.flatnonzero(rows)[foreign]
    cur, day = look["currency"].to_numpy()[foreign], look["day"].to_numpy()[foreign]
    for col in ("old_value", "new_value"):
        values = pd.to_numeric(history[col].iloc[where], errors="coerce").to_numpy("float64")
        conv = convert(values, cur, day, rates, reporting)
        text = [None if np.isnan(v) else repr(float(v)) for v in conv]
        keep = (
            history[col]
            .iloc[where]
            .where(np.isnan(values), pd.Series(text, index=history.index[where]))
        )
        out.loc[out.index[where], col] = keep.to_numpy()
    return out


def currency_factor(rates: pd.DataFrame, currency: str, day: object, reporting: str) -> float:
    """Return the factor turning reporting-currency amounts into ``currency`` on ``day``.

    Parameters
    ----------
    rates
        The exchange rates (:func:`rate_table`).
    currency
        The currency to show amounts in.
    day
        The day of the rate (a forecast's ``as_of``).
    reporting
        The reporting currency.

    Returns
    -------
    float
        1 for the reporting currency; otherwise ``1 / factors(currency)``.

    Raises
    ------
    CrmkitError
        No rate for ``currency`` (or the reporting currency's base) on that day.
    """
    if currency == reporting:
        return 1.0
    f = factors(np.array([currency], dtype=object), [pd.Timestamp(day)], rates, reporting)[0]
    if np.isnan(f):
        missing = missing_rates(
            np.array([currency], dtype=object), [pd.Timestamp(day)], rates, reporting
        )
        raise CrmkitError(missing_rates_message(missing, reporting))
    return float(1.0 / f)


def scale_amounts(obj: object, factor: float, keys: frozenset[str] | set[str]) -> object:
    """Return a copy of JSON-like data with the numbers under ``keys`` multiplied by ``factor``.

    Parameters
    ----------
    obj
        Dicts, lists and scalars (a forecast's JSON).
    factor
        The multiplier (:func:`currency_factor`).
    keys
        The names of amount fields; numbers under other names (probabilities, counts) and
        text are kept. Dicts and lists are walked at every depth.

    Returns
    -------
    object
        The scaled copy.
    """
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in keys and isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = float(v) * factor
            else:
                out[k] = scale_amounts(v, factor, keys)
        return out
    if isinstance(obj, list):
        return [scale_amounts(v, factor, keys) for v in obj]
    return obj
