"""Reading files strictly: field-count mismatches named by line, one-line error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmkit.data.reading import FileFormatError, error_line, read_table
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
