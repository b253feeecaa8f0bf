"""Fuzzing the CSV import: every malformed file is refused with a line number, or imported exactly.

Hypothesis writes accounts and deals files (separators, line endings, quoting, encodings,
surrounding blanks, any Unicode text) and corrupts some of them: a record with a field
more or less than the header, a quote never closed, a non-UTF-8 file read as UTF-8, a
non-finite, huge or decimal-comma amount, a control character in a text field. The property:

- a corrupted file is refused, with a line number in the error (a ``ValidationError``'s
  rows, or a ``FileFormatError``'s message), and the database file is byte-for-byte unchanged;
- a clean file is imported exactly: reading the rows back gives what was written (text
  stripped of surrounding blanks, as documented).

Runs are derandomized (the same examples every time) so CI is reproducible.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io as _io
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.data import io
from crmkit.data.reading import FileFormatError
from crmkit.errors import ValidationError
from crmkit.store import Store
from tests.factories import small_company

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TODAY = dt.date.today()
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
STAGES = ["Qualification", "Discovery", "Proposal", "Negotiation"]
ACCOUNTS = ["A1", "A2", "A3"]


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the factory company, closed (nothing pending in a WAL)."""
    path = tmp_path_factory.mktemp("fuzz") / "base.db"
    with Store.open(path) as s:
        s.insert_many(small_company())
    return path


def digest(path: Path) -> str:
    """SHA-256 of a database file and of its write-ahead log, if any is left."""
    h = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        h.update(wal.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- generating files
text_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)
plain_value = st.text(alphabet=st.sampled_from("abcXYZ ü-'.,;\"é"), min_size=1, max_size=10)
day = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY + dt.timedelta(days=365))
moment = st.one_of(
    day.map(lambda d: (d.isoformat(), pd.Timestamp(d))),
    st.tuples(day, st.times()).map(
        lambda dtm: (
            f"{dtm[0].isoformat()} {dtm[1].strftime('%H:%M:%S')}",
            pd.Timestamp.combine(dtm[0], dtm[1].replace(microsecond=0)),
        )
    ),
)
amount = st.one_of(
    st.integers(0, 10**12).map(lambda n: (str(n), float(n))),
    st.floats(0, 1e12, allow_nan=False, allow_infinity=False).map(lambda f: (repr(f), f)),
)
CORRUPTIONS = [
    "none",
    "extra field",
    "extra empty field",
    "missing field",
    "unclosed quote",
    "control character",
    "not utf-8",
    "non-finite amount",
    "huge amount",
    "decimal comma",
]


@dataclass
class Case:
    """A file to import: header, rows (cells as written), expected values and corruption."""

    entity: str
    header: list[str]
    rows: list[list[str]]
    expected: list[dict[str, object]]
    sep: str
    newline: str
    encoding: str
    corruption: str = "none"
    broken_row: int = 0
    raw_lines: list[str] = field(default_factory=list)
    bytes_: bytes = b""
    read_encoding: str | None = None


def blanks(draw: st.DrawFn, value: str) -> str:
    """Surround a cell with blanks sometimes (the importer strips them)."""
    return draw(st.sampled_from(["", " ", "  "])) + value + draw(st.sampled_from(["", " "]))


@st.composite
def cases(draw: st.DrawFn, entity: str, kind: str) -> Case:
    """An accounts or deals CSV file with one corruption of the given kind (or none)."""
    n = draw(st.integers(1, 6))
    ids = draw(st.lists(st.integers(0, 9999), min_size=n, max_size=n, unique=True))
    texts = draw(st.lists(st.one_of(text_value, plain_value), min_size=n, max_size=n))
    texts = [CONTROL.sub("", t) for t in texts]
    texts = [t if t.strip() else t + "x" for t in texts]
    if kind == "unclosed quote":  # another quote in the file could close it: a valid CSV
        texts = [t.replace('"', "") or "x" for t in texts]
    elif kind == "not utf-8":  # text whose Windows-1252 bytes are not UTF-8
        texts[0] += "é"
    rows, expected = [], []
    for i, k in enumerate(ids):
        when_text, when = draw(moment)
        if entity == "accounts":
            key = f"X{k}"
            rows.append([key, blanks(draw, texts[i]), blanks(draw, when_text)])
            expected.append({"account_id": key, "name": texts[i].strip(), "created_at": when})
        else:
            key = f"N{k}"
            account = draw(st.sampled_from([*ACCOUNTS, ""]))
            stage = draw(st.sampled_from(STAGES))
            amount_text, value = draw(amount)
            rows.append(
                [key, account, blanks(draw, texts[i]), stage, "open", amount_text, when_text]
            )
            expected.append(
                {
                    "deal_id": key,
                    "account_id": account or None,
                    "owner": texts[i].strip(),
                    "stage": stage,
                    "amount": value,
                    "created_at": when,
                }
            )
    header = (
        ["account_id", "name", "created_at"]
        if entity == "accounts"
        else ["deal_id", "account_id", "owner", "stage", "status", "amount", "created_at"]
    )
    case = Case(
        entity,
        header,
        rows,
        expected,
        sep=draw(st.sampled_from([",", ";", "\t"])),
        newline=draw(st.sampled_from(["\n", "\r\n"])),
        encoding=draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"])),
    )
    corrupt(draw, case, kind)
    return case


