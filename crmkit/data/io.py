"""Import CSV and Excel with a column mapping and row-level error reports; export CSV/Parquet.

Every import goes through one path: read the file (:func:`read_table`), rename its
columns (a mapping), validate every row with :func:`crmkit.store.validation.validate`
against the store and the other frames loaded with it, then write in one transaction.
Nothing is written when any row is bad, unless ``on_error="skip"``: then the good rows
are written and the rejected ones go, with their reasons, to ``rejects_path``.
Row numbers in reports are the file's line numbers (the header is line 1).

Nothing is guessed: a CSV record whose field count differs from the header's is refused
with its line number (never read as an index column or shifted); numbers must be finite
and money amounts below ``max_amount``; dates at most a year ahead unless ``allow_future``;
text holds no control characters; a binary file is refused before it is parsed.
"""

from __future__ import annotations

import codecs
import csv
import io as _io
import os
import re
import warnings as _warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError, CrmkitWarning, NotFoundError, RowError, ValidationError
from crmkit.store.schema import ENTITIES, LOAD_ORDER, Entity
from crmkit.store.validation import (
    BOOKKEEPING,
    MAX_AMOUNT,
    MAX_DAYS_AHEAD,
    ValidationResult,
    validate,
)

PathLike = str | os.PathLike[str]
#: Index name of frames whose index holds the source file's line numbers.
LINE = "line"
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: A text cell starting with one of these is a formula to a spreadsheet (OWASP CSV injection);
#: CSV export prefixes such cells with :data:`FORMULA_ESCAPE`.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMULA_ESCAPE = "'"
#: Characters of an offending value shown in error lines.
SHOWN_CHARS = 40
#: Column of the rejects file holding a record that could not be split into the header's fields.
RAW_RECORD = "record"
#: File signatures of common binary formats mistaken for CSV files.
_MAGIC = {
    b"\x89PNG": "PNG image",
    b"PK\x03\x04": "zip archive (an .xlsx workbook is one; save it as CSV or import the .xlsx)",
    b"\x1f\x8b": "gzip archive",
    b"%PDF": "PDF document",
    b"\xd0\xcf\x11\xe0": "legacy Office file (an .xls workbook?)",
    b"GIF8": "GIF image",
    b"\xff\xd8\xff": "JPEG image",
    b"PAR1": "Parquet file (name it .parquet)",
    b"SQLite format 3\x00": "SQLite database",
}
_CONTROL_CODES = frozenset([*range(0, 9), 11, 12, *range(14, 32), 127])
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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
            lines.extend(f"  {error_line(e)}" for e in self.errors[:10])
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
        CSV separator, one character; default guessed from the header (``,``, ``;`` or tab).

    Returns
    -------
    pandas.DataFrame
        Cells stripped of surrounding blanks, empty cells missing; the index (named
        ``"line"``) holds each row's line number in the file, the header being line 1.

    Raises
    ------
    FileFormatError
        For a missing, empty or binary file, an undecodable encoding (naming what was
        found and the ``encoding=`` to pass), a duplicated header, a record whose field
        count differs from the header's (naming its line), a quote that is not closed
        properly, or a mapping naming absent columns.

    """
    df, shape_errors = _read_table(path, encoding=encoding, sheet=sheet, sep=sep)
    if shape_errors:
        raise FileFormatError(
            f"{path}: {len(shape_errors)} record(s) do not have the header's fields: "
            + "; ".join(error_line(e) for e in shape_errors[:5])
            + ("; ..." if len(shape_errors) > 5 else "")
        )
    return apply_mapping(df, mapping, source=str(path)) if mapping else df


def _read_table(
    path: PathLike,
    *,
    encoding: str | None = None,
    sheet: str | int | None = None,
    sep: str | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Read a file; also return the CSV records refused for their field count."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such file")
    suffix = p.suffix.lower()
    shape_errors: list[RowError] = []
    if suffix in EXCEL_SUFFIXES:
        df = _read_excel(p, sheet)
    elif suffix in PARQUET_SUFFIXES:
        df = pd.read_parquet(p)
        df.index = pd.RangeIndex(2, len(df) + 2, name=LINE)
    else:
        df, shape_errors = _read_csv(p, encoding, sep)
    if df.empty and not shape_errors:
        raise FileFormatError(f"{p}: has a header but no data rows")
    return df, shape_errors


def _wide(encoding: str | None) -> bool:
    """Tell whether an encoding writes ASCII with NUL bytes (UTF-16, UTF-32)."""
    if encoding is None:
        return False
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return name.startswith(("utf-16", "utf-32"))


def _refuse_binary(p: Path, data: bytes | str) -> None:
    """Refuse a binary file (an image, an archive, a workbook) before parsing it as text.

    Binary: a known file signature, a NUL in the header line, or more than 5% control
    characters in the first 8 KiB. A stray control character in a text file is refused
    on its row by validation instead.
    """
    kind = None
    if isinstance(data, bytes):
        kind = next((k for m, k in _MAGIC.items() if data.startswith(m)), None)
        data = data[:65536].decode("latin-1")  # one character per byte: offsets stay
    head = data[:8192]
    nul = data.find("\x00")
    first_break = _LINE_BREAK.search(data)
    header_end = first_break.start() if first_break else len(data)
    ctrl = [i for i, ch in enumerate(head) if _is_control(ch)]
    dense = len(ctrl) > 0.05 * max(len(head), 1)
    if kind is None and not dense and not (0 <= nul < header_end):
        return
    at = nul if nul >= 0 else (ctrl[0] if ctrl else 0)
    line = len(_LINE_BREAK.findall(data[:at])) + 1
    what = f"NUL bytes at offset {at}" if nul >= 0 else f"control bytes from offset {at}"
    looks = f"; it looks like a {kind}" if kind else ""
    raise FileFormatError(f"{p}: is not a text CSV file: {what} (line {line}){looks}")


def _is_control(ch: int | str) -> bool:
    """Tell whether a byte or character is a control one other than tab and line breaks."""
    return (ch if isinstance(ch, int) else ord(ch)) in _CONTROL_CODES


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


def _read_csv(
    p: Path, encoding: str | None, sep: str | None
) -> tuple[pd.DataFrame, list[RowError]]:
    """Read a delimited text file into stripped string cells indexed by line number.

    Records whose field count differs from the header's are not in the frame; they are
    returned as errors on their line. No column is ever taken as an index.
    """
    raw = p.read_bytes()
    if not raw.strip():
        raise FileFormatError(f"{p}: is empty (no header, no rows)")
    bom = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    wide = _wide(encoding) or (encoding is None and bom)
    if not wide:
        _refuse_binary(p, raw)
    text = _decode(p, raw, encoding)
    if wide:
        _refuse_binary(p, text)
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise FileFormatError(f"{p}: is empty (no header, no rows)")
    header_line = _LINE_BREAK.split(text, maxsplit=1)[0]
    if sep is None:
        sep = "\t" if p.suffix.lower() == ".tsv" else _guess_sep(header_line)
    if len(sep) != 1:
        raise FileFormatError(f"{p}: the separator must be one character, not {sep!r}")
    records, starts = _records(p, text, sep)
    if not records[0]:
        raise FileFormatError(f"{p}: line 1 is blank; the first line must be the header")
    names = [h.strip() for h in records[0]]
    dups = sorted({h for h in names if names.count(h) > 1})
    if dups:
        raise FileFormatError(
            f"{p}: column(s) {', '.join(map(repr, dups))} appear more than once in the header"
        )
    if any(not h for h in names):
        pos = [i + 1 for i, h in enumerate(names) if not h]
        hint = " (a trailing separator?)" if pos == [len(names)] else ""
        raise FileFormatError(f"{p}: header column(s) {pos} have no name{hint}")
    width = len(names)
    body, lines = records[1:], starts[1:]
    shape_errors: list[RowError] = []
    if any(len(r) != width for r in body):
        keep_rows, keep_lines = [], []
        for rec, line in zip(body, lines, strict=True):
            if len(rec) == width:
                keep_rows.append(rec)
                keep_lines.append(line)
            elif any(f.strip() for f in rec):  # records of blanks are blank lines
                shape_errors.append(_shape_error(rec, line, width, sep))
        body, lines = keep_rows, keep_lines
    df = pd.DataFrame(body, columns=names, dtype="str") if body else _no_rows(names)
    df.index = pd.Index(np.asarray(lines, dtype="int64"), name=LINE)
    df = _strip_cells(df)
    return df.loc[~df.isna().all(axis=1)], shape_errors  # blank lines


def _no_rows(names: list[str]) -> pd.DataFrame:
    """An empty frame of text columns."""
    return pd.DataFrame({n: pd.Series([], dtype="str") for n in names})


def _records(p: Path, text: str, sep: str) -> tuple[list[list[str]], list[int]]:
    """Split text into records (quoted line breaks stay in their field) and their first lines."""
    stream = _io.StringIO(text, newline="")
    reader = csv.reader(stream, delimiter=sep, strict=True)
    try:
        records = list(reader)
    except csv.Error as exc:
        _quote_error(p, text, sep, exc)
    physical = len(_LINE_BREAK.findall(text)) + (0 if text.endswith(("\n", "\r")) else 1)
    if len(records) == physical:  # no record spans lines
        return records, list(range(1, len(records) + 1))
    starts = []
    reader = csv.reader(_io.StringIO(text, newline=""), delimiter=sep, strict=True)
    prev_end = 0
    for _ in reader:
        starts.append(prev_end + 1)
        prev_end = reader.line_num
    return records, starts


def _quote_error(p: Path, text: str, sep: str, exc: csv.Error) -> None:
    """Raise a one-line error for badly quoted text, naming the record's first line."""
    reader = csv.reader(_io.StringIO(text, newline=""), delimiter=sep, strict=True)
    prev_end = 0
    try:
        for _ in reader:
            prev_end = reader.line_num
    except csv.Error:
        pass
    line = prev_end + 1
    if "expected after" in str(exc):
        why = (
            f"text follows a closing quote before the separator {sep!r}; inside a quoted "
            'value write a quote as ""'
        )
    else:
        why = "a quoted value starting in this record is never closed"
    shown_line = _LINE_BREAK.split(text)[line - 1] if line >= 1 else ""
    raise FileFormatError(f"{p}: line {line}: {why} (line {shown(shown_line)})") from None


