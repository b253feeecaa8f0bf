"""One declarative validator for every write: import, ``Store.insert``/``update`` and widget edits.

The rules come from the entity specs in :mod:`crmkit.store.schema` (required columns, kinds,
min/max, choices, references, keys) plus a few cross-field rules per entity (a won or lost
deal has ``closed_at``, an open one has none; a deal's stage exists in its pipeline; ...).
Checks are vectorised with pandas; Python loops only run over the bad rows to build the
:class:`~crmkit.errors.RowError` list, so a million clean rows validate in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmkit.errors import RowError
from crmkit.store.currency import DEFAULT_CURRENCY, rates_on
from crmkit.store.fiscal import FiscalCalendar
from crmkit.store.schema import CHOICE_ALIASES, Column, Entity
from crmkit.store.schema import entity as entity_spec

#: Earliest date accepted anywhere.
MIN_DATE = pd.Timestamp("1900-01-01")
#: Dates more than this many years after today are rejected as typos.
MAX_YEARS_AHEAD = 50
#: Imports refuse dates more than this many days after the import day (unless allowed).
MAX_DAYS_AHEAD = 366
#: Largest money amount accepted by default (``max_amount``): bigger ones are typos or garbage.
MAX_AMOUNT = 1e12
#: Money columns per entity, bounded by ``max_amount``.
MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "deals": ("amount",),
    "orders": ("amount",),
    "campaigns": ("budget", "cost"),
    "channel_spend": ("spend",),
    "quotas": ("amount",),
    "forecast_calls": ("amount",),
}
#: Whole numbers must fit a 64-bit integer column.
MAX_WHOLE = 2.0**63
#: What ``case_ids`` of :func:`validate` may be.
CASE_ID_MODES = ("ignore", "warn", "refuse")
#: Store bookkeeping columns that are dropped silently from input frames.
BOOKKEEPING = ("row_version", "updated_at")

_ISO_LIKE = re.compile(r"^\s*\d{4}-?\d{1,2}-?\d{1,2}")
#: Control characters refused in text: C0 (but tab, newline, carriage return), DEL and C1.
_CONTROL = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_CONTROL_RE = re.compile(_CONTROL)
_NON_FINITE = {"nan", "inf", "infinity", "+inf", "-inf", "+infinity", "-infinity", "+nan", "-nan"}
#: A number written with a decimal comma (``1234,56``, ``1.234,56``, ``-0,5``).
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d+|\d{1,3}(\.\d{3})+),\d+$")
#: A number with comma thousands separators and no decimals (``1,234``, ``12,345,678``).
_COMMA_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")
#: Separators accepted as ``decimal`` and ``thousands``.
DECIMAL_MARKS = (".", ",")
THOUSANDS_MARKS = (",", ".", " ", "'", "\u00a0", "\u202f")


@dataclass
class ValidationResult:
    """The outcome of :func:`validate`.

    Attributes
    ----------
    clean
        The good rows, coerced to the schema's types, defaults filled, in schema column order.
    errors
        Every problem found: row number, field, reason and the offending value.
    bad_rows
        Row numbers with at least one error.
    warnings
        Suspicious values that were accepted, e.g. ids differing only by case from
        another id (``case_ids="warn"``); the rows are in ``clean``.

    """

    clean: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)
    bad_rows: set[int] = field(default_factory=set)
    warnings: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.errors


class _Collector:
    """Gathers errors for masks of bad rows; only loops over the rows that are bad."""

    def __init__(self, rows: np.ndarray, raw: pd.DataFrame) -> None:
        self.rows = rows
        self.raw = raw
        self.errors: list[RowError] = []
        self.bad = np.zeros(len(rows), dtype=bool)
        self._by_col: dict[str | None, np.ndarray] = {}

    def add(
        self,
        mask: pd.Series | np.ndarray,
        col: str | None,
        reason: str | Callable[[object, int], str],
        values: pd.Series | None = None,
    ) -> None:
        """Record an error for every row where ``mask`` is true."""
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return
        self.bad |= m
        if col in self._by_col:
            self._by_col[col] |= m
        else:
            self._by_col[col] = m.copy()
        if values is None:
            values = self.raw[col] if col in self.raw.columns else None
        idx = np.flatnonzero(m)
        vals = values.iloc[idx].tolist() if values is not None else [None] * len(idx)
        for i, v in zip(idx, vals, strict=True):
            v = None if _missing(v) else v
            text = reason(v, int(i)) if callable(reason) else reason
            self.errors.append(RowError(int(self.rows[i]), col, text, v))

    def bad_in(self, col: str) -> np.ndarray:
        """Rows already rejected for column ``col`` (so a bad value is not also 'missing')."""
        return self._by_col.get(col, np.zeros(len(self.rows), dtype=bool))

    def column(self, col: str | None, reason: str) -> None:
        """Record a problem with a whole column (row ``None``); every row is bad."""
        self.errors.append(RowError(None, col, reason))
        self.bad[:] = True


def validate(
    entity: str,
    df: pd.DataFrame,
    *,
    known_keys: Callable[[str], set] | None = None,
    partial: bool = False,
    row_numbers: Sequence[int] | None = None,
    max_amount: float | None = MAX_AMOUNT,
    max_days_ahead: int | None = None,
    decimal: str = ".",
    thousands: str | None = None,
    case_ids: str = "ignore",
    reporting_currency: str | None = None,
    calendar: FiscalCalendar | None = None,
) -> ValidationResult:
    """Check rows of an entity against the schema rules and coerce them to its types.

    Parameters
    ----------
    entity
        Entity name, e.g. ``"deals"``.
    df
        The rows, with the entity's column names. Values may be strings (as read from a
        file) or already typed. Text dates must be ISO 8601 (``YYYY-MM-DD[ HH:MM[:SS]]``);
        timezone-aware times are converted to UTC and kept naive. Choices ignore case and
        spaces (``"Best Case"`` is ``best_case``). Text is kept as given; ``""`` is missing;
        text holding a control character (NUL, ESC, ...; tab, newline and carriage return
        are allowed) is refused. Numbers must be finite (``inf`` and ``nan`` are refused).
    known_keys
        ``known_keys(entity)`` returns the keys already stored (tuples for composite keys).
        When given, ids are checked for duplicates against the store and references
        (accounts, deals, campaigns, a deal's pipeline stage) must exist. When None,
        only the rules that need no store are checked.
    partial
        Validate only the columns present (edits); missing required columns are allowed.
    row_numbers
        The row number to report for each row (a file's line numbers); default position + 1.
    max_amount
        Money amounts (:data:`MONEY_COLUMNS`) above this are refused; default
        :data:`MAX_AMOUNT`; None for no bound.
    max_days_ahead
        Refuse dates more than this many days after today (imports pass
        :data:`MAX_DAYS_AHEAD`); None: only the typo bound of :data:`MAX_YEARS_AHEAD` years.
    decimal, thousands
        How text numbers are written: decimal mark ``"."`` or ``","``; thousands separator
        (None: none). With ``decimal=","`` a text number must use the comma (``1234,56``;
        ``1234.56`` is refused as ambiguous), with a thousands separator only in groups
        of three digits (``1.234,56``).
    case_ids
        Ids (single-column text keys) that differ only by case from another id of the
        batch or of the store (``a000001`` beside ``A000001``): ``"ignore"``; ``"warn"``
        (listed in ``warnings``, the row is kept); ``"refuse"`` (an error on the row).
    reporting_currency
        The database's reporting currency (imports pass it). With ``known_keys``, a deal's
        ``currency`` must be this one or have a rate in ``exchange_rates`` (stored or in
        the same batch, ``known_keys("exchange_rates")``) valid on or before the deal's day:
        ``closed_at`` for a won or lost deal (the day it converts at), ``created_at`` for an
        open one (a rate valid then holds on every later forecast day). None: no currency
        check.
    calendar
        The database's fiscal calendar (:func:`crmkit.store.fiscal.fiscal_calendar`): a
        quota's or call's ``period_start`` must be the first day of one of its fiscal months
        (``"M"``) or quarters (``"Q"``). None: calendar months and quarters.

    Returns
    -------
    ValidationResult
        ``clean`` holds the good rows; ``errors`` every bad value with row, field and reason.

    Raises
    ------
    NotFoundError
        For an unknown entity.
    ValueError
        For unknown ``decimal``, ``thousands`` or ``case_ids`` settings.

    """
    spec = entity_spec(entity)
    _check_number_format(decimal, thousands)
    if case_ids not in CASE_ID_MODES:
        raise ValueError(f"case_ids must be one of {', '.join(CASE_ID_MODES)}, not {case_ids!r}")
    n = len(df)
    rows = np.arange(1, n + 1) if row_numbers is None else np.asarray(row_numbers)
    if len(rows) != n:
        raise ValueError(f"row_numbers has {len(rows)} values for {n} rows")
    raw = df.drop(columns=[c for c in BOOKKEEPING if c in df.columns]).reset_index(drop=True)
    out = _Collector(rows, raw)

    # Column-level problems: unknown, duplicated or missing columns.
    dup_cols = raw.columns[raw.columns.duplicated()].unique()
    for c in dup_cols:
        out.column(str(c), "column given more than once")
    unknown = [c for c in raw.columns if c not in spec.column_names]
    for c in unknown:
        out.column(str(c), f"unknown column; {spec.name} has: {', '.join(spec.column_names)}")
    if not partial:
        for c in spec.columns:
            if c.required and not c.autoincrement and c.default is None and c.name not in raw:
                out.column(c.name, "required column missing")
    if out.errors:
        empty = raw.iloc[0:0]
        return ValidationResult(empty, _sorted(out.errors, spec), set(rows.tolist()))

    present = [c for c in spec.columns if c.name in raw.columns]
    cols = present if partial else list(spec.columns)
    clean: dict[str, pd.Series] = {}
    money = MONEY_COLUMNS.get(spec.name, ())
    for c in cols:
        if c.name in raw.columns:
            s = _coerce(c, raw[c.name], out, decimal, thousands, max_days_ahead)
            if not partial and c.default is not None and c.required:
                s = s.fillna(c.default)  # optional columns take their default only when absent
        else:
            s = _empty(c, n)
        clean[c.name] = s
        _check_values(c, s, out, max_amount if c.name in money else None)
    frame = pd.DataFrame(clean, index=raw.index)

    _check_keys(spec, frame, out, known_keys)
    if known_keys is not None:
        _check_references(spec, frame, out, known_keys)
    _check_entity_rules(spec, frame, out, known_keys, calendar)
    if spec.name == "deals" and known_keys is not None and reporting_currency is not None:
        _check_deal_currency(frame, out, known_keys, reporting_currency)
    notes: list[RowError] = []
    if case_ids != "ignore":
        notes = _check_case_ids(spec, frame, out, known_keys, refuse=case_ids == "refuse")

    good = ~out.bad
    clean_df = frame.loc[good].reset_index(drop=True)
    bad_rows = set(rows[out.bad].tolist())
    notes = [e for e in notes if e.row not in bad_rows]
    return ValidationResult(clean_df, _sorted(out.errors, spec), bad_rows, notes)


# ---------------------------------------------------------------------- helpers
def _missing(v: object) -> bool:
    """Tell whether ``v`` is None, NaN, NaT or pd.NA."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and v != v


def _sorted(errors: list[RowError], spec: Entity) -> list[RowError]:
    """Errors by row (column problems first), then by column order."""
    order = {c: i for i, c in enumerate(spec.column_names)}
    return sorted(
        errors,
        key=lambda e: (-1 if e.row is None else e.row, order.get(e.field or "", len(order))),
    )


def _empty(c: Column, n: int) -> pd.Series:
    """Make an all-missing column of the right dtype, filled with the column default if any."""
    if c.kind in ("int",):
        s = pd.Series(pd.array([pd.NA] * n, dtype="Int64"))
    elif c.kind == "float":
        s = pd.Series(np.full(n, np.nan))
    elif c.kind in ("date", "datetime"):
        s = pd.Series(np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"))
    elif c.kind in ("str", "text"):
        s = pd.Series([None] * n, dtype="str")
    else:
        s = pd.Series([None] * n, dtype=object)
    if c.default is not None:
        s = s.fillna(c.default)
    return s


def _whitespace(s: pd.Series, candidates: np.ndarray) -> np.ndarray:
    """Mark the candidate rows whose value is empty or whitespace-only text (loops over few)."""
    idx = np.flatnonzero(candidates)
    out = np.zeros(len(s), dtype=bool)
    if len(idx):
        vals = s.iloc[idx].tolist()
        out[idx[[isinstance(v, str) and not v.strip() for v in vals]]] = True
    return out


def _check_number_format(decimal: str, thousands: str | None) -> None:
    """Refuse decimal and thousands settings crmkit cannot read unambiguously."""
    if decimal not in DECIMAL_MARKS:
        raise ValueError(f"decimal must be '.' or ',', not {decimal!r}")
    if thousands is not None and thousands not in THOUSANDS_MARKS:
        marks = ", ".join(map(repr, THOUSANDS_MARKS))
        raise ValueError(f"thousands must be one of {marks} or None, not {thousands!r}")
    if thousands == decimal:
        raise ValueError(f"decimal and thousands are both {decimal!r}")


def _delocalize(s: pd.Series, decimal: str, thousands: str | None) -> pd.Series:
    """Rewrite text numbers in ``decimal``/``thousands`` notation as plain ones (``1234.56``).

    Text that does not follow the notation strictly becomes ``"?"`` (so it fails to parse
    and is reported with its original value): no guessing between the two notations.
    """
    d = re.escape(decimal)
    digits = r"\d+"
    if thousands is not None:
        digits = rf"(?:\d+|\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+)"
    pattern = rf"^[+-]?(?:{digits}(?:{d}\d*)?|{d}\d+)(?:[eE][+-]?\d+)?$"
    text = s.astype("str").str.strip()
    ok = text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
    if thousands is not None:
        text = text.str.replace(thousands, "", regex=False)
    if decimal != ".":
        text = text.str.replace(decimal, ".", regex=False)
    return text.where(ok | s.isna().to_numpy(), "?")


def _to_number(s: pd.Series, decimal: str = ".", thousands: str | None = None) -> pd.Series:
    """Convert to float64, NaN where a value does not parse (fast path through Arrow)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    if decimal != "." or thousands is not None:
        text_dtype = pd.api.types.is_string_dtype(s.dtype) and s.dtype != object
        if text_dtype or pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
            s = _delocalize(s, decimal, thousands)
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        try:
            arr = pc.cast(pa.array(s.array), pa.float64())
            return pd.Series(arr.to_numpy(zero_copy_only=False), index=s.index)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    num = pd.to_numeric(s, errors="coerce")
    return num.astype("float64")


def _coerce(
    c: Column,
    s: pd.Series,
    out: _Collector,
    decimal: str = ".",
    thousands: str | None = None,
    max_days_ahead: int | None = None,
) -> pd.Series:
    """Convert one column to its kind, recording values that do not convert."""
    s = s.reset_index(drop=True)
    if c.kind in ("str", "text"):
        text = _to_text(s)
        ctrl = text.str.contains(_CONTROL, regex=True).fillna(False).to_numpy(dtype=bool)
        out.add(ctrl, c.name, _control_reason, values=text)
        if c.choices is not None:  # "Won" or " won " means "won"; "Best Case" best_case
            off = text.notna() & ~text.isin(c.choices)
            if off.any():
                folded = {_fold_choice(ch): ch for ch in c.choices}
                folded.update(CHOICE_ALIASES.get(c.name, {}))
                norm = text[off].map(lambda v: folded.get(_fold_choice(v), v))
                text = text.copy()
                text[off] = norm
        return text
    missing = s.isna().to_numpy()
    if c.kind in ("int", "float"):
        num = _to_number(s, decimal, thousands)
        f = np.array(num.to_numpy(dtype="float64", na_value=np.nan), dtype="float64", copy=True)
        fail = ~missing & np.isnan(f)
        fail &= ~_whitespace(s, fail)
        word = "a whole number" if c.kind == "int" else "a number"
        out.add(fail, c.name, lambda v, _i: _number_reason(v, word, decimal))
        inf = np.isinf(f)
        out.add(inf, c.name, "not a finite number")
        f[inf] = np.nan
        if c.kind == "int":
            frac = ~np.isnan(f) & (f != np.round(f))
            out.add(frac, c.name, "not a whole number")
            f[frac] = np.nan
            huge = ~np.isnan(f) & (np.abs(f) >= MAX_WHOLE)
            out.add(huge, c.name, "whole number out of range (beyond 64 bits)")
            f[huge] = np.nan
            return pd.Series(pd.array(np.round(f), dtype="Float64")).astype("Int64")
        return pd.Series(f)
    if c.kind in ("date", "datetime"):
        return _to_datetime(c, s, missing, out, max_days_ahead)
    if c.kind == "json":
        blank = missing | _whitespace(s, ~missing)
        return _check_json(c, s, pd.Series(blank), out)
    return s.where(~missing, None)


def _fold_choice(v: str) -> str:
    """A choice as compared: lowercase, without spaces, underscores or hyphens."""
    return re.sub(r"[\s_-]+", "", v).lower()


def _control_reason(v: object, _i: int) -> str:
    """Name the first control character of a text value and where it is."""
    m = _CONTROL_RE.search(str(v))
    if m is None:  # pragma: no cover - only called for values that matched
        return "contains a control character"
    return (
        f"contains a control character ({m.group()!r} at position {m.start() + 1}); "
        "text may hold tabs and line breaks but no NUL or other control characters"
    )


def _number_reason(v: object, word: str, decimal: str) -> str:
    """Say why a value is not a number, with a hint for decimal commas and non-finite text."""
    text = str(v).strip()
    if text.lower() in _NON_FINITE:
        return "not a finite number"
    if decimal == ".":
        if _COMMA_THOUSANDS.match(text):
            return (
                f"not {word}: has a comma; a thousands separator (use --thousands , / "
                "thousands=',') or a decimal comma (use --decimal , --thousands . / "
                "decimal=',', thousands='.')?"
            )
        if _DECIMAL_COMMA.match(text):
            return (
                f"not {word}: looks like a decimal comma; use --decimal , --thousands . "
                "(decimal=',', thousands='.' in Python)"
            )
    elif re.fullmatch(r"[+-]?\d*\.\d+", text):
        return f"not {word}: has a decimal point but the decimal mark is {decimal!r}"
    return f"not {word}"


def _to_text(s: pd.Series) -> pd.Series:
    """Convert to strings, missing as NaN; whole floats (ids read from Excel) lose their ``.0``.

    Text is kept exactly as given (no stripping, so values round-trip); only the empty
    string counts as missing. :mod:`crmkit.data.reading` strips the cells it reads from files.
    """
    if pd.api.types.is_float_dtype(s.dtype):
        f = s.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(f) & (f == np.round(f))
        if whole[~np.isnan(f)].all():
            s = pd.Series(pd.array(f, dtype="Float64")).astype("Int64")
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = s.dt.strftime("%Y-%m-%dT%H:%M:%S")
    elif s.dtype == object:
        kinds = pd.api.types.infer_dtype(s, skipna=True)
        if kinds not in ("string", "empty"):
            s = s.map(_scalar_text, na_action="ignore")
    t = s.astype("str")
    empty = (t == "").to_numpy(dtype=bool, na_value=False)
    return t.where(~empty) if empty.any() else t


def _scalar_text(v: object) -> object:
    """Text of one non-string value: ``1001.0`` -> ``"1001"``."""
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v if isinstance(v, str) else str(v)


def _to_datetime(
    c: Column,
    s: pd.Series,
    missing: np.ndarray,
    out: _Collector,
    max_days_ahead: int | None = None,
) -> pd.Series:
    """Parse dates (ISO 8601 text, datetime objects); impossible and out-of-range dates fail."""
    vals = s
    if pd.api.types.is_datetime64_any_dtype(vals.dtype):
        ts = vals
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    else:
        if vals.dtype == object:
            vals = vals.map(_date_text, na_action="ignore")
        ts = pd.to_datetime(vals, errors="coerce", format="ISO8601", utc=True)
        ts = ts.dt.tz_localize(None)
    bad = ~missing & ts.isna().to_numpy()
    bad &= ~_whitespace(s, bad)
    if bad.any():

        def why(v: object, _i: int) -> str:
            text = str(v)
            if _ISO_LIKE.match(text):
                return f"impossible date {text!r} (no such date)"
            return f"unparseable date {text!r}; use YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS]"

        out.add(bad, c.name, why)
    today = pd.Timestamp.now().normalize()
    latest = today + pd.DateOffset(years=MAX_YEARS_AHEAD)
    early = ts < MIN_DATE
    late = ts > latest
    out.add(early, c.name, f"date before {MIN_DATE.date()}")
    out.add(late, c.name, f"date too far in the future (after {latest.date()})")
    if max_days_ahead is not None:
        limit = today + pd.Timedelta(days=max_days_ahead)
        ahead = (ts.dt.normalize() > limit).to_numpy(dtype=bool) & ~late.to_numpy(dtype=bool)
        out.add(
            ahead,
            c.name,
            f"date more than {max_days_ahead} days after today ({today.date()}; latest "
            f"{limit.date()}); a typo? (--allow-future / allow_future=True accepts it)",
        )
        late = late | ahead
    ts = ts.where(~(early | late))
    if c.kind == "date":
        ts = ts.dt.normalize()
    return ts.astype("datetime64[ns]")


def _date_text(v: object) -> object:
    """Dates and timestamps as ISO text so one parser handles mixed object columns."""
    if isinstance(v, str):
        return v.strip()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _check_json(c: Column, s: pd.Series, blank: pd.Series, out: _Collector) -> pd.Series:
    """JSON columns take dicts, lists, numbers or text that parses as JSON."""

    def bad_json(v: object) -> bool:
        if isinstance(v, str):
            try:
                json.loads(v)
            except ValueError:
                return True
        return False

    bad = s.where(~blank).map(bad_json, na_action="ignore").fillna(False).astype(bool)
    out.add(bad, c.name, "not valid JSON")
    return s.where(~blank, None).astype(object)


def _check_values(c: Column, s: pd.Series, out: _Collector, limit: float | None = None) -> None:
    """Check required values, bounds (``limit`` for money) and choices of one coerced column."""
    if c.required and not c.autoincrement:
        miss = s.isna().to_numpy() & ~out.bad_in(c.name)
        out.add(miss, c.name, "required value missing")
    if c.min_value is not None:
        low = (s < c.min_value).fillna(False).to_numpy(dtype=bool)
        reason = "negative value; must be >= 0" if c.min_value == 0 else f"must be >= {c.min_value}"
        out.add(low, c.name, reason)
    if c.max_value is not None:
        high = (s > c.max_value).fillna(False).to_numpy(dtype=bool)
        out.add(high, c.name, f"must be <= {c.max_value}")
    if limit is not None:
        big = (s.abs() > limit).fillna(False).to_numpy(dtype=bool)
        out.add(
            big,
            c.name,
            f"amount above the maximum {limit:,.0f} (max_amount; --max-amount on the command "
            "line); a typo or a unit mix-up?",
        )
    if c.choices is not None:
        ok = s.isna() | s.isin(c.choices)
        out.add(~ok.to_numpy(dtype=bool), c.name, f"must be one of {', '.join(c.choices)}")


def _isin(s: pd.Series, known: set) -> np.ndarray:
    """Return whether each value is in ``known`` (missing values: False); fast for text."""
    if not known:
        return np.zeros(len(s), dtype=bool)
    if pd.api.types.is_string_dtype(s.dtype):
        value_set = _text_set(known)
        if value_set is not None:
            arr = pc.cast(pa.array(s.array), pa.large_string())
            hit = pc.is_in(arr, value_set=value_set)
            return hit.fill_null(False).to_numpy(zero_copy_only=False)
    return s.astype(object).isin(known).to_numpy(dtype=bool) & s.notna().to_numpy()


def _text_set(known: set) -> pa.Array | None:
    """The set as an Arrow text array when every member is text (else None); no Python loop."""
    kinds = set(map(type, known))
    if kinds == {str}:
        return pa.array(list(known), type=pa.large_string())
    if all(issubclass(k, str) for k in kinds):  # str subclasses (numpy.str_): compare as text
        return pa.array([str(k) for k in known], type=pa.large_string())
    return None


def _key_values(frame: pd.DataFrame, cols: Sequence[str]) -> pd.Series | pd.MultiIndex:
    """Return the key of each row: a Series for one column, a MultiIndex for several."""
    if len(cols) == 1:
        return frame[cols[0]]
    return pd.MultiIndex.from_frame(frame[list(cols)])


def _key_text(key: object) -> str:
    """Format a key for messages."""
    if isinstance(key, tuple):
        return "(" + ", ".join(repr(_key_part(k)) for k in key) + ")"
    return repr(_key_part(key))


def _key_part(v: object) -> str:
    """One key value as text; a day (a timestamp at midnight) as ``YYYY-MM-DD``."""
    if isinstance(v, pd.Timestamp) and v == v.normalize():
        return str(v.date())
    return str(v)


def _check_keys(
    spec: Entity, frame: pd.DataFrame, out: _Collector, known_keys: Callable[[str], set] | None
) -> None:
    """Duplicate keys inside the batch and against the store."""
    keys = list(spec.key)
    if not set(keys) <= set(frame.columns):
        return
    has_key = frame[keys].notna().all(axis=1).to_numpy()
    if len(keys) == 1 and spec.column(keys[0]).autoincrement and not has_key.any():
        return
    sub = frame.loc[has_key, keys]
    any_dup = sub[keys[0]].duplicated() if len(keys) == 1 else sub.duplicated()
    if any_dup.any():
        dup = any_dup
        first_row = {}
        firsts = sub[~sub.duplicated(keep="first") & sub.duplicated(keep=False)]
        for pos, key in zip(firsts.index, map(tuple, firsts.to_numpy(dtype=object)), strict=True):
            first_row[key] = int(out.rows[pos])
        mask = np.zeros(len(frame), dtype=bool)
        mask[sub.index[dup.to_numpy()]] = True
        field_ = keys[0]

        def why(_v: object, i: int) -> str:
            key = tuple(frame.loc[i, keys])
            label = key if len(keys) > 1 else key[0]
            return f"duplicate {'/'.join(keys)} {_key_text(label)} (first on row {first_row[key]})"

        out.add(mask, field_, why, values=frame[field_])
    if known_keys is None:
        return
    stored = known_keys(spec.name)
    if not stored:
        return
    if len(keys) == 1:
        exists = _isin(frame[keys[0]], stored) & has_key
    else:
        # stored days come back as datetime.date; the frame holds Timestamps
        days = [tuple(_as_timestamp(v) for v in k) for k in stored]
        exists = np.asarray(_key_values(frame, keys).isin(days)) & has_key
    out.add(
        exists,
        keys[0],
        lambda v, i: (
            f"{'/'.join(keys)} {_key_text(_row_key(frame, keys, i))} already exists in {spec.name}"
        ),
        values=frame[keys[0]],
    )


def _check_case_ids(
    spec: Entity,
    frame: pd.DataFrame,
    out: _Collector,
    known_keys: Callable[[str], set] | None,
    *,
    refuse: bool,
) -> list[RowError]:
    """Ids differing only by case from an earlier id of the batch or a stored one.

    Returns the notices (``refuse=False``) or records them as errors (``refuse=True``).
    Only single-column text keys are compared; rows already bad on the key are skipped.
    """
    if len(spec.key) != 1 or spec.column(spec.key[0]).kind not in ("str", "text"):
        return []
    key = spec.key[0]
    if key not in frame.columns:
        return []
    s = frame[key].astype("str")
    given = s.notna().to_numpy(dtype=bool) & ~out.bad_in(key)
    folded = s.str.lower()
    found: dict[int, str] = {}
    # Against the store: same folded id, different spelling, not stored as given.
    stored = known_keys(spec.name) if known_keys is not None else set()
    if stored:
        # the first stored spelling of each folded id, in the set's order (vectorised:
        # a store holds millions of ids)
        all_text = set(map(type, stored)) == {str}
        texts = list(stored) if all_text else [k for k in stored if isinstance(k, str)]
        spelt = pa.array(texts, type=pa.large_string())
        folds = pc.utf8_lower(spelt)
        batch = pc.cast(pa.array(folded.array), pa.large_string())
        near = pc.is_in(batch, value_set=folds).fill_null(False).to_numpy(zero_copy_only=False)
        if all_text:
            as_given = pc.cast(pa.array(s.array), pa.large_string())
            exact = pc.is_in(as_given, value_set=spelt).fill_null(False)
            exact = exact.to_numpy(zero_copy_only=False)
        else:
            exact = _isin(s, stored)
        hit = given & near & ~exact
        idx = np.flatnonzero(hit)
        at = pc.index_in(batch.take(pa.array(idx, type=pa.int64())), value_set=folds)
        for i, j in zip(idx, at.to_pylist(), strict=True):
            other = texts[j]
            found[int(i)] = (
                f"{key} {s.iloc[i]!r} differs only by case from {other!r} already in "
                f"{spec.name} (likely duplicate)"
            )
    # Inside the batch: a later row whose id folds onto an earlier, differently spelt one.
    dup = given & folded.duplicated(keep=False).to_numpy(dtype=bool)
    first: dict[str, int] = {}
    for i in np.flatnonzero(dup):
        f, v = folded.iloc[i], s.iloc[i]
        j = first.setdefault(f, int(i))
        if j != i and s.iloc[j] != v and int(i) not in found:
            found[int(i)] = (
                f"{key} {v!r} differs only by case from {s.iloc[j]!r} on row "
                f"{int(out.rows[j])} (likely duplicate)"
            )
    if not found:
        return []
    idx = np.array(sorted(found), dtype=int)
    if refuse:
        mask = np.zeros(len(frame), dtype=bool)
        mask[idx] = True
        out.add(mask, key, lambda _v, i: found[i] + "; refused (strict ids)", values=s)
        return []
    return [RowError(int(out.rows[i]), key, found[int(i)], s.iloc[i]) for i in idx]


def _as_timestamp(v: object) -> object:
    """A ``datetime.date`` as a Timestamp (to compare with coerced date columns); else as is."""
    return pd.Timestamp(v) if isinstance(v, dt.date) else v


def _row_key(frame: pd.DataFrame, keys: Sequence[str], i: int) -> object:
    """Return the key value(s) of row position ``i``."""
    vals = tuple(frame[k].iloc[i] for k in keys)
    return vals if len(vals) > 1 else vals[0]


def _check_references(
    spec: Entity, frame: pd.DataFrame, out: _Collector, known_keys: Callable[[str], set]
) -> None:
    """Every reference (``account_id``, ``deal_id``, ``campaign_id``...) must exist."""
    for c in spec.columns:
        if not c.references or c.name not in frame.columns:
            continue
        ref_entity = c.references.split(".")[0]
        s = frame[c.name]
        given = s.notna()
        if not given.any():
            continue
        known = known_keys(ref_entity)
        missing = given.to_numpy(dtype=bool) & ~_isin(s, known)
        out.add(
            missing,
            c.name,
            lambda v, _i, r=ref_entity, n=c.name: f"{n} {v!r} not found in {r}",
        )


def _check_entity_rules(
    spec: Entity,
    frame: pd.DataFrame,
    out: _Collector,
    known_keys: Callable[[str], set] | None,
    calendar: FiscalCalendar | None = None,
) -> None:
    """Rules that involve several columns or entities."""
    has = set(frame.columns)
    if spec.name == "deals":
        _check_deals(frame, out, known_keys, has)
        if {"created_at", "closed_at"} <= has:
            early = frame["closed_at"].dt.normalize() < frame["created_at"].dt.normalize()
            out.add(
                early.to_numpy(dtype=bool),
                "closed_at",
                lambda v, i: f"closed_at {v} is before created_at",
            )
    elif spec.name == "campaigns" and {"start_date", "end_date"} <= has:
        before = (frame["end_date"] < frame["start_date"]).to_numpy(dtype=bool)
        out.add(before, "end_date", "end_date is before start_date")
    elif spec.name in ("quotas", "forecast_calls"):
        _check_period_rows(frame, out, has, calendar)
    elif spec.name == "exchange_rates":
        _check_rates(frame, out, has)


def _check_rates(frame: pd.DataFrame, out: _Collector, has: set) -> None:
    """Exchange rates: an ISO 4217 code (3 capital letters) and a rate above 0."""
    if "currency" in has:
        code = frame["currency"].astype(object)
        bad = code.notna().to_numpy(dtype=bool) & ~_iso_code(code) & ~out.bad_in("currency")
        out.add(
            bad,
            "currency",
            lambda v, _i: f"currency {str(v)[:40]!r} is not an ISO 4217 code (3 capital letters)",
        )
    if "rate" in has:
        zero = (frame["rate"] == 0).fillna(False).to_numpy(dtype=bool) & ~out.bad_in("rate")
        out.add(zero, "rate", "rate must be > 0 (units of the currency per 1 reporting unit)")


def _iso_code(codes: pd.Series) -> np.ndarray:
    """Whether each value is 3 capital letters (an ISO 4217 code)."""
    return codes.astype(str).str.fullmatch(r"[A-Z]{3}").fillna(False).to_numpy(dtype=bool)


def _check_deal_currency(
    frame: pd.DataFrame, out: _Collector, known_keys: Callable[[str], set], reporting: str
) -> None:
    """A deal's currency is the reporting one or has a rate on its day (vectorised)."""
    if not {"currency", "created_at"} <= set(frame.columns):
        return
    code = frame["currency"].astype(object).where(frame["currency"].notna(), DEFAULT_CURRENCY)
    foreign = (code != reporting).to_numpy(dtype=bool) & ~out.bad_in("currency")
    if not foreign.any():
        return
    closed = frame["closed_at"] if "closed_at" in frame.columns else None
    status = frame["status"] if "status" in frame.columns else None
    day = frame["created_at"]
    by_close = np.zeros(len(frame), dtype=bool)
    if closed is not None and status is not None:
        by_close = (status.isin(["won", "lost"]) & closed.notna()).to_numpy(dtype=bool)
        day = closed.where(by_close, day)
    keys = list(known_keys("exchange_rates"))
    rates = pd.DataFrame(
        {
            "currency": [k[0] for k in keys],
            "valid_from": pd.to_datetime([k[1] for k in keys]),
            "rate": 1.0,
        }
    )
    idx = np.flatnonzero(foreign)
    found = rates_on(code.iloc[idx].to_numpy(), day.iloc[idx], rates)
    day_known = day.iloc[idx].notna().to_numpy(dtype=bool)
    mask = np.zeros(len(frame), dtype=bool)
    mask[idx[np.isnan(found) & day_known]] = True

    def why(v: object, i: int) -> str:
        when = "closed_at" if by_close[i] else "created_at"
        text = str(DEFAULT_CURRENCY if v is None else v)[:40]
        hint = "" if _iso_code(pd.Series([text]))[0] else " (codes are 3 capital letters)"
        return (
            f"currency {text!r} is not the reporting currency {reporting} and has no exchange "
            f"rate valid on or before the deal's {when} day {_day(day.iloc[i])}{hint}; import "
            "its rates first (crmkit import exchange_rates FILE) or fix the code"
        )

    out.add(mask, "currency", why, values=frame["currency"])


def _check_period_rows(
    frame: pd.DataFrame, out: _Collector, has: set, calendar: FiscalCalendar | None = None
) -> None:
    """Quota and call rules: period_start opens its fiscal month or quarter; company is "all"."""
    if {"period", "period_start"} <= has:
        cal = calendar if calendar is not None else FiscalCalendar()
        start = pd.to_datetime(frame["period_start"])
        period = frame["period"].astype(object).to_numpy()
        judged = start.notna().to_numpy(dtype=bool) & ~out.bad_in("period")
        reasons: dict[tuple[str, pd.Timestamp], str | None] = {}
        why = np.full(len(frame), None, dtype=object)
        for i in np.flatnonzero(judged & np.isin(period, ["M", "Q"])):
            key = (str(period[i]), start.iloc[i].normalize())
            if key not in reasons:
                reasons[key] = cal.start_error(*key)
            why[i] = reasons[key]
        bad = np.array([w is not None for w in why], dtype=bool)
        out.add(bad, "period_start", lambda _v, i: str(why[i]))
    if {"scope", "name"} <= has:
        company = (frame["scope"] == "company").to_numpy(dtype=bool)
        named = frame["name"].notna().to_numpy(dtype=bool)
        other = (frame["name"] != "all").to_numpy(dtype=bool)
        out.add(
            company & named & other,
            "name",
            lambda v, _i: f"name {str(v)[:40]!r} for scope company; the company's name is 'all'",
        )


def _day(v: object) -> str:
    """A date value as ``YYYY-MM-DD`` for messages (the raw text when it is not a date)."""
    try:
        return str(pd.Timestamp(v).date())
    except (TypeError, ValueError):
        return str(v)[:40]


def _check_deals(
    frame: pd.DataFrame, out: _Collector, known_keys: Callable[[str], set] | None, has: set
) -> None:
    """Deal rules: closed_at agrees with status; the (pipeline, stage) exists."""
    if {"status", "closed_at"} <= has:
        closed = frame["status"].isin(["won", "lost"]).to_numpy(dtype=bool, copy=True)
        is_open = (frame["status"] == "open").to_numpy(dtype=bool, copy=True)
        no_close = frame["closed_at"].isna().to_numpy()
        judged = ~(out.bad_in("closed_at") | out.bad_in("status"))
        closed &= judged
        is_open &= judged
        out.add(closed & no_close, "closed_at", "closed_at is required for won and lost deals")
        out.add(is_open & ~no_close, "closed_at", "closed_at must be empty for open deals")
    if known_keys is not None and {"pipeline", "stage"} <= has:
        given = frame["pipeline"].notna() & frame["stage"].notna()
        if not given.any():
            return
        stages = known_keys("stages")
        pairs = pd.MultiIndex.from_frame(frame[["pipeline", "stage"]].astype(object))
        unknown = ~np.asarray(pairs.isin(list(stages))) & given.to_numpy(dtype=bool)
        if not unknown.any():
            return
        by_pipe: dict[str, list[str]] = {}
        for p, st in stages:
            by_pipe.setdefault(p, []).append(st)

        def why(v: object, i: int) -> str:
            pipe = frame["pipeline"].iloc[i]
            if pipe not in by_pipe:
                known = ", ".join(sorted(by_pipe)) or "none"
                return f"unknown pipeline {pipe!r} (known pipelines: {known})"
            return f"unknown stage {v!r} in pipeline {pipe!r} (known: {', '.join(by_pipe[pipe])})"

        out.add(unknown, "stage", why, values=frame["stage"])
