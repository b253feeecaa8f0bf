"""Salesforce's exchange rates (``CurrencyType.csv``, ``DatedConversionRate.csv``) as crmkit rates.

Salesforce keeps, per currency, a ``ConversionRate`` "of this currency type against the
corporate currency" (Salesforce Object Reference, CurrencyType and DatedConversionRate): units
of the currency per one unit of the corporate currency, crmkit's own convention for
``exchange_rates.rate`` (:mod:`crmkit.store.currency`). So the rows map one to one:

- ``CurrencyType.csv`` (``IsoCode``, ``ConversionRate``, ``IsCorporate``, ``IsActive``): one
  rate per currency, valid from the earliest day crmkit accepts
  (:data:`crmkit.store.validation.MIN_DATE`); the corporate currency (``IsCorporate`` true)
  has rate 1 and is the natural reporting currency (:func:`corporate_currency`). Inactive
  currencies keep their rates: old deals may still be in them.
- ``DatedConversionRate.csv`` (advanced currency management: ``IsoCode``,
  ``ConversionRate``, ``StartDate``, ``NextStartDate``): a rate per currency and date range;
  ``StartDate`` becomes ``valid_from`` (a start before :data:`MIN_DATE`, as the first range of
  a currency can have, becomes that day); ``NextStartDate`` is implied by the next range's
  start. A currency with dated rates takes them only; ``CurrencyType`` fills in the others.

Only parsing happens here (folder -> frame + problems); the import (validation, one
transaction) is the vendor import's, like the other Salesforce objects.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crmkit.data.reading import read_table
from crmkit.errors import RowError
from crmkit.store.validation import MIN_DATE

__all__ = ["CURRENCY_TYPE", "DATED_RATES", "corporate_currency", "salesforce_rates"]

#: File names of the two objects in a Salesforce export folder.
CURRENCY_TYPE = "CurrencyType.csv"
DATED_RATES = "DatedConversionRate.csv"
_TRUE = {"true", "1", "yes"}
_COLUMNS = ["currency", "valid_from", "rate"]


def _empty() -> pd.DataFrame:
    """An exchange_rates frame without rows."""
    return pd.DataFrame(
        {c: pd.Series([], dtype=object) for c in _COLUMNS}, index=pd.Index([], name="line")
    )


def _missing_columns(df: pd.DataFrame, name: str, needed: tuple[str, ...]) -> list[RowError]:
    """One error per required Salesforce field absent from a file's header."""
    return [
        RowError(None, col, f"{name}: required column {col} missing")
        for col in needed
        if col not in df.columns
    ]


def _is_true(values: pd.Series) -> pd.Series:
    """Salesforce booleans (``true``/``false``; ``1``/``0``) as bools; missing is false."""
    return values.fillna("").astype(str).str.strip().str.lower().isin(_TRUE)


def _currency_type(folder: Path) -> tuple[pd.DataFrame, list[RowError], str | None]:
    """Rates of ``CurrencyType.csv`` from the earliest day, its problems, the corporate code."""
    path = folder / CURRENCY_TYPE
    if not path.exists():
        return _empty(), [], None
    df = read_table(path)
    errors = _missing_columns(df, CURRENCY_TYPE, ("IsoCode", "ConversionRate"))
    if errors:
        return _empty(), errors, None
    corporate = None
    if "IsCorporate" in df.columns:
        flagged = df.loc[_is_true(df["IsCorporate"]), "IsoCode"].dropna().astype(str)
        if len(flagged) > 1:
            for line in flagged.index[1:]:
                errors.append(
                    RowError(
                        int(line),
                        "IsCorporate",
                        f"{CURRENCY_TYPE}: a second corporate currency "
                        f"(the first is {flagged.iloc[0]} on line {int(flagged.index[0])})",
                        flagged[line],
                    )
                )
        corporate = str(flagged.iloc[0]).strip().upper() if len(flagged) else None
    out = pd.DataFrame(
        {
            "currency": df["IsoCode"],
            "valid_from": str(MIN_DATE.date()),
            "rate": df["ConversionRate"],
        },
        index=df.index,
    )
    if corporate is not None:  # the corporate currency is 1 by definition
        out.loc[out["currency"].astype(str).str.upper() == corporate, "rate"] = "1"
    return out, errors, corporate


def _dated_rates(folder: Path) -> tuple[pd.DataFrame, list[RowError]]:
    """Rates of ``DatedConversionRate.csv`` from their ``StartDate``, and its problems."""
    path = folder / DATED_RATES
    if not path.exists():
        return _empty(), []
    df = read_table(path)
    errors = _missing_columns(df, DATED_RATES, ("IsoCode", "ConversionRate", "StartDate"))
    if errors:
        return _empty(), errors
    start = df["StartDate"].astype(object)
    year = pd.to_numeric(start.astype(str).str.extract(r"^(\d{4})-", expand=False), "coerce")
    early = (year < MIN_DATE.year).to_numpy(dtype=bool)  # year 1 is beyond pandas' dates
    day = pd.to_datetime(start.where(~early), errors="coerce", format="ISO8601")
    bad = start.notna() & day.isna() & ~early
    for line in df.index[bad.to_numpy()]:
        text = str(start[line])[:40]
        errors.append(
            RowError(int(line), "StartDate", f"{DATED_RATES}: unparseable date {text!r}", text)
        )
    valid_from = start.where(~early, str(MIN_DATE.date())).where(~bad)
    out = pd.DataFrame(
        {"currency": df["IsoCode"], "valid_from": valid_from, "rate": df["ConversionRate"]},
        index=df.index,
    )
    return out.loc[~bad.to_numpy()], errors


def salesforce_rates(folder: str | Path) -> tuple[pd.DataFrame, list[RowError]]:
    """Read a Salesforce export folder's exchange rates as an ``exchange_rates`` frame.

    Parameters
    ----------
    folder
        The export folder (``CurrencyType.csv`` and/or ``DatedConversionRate.csv``; neither
        gives no rows).

    Returns
    -------
    (pandas.DataFrame, list of RowError)
        The frame: columns ``currency``, ``valid_from``, ``rate`` as text (crmkit's
        validation checks and types them), indexed by each row's line number in its file
        (``line``); ``frame.attrs["files"]`` names the file(s) the rows come from. The
        problems found while parsing (a missing column, an unparseable ``StartDate``, two
        corporate currencies), each reason starting with the file name; their rows are left
        out.
    """
    folder = Path(folder)
    static, errors, _ = _currency_type(folder)
    dated, dated_errors = _dated_rates(folder)
    errors += dated_errors
    files = [name for name, part in ((CURRENCY_TYPE, static), (DATED_RATES, dated)) if len(part)]
    if len(dated):
        static = static[~static["currency"].isin(set(dated["currency"].dropna()))]
    frame = pd.concat([p for p in (static, dated) if len(p)]) if files else _empty()
    frame = frame[_COLUMNS]
    frame.index.name = "line"
    frame.attrs["files"] = ", ".join(files)
    return frame, errors


def corporate_currency(folder: str | Path) -> str | None:
    """Return the org's corporate currency (``IsCorporate`` in ``CurrencyType.csv``), if any.

    Parameters
    ----------
    folder
        The export folder.

    Returns
    -------
    str or None
        The ISO code, upper-case; None without the file or a corporate row. It is the natural
        reporting currency (``crmkit config reporting_currency=...``): Salesforce's rates are
        per one unit of it.
    """
    return _currency_type(Path(folder))[2]
