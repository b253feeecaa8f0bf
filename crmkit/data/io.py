"""Import CSV, Excel and Parquet files and DataFrames into the store, with row-level error reports.

Every import goes through one path: read the file (:func:`crmkit.data.reading.read_table`),
rename its columns (a mapping), validate every row with
:func:`crmkit.store.validation.validate` against the store and the other frames loaded with
it, then write in one transaction. Nothing is written when any row is bad, unless
``on_error="skip"``: then the good rows are written and the rejected ones go, with their
reasons, to ``rejects_path``. Row numbers in reports are the file's line numbers (the header
is line 1).

Numbers must be finite and money amounts below ``max_amount``; dates at most a year ahead
unless ``allow_future``; text holds no control characters. Reading files is
:mod:`crmkit.data.reading`; export is :mod:`crmkit.data.export`.
"""

from __future__ import annotations

import os
import warnings as _warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.data.reading import (
    LINE,
    FileFormatError,
    PathLike,
    apply_mapping,
    error_line,
    read_table_with_errors,
)
from crmkit.errors import CrmkitWarning, NotFoundError, RowError, ValidationError
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.schema import ENTITIES, LOAD_ORDER, Entity
from crmkit.store.settings import get_setting
from crmkit.store.validation import (
    BOOKKEEPING,
    MAX_AMOUNT,
    MAX_DAYS_AHEAD,
    ValidationResult,
    validate,
)

#: Column of the rejects file holding a record that could not be split into the header's fields.
RAW_RECORD = "record"


