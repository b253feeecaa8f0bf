"""Read CSV, Excel and Parquet files strictly, as text cells indexed by the file's line numbers.

Nothing is guessed: a CSV record whose field count differs from the header's is refused
with its line number (never read as an index column or shifted); a binary file is refused
before it is parsed; an undecodable file names the ``encoding=`` to pass. Also here: the
column mapping applied to what was read, and the one-line messages of bad values
(:func:`error_line`) that every import report uses.
"""

from __future__ import annotations

import codecs
import csv
import io as _io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from crmkit.errors import CrmkitError, RowError

PathLike = str | os.PathLike[str]
#: Index name of frames whose index holds the source file's line numbers.
LINE = "line"
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Characters of an offending value shown in error lines.
SHOWN_CHARS = 40
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
    df, shape_errors = read_table_with_errors(path, encoding=encoding, sheet=sheet, sep=sep)
    if shape_errors:
        raise FileFormatError(
            f"{path}: {len(shape_errors)} record(s) do not have the header's fields: "
            + "; ".join(error_line(e) for e in shape_errors[:5])
            + ("; ..." if len(shape_errors) > 5 else "")
        )
    return apply_mapping(df, mapping, source=str(path)) if mapping else df


def read_table_with_errors(
    path: PathLike,
    *,
    encoding: str | None = None,
    sheet: str | int | None = None,
    sep: str | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Read a file like :func:`read_table`, returning instead of raising the misshapen records.

    Parameters
    ----------
    path
        A ``.csv`` (or ``.tsv``/``.txt``), ``.xlsx``/``.xls`` or ``.parquet`` file.
    encoding, sheet, sep
        As in :func:`read_table`.

    Returns
    -------
    pandas.DataFrame
        The well-formed rows, as :func:`read_table` gives them (no mapping applied).
    list of RowError
        The CSV records whose field count differs from the header's, on their line, with
        the record as read for their value.

    Raises
    ------
    FileFormatError
        As :func:`read_table`, except for field-count mismatches.

    """
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
    # the file's own bytes when they are the text's UTF-8 (no second copy of a big file)
    data = None
    if not wide and (encoding is None or codecs.lookup(encoding).name == "utf-8"):
        skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
        head = header_line.encode("utf-8")
        if raw[skip : skip + len(head)] == head:
            data = pa.py_buffer(raw).slice(skip)
    fast = _read_simple(text, sep, header_line, data)
    if fast is not None:
        records, starts = [next(csv.reader([header_line], delimiter=sep, strict=True))], [1]
    else:
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
    if fast is not None:
        return fast, []
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


def _read_simple(
    text: str, sep: str, header_line: str, data: pa.Buffer | None = None
) -> pd.DataFrame | None:
    """Read a plain file with Arrow's CSV parser; None when the file needs the careful reader.

    Plain: no quote, carriage return or NUL anywhere, a header with no blank name, and every
    line (blank ones too) holding the header's field count, so each record is one line split
    at ``sep`` (what :mod:`csv` reads) and the row of line ``k`` is record ``k - 1``. Anything
    else (or a parse error) goes through :func:`_records`, which names lines and problems.
    ``data``, when given, is ``text`` encoded as UTF-8 (the file's bytes).
    """
    if any(ch in text for ch in ('"', "\r", "\x00")):
        return None
    names = [h.strip() for h in header_line.split(sep)]
    if len(set(names)) != len(names) or not all(names) or not header_line.strip():
        return None
    # fields are named by position; the header's own names are set afterwards
    cols = [f"c{i}" for i in range(len(names))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(text.encode("utf-8")) if data is None else data),
            read_options=pa_csv.ReadOptions(column_names=cols, skip_rows=1, use_threads=True),
            parse_options=pa_csv.ParseOptions(
                delimiter=sep, quote_char=False, escape_char=False, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(cols, pa.large_string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    physical = text.count("\n") + (0 if text.endswith("\n") else 1)
    if table.num_rows != physical - 1:
        return None
    lines = pd.Index(np.arange(2, table.num_rows + 2, dtype="int64"), name=LINE)
    columns = {
        name: pd.Series(table.column(c).cast(pa.string()).to_pandas().array, dtype="str")
        for name, c in zip(names, cols, strict=True)
    }
    df = pd.DataFrame(columns).set_axis(lines)
    if df.empty:
        df = _no_rows(names)
        df.index = pd.Index(np.asarray([], dtype="int64"), name=LINE)
    df = _strip_cells(df)
    return df.loc[~df.isna().all(axis=1)]


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
