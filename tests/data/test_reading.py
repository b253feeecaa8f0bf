"""Reading files strictly: field-count mismatches named by line, one-line error messages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crmkit.data import reading
from crmkit.data.reading import (
    FileFormatError,
    error_line,
    read_table,
    read_table_with_errors,
)
from crmkit.errors import RowError


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_read_table_refuses_a_field_count_mismatch_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ["a,b", "1,2", "3,4,5"])
    with pytest.raises(FileFormatError, match=r"row 3: has 3 fields but the header has 2"):
        read_table(path)


def test_error_lines_show_the_value_shortened_and_escaped() -> None:
    long = "x" * 100
    line = error_line(RowError(7, "name", "contains a control character", "a\x00b" + long))
    assert line.startswith("row 7 name: contains a control character (value 'a\\x00b")
    assert line.endswith("...)") and "\x00" not in line and len(line) < 120
    assert error_line(RowError(3, "amount", "not a number", "12k")) == (
        "row 3 amount: not a number (value '12k')"
    )


def _careful(path: Path, monkeypatch: pytest.MonkeyPatch):
    """Read a file with the line-by-line reader only (no Arrow fast path)."""
    with monkeypatch.context() as m:
        m.setattr(reading, "_read_simple", lambda *_args: None)
        return read_table_with_errors(path)


def test_plain_csv_read_fast_gives_the_careful_readers_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # blank cells, blanks around values, a row of blanks, non-ASCII text, a semicolon file
    path = write(
        tmp_path / "plain.csv",
        [" id ;name;amount", "A1; Zoë ;1,5", "A2;;  ", " ; ; ", "A3;x;-2"],
    )
    assert reading._read_simple(path.read_bytes().decode(), ";", " id ;name;amount") is not None
    fast, errors = read_table_with_errors(path)
    careful, careful_errors = _careful(path, monkeypatch)
    assert errors == careful_errors == []
    pd.testing.assert_frame_equal(fast, careful, check_exact=True)
    assert fast.index.tolist() == [2, 3, 5]  # the row of blanks (line 4) is not a row
    assert fast.loc[2, "name"] == "Zoë" and pd.isna(fast.loc[3, "name"])


def test_one_column_plain_csv_with_blank_lines_keeps_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "one.csv", ["id", "a", "", "b", "   ", "c"])
    fast, _ = read_table_with_errors(path)
    careful, _ = _careful(path, monkeypatch)
    pd.testing.assert_frame_equal(fast, careful, check_exact=True)
    assert fast["id"].tolist() == ["a", "b", "c"] and fast.index.tolist() == [2, 4, 6]


def test_plain_csv_misshapen_record_is_still_named_by_its_line(tmp_path: Path) -> None:
    rows = ["a,b", *[f"{i},x" for i in range(1000)]]
    rows[500] = "7,x,extra"  # line 501
    rows[800] = ""  # a blank line in a 2-column file
    path = write(tmp_path / "big.csv", rows)
    df, errors = read_table_with_errors(path)
    assert [(e.row, e.reason.split(" (")[0]) for e in errors] == [
        (501, "has 3 fields but the header has 2")
    ]
    assert len(df) == 998 and 501 not in df.index and df.loc[502, "a"] == "500"
    with pytest.raises(FileFormatError, match=r"row 501: has 3 fields"):
        read_table(path)


def test_quoted_or_crlf_csv_goes_through_the_careful_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quoted = tmp_path / "q.csv"
    quoted.write_bytes(b'id,note\nA1,"two\nlines"\nA2,"a ""b"""\n')
    crlf = tmp_path / "w.csv"
    crlf.write_bytes(b"id,note\r\nA1,x\r\nA2,y\r\n")
    for path in (quoted, crlf):
        assert reading._read_simple(path.read_bytes().decode(), ",", "id,note") is None
        df, _ = read_table_with_errors(path)
        pd.testing.assert_frame_equal(df, _careful(path, monkeypatch)[0], check_exact=True)
    assert read_table(quoted).loc[4, "note"] == 'a "b"'  # the record of line 4
    assert read_table(crlf)["note"].tolist() == ["x", "y"]


def test_plain_csv_with_a_duplicated_header_is_refused_as_before(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", ["a,b,a", "1,2,3"])
    with pytest.raises(FileFormatError, match=r"column\(s\) 'a' appear more than once"):
        read_table(path)


def test_plain_csv_with_a_bom_or_in_cp1252_reads_as_the_careful_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,name\nA1,Zo\xc3\xab\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,name\nA1,Zo\xeb\n")
    taken = []
    simple = reading._read_simple
    monkeypatch.setattr(reading, "_read_simple", lambda *a: taken.append(simple(*a)) or taken[-1])
    for path, encoding in ((bom, None), (latin, "cp1252")):
        fast, _ = read_table_with_errors(path, encoding=encoding)
        with monkeypatch.context() as m:
            m.setattr(reading, "_read_simple", lambda *_args: None)
            careful, _ = read_table_with_errors(path, encoding=encoding)
        pd.testing.assert_frame_equal(fast, careful, check_exact=True)
        assert fast.columns.tolist() == ["id", "name"] and fast.loc[2, "name"] == "Zoë"
    assert len(taken) == 2 and all(df is not None for df in taken)  # both read fast


def test_plain_csv_without_a_final_line_break_keeps_its_last_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "end.csv"
    path.write_bytes(b"id,amount\nA1,1\nA2,2")
    assert reading._read_simple(path.read_bytes().decode(), ",", "id,amount") is not None
    fast, _ = read_table_with_errors(path)
    pd.testing.assert_frame_equal(fast, _careful(path, monkeypatch)[0], check_exact=True)
    assert fast.loc[3, "amount"] == "2"