def corrupt(draw: st.DrawFn, case: Case, kind: str) -> None:
    """Apply one corruption (or none) to a case, then render its bytes."""
    i = draw(st.integers(0, len(case.rows) - 1))
    row = case.rows[i]
    text_col = 1 if case.entity == "accounts" else 2
    if kind == "extra field":
        row.append(draw(st.sampled_from(["x", "0", "2024-01-01", " y "])))
    elif kind == "extra empty field":
        row.append("")
    elif kind == "missing field":
        del row[draw(st.integers(0, len(row) - 1))]
    elif kind == "control character":
        ch = draw(st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\x9b"]))
        at = draw(st.integers(0, len(row[text_col])))
        row[text_col] = row[text_col][:at] + ch + "x" + row[text_col][at:]
    elif kind == "non-finite amount":
        row[5] = draw(st.sampled_from(["inf", "-inf", "nan", "NaN", "Infinity", "1e400"]))
    elif kind == "huge amount":
        row[5] = draw(st.sampled_from(["1e13", "1e308", "123456789012345", "9" * 40]))
    elif kind == "decimal comma":
        row[5] = draw(st.sampled_from(["1234,56", "0,5", "1.234,5"]))
    case.corruption, case.broken_row = kind, i
    render(case)
    if kind == "not utf-8":
        text = case.bytes_.decode(case.encoding)
        try:
            raw = text.encode("cp1252")
            raw.decode("utf-8")
        except UnicodeEncodeError:
            raw = None
        except UnicodeDecodeError:
            pass  # cp1252 bytes that are not UTF-8: the importer must say so
        else:
            raw = None  # cp1252 bytes that happen to be valid UTF-8: not this corruption
        if raw is None:
            case.corruption = "none"
        else:
            case.bytes_, case.encoding, case.read_encoding = raw, "cp1252", None


def render(case: Case) -> None:
    """Write the rows with the csv module; an unclosed quote is spliced in as raw text."""
    buf = _io.StringIO()
    writer = csv.writer(buf, delimiter=case.sep, lineterminator=case.newline)
    writer.writerow(case.header)
    for j, row in enumerate(case.rows):
        if case.corruption == "unclosed quote" and j == case.broken_row:
            cells = [c.replace(case.sep, "") for c in row]
            cells[-1] = '"' + cells[-1]
            buf.write(case.sep.join(cells) + case.newline)
        else:
            writer.writerow(row)
    text = buf.getvalue()
    try:
        case.bytes_ = text.encode(case.encoding)
    except UnicodeEncodeError:
        case.encoding = "utf-8"
        case.bytes_ = text.encode("utf-8")
    case.read_encoding = None if case.encoding in ("utf-8", "utf-8-sig") else case.encoding


# ---------------------------------------------------------------------- the property
def check(base_db: Path, case: Case) -> None:
    """Import the case into a copy of the base database and check the property."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "crm.db"
        shutil.copyfile(base_db, db)
        before = digest(db)
        path = Path(tmp) / f"{case.entity}.csv"
        path.write_bytes(case.bytes_)
        store = Store.open(db)
        try:
            try:
                io.import_file(store, case.entity, path, encoding=case.read_encoding)
            except ValidationError as exc:
                refused = "rows: " + ", ".join(str(e.row) for e in exc.errors)
                assert exc.errors and all(e.row is not None and e.row >= 2 for e in exc.errors)
            except FileFormatError as exc:
                refused = str(exc)
                assert re.search(r"line \d+", refused), refused
            else:
                refused = ""
                assert case.corruption == "none", f"{case.corruption} was imported"
                check_read_back(store, case)
        finally:
            store.close()
        if refused:
            assert case.corruption != "none", f"a clean file was refused: {refused}"
            assert digest(db) == before, "a refused import changed the database file"


def check_read_back(store: Store, case: Case) -> None:
    """The imported rows read back as written."""
    key = case.header[0]
    got = store.read(case.entity, where={key: [e[key] for e in case.expected]})
    got = got.set_index(key)
    assert len(got) == len(case.expected)
    for e in case.expected:
        row = got.loc[e[key]]
        for col, value in e.items():
            if col == key:
                continue
            have = row[col]
            if value is None:
                assert have is None or pd.isna(have), (col, have)
            else:
                assert have == value, (col, have, value)


AMOUNT_CORRUPTIONS = ("non-finite amount", "huge amount", "decimal comma")


@pytest.mark.parametrize("kind", [k for k in CORRUPTIONS if k not in AMOUNT_CORRUPTIONS])
def test_fuzzed_accounts_files_are_refused_with_a_line_or_imported_exactly(
    base_db: Path, kind: str
) -> None:
    @SETTINGS
    @given(case=cases("accounts", kind))
    def run(case: Case) -> None:
        check(base_db, case)

    run()


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_fuzzed_deals_files_are_refused_with_a_line_or_imported_exactly(
    base_db: Path, kind: str
) -> None:
    @SETTINGS
    @given(case=cases("deals", kind))
    def run(case: Case) -> None:
        check(base_db, case)

    run()
