"""Import: CSV, Excel and mappings into the store; bad input leaves the store unchanged."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmkit.data import io
from crmkit.data.mappings import import_cdnow, import_maven
from crmkit.data.reading import FileFormatError
from crmkit.errors import CrmkitWarning, NotFoundError, ValidationError
from crmkit.store import Store
from tests.conftest import shared_dataset
from tests.factories import small_company

DEAL_HEADER = "deal_id,account_id,owner,stage,status,amount,created_at,closed_at"
GOOD_DEALS = [
    "N1,A1,ann,Proposal,open,1000,2024-05-01,",
    "N2,A2,bob,Discovery,won,250.5,2024-05-02,2024-06-01",
]


@pytest.fixture
def store(store: Store) -> Store:
    """The conftest store (a SQLite file, and PostgreSQL in CI) holding the factory company."""
    store.insert_many(small_company())
    return store


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def state(store: Store) -> dict[str, object]:
    """Everything a failed import must not change: counts and the deals and orders tables."""
    return {
        "counts": store.counts(),
        "deals": store.read("deals").drop(columns="updated_at"),
        "orders": store.read("orders"),
    }


def assert_unchanged(store: Store, before: dict[str, object]) -> None:
    after = state(store)
    assert after["counts"] == before["counts"]
    pd.testing.assert_frame_equal(after["deals"], before["deals"])
    pd.testing.assert_frame_equal(after["orders"], before["orders"])


# ---------------------------------------------------------------------- happy paths
def test_csv_import_writes_typed_rows_and_deal_history(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, *GOOD_DEALS])
    result = io.import_file(store, "deals", path)
    assert result.written == {"deals": 2} and result.rows_rejected == 0
    new = store.read("deals", where={"deal_id": ["N1", "N2"]}).set_index("deal_id")
    assert new.loc["N2", "amount"] == 250.5
    assert new.loc["N2", "closed_at"] == pd.Timestamp("2024-06-01")
    assert new.loc["N1", "pipeline"] == "default"  # schema default
    hist = store.read("deal_history", where={"deal_id": ["N1", "N2"]})
    assert set(hist["changed_by"]) == {"import"} and hist["old_value"].isna().all()


def test_mapping_renames_and_drops_columns(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "crm.csv",
        ["Opportunity;Customer;Rep;Stage;Status;Value;Opened;Closed;Notes"]
        + [line.replace(",", ";") + ";x" for line in GOOD_DEALS],
    )
    mapping = {
        "Opportunity": "deal_id",
        "Customer": "account_id",
        "Rep": "owner",
        "Stage": "stage",
        "Status": "status",
        "Value": "amount",
        "Opened": "created_at",
        "Closed": "closed_at",
        "Notes": None,
    }
    result = io.import_file(store, "deals", path, mapping=mapping)
    assert result.written == {"deals": 2}
    assert store.read("deals", where={"deal_id": "N1"})["owner"].iloc[0] == "ann"


def test_excel_import_with_sheet_and_mapping(store: Store, tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            "Id": [1001, 1002],
            "Company": ["Umbrella", "Hooli"],
            "Since": [pd.Timestamp("2020-01-01"), pd.Timestamp("2021-06-15")],
        }
    )
    path = tmp_path / "accounts.xlsx"
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame({"x": [1]}).to_excel(xl, sheet_name="notes", index=False)
        rows.to_excel(xl, sheet_name="customers", index=False)
    mapping = {"Id": "account_id", "Company": "name", "Since": "created_at"}
    result = io.import_file(store, "accounts", path, sheet="customers", mapping=mapping)
    assert result.written == {"accounts": 2}
    got = store.read("accounts", where={"account_id": ["1001", "1002"]})
    assert list(got["name"]) == ["Umbrella", "Hooli"]
    assert got["created_at"].iloc[1] == pd.Timestamp("2021-06-15")


def test_excel_bad_row_reports_the_spreadsheet_row(store: Store, tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {"account_id": ["X1", "X2"], "name": ["a", "b"], "created_at": ["2020-01-01", "2020-13-01"]}
    )
    path = tmp_path / "accounts.xlsx"
    rows.to_excel(path, index=False)
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "accounts", path)
    assert [(e.row, e.field) for e in exc.value.errors] == [(3, "created_at")]
    assert_unchanged(store, before)


def test_excel_missing_sheet_is_named(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    pd.DataFrame({"account_id": ["X"]}).to_excel(path, index=False, sheet_name="one")
    with pytest.raises(FileFormatError, match="no sheet 'two'; sheets: one"):
        io.import_file(store, "accounts", path, sheet="two")


def test_blank_cells_spaces_blank_lines_and_bom(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(
        "\ufeffaccount_id , name,created_at,segment\n"
        "X1,  Zeta  ,2024-01-01,\n"
        "\n"
        "X2,Eta,2024-01-02, SMB \n".encode()
    )
    io.import_file(store, "accounts", path)
    got = store.read("accounts", where={"account_id": ["X1", "X2"]}).set_index("account_id")
    assert got.loc["X1", "name"] == "Zeta" and got.loc["X1", "segment"] is None
    assert got.loc["X2", "segment"] == "SMB"


def test_line_numbers_count_blank_lines_and_quoted_newlines(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('account_id,name,created_at\nX1,"two\nlines",2024-01-01\n\nX2,ok,2024-02-30\n')
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "accounts", path)
    assert [(e.row, e.field) for e in exc.value.errors] == [(5, "created_at")]


def test_import_frame_takes_the_same_path(store: Store) -> None:
    df = pd.DataFrame({"order_id": ["P1", "P2"], "account_id": ["A1", "A9"]}).assign(
        ordered_at="2024-06-01", amount=[5.0, 6.0]
    )
    with pytest.raises(ValidationError) as exc:
        io.import_frame(store, "orders", df)
    assert [(e.row, e.field) for e in exc.value.errors] == [(2, "account_id")]
    result = io.import_frame(store, "orders", df.iloc[:1])
    assert result.written == {"orders": 1}


# ---------------------------------------------------------------------- bad input
BAD_DEALS = {
    "wrong type": ("N1,A1,ann,Proposal,open,lots,2024-05-01,", 2, "amount", "not a number"),
    "unparseable date": ("N1,A1,ann,Proposal,open,1,1st May,", 2, "created_at", "unparseable"),
    "impossible date": ("N1,A1,ann,Proposal,open,1,2023-02-30,", 2, "created_at", "impossible"),
    "date before 1900": ("N1,A1,ann,Proposal,open,1,1850-01-01,", 2, "created_at", "1900"),
    "negative amount": ("N1,A1,ann,Proposal,open,-10,2024-05-01,", 2, "amount", "negative"),
    "unknown stage": ("N1,A1,ann,Closing,open,1,2024-05-01,", 2, "stage", "unknown stage"),
    "bad status": ("N1,A1,ann,Proposal,pending,1,2024-05-01,", 2, "status", "one of"),
    "missing account": ("N1,A404,ann,Proposal,open,1,2024-05-01,", 2, "account_id", "not found"),
    "duplicate of stored": (
        "D1,A1,ann,Proposal,open,1,2024-05-01,",
        2,
        "deal_id",
        "already exists",
    ),
    "missing value": ("N1,A1,,Proposal,open,1,2024-05-01,", 2, "owner", "required value missing"),
    "won without closed_at": ("N1,A1,ann,Proposal,won,1,2024-05-01,", 2, "closed_at", "required"),
}


@pytest.mark.parametrize("case", list(BAD_DEALS))
def test_bad_row_is_reported_and_nothing_is_written(
    store: Store, tmp_path: Path, case: str
) -> None:
    line, row, field, reason = BAD_DEALS[case]
    # a good row first, so the bad one is on line 3 of the file
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, GOOD_DEALS[1], line])
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    errors = exc.value.errors
    assert [(e.row, e.field) for e in errors] == [(row + 1, field)]
    assert reason in errors[0].reason
    assert f"row {row + 1}" in str(exc.value)
    assert_unchanged(store, before)


def test_duplicate_ids_inside_the_file(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, GOOD_DEALS[0], GOOD_DEALS[1], GOOD_DEALS[0]])
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.reason) == (4, "deal_id", "duplicate deal_id 'N1' (first on row 2)")
    assert_unchanged(store, before)


def test_order_for_a_missing_deal(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "orders.csv",
        ["order_id,account_id,ordered_at,amount,deal_id", "P1,A1,2024-06-01,10,D404"],
    )
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "orders", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.reason) == (2, "deal_id", "deal_id 'D404' not found in deals")
    assert_unchanged(store, before)


def test_missing_required_columns_are_listed(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv", ["deal_id,account_id,stage", "N1,A1,Proposal"])
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path, on_error="skip")  # cannot be skipped
    assert [(e.row, e.field) for e in exc.value.errors] == [(None, "owner"), (None, "created_at")]
    assert "required column missing" in exc.value.errors[0].reason
    assert_unchanged(store, before)


def test_unmapped_columns_are_named_with_a_hint(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ["account_id,name,created_at,Revenue", "X,x,2024-01-01,5"])
    with pytest.raises(FileFormatError, match=r"'Revenue' are not fields of accounts.*None"):
        io.import_file(store, "accounts", path)
    assert io.import_file(store, "accounts", path, mapping={"Revenue": None}).written == {
        "accounts": 1
    }


def test_mapping_naming_an_absent_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ["account_id,name,created_at", "X,x,2024-01-01"])
    with pytest.raises(FileFormatError, match="'Nom' that are not in the data"):
        io.import_file(store, "accounts", path, mapping={"Nom": "name"})


def test_non_utf8_file_names_the_encoding_to_pass(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv", ["account_id,name,created_at", "X1,Müller GmbH,2024-01-01"], "cp1252"
    )
    before = state(store)
    with pytest.raises(FileFormatError) as exc:
        io.import_file(store, "accounts", path)
    msg = str(exc.value)
    assert "not UTF-8" in msg and "line 2" in msg and "encoding='cp1252'" in msg
    assert "Müller" in msg  # shows the line as it probably reads
    assert_unchanged(store, before)
    io.import_file(store, "accounts", path, encoding="cp1252")
    assert store.read("accounts", where={"account_id": "X1"})["name"].iloc[0] == "Müller GmbH"


def test_utf16_file_is_recognised(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("account_id,name,created_at\nX1,a,2024-01-01\n".encode("utf-16"))
    with pytest.raises(FileFormatError, match=r"UTF-16.*encoding=.utf-16."):
        io.import_file(store, "accounts", path)
    assert io.import_file(store, "accounts", path, encoding="utf-16").written == {"accounts": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"\n  \n", "is empty"), (b"account_id,name,created_at\n", "no data rows")],
)
def test_empty_files(store: Store, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(content)
    before = state(store)
    with pytest.raises(FileFormatError, match=message):
        io.import_file(store, "accounts", path)
    assert_unchanged(store, before)


def test_missing_file_and_unknown_or_internal_entities(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ["key,value", "a,1"])
    with pytest.raises(FileFormatError, match="no such file"):
        io.import_file(store, "accounts", tmp_path / "nope.csv")
    with pytest.raises(NotFoundError, match=r"unknown entity .customers.*accounts"):
        io.import_file(store, "customers", path)
    with pytest.raises(FileFormatError, match="meta cannot be imported"):
        io.import_file(store, "meta", path)


def test_duplicated_header_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ["account_id,name,name,created_at", "X,a,b,2024-01-01"])
    with pytest.raises(FileFormatError, match="'name' appear more than once"):
        io.import_file(store, "accounts", path)


def test_on_error_must_be_raise_or_skip(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, *GOOD_DEALS])
    with pytest.raises(ValueError, match="on_error"):
        io.import_file(store, "deals", path, on_error="ignore")


# ---------------------------------------------------------------------- skip with rejects
def test_skip_writes_good_rows_and_rejects_with_reasons(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "deals.csv",
        [
            DEAL_HEADER,
            GOOD_DEALS[0],
            "N3,A1,ann,Proposal,open,-1,2023-02-30,",
            GOOD_DEALS[1],
            "N4,A9,ann,Proposal,open,5,2024-05-01,",
        ],
    )
    rejects = tmp_path / "rejects.csv"
    n_before = store.count("deals")
    result = io.import_file(store, "deals", path, on_error="skip", rejects_path=rejects)
    assert result.written == {"deals": 2} and result.rejected == {"deals": 2}
    assert store.count("deals") == n_before + 2
    assert store.known_keys("deals") >= {"N1", "N2"} and "N3" not in store.known_keys("deals")
    assert [(e.row, e.field) for e in result.errors] == [
        (3, "amount"),
        (3, "created_at"),
        (5, "account_id"),
    ]
    with rejects.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row"] for r in rows] == ["3", "5"]
    assert [r["deal_id"] for r in rows] == ["N3", "N4"]
    assert "amount: negative" in rows[0]["reason"] and "created_at: impossible" in rows[0]["reason"]
    assert rows[1]["account_id"] == "A9"  # the rejected row is kept as given
    assert "rejected 2 deals" in result.summary()


def test_skip_cascades_to_rows_referring_to_rejected_rows(store: Store) -> None:
    accounts = pd.DataFrame(
        {"account_id": ["B1", "B2"], "name": ["ok", None], "created_at": "2024-01-01"}
    )
    orders = pd.DataFrame(
        {
            "order_id": ["Q1", "Q2"],
            "account_id": ["B1", "B2"],
            "ordered_at": "2024-02-01",
            "amount": [1.0, 2.0],
        }
    )
    with pytest.raises(ValidationError) as exc:
        io.import_frames(store, {"orders": orders, "accounts": accounts})
    assert [e.reason.split(":")[0] for e in exc.value.errors] == ["accounts", "orders"]
    result = io.import_frames(store, {"orders": orders, "accounts": accounts}, on_error="skip")
    assert result.written == {"accounts": 1, "orders": 1}
    assert "Q1" in store.known_keys("orders") and "Q2" not in store.known_keys("orders")


# ---------------------------------------------------------------------- shared datasets
def test_maven_crm_imports_with_its_quirks_reported() -> None:
    folder = shared_dataset("maven_crm")
    with (folder / "sales_pipeline.csv").open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    no_account = sum(1 for r in raw if not r["account"])
    won = sum(1 for r in raw if r["deal_stage"] == "Won")
    with Store.open("sqlite://") as s:
        result = import_maven(s, folder)
        assert result.written["deals"] == len(raw) and result.rows_rejected == 0
        text = "\n".join(result.warnings)
        assert f"{no_account} deals have no account" in text
        assert "'GTXPro'" in text and "'technolgy'" in text and "no close_value" in text
        deals = s.read("deals")
        assert (deals["status"] == "won").sum() == won
        assert deals["account_id"].isna().sum() == no_account
        assert "GTXPro" not in set(deals["name"]) and "GTX Pro" in set(deals["name"])
        assert set(s.read("stages")["pipeline"]) == {"maven"}
        assert "technolgy" not in set(s.read("accounts")["industry"])


def test_cdnow_imports_accounts_and_orders() -> None:
    path = shared_dataset("cdnow", "CDNOW_sample.txt")
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    with Store.open("sqlite://") as s:
        result = import_cdnow(s, path)
        assert result.written == {"accounts": len({ln[0] for ln in lines}), "orders": len(lines)}
        assert any("number_of_cds" in w for w in result.warnings)
        orders = s.read("orders")
        assert orders["amount"].sum() == pytest.approx(sum(float(ln[4]) for ln in lines))
        assert orders["ordered_at"].min() == pd.Timestamp("1997-01-01")


# ---------------------------------------------------------------------- nothing silently wrong
def test_record_with_one_field_more_than_the_header_is_refused_not_shifted(
    store: Store, tmp_path: Path
) -> None:
    # every record one field longer: pandas took the first field as the index and
    # imported every column shifted by one
    path = write(
        tmp_path / "deals.csv",
        [DEAL_HEADER, *(f"{line},x" for line in GOOD_DEALS)],
    )
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    assert [(e.row, e.field) for e in exc.value.errors] == [(2, None), (3, None)]
    assert "has 9 fields but the header has 8" in exc.value.errors[0].reason
    assert_unchanged(store, before)


def test_trailing_separator_on_every_row_names_each_line_not_a_column(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, *(f"{line}," for line in GOOD_DEALS)])
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    errors = exc.value.errors
    assert [(e.row, e.field) for e in errors] == [(2, None), (3, None)]
    assert all("trailing separator" in e.reason for e in errors)
    assert_unchanged(store, before)


def test_record_with_fewer_fields_is_refused_with_its_line(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, GOOD_DEALS[0], "N2,A2,bob,Discovery"])
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    assert [(e.row, e.field) for e in exc.value.errors] == [(3, None)]
    assert "has 4 fields but the header has 8" in exc.value.errors[0].reason


def test_field_count_check_honours_quoted_newlines_and_separators(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        'account_id,name,created_at\nX1,"Smith, Jones\nand sons",2024-01-01\n'
        "X2,too,many,2024-01-02\n"
    )
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "accounts", path)
    assert [(e.row, e.field) for e in exc.value.errors] == [(4, None)]
    path.write_text('account_id,name,created_at\nX1,"Smith, Jones\nand sons",2024-01-01\n')
    io.import_file(store, "accounts", path)
    assert store.read("accounts", where={"account_id": "X1"})["name"].iloc[0] == (
        "Smith, Jones\nand sons"
    )


def test_skip_bad_rejects_field_count_mismatches_with_their_reason(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, GOOD_DEALS[0], GOOD_DEALS[1] + ",x"])
    rejects = tmp_path / "rejects.csv"
    result = io.import_file(store, "deals", path, on_error="skip", rejects_path=rejects)
    assert result.written == {"deals": 1} and result.rejected == {"deals": 1}
    assert "N2" not in store.known_keys("deals")
    with rejects.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row"] for r in rows] == ["3"]
    assert "has 9 fields" in rows[0]["reason"]
    assert rows[0][io.RAW_RECORD] == GOOD_DEALS[1] + ",x"


def test_badly_quoted_value_is_refused_with_its_line(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ["account_id,name,created_at", 'X1,"Acme"x,2024-01-01'])
    with pytest.raises(FileFormatError, match=r"line 2: text follows a closing quote"):
        io.import_file(store, "accounts", path)
    path = write(tmp_path / "a.csv", ["account_id,name,created_at", 'X1,"Acme,2024-01-01'])
    with pytest.raises(FileFormatError, match=r"line 2: a quoted value .* never closed"):
        io.import_file(store, "accounts", path)


def test_decimal_comma_gets_a_hint_naming_the_options(store: Store, tmp_path: Path) -> None:
    lines = [DEAL_HEADER.replace(",", ";"), "N1;A1;ann;Proposal;open;1234,56;2024-05-01;"]
    path = write(tmp_path / "deals.csv", lines)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.value) == (2, "amount", "1234,56")
    assert "looks like a decimal comma; use --decimal , --thousands ." in e.reason


def test_decimal_and_thousands_options_read_european_numbers(store: Store, tmp_path: Path) -> None:
    lines = [
        DEAL_HEADER.replace(",", ";"),
        "N1;A1;ann;Proposal;open;1.234,56;2024-05-01;",
        "N2;A1;ann;Proposal;open;7,5;2024-05-01;",
    ]
    path = write(tmp_path / "deals.csv", lines)
    io.import_file(store, "deals", path, decimal=",", thousands=".")
    got = store.read("deals", where={"deal_id": ["N1", "N2"]}).set_index("deal_id")["amount"]
    assert got.to_dict() == {"N1": 1234.56, "N2": 7.5}


def test_decimal_comma_setting_refuses_a_decimal_point_as_ambiguous(
    store: Store, tmp_path: Path
) -> None:
    lines = [DEAL_HEADER.replace(",", ";"), "N1;A1;ann;Proposal;open;1234.56;2024-05-01;"]
    path = write(tmp_path / "deals.csv", lines)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path, decimal=",", thousands=".")
    assert (exc.value.errors[0].field, exc.value.errors[0].value) == ("amount", "1234.56")


@pytest.mark.parametrize("value", ["1e308", "1e13", "123456789012345"])
def test_amount_above_max_amount_is_refused(store: Store, tmp_path: Path, value: str) -> None:
    path = write(
        tmp_path / "deals.csv", [DEAL_HEADER, f"N1,A1,ann,Proposal,open,{value},2024-05-01,"]
    )
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "deals", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.value) == (2, "amount", value)
    assert "above the maximum 1,000,000,000,000" in e.reason
    assert_unchanged(store, before)


def test_max_amount_is_configurable(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, "N1,A1,ann,Proposal,open,5000,2024-05-01,"])
    with pytest.raises(ValidationError, match="above the maximum 1,000"):
        io.import_file(store, "deals", path, max_amount=1000)
    assert io.import_file(store, "deals", path, max_amount=1e4).written == {"deals": 1}


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "Infinity", "1e400"])
def test_non_finite_numbers_are_refused(store: Store, tmp_path: Path, value: str) -> None:
    path = write(
        tmp_path / "orders.csv",
        ["order_id,account_id,ordered_at,amount", f"P1,A1,2024-06-01,{value}"],
    )
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "orders", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.reason) == (2, "amount", "not a finite number")


def test_ids_differing_only_by_case_warn_as_likely_duplicates(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        ["account_id,name,created_at", "a1,x,2024-01-01", "B7,y,2024-01-01", "b7,z,2024-01-01"],
    )
    with pytest.warns(CrmkitWarning, match=r"'a1' differs only by case from 'A1'") as rec:
        result = io.import_file(store, "accounts", path)
    assert "'b7' differs only by case from 'B7' on row 3" in str(rec[0].message)
    assert result.written == {"accounts": 3}
    assert sum("likely duplicate" in w for w in result.warnings) == 2


def test_strict_ids_refuses_ids_differing_only_by_case(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv", ["account_id,name,created_at", "X9,x,2024-01-01", "a1,y,2024-01-01"]
    )
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "accounts", path, strict_ids=True)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.value) == (3, "account_id", "a1")
    assert "differs only by case from 'A1' already in accounts" in e.reason
    assert_unchanged(store, before)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_in_text_are_refused_naming_row_and_field(
    store: Store, tmp_path: Path, char: str
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "account_id,name,created_at\nX1,ok,2024-01-01\n" + f"X2,bad{char}name,2024-01-01\n"
        "X3,ok,2024-01-01\n"
    )
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "accounts", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.value) == (3, "name", f"bad{char}name")
    assert "control character" in e.reason
    assert_unchanged(store, before)


def test_tabs_and_line_breaks_inside_quoted_text_are_kept(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('account_id,name,created_at\nX1,"a\tb\r\nc",2024-01-01\n')
    io.import_file(store, "accounts", path)
    assert store.read("accounts", where={"account_id": "X1"})["name"].iloc[0] == "a\tb\r\nc"


def test_rejects_equal_to_the_input_is_refused_before_reading(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "deals.csv", [DEAL_HEADER, GOOD_DEALS[0], "N9,A404,x,y,open,1,z,"])
    content = path.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    monkeypatch.chdir(tmp_path)
    for same in (path, link, Path("deals.csv"), Path("sub/../deals.csv")):
        with pytest.raises(FileFormatError, match="the rejects file is the input file"):
            io.import_file(store, "deals", path, on_error="skip", rejects_path=same)
        assert path.read_bytes() == content
    assert "N1" not in store.known_keys("deals")


def test_binary_file_is_refused_as_not_a_text_csv(store: Store, tmp_path: Path) -> None:
    png = tmp_path / "logo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)))
    with pytest.raises(FileFormatError, match=r"not a text CSV file: NUL bytes at offset 8"):
        io.import_file(store, "accounts", png, encoding="latin-1")
    xlsx = tmp_path / "book.xlsx"
    pd.DataFrame({"account_id": ["X"]}).to_excel(xlsx, index=False)
    renamed = tmp_path / "book.csv"
    renamed.write_bytes(xlsx.read_bytes())
    with pytest.raises(FileFormatError, match=r"not a text CSV file: NUL bytes .*zip archive"):
        io.import_file(store, "accounts", renamed, encoding="latin-1")


def test_dates_more_than_a_year_ahead_are_refused_unless_allowed(
    store: Store, tmp_path: Path
) -> None:
    soon = (dt.date.today() + dt.timedelta(days=300)).isoformat()
    later = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    path = write(
        tmp_path / "a.csv", ["account_id,name,created_at", f"X1,a,{soon}", f"X2,b,{later}"]
    )
    before = state(store)
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "accounts", path)
    e = exc.value.errors[0]
    assert (e.row, e.field, e.value) == (3, "created_at", later)
    assert "more than 366 days after today" in e.reason and "--allow-future" in e.reason
    assert_unchanged(store, before)
    assert io.import_file(store, "accounts", path, allow_future=True).written == {"accounts": 2}


# ---------------------------------------------------------------------- quotas
QUOTA_HEADER = "scope,name,period,period_start,amount"
GOOD_QUOTAS = [
    "owner,ann,M,2024-04-01,20000",
    "Team,north,q,2024-04-01,90000.50",
    "company,all,Q,2024-04-01,150000",
]


def test_quotas_csv_import_writes_the_composite_date_keys(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "quotas.csv", [QUOTA_HEADER, *GOOD_QUOTAS])
    result = io.import_file(store, "quotas", path)
    assert result.written == {"quotas": 3}
    q = store.read("quotas").set_index(["scope", "name"])
    assert q.loc[("team", "north"), "period"] == "Q"
    assert q.loc[("team", "north"), "amount"] == 90000.5
    assert (q["period_start"] == pd.Timestamp("2024-04-01")).all()
    assert (q["row_version"] == 1).all()


def test_quotas_csv_import_again_is_refused_as_duplicate_keys(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "quotas.csv", [QUOTA_HEADER, *GOOD_QUOTAS])
    io.import_file(store, "quotas", path)
    before = store.read("quotas")
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "quotas", path)
    assert "row 2, field 'scope'" in str(exc.value)
    assert "('owner', 'ann', 'M', '2024-04-01') already exists in quotas" in str(exc.value)
    pd.testing.assert_frame_equal(store.read("quotas"), before)


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("owner,ann,M,2024-04-15,1", "period_start", "2024-04-15 is not the first day of a month"),
        ("team,north,Q,2024-05-01,1", "period_start", "is not the first day of a quarter"),
        ("company,ACME,M,2024-04-01,1", "name", "the company's name is 'all'"),
        ("region,west,M,2024-04-01,1", "scope", "must be one of owner, team, company"),
        ("owner,ann,W,2024-04-01,1", "period", "must be one of M, Q"),
        ("owner,ann,M,2024-04-01,-1", "amount", "negative value"),
        ("owner,ann,M,2024-04-01,inf", "amount", "not a finite number"),
    ],
)
def test_bad_quota_row_is_reported_and_nothing_is_written(
    store: Store, tmp_path: Path, line: str, field: str, reason: str
) -> None:
    path = write(tmp_path / "quotas.csv", [QUOTA_HEADER, GOOD_QUOTAS[1], line])
    with pytest.raises(ValidationError) as exc:
        io.import_file(store, "quotas", path)
    errors = exc.value.errors
    assert [(e.row, e.field) for e in errors] == [(3, field)]
    assert reason in errors[0].reason
    assert store.count("quotas") == 0


def test_crmkit_import_quotas_command_loads_the_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "quotas.csv", [QUOTA_HEADER, *GOOD_QUOTAS])
    db = tmp_path / "crm.db"
    Store.open(db).close()
    cmd = [sys.executable, "-m", "crmkit.cli", "import", "--db", str(db), "quotas", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "imported 3 quotas" in done.stdout
    bad = write(tmp_path / "bad.csv", [QUOTA_HEADER, "owner,bob,M,2024-04-02,5"])
    cmd[-1] = str(bad)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "period_start 2024-04-02 is not the first day of a month" in done.stderr
    with Store.open(db) as s:
        assert s.count("quotas") == 3