@dataclass
class ImportResult:
    """What an import did.

    Attributes
    ----------
    written
        Rows written per entity.
    rejected
        Rows rejected per entity (only with ``on_error="skip"``).
    errors
        The problems of the rejected rows: line number, field, reason, value.
    warnings
        Data quirks noticed on the way that did not stop the import.
    rejects_path
        Where the rejected rows were written, if anywhere.

    """

    written: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rejects_path: Path | None = None

    @property
    def rows_written(self) -> int:
        """Total rows written."""
        return sum(self.written.values())

    @property
    def rows_rejected(self) -> int:
        """Total rows rejected."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """Return a few lines saying what was written, rejected and noticed."""
        lines = [
            "imported " + ", ".join(f"{n:,} {e}" for e, n in self.written.items())
            if self.written
            else "imported nothing"
        ]
        if self.rows_rejected:
            where = f"; see {self.rejects_path}" if self.rejects_path else ""
            lines.append(
                "rejected "
                + ", ".join(f"{n:,} {e}" for e, n in self.rejected.items() if n)
                + f" row(s){where}"
            )
            lines.extend(f"  {error_line(e)}" for e in self.errors[:10])
            if len(self.errors) > 10:
                lines.append(f"  ... and {len(self.errors) - 10} more problem(s)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------- importing
def import_file(
    store,
    entity: str,
    path: PathLike,
    *,
    mapping: Mapping[str, str | None] | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "import",
    decimal: str = ".",
    thousands: str | None = None,
    max_amount: float | None = MAX_AMOUNT,
    allow_future: bool = False,
    strict_ids: bool = False,
) -> ImportResult:
    """Import a CSV, Excel or Parquet file into one entity of the store.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    entity
        The entity to load, e.g. ``"deals"``.
    path
        The file; see :func:`read_table`. A CSV record whose field count differs from
        the header's is a bad row (named by its line), never shifted or indexed.
    mapping
        ``{file column: entity column}``; ``None`` drops a column.
    encoding
        Text encoding of a CSV file (default UTF-8).
    sheet
        Excel sheet name or position.
    on_error
        ``"raise"``: any bad row raises :class:`ValidationError` and nothing is written.
        ``"skip"``: the good rows are written in one transaction and the bad ones are
        reported in the result and written to ``rejects_path``.
    rejects_path
        CSV file for the rejected rows, with their line numbers and reasons; it must not
        be the input file.
    changed_by
        Name recorded in the deal history.
    decimal, thousands
        How the file writes numbers: ``decimal=","`` and ``thousands="."`` read
        ``1.234,56`` as 1234.56. See :func:`crmkit.store.validation.validate`.
    max_amount
        Money amounts above this are refused (default
        :data:`crmkit.store.validation.MAX_AMOUNT`); None for no bound.
    allow_future
        Accept dates more than a year
        (:data:`crmkit.store.validation.MAX_DAYS_AHEAD` days) after today.
    strict_ids
        Refuse ids that differ only by case from another id of the file or of the store;
        by default they are imported with a :class:`~crmkit.errors.CrmkitWarning`
        ("likely duplicate"), also listed in the result's ``warnings``.

    Returns
    -------
    ImportResult

    Raises
    ------
    ValidationError
        Listing every bad row (line number, field, reason), or missing required columns.
    FileFormatError
        For files that cannot be read, unmapped columns, a bad mapping, or a rejects file
        that is the input file.
    NotFoundError
        For an unknown entity.

    """
    _importable(entity)
    check_rejects_path(path, rejects_path)
    df, shape_errors = read_table_with_errors(path, encoding=encoding, sheet=sheet)
    if mapping:
        df = apply_mapping(df, mapping, source=str(path))
    return _import(
        store,
        {entity: df},
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        source=str(path),
        checks=_Checks(decimal, thousands, max_amount, allow_future, strict_ids),
        shape_errors={entity: shape_errors} if shape_errors else {},
    )


def check_rejects_path(path: PathLike, rejects_path: PathLike | None) -> None:
    """Refuse a rejects file that is the input file (also through a link or another spelling).

    Parameters
    ----------
    path
        The input file.
    rejects_path
        Where rejected rows would be written; None passes.

    Raises
    ------
    FileFormatError
        If both name the same file.

    """
    if rejects_path is None:
        return
    a, b = Path(path), Path(rejects_path)
    try:
        same = a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        same = False
    if same or a.resolve() == b.resolve():
        raise FileFormatError(
            f"{b}: the rejects file is the input file {a}; writing the rejected rows would "
            "overwrite it. Choose another rejects file"
        )


def import_frame(
    store,
    entity: str,
    df: pd.DataFrame,
    *,
    mapping: Mapping[str, str | None] | None = None,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "import",
    decimal: str = ".",
    thousands: str | None = None,
    max_amount: float | None = MAX_AMOUNT,
    allow_future: bool = False,
    strict_ids: bool = False,
) -> ImportResult:
    """Import a DataFrame into one entity by the same path as :func:`import_file`.

    Row numbers in reports are the frame's index when it is named ``"line"`` (as
    :func:`read_table` gives), otherwise positions counted from 1.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    entity
        The entity to load.
    df
        The rows.
    mapping, on_error, rejects_path, changed_by
        As in :func:`import_file`.
    decimal, thousands, max_amount, allow_future, strict_ids
        As in :func:`import_file`.

    Returns
    -------
    ImportResult

    """
    _importable(entity)
    if mapping:
        df = apply_mapping(df, mapping)
    return _import(
        store,
        {entity: df},
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        checks=_Checks(decimal, thousands, max_amount, allow_future, strict_ids),
    )


def import_frames(
    store,
    frames: Mapping[str, pd.DataFrame],
    *,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "import",
    warnings: Sequence[str] = (),
    source: str | None = None,
    decimal: str = ".",
    thousands: str | None = None,
    max_amount: float | None = MAX_AMOUNT,
    allow_future: bool = False,
    strict_ids: bool = False,
) -> ImportResult:
    """Import several entities together in one transaction, references first.

    Rows may refer to rows of the other frames (a deal to an account loaded with it).
    With ``on_error="skip"``, rows referring to a rejected row are rejected too.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    frames
        ``{entity: rows}``; an index named ``"line"`` gives the row numbers to report.
    on_error, rejects_path, changed_by
        As in :func:`import_file`.
    warnings
        Data quirks already noticed (by a dataset mapping), passed into the result.
    source
        Name of the file, for messages.
    decimal, thousands, max_amount, allow_future, strict_ids
        As in :func:`import_file`.

    Returns
    -------
    ImportResult

    """
    return _import(
        store,
        frames,
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        warnings=warnings,
        source=source,
        checks=_Checks(decimal, thousands, max_amount, allow_future, strict_ids),
    )


@dataclass(frozen=True)
class _Checks:
    """The value checks an import asks of validation."""

    decimal: str = "."
    thousands: str | None = None
    max_amount: float | None = MAX_AMOUNT
    allow_future: bool = False
    strict_ids: bool = False

    def run(
        self,
        name: str,
        df: pd.DataFrame,
        known,
        rows: np.ndarray,
        reporting: str | None = None,
        calendar: FiscalCalendar | None = None,
    ) -> ValidationResult:
        """Validate one frame (deals: currencies; quotas, calls: the fiscal calendar)."""
        try:
            return validate(
                name,
                df,
                known_keys=known,
                row_numbers=rows,
                max_amount=self.max_amount,
                max_days_ahead=None if self.allow_future else MAX_DAYS_AHEAD,
                decimal=self.decimal,
                thousands=self.thousands,
                case_ids="refuse" if self.strict_ids else "warn",
                reporting_currency=reporting,
                calendar=calendar,
            )
        except ValueError as exc:  # decimal/thousands settings
            raise FileFormatError(str(exc)) from None


def _import(
    store,
    frames: Mapping[str, pd.DataFrame],
    *,
    on_error: str,
    rejects_path: PathLike | None,
    changed_by: str,
    checks: _Checks,
    warnings: Sequence[str] = (),
    source: str | None = None,
    shape_errors: Mapping[str, list[RowError]] | None = None,
) -> ImportResult:
    """Validate frames together, then write the good rows in one transaction."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    shape_errors = shape_errors or {}
    order = [n for n in LOAD_ORDER if n in frames] + [n for n in frames if n not in LOAD_ORDER]
    specs = {name: _importable(name) for name in order}
    for name in order:
        _check_columns(specs[name], frames[name], source)
    several = len(order) > 1
    reporting = str(get_setting(store, "reporting_currency")) if "deals" in frames else None
    periodic = any(n in frames for n in ("quotas", "forecast_calls"))
    calendar = fiscal_calendar(store) if periodic else None
    fiscal = {n: calendar if n in ("quotas", "forecast_calls") else None for n in frames}
    cache: dict[str, set] = {}
    pending: dict[str, set] = {}

    def known(ref: str) -> set:
        if ref not in cache:
            cache[ref] = store.known_keys(ref)
        return cache[ref] | pending[ref] if ref in pending else cache[ref]

    clean: dict[str, pd.DataFrame] = {}
    errors: list[RowError] = []
    notes: list[RowError] = []
    rejects: list[pd.DataFrame] = []
    rejected: dict[str, int] = {}
    for name in order:
        df = frames[name]
        rows = _row_numbers(df)
        res = checks.run(name, df, known, rows, reporting, fiscal[name])
        column_errors = [e for e in res.errors if e.row is None]
        if column_errors:
            raise ValidationError(name, column_errors)
        clean[name] = res.clean
        key = list(specs[name].key)
        # only a later frame of the batch can refer to this one's keys (a set of 10M order
        # ids costs seconds and a gigabyte)
        later = name != order[-1]
        if later and set(key) <= set(res.clean.columns) and res.clean[key].notna().all(axis=None):
            vals = res.clean[key]
            pending[name] = set(vals.iloc[:, 0]) if len(key) == 1 else set(map(tuple, vals.values))
        shaped = shape_errors.get(name, [])
        found = sorted([*res.errors, *shaped], key=lambda e: e.row)
        errors.extend([_tag(e, name) for e in found] if several else found)
        notes.extend([_tag(e, name) for e in res.warnings] if several else res.warnings)
        rejected[name] = len(res.bad_rows) + len(shaped)
        if res.bad_rows:
            rejects.append(_reject_frame(name, df, rows, res.bad_rows, res.errors, several))
        if shaped:
            rejects.append(_shape_reject_frame(name, shaped, several))
    label = ", ".join(order)
    if errors and on_error == "raise":
        raise ValidationError(label, errors)
    out_path = None
    if rejects_path is not None and errors:
        out_path = Path(rejects_path)
        table = pd.concat(rejects, ignore_index=True).sort_values("row", kind="stable")
        table.to_csv(out_path, index=False)
    written = store.insert_many(clean, changed_by=changed_by, validate=False)
    return ImportResult(
        written=dict(written),
        rejected={k: v for k, v in rejected.items() if v},
        errors=errors,
        warnings=[*warnings, *_case_warnings(notes, source or label)],
        rejects_path=out_path,
    )