def _shape_error(rec: list[str], line: int, width: int, sep: str) -> RowError:
    """The error of a record whose field count differs from the header's."""
    n = len(rec)
    if n > width and not any(f.strip() for f in rec[width:]):
        hint = "a trailing separator? the extra field(s) are empty"
    elif n > width:
        hint = f"a value holding {sep!r} without quotes, or a decimal comma?"
    else:
        hint = "a missing separator, or a quoted line break?"
    reason = f"has {n} fields but the header has {width} ({hint})"
    return RowError(line, None, reason, sep.join(rec))


def _guess_sep(header: str) -> str:
    """Pick the separator that splits the header most: comma, semicolon or tab."""
    counts = {s: header.count(s) for s in (",", ";", "\t")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


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
        # legacy .xls through calamine (a declared dependency): pandas' default, xlrd, is deprecated
        book = pd.ExcelFile(p, engine="calamine" if p.suffix.lower() == ".xls" else None)
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
    df, shape_errors = _read_table(path, encoding=encoding, sheet=sheet)
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

    def run(self, name: str, df: pd.DataFrame, known, rows: np.ndarray) -> ValidationResult:
        """Validate one frame with these settings."""
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
        res = checks.run(name, df, known, rows)
        column_errors = [e for e in res.errors if e.row is None]
        if column_errors:
            raise ValidationError(name, column_errors)
        clean[name] = res.clean
        key = list(specs[name].key)
        if set(key) <= set(res.clean.columns) and res.clean[key].notna().all(axis=None):
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


# ---------------------------------------------------------------------- messages
def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """Show a value in a message: its text cut to ``limit`` characters, quoted and escaped.

    Parameters
    ----------
    value
        Any value; text is shown as Python writes it, control characters escaped.
    limit
        Characters kept before ``...``.

    Returns
    -------
    str

    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def error_line(e: RowError) -> str:
    """One line for a bad value: row, field, reason and the offending value (shortened).

    Parameters
    ----------
    e
        The problem.

    Returns
    -------
    str
        E.g. ``row 3 amount: not a number (value '12k')``.

    """
    where = f"row {e.row}" if e.row is not None else "file"
    field_ = f" {e.field}" if e.field else ""
    value = ""
    if e.value is not None:
        text = shown(e.value)
        if text not in e.reason:
            value = f" (value {text})"
    return f"{where}{field_}: {e.reason}{value}"


# ---------------------------------------------------------------------- exporting
def export(store, entity: str, path: PathLike, *, raw: bool = False) -> int:
    """Write every row of an entity to CSV or Parquet, chosen by the file suffix.

    CSV text cells beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    are read by spreadsheets as formulas (CSV injection); they are written with a leading
    ``'`` (the OWASP recommendation) unless ``raw``. Numbers, e.g. negative amounts, are
    not text cells and are written as they are; Parquet is written as stored.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    entity
        Entity name.
    path
        A ``.csv`` or ``.parquet`` file; it is overwritten.
    raw
        Write CSV text cells exactly as stored (for files read back by programs, not
        opened in a spreadsheet).

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
            elif c.kind in ("str", "text", "json") and not raw:
                out[c.name] = out[c.name].map(_formula_safe, na_action="ignore")
        # CRLF line ends (RFC 4180): the csv writer then quotes a text holding a lone
        # carriage return, which it writes bare with "\n" line ends (a broken record)
        out.to_csv(p, index=False, encoding="utf-8", lineterminator="\r\n")
    else:
        df.to_parquet(p, index=False)
    return len(df)


def _formula_safe(v: object) -> object:
    """Prefix text a spreadsheet would run as a formula with ``'``."""
    if isinstance(v, str) and v.startswith(FORMULA_PREFIXES):
        return FORMULA_ESCAPE + v
    return v


def _datetime_text(ts: pd.Timestamp) -> str:
    """Format a timestamp as ISO text, without the time when it is midnight."""
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat(sep=" ")
