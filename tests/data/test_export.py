"""Export to CSV and Parquet: round trips, suffixes, formula escaping of CSV text cells."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crmkit.data import io
from crmkit.data.export import export
from crmkit.data.reading import FileFormatError, read_table
from crmkit.store import Store
from crmkit.store.schema import ENTITIES, LOAD_ORDER
from tests.factories import small_company


@pytest.fixture
def store(store: Store) -> Store:
    """The conftest store (a SQLite file, and PostgreSQL in CI) holding the factory company."""
    store.insert_many(small_company())
    return store


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trip(store: Store, tmp_path: Path, suffix: str) -> None:
    fresh = Store.open("sqlite://")
    names = [n for n in LOAD_ORDER if store.count(n) and n != "deal_history"]
    for name in names:
        path = tmp_path / f"{name}{suffix}"
        assert export(store, name, path) == store.count(name)
        io.import_file(fresh, name, path)
    for name in names:
        cols = ENTITIES[name].column_names
        pd.testing.assert_frame_equal(fresh.read(name)[cols], store.read(name)[cols])
    fresh.close()


def test_export_rejects_other_suffixes(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"\.csv or \.parquet"):
        export(store, "deals", tmp_path / "deals.json")


def test_csv_export_escapes_formula_cells_and_raw_opts_out(store: Store, tmp_path: Path) -> None:
    texts = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "plain"]
    accounts = pd.DataFrame(
        {
            "account_id": [f"F{i}" for i in range(len(texts))],
            "name": texts,
            "created_at": pd.Timestamp("2024-01-01"),
        }
    )
    store.insert("accounts", accounts)
    store.insert(
        "channel_spend",
        pd.DataFrame(
            {"channel": ["=cmd"], "week_start": [pd.Timestamp("2024-05-06")], "spend": [0.0]}
        ),
    )
    out = tmp_path / "accounts.csv"
    export(store, "accounts", out)
    got = read_table(out).set_index("account_id")["name"]
    assert [got[f"F{i}"] for i in range(len(texts))] == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tTab",
        "'\rCR",
        "plain",
    ]
    export(store, "accounts", out, raw=True)
    with out.open(newline="", encoding="utf-8") as fh:
        raw = {r["account_id"]: r["name"] for r in csv.DictReader(fh)}
    assert [raw[f"F{i}"] for i in range(len(texts))] == texts
    spend = tmp_path / "spend.csv"
    export(store, "channel_spend", spend)
    assert "'=cmd" in spend.read_text()
    parquet = tmp_path / "accounts.parquet"
    export(store, "accounts", parquet)
    assert set(texts) <= set(pd.read_parquet(parquet)["name"])


def test_csv_export_keeps_negative_numbers_as_numbers(store: Store, tmp_path: Path) -> None:
    # crmkit refuses negative amounts, but a database written by an older version may hold one
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE deals SET amount = -5 WHERE deal_id = 'D1'"))
    out = tmp_path / "deals.csv"
    export(store, "deals", out)
    got = pd.read_csv(out, keep_default_na=False).set_index("deal_id")
    assert got.loc["D1", "amount"] == -5.0
    assert "'-5" not in out.read_text()