def _case_warnings(notes: list[RowError], where: str) -> list[str]:
    """Warn once about ids differing only by case; return one line per id for the result."""
    if not notes:
        return []
    shown_notes = "; ".join(str(e) for e in notes[:3])
    more = f"; and {len(notes) - 3} more" if len(notes) > 3 else ""
    _warnings.warn(
        f"{where}: {len(notes)} id(s) differ only by case from another id, likely duplicates "
        f"imported as new rows: {shown_notes}{more} (strict_ids=True / --strict-ids refuses them)",
        CrmkitWarning,
        stacklevel=4,
    )
    lines = [str(e) for e in notes[:20]]
    if len(notes) > 20:
        lines.append(f"... and {len(notes) - 20} more id(s) differing only by case")
    return lines


def _importable(name: str) -> Entity:
    """Return the spec of an importable entity, or raise a clear error."""
    spec = ENTITIES.get(name)
    importable = sorted(n for n, e in ENTITIES.items() if e.importable)
    if spec is None:
        raise NotFoundError(
            f"unknown entity {name!r}; importable entities: {', '.join(importable)}"
        )
    if not spec.importable:
        raise FileFormatError(
            f"{name} cannot be imported (crmkit writes it); importable: {', '.join(importable)}"
        )
    return spec


def _check_columns(spec: Entity, df: pd.DataFrame, source: str | None) -> None:
    """Unmapped columns and missing required columns, named before any row is checked."""
    where = f"{source}: " if source else ""
    cols = [c for c in df.columns if c not in BOOKKEEPING]
    unmapped = [str(c) for c in cols if c not in spec.column_names]
    if unmapped:
        example = unmapped[0]
        raise FileFormatError(
            f"{where}column(s) {', '.join(map(repr, unmapped))} are not fields of {spec.name} "
            f"({', '.join(spec.column_names)}); map them, e.g. mapping={{{example!r}: "
            f"'{spec.column_names[0]}'}}, or drop them with mapping={{{example!r}: None}}"
        )
    missing = [
        c.name
        for c in spec.columns
        if c.required and not c.autoincrement and c.default is None and c.name not in cols
    ]
    if missing:
        have = ", ".join(map(str, df.columns))
        raise ValidationError(
            spec.name,
            [RowError(None, m, f"required column missing (the data has: {have})") for m in missing],
        )


