"""Import CSV and Excel with a column mapping and row-level error reports; export CSV/Parquet.

Every import goes through one path: read the file (:func:`read_table`), rename its
columns (a mapping), validate every row with :func:`crmkit.store.validation.validate`
against the store and the other frames loaded with it, then write in one transaction.
Nothing is written when any row is bad, unless ``on_error="skip"``: then the good rows
are written and the rejected ones go, with their reasons, to ``rejects_path``.
Row numbers in reports are the file's line numbers (the header is line 1).
"""

from __future__ import annotations

import csv
import io as _io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError, NotFoundError, RowError, ValidationError
from crmkit.store.schema import ENTITIES, LOAD_ORDER, Entity
from crmkit.store.validation import BOOKKEEPING, validate

PathLike = str | os.PathLike[str]
#: Index name of frames whose index holds the source file's line numbers.
LINE = "line"
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
PARQUET_SUFFIXES = (".parquet", ".pq")


class FileFormatError(CrmkitError, ValueError):
    """A file cannot be read or written as asked: empty, wrong encoding, bad header or mapping."""


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
            lines.extend(f"  {e}" for e in self.errors[:10])
            if len(self.errors) > 10:
                lines.append(f"  ... and {len(self.errors) - 10} more problem(s)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------- reading
def read_table(
    path: PathLike,
    *,
    mapping: Mapping[str, str | None] | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a CSV, Excel or Parquet file as text cells, indexed by the file's line numbers.

    Parameters
    ----------
    path
        A ``.csv`` (or ``.tsv``/``.txt``), ``.xlsx``/``.xls`` or ``.parquet`` file.
    mapping
        ``{file column: entity column}`` renames; a ``None`` target drops the column.
    encoding
        Text encoding of a CSV file; default UTF-8 (with or without a byte-order mark).
    sheet
        Excel sheet name or position (default: the first sheet).
    sep
        CSV separator; default guessed from the header (``,``, ``;`` or tab).

    Returns
    -------
    pandas.DataFrame
        Cells stripped of surrounding blanks, empty cells missing; the index (named
        ``"line"``) holds each row's line number in the file, the header being line 1.

    Raises
    ------
    FileFormatError
        For a missing or empty file, an undecodable encoding (naming what was found and
        the ``encoding=`` to pass), a duplicated header or a mapping naming absent columns.

    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        df = _read_excel(p, sheet)
    elif suffix in PARQUET_SUFFIXES:
        df = pd.read_parquet(p)
        df.index = pd.RangeIndex(2, len(df) + 2, name=LINE)
    else:
        df = _read_csv(p, encoding, sep)
    if df.empty:
        raise FileFormatError(f"{p}: has a header but no data rows")
    return apply_mapping(df, mapping, source=str(p)) if mapping else df


def _decode(p: Path, raw: bytes, encoding: str | None) -> str:
    """Decode file bytes, explaining a non-UTF-8 file and what encoding to pass."""
    if encoding is not None:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise FileFormatError(f"{p}: unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise FileFormatError(
                f"{p}: cannot be read as {encoding}: byte 0x{raw[exc.start]:02x} on line {line}"
            ) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileFormatError(
            f"{p}: is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; "
            "pass encoding='utf-16' (--encoding utf-16 on the command line) or save it as UTF-8"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        end = raw.find(b"\n", exc.start)
        snippet = raw[start : end if end >= 0 else len(raw)][:80].decode("cp1252", "replace")
        raise FileFormatError(
            f"{p}: is not UTF-8: byte 0x{raw[exc.start]:02x} on line {line} "
            f"({snippet.strip()!r} when read as Windows-1252). It looks like Windows-1252 or "
            "Latin-1 (what Excel saves as 'CSV'); pass encoding='cp1252' (or 'latin-1'; "
            "--encoding cp1252 on the command line), or save the file as 'CSV UTF-8'"
        ) from None


def _read_csv(p: Path, encoding: str | None, sep: str | None) -> pd.DataFrame:
    """Read a delimited text file into stripped string cells indexed by line number."""
    raw = p.read_bytes()
    if not raw.strip():
        raise FileFormatError(f"{p}: is empty (no header, no rows)")
    text = _decode(p, raw, encoding)
    if not text.strip().strip("\ufeff"):
        raise FileFormatError(f"{p}: is empty (no header, no rows)")
    header_line = text.split("\n", 1)[0]
    if sep is None:
        sep = "\t" if p.suffix.lower() == ".tsv" else _guess_sep(header_line)
    header = next(csv.reader([header_line], delimiter=sep)) if len(sep) == 1 else None
    if header is not None:
        names = [h.strip() for h in header]
        dups = sorted({h for h in names if names.count(h) > 1})
        if dups:
            raise FileFormatError(
                f"{p}: column(s) {', '.join(map(repr, dups))} appear more than once in the header"
            )
        if any(not h for h in names):
            pos = [i + 1 for i, h in enumerate(names) if not h]
            raise FileFormatError(f"{p}: header column(s) {pos} have no name")
    try:
        df = pd.read_csv(
            _io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            engine="c" if len(sep) == 1 else "python",
        )
    except pd.errors.ParserError as exc:
        raise FileFormatError(f"{p}: is not a readable CSV file: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    lines = _line_numbers(text, sep, len(df))
    df.index = pd.Index(lines, name=LINE)
    df = _strip_cells(df)
    return df.loc[~df.isna().all(axis=1)]  # blank lines


def _guess_sep(header: str) -> str:
    """Pick the separator that splits the header most: comma, semicolon or tab."""
    counts = {s: header.count(s) for s in (",", ";", "\t")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def _line_numbers(text: str, sep: str, n: int) -> np.ndarray:
    """Return the line on which each record starts; exact also when quoted cells span lines."""
    physical = text.count("\n") + (0 if text.endswith("\n") else 1)
    if physical == n + 1 or '"' not in text or len(sep) != 1:
        return np.arange(2, n + 2)
    starts = []
    reader = csv.reader(_io.StringIO(text), delimiter=sep)
    prev_end = reader.line_num
    for _ in reader:
        starts.append(prev_end + 1)
        prev_end = reader.line_num
    starts = starts[1:]  # header
    if len(starts) != n:  # the csv module and pandas disagree: fall back to record numbers
        return np.arange(2, n + 2)
    return np.asarray(starts)


def _strip_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Strip surrounding blanks from text cells; blank cells become missing."""
    out = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
            st = s.str.strip()
            s = st.where(st != "")
        elif s.dtype == object:
            s = s.map(lambda v: (v.strip() or None) if isinstance(v, str) else v)
        out[c] = s
    return pd.DataFrame(out, index=df.index)


def _read_excel(p: Path, sheet: str | int | None) -> pd.DataFrame:
    """Read one Excel sheet; row numbers are the spreadsheet's row numbers."""
    try:
        book = pd.ExcelFile(p)
    except Exception as exc:
        raise FileFormatError(f"{p}: is not a readable Excel file: {exc}") from None
    with book:
        if sheet is not None and sheet not in book.sheet_names and not isinstance(sheet, int):
            raise FileFormatError(
                f"{p}: has no sheet {sheet!r}; sheets: {', '.join(map(str, book.sheet_names))}"
            )
        df = pd.read_excel(book, sheet_name=sheet if sheet is not None else 0, dtype=object)
    if df.shape[1] == 0:
        raise FileFormatError(f"{p}: sheet {sheet or book.sheet_names[0]!r} is empty")
    names = [str(c).strip() for c in df.columns]
    unnamed = [i + 1 for i, c in enumerate(names) if c.startswith("Unnamed:")]
    if unnamed:
        raise FileFormatError(f"{p}: header column(s) {unnamed} have no name")
    df.columns = names
    df.index = pd.RangeIndex(2, len(df) + 2, name=LINE)
    df = _strip_cells(df)
    return df.loc[~df.isna().all(axis=1)]


def apply_mapping(
    df: pd.DataFrame, mapping: Mapping[str, str | None], *, source: str = "the data"
) -> pd.DataFrame:
    """Rename columns by ``{source column: entity column}``; ``None`` drops a column.

    Parameters
    ----------
    df
        The frame as read.
    mapping
        The renames. Columns not named keep their name.
    source
        What to call the data in error messages (a file name).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileFormatError
        If the mapping names absent columns or maps two columns to one field.

    """
    absent = [c for c in mapping if c not in df.columns]
    if absent:
        raise FileFormatError(
            f"{source}: the mapping names column(s) {', '.join(map(repr, absent))} that are not "
            f"in the data (columns: {', '.join(map(str, df.columns))})"
        )
    renamed = [mapping.get(c, c) for c in df.columns]
    kept = [n for n in renamed if n is not None]
    dups = sorted({n for n in kept if kept.count(n) > 1})
    if dups:
        raise FileFormatError(
            f"{source}: more than one column maps to {', '.join(map(repr, dups))}"
        )
    drop = [c for c in df.columns if c in mapping and mapping[c] is None]
    return df.drop(columns=drop).rename(columns={k: v for k, v in mapping.items() if v})


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
) -> ImportResult:
    """Import a CSV, Excel or Parquet file into one entity of the store.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    entity
        The entity to load, e.g. ``"deals"``.
    path
        The file; see :func:`read_table`.
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
        CSV file for the rejected rows, with their line numbers and reasons.
    changed_by
        Name recorded in the deal history.

    Returns
    -------
    ImportResult

    Raises
    ------
    ValidationError
        Listing every bad row (line number, field, reason), or missing required columns.
    FileFormatError
        For files that cannot be read, unmapped columns or a bad mapping.
    NotFoundError
        For an unknown entity.

    """
    _importable(entity)
    df = read_table(path, mapping=mapping, encoding=encoding, sheet=sheet)
    return import_frames(
        store,
        {entity: df},
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        source=str(path),
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

    Returns
    -------
    ImportResult

    """
    _importable(entity)
    if mapping:
        df = apply_mapping(df, mapping)
    return import_frames(
        store, {entity: df}, on_error=on_error, rejects_path=rejects_path, changed_by=changed_by
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

    Returns
    -------
    ImportResult

    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    order = [n for n in LOAD_ORDER if n in frames] + [n for n in frames if n not in LOAD_ORDER]
    specs = {name: _importable(name) for name in order}
    for name in order:
        _check_columns(specs[name], frames[name], source)
    several = len(order) > 1
    cache: dict[str, set] = {}
    pending: dict[str, set] = {}

    def known(ref: str) -> set:
        if ref not in cache:
            cache[ref] = store.known_keys(ref)
        return cache[ref] | pending[ref] if ref in pending else cache[ref]

    clean: dict[str, pd.DataFrame] = {}
    errors: list[RowError] = []
    rejects: list[pd.DataFrame] = []
    rejected: dict[str, int] = {}
    for name in order:
        df = frames[name]
        rows = _row_numbers(df)
        res = validate(name, df, known_keys=known, row_numbers=rows)
        column_errors = [e for e in res.errors if e.row is None]
        if column_errors:
            raise ValidationError(name, column_errors)
        clean[name] = res.clean
        key = list(specs[name].key)
        if set(key) <= set(res.clean.columns) and res.clean[key].notna().all(axis=None):
            vals = res.clean[key]
            pending[name] = set(vals.iloc[:, 0]) if len(key) == 1 else set(map(tuple, vals.values))
        named = [_tag(e, name) for e in res.errors] if several else res.errors
        errors.extend(named)
        rejected[name] = len(res.bad_rows)
        if res.bad_rows:
            rejects.append(_reject_frame(name, df, rows, res.bad_rows, res.errors, several))
    label = ", ".join(order)
    if errors and on_error == "raise":
        raise ValidationError(label, errors)
    out_path = None
    if rejects_path is not None and errors:
        out_path = Path(rejects_path)
        pd.concat(rejects, ignore_index=True).to_csv(out_path, index=False)
    written = store.insert_many(clean, changed_by=changed_by, validate=False)
    return ImportResult(
        written=dict(written),
        rejected={k: v for k, v in rejected.items() if v},
        errors=errors,
        warnings=list(warnings),
        rejects_path=out_path,
    )


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


# ---------------------------------------------------------------------- exporting
def export(store, entity: str, path: PathLike) -> int:
    """Write every row of an entity to CSV or Parquet, chosen by the file suffix.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    entity
        Entity name.
    path
        A ``.csv`` or ``.parquet`` file; it is overwritten.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    FileFormatError
        For another suffix.
    NotFoundError
        For an unknown entity.

    """
    if entity not in ENTITIES:
        raise NotFoundError(f"unknown entity {entity!r}; entities: {', '.join(sorted(ENTITIES))}")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", *PARQUET_SUFFIXES):
        raise FileFormatError(f"{p}: export writes .csv or .parquet files, not {suffix!r}")
    spec = ENTITIES[entity]
    df = store.read(entity)
    df = df[[c for c in spec.column_names if c in df.columns]]
    if suffix == ".csv":
        out = df.copy()
        for c in spec.columns:
            if c.kind == "date":
                out[c.name] = out[c.name].dt.strftime("%Y-%m-%d")
            elif c.kind == "datetime":
                out[c.name] = out[c.name].map(_datetime_text, na_action="ignore")
        out.to_csv(p, index=False, encoding="utf-8")
    else:
        df.to_parquet(p, index=False)
    return len(df)


def _datetime_text(ts: pd.Timestamp) -> str:
    """Format a timestamp as ISO text, without the time when it is midnight."""
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat(sep=" ")