def _row_numbers(df: pd.DataFrame) -> np.ndarray:
    """File line numbers when the index holds them, else positions from 1."""
    if df.index.name == LINE:
        return np.asarray(df.index, dtype="int64")
    return np.arange(1, len(df) + 1)


def _tag(e: RowError, entity: str) -> RowError:
    """Prefix the entity to a problem's reason (for batches of several entities)."""
    return RowError(e.row, e.field, f"{entity}: {e.reason}", e.value)


def _reject_frame(
    name: str,
    df: pd.DataFrame,
    rows: np.ndarray,
    bad_rows: set[int],
    errors: list[RowError],
    several: bool,
) -> pd.DataFrame:
    """Return the rejected rows as given, with their row number and every reason."""
    reasons: dict[int, list[str]] = {}
    for e in errors:
        if e.row is not None:
            reasons.setdefault(e.row, []).append(f"{e.field}: {e.reason}" if e.field else e.reason)
    mask = np.isin(rows, list(bad_rows))
    out = df.loc[mask].reset_index(drop=True)
    out.insert(0, "reason", ["; ".join(reasons[int(r)]) for r in rows[mask]])
    out.insert(0, "row", rows[mask])
    if several:
        out.insert(0, "entity", name)
    return out


def _shape_reject_frame(name: str, errors: list[RowError], several: bool) -> pd.DataFrame:
    """Return the records refused for their field count: line, reason and the record as read."""
    out = pd.DataFrame(
        {
            "row": [e.row for e in errors],
            "reason": [e.reason for e in errors],
            RAW_RECORD: [e.value for e in errors],
        }
    )
    if several:
        out.insert(0, "entity", name)
    return out
