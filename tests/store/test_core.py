"""The Store front object: reads, writes, transactions, deal history, concurrency checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from crmkit import ConflictError, CrmkitError, NotFoundError, Store, ValidationError
from crmkit.errors import BusyError
from crmkit.store.engine import create_engine
from crmkit.store.schema import ENTITIES, TABLES
from tests.factories import small_company


def load(store: Store) -> dict[str, pd.DataFrame]:
    frames = small_company()
    store.insert_many(frames)
    return frames


def test_insert_many_then_read_gives_the_same_frames(store: Store) -> None:
    frames = load(store)
    for name, df in frames.items():
        got = store.read(name)
        assert len(got) == len(df), name
        cols = list(df.columns)
        key = list(ENTITIES[name].key)
        expected = df.sort_values(key).reset_index(drop=True)
        actual = got[cols].sort_values(key).reset_index(drop=True)
        for c in cols:
            e, a = expected[c], actual[c]
            if pd.api.types.is_datetime64_any_dtype(e):
                assert (
                    pd.to_datetime(a).fillna(pd.Timestamp(0)) == e.fillna(pd.Timestamp(0))
                ).all()
            else:
                assert [None if pd.isna(x) else x for x in a] == [
                    None if pd.isna(x) else x for x in e
                ], f"{name}.{c}"


def test_read_filters_by_value_and_by_list(store: Store) -> None:
    load(store)
    assert store.read("deals", where={"owner": "ann"})["deal_id"].tolist() == ["D1", "D3"]
    assert store.read("orders", where={"account_id": ["A2"]})["order_id"].tolist() == ["O4", "O5"]
    assert store.read("accounts", columns=["account_id"]).columns.tolist() == ["account_id"]


def test_new_deals_get_initial_history_in_the_same_write(store: Store) -> None:
    load(store)
    hist = store.read("deal_history", where={"deal_id": "D1"})
    got = dict(zip(hist["field"], hist["new_value"], strict=True))
    assert got == {
        "stage": "Proposal",
        "status": "open",
        "amount": "12000.0",
        "expected_close_date": "2024-06-30",
        "forecast_category": "pipeline",
    }
    assert hist["old_value"].isna().all()
    assert (hist["changed_by"] == "import").all()


def test_update_writes_history_for_tracked_fields_only(store: Store) -> None:
    load(store)
    before = store.count("deal_history")
    row = store.update(
        "deals", "D1", {"stage": "Negotiation", "name": "Acme renewal 2"}, changed_by="ann"
    )
    assert row["stage"] == "Negotiation"
    assert row["name"] == "Acme renewal 2"
    assert row["row_version"] == 2
    hist = store.read("deal_history", where={"deal_id": "D1", "field": "stage"})
    last = hist.sort_values("history_id").iloc[-1]
    assert (last["old_value"], last["new_value"], last["changed_by"]) == (
        "Proposal",
        "Negotiation",
        "ann",
    )
    assert store.count("deal_history") == before + 1


def test_update_with_stale_version_is_refused_and_changes_nothing(store: Store) -> None:
    load(store)
    store.update("deals", "D1", {"amount": 13000.0}, expected_version=1, changed_by="ann")
    n_hist = store.count("deal_history")
    with pytest.raises(ConflictError, match="changed by someone else"):
        store.update("deals", "D1", {"amount": 99.0}, expected_version=1, changed_by="bob")
    row = store.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert row["amount"] == 13000.0
    assert row["row_version"] == 2
    assert store.count("deal_history") == n_hist


def test_bad_update_is_rejected_with_field_and_changes_nothing(store: Store) -> None:
    load(store)
    before = store.read("deals")
    with pytest.raises(ValidationError) as info:
        store.update("deals", "D1", {"amount": -5.0})
    assert any(e.field == "amount" for e in info.value.errors)
    with pytest.raises(ValidationError) as info:
        store.update("deals", "D1", {"stage": "No such stage"})
    assert any(e.field == "stage" for e in info.value.errors)
    pd.testing.assert_frame_equal(store.read("deals"), before)


def test_update_of_missing_row_names_the_key(store: Store) -> None:
    load(store)
    with pytest.raises(ValidationError, match="no deals row with key D9"):
        store.update("deals", "D9", {"amount": 1.0})


def test_update_many_is_one_transaction(store: Store) -> None:
    load(store)
    changes = pd.DataFrame({"deal_id": ["D1", "D3"], "owner": ["bob", "bob"]})
    assert store.update_many("deals", changes, changed_by="lead") == 2
    assert set(store.read("deals", where={"owner": "bob"})["deal_id"]) == {"D1", "D2", "D3"}
    # One stale row spoils the batch: nothing changes.
    stale = pd.DataFrame({"deal_id": ["D1", "D2"], "owner": ["cy", "cy"], "row_version": [2, 99]})
    with pytest.raises(ConflictError):
        store.update_many("deals", stale)
    assert store.read("deals", where={"owner": "cy"}).empty


def test_batch_failing_halfway_rolls_back(store: Store) -> None:
    load(store)
    counts = store.counts()
    frames = {
        "accounts": pd.DataFrame(
            {"account_id": ["A9"], "name": ["New"], "created_at": [pd.Timestamp("2024-05-01")]}
        ),
        # The second frame breaks a database constraint (duplicate key) after the first landed.
        "orders": pd.DataFrame(
            {
                "order_id": ["O1"],
                "account_id": ["A9"],
                "ordered_at": [pd.Timestamp("2024-05-02")],
                "amount": [1.0],
            }
        ),
    }
    with pytest.raises(ConflictError, match="orders") as info:
        store.insert_many(frames, validate=False)
    # One line naming the constraint, never the rows' values.
    assert "\n" not in str(info.value)
    assert "A9" not in str(info.value) and "2024-05-02" not in str(info.value)
    assert store.counts() == counts
    assert "A9" not in store.known_keys("accounts")


def test_invalid_batch_writes_nothing(store: Store) -> None:
    counts = store.counts()
    frames = small_company()
    frames["orders"].loc[2, "amount"] = -1.0
    with pytest.raises(ValidationError) as info:
        store.insert_many(frames)
    assert any(e.field == "amount" for e in info.value.errors)
    assert store.counts() == counts


def test_delete_removes_deal_and_its_history(store: Store) -> None:
    load(store)
    store.delete("activities", ["T1"])
    store.delete("orders", ["O4"])
    assert store.delete("deals", ["D2"]) == 1
    assert "D2" not in store.known_keys("deals")
    assert store.read("deal_history", where={"deal_id": "D2"}).empty


def test_meta_round_trip(store: Store) -> None:
    store.set_meta("demo_truth", {"win_rate": 0.3, "stages": ["a", "b"]})
    store.set_meta("demo_truth", {"win_rate": 0.4})
    assert store.get_meta("demo_truth") == {"win_rate": 0.4}
    assert store.get_meta("missing", 7) == 7


def test_clear_empties_every_entity(store: Store) -> None:
    load(store)
    store.clear()
    assert set(store.counts().values()) == {0}


def test_unknown_entity_is_named() -> None:
    s = Store.open("sqlite://")
    with pytest.raises(KeyError, match="unknown entity 'dealz'"):
        s.read("dealz")


def test_no_snapshot_yet_is_a_clear_error(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no forecast snapshot yet"):
        store.load_snapshot()


def test_sqlite_file_uses_wal_and_busy_timeout(tmp_path) -> None:
    s = Store.open(tmp_path / "x.db")
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_every_table_exists_after_open(store: Store) -> None:
    names = set(sa.inspect(store.engine).get_table_names())
    assert set(TABLES) <= names


# ---------------------------------------------------------------- issue #13: nothing silently wrong
def test_expected_version_on_a_table_without_versions_is_refused(store: Store) -> None:
    load(store)
    before = store.read("stages")
    with pytest.raises(CrmkitError, match="stages rows have no version"):
        store.update("stages", ("default", "Proposal"), {"probability": 0.7}, expected_version=1)
    changes = pd.DataFrame(
        {"pipeline": ["default"], "stage": ["Proposal"], "probability": [0.7], "row_version": [1]}
    )
    with pytest.raises(CrmkitError, match="stages rows have no version"):
        store.update_many("stages", changes)
    pd.testing.assert_frame_equal(store.read("stages"), before)
    # Without a version the edit is an ordinary one.
    assert (
        store.update("stages", ("default", "Proposal"), {"probability": 0.7})["probability"] == 0.7
    )


def test_commit_by_another_writer_between_check_and_write_is_a_conflict(tmp_path: Path) -> None:
    """The batch is checked again under the write lock when someone committed meanwhile."""
    db = tmp_path / "crm.db"
    store = Store.open(db)
    other = sqlite3.connect(db)
    fired = []

    def another_writer_commits(conn, cursor, statement, *args) -> None:
        if statement.startswith("BEGIN IMMEDIATE") and not fired:
            fired.append(True)  # a real second connection stores the same key and commits
            other.execute(
                "INSERT INTO accounts (account_id, name, created_at, row_version, updated_at) "
                "VALUES ('A1', 'Other', '2024-01-01 00:00:00', 1, '2024-01-01 00:00:00')"
            )
            other.commit()

    event.listen(store.engine, "before_cursor_execute", another_writer_commits)
    rows = small_company()["accounts"]
    with pytest.raises(ConflictError, match="another writer changed the database") as info:
        store.insert("accounts", rows)
    assert "\n" not in str(info.value) and "Globex" not in str(info.value)
    assert fired
    assert store.read("accounts")["name"].tolist() == ["Other"]  # nothing of the batch landed
    other.close()


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another connection that has taken the write lock (BEGIN IMMEDIATE) and keeps it."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


WRITES: dict[str, Callable[[Store], object]] = {
    "insert": lambda s: s.insert(
        "orders",
        pd.DataFrame(
            {"order_id": ["O99"], "account_id": ["A1"], "ordered_at": [pd.Timestamp("2024-06-01")]}
            | {"amount": [5.0]}
        ),
    ),
    "update": lambda s: s.update("deals", "D1", {"amount": 1.0}, expected_version=1),
    "delete": lambda s: s.delete("activities", ["T1"]),
    "set_meta": lambda s: s.set_meta("k", 1),
    "clear": lambda s: s.clear(),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_store_writes_raise_busy_error_when_another_writer_holds_the_lock(
    tmp_path: Path, write: str
) -> None:
    db = tmp_path / "crm.db"
    store = Store.open(db, busy_timeout=0.2)
    load(store)
    counts = store.counts()
    holder = hold_write_lock(db)
    try:
        with pytest.raises(BusyError) as info:
            WRITES[write](store)
    finally:
        holder.rollback()
        holder.close()
    assert str(info.value) == (
        "the database is busy (locked by another writer for 0.2 s); nothing was written; try again"
    )
    assert store.counts() == counts
    WRITES[write](store)  # the lock is gone: the same call now works


def test_save_snapshot_raises_busy_error_when_locked(tmp_path: Path, snap) -> None:
    db = tmp_path / "crm.db"
    store = Store.open(db, busy_timeout=0.2)
    holder = hold_write_lock(db)
    try:
        with pytest.raises(BusyError):
            store.save_snapshot(snap)
    finally:
        holder.rollback()
        holder.close()
    assert store.list_snapshots().empty


def test_store_reads_raise_busy_error_when_locked_exclusively(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    store = Store.open(db, busy_timeout=0.2)
    load(store)
    store.close()
    # A writer in exclusive locking mode keeps even readers out of a WAL database.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE accounts SET owner = 'x'")
    holder.execute("COMMIT")
    try:
        reader = Store(create_engine(f"sqlite:///{db}", busy_timeout=0.2))
        for read in (
            lambda: reader.read("deals"),
            lambda: reader.count("accounts"),
            lambda: reader.known_keys("accounts"),
            lambda: reader.list_snapshots(),
            lambda: reader.purchase_summary(),
        ):
            with pytest.raises(BusyError, match=r"locked by another writer for 0\.2 s"):
                read()
        with pytest.raises(BusyError):
            Store.open(db, busy_timeout=0.2)
    finally:
        holder.close()


def test_busy_timeout_comes_from_argument_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pragma(s: Store) -> int:
        with s.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA busy_timeout").scalar()

    db = tmp_path / "crm.db"
    monkeypatch.delenv("CRMKIT_BUSY_TIMEOUT", raising=False)
    assert pragma(Store.open(db)) == 30_000
    monkeypatch.setenv("CRMKIT_BUSY_TIMEOUT", "1.5")
    assert pragma(Store.open(db)) == 1_500
    assert pragma(Store.open(db, busy_timeout=0.25)) == 250
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("CRMKIT_BUSY_TIMEOUT", bad)
        with pytest.raises(CrmkitError, match="CRMKIT_BUSY_TIMEOUT must be a number of seconds"):
            Store.open(db)


@pytest.mark.postgres
def test_postgresql_lock_past_the_timeout_raises_busy_error(pg_schema_url: str) -> None:
    store = Store.open(pg_schema_url, busy_timeout=0.3)
    load(store)
    counts = store.counts()
    holder = sa.create_engine(pg_schema_url)
    try:
        with holder.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE deals IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(BusyError, match=r"locked by another writer for 0\.3 s"):
                store.update("deals", "D1", {"amount": 1.0})
            with pytest.raises(BusyError):
                store.read("deals")
            conn.rollback()
    finally:
        holder.dispose()
    assert store.counts() == counts
    assert store.update("deals", "D1", {"amount": 1.0})["amount"] == 1.0


def test_values_reach_the_database_only_as_bound_parameters(store: Store) -> None:
    """SQL text never holds a value: a value shaped like SQL is stored and read back as is."""
    load(store)
    evil = "x'); DROP TABLE deals; --"
    statements: list[str] = []
    event.listen(
        store.engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt)
    )
    store.insert(
        "accounts",
        pd.DataFrame({"account_id": [evil], "name": [evil], "created_at": [pd.Timestamp("2024")]}),
    )
    store.update("accounts", evil, {"owner": evil})
    got = store.read("accounts", where={"account_id": evil, "owner": [evil]})
    assert got["name"].tolist() == [evil]
    store.update_many("deals", pd.DataFrame({"deal_id": ["D1"], "name": [evil]}))
    store.set_meta(evil, evil)
    assert store.get_meta(evil) == evil
    assert store.delete("accounts", [evil]) == 1
    assert statements and not [s for s in statements if "DROP" in s or evil in s]
    assert store.count("deals") == 3


def test_open_refuses_a_missing_database_without_creating_it(tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "crm.db"
    with pytest.raises(CrmkitError, match=r"no crmkit database at .*crm\.db; create one with"):
        Store.open(db, create=False)
    assert not (tmp_path / "no").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(CrmkitError, match="no crmkit database at"):
        Store.open(empty, create=False)
    assert empty.stat().st_size == 0
    # The library default creates it (a program naming its own database gets one).
    assert Store.open(db).count("accounts") == 0
    assert Store.open(db, create=False).count("accounts") == 0


def test_open_refuses_a_file_that_is_not_sqlite_and_leaves_it(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("a text file\n")
    with pytest.raises(CrmkitError, match=r"notes\.txt is not a crmkit database \(not an SQLite"):
        Store.open(f)
    assert f.read_text() == "a text file\n"
    with pytest.raises(CrmkitError, match="is a folder"):
        Store.open(tmp_path)


def test_open_refuses_a_truncated_database(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    with Store.open(db) as s:
        load(s)
        s.insert(
            "accounts",
            pd.DataFrame(
                {
                    "account_id": [f"X{i}" for i in range(3000)],
                    "name": ["n" * 50] * 3000,
                    "created_at": pd.Timestamp("2024-01-01"),
                }
            ),
        )
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = db.read_bytes()
    cut = tmp_path / "cut.db"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CrmkitError, match=r"cut\.db is damaged"):
        Store.open(cut)
    assert cut.read_bytes() == data[: len(data) // 2]
    stub = tmp_path / "stub.db"
    stub.write_bytes(data[:40])
    with pytest.raises(CrmkitError, match=r"stub\.db is damaged"):
        Store.open(stub)


def test_open_refuses_another_programs_database_unless_adopted(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO invoices (total) VALUES (9.5)")
    con.commit()
    con.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for create in (True, False):
        with pytest.raises(
            CrmkitError,
            match=r"other\.db holds another program's tables \(invoices, people\); crmkit will "
            r"not add its tables to it; use `crmkit init --db .*other\.db` to do so anyway",
        ):
            Store.open(db, create=create)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # not even the journal mode
    with Store.open(db, adopt=True) as s:
        assert s.count("accounts") == 0
        assert set(TABLES) <= set(sa.inspect(s.engine).get_table_names())
    con = sqlite3.connect(db)
    assert con.execute("SELECT total FROM invoices").fetchall() == [(9.5,)]
    con.close()
    Store.open(db, create=False).close()  # now a crmkit database (with extra tables)


@pytest.mark.postgres
def test_open_on_postgresql_refuses_foreign_tables_and_a_missing_schema(pg_schema_url: str) -> None:
    with pytest.raises(CrmkitError, match="no crmkit database at postgresql"):
        Store.open(pg_schema_url, create=False)
    admin = sa.create_engine(pg_schema_url)
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id integer)")
    admin.dispose()
    with pytest.raises(CrmkitError, match=r"holds another program's tables \(invoices\)"):
        Store.open(pg_schema_url)
    with Store.open(pg_schema_url, adopt=True) as s:
        assert s.count("deals") == 0


# ---------------------------------------------------------------------- forecast categories
def _category_history(store: Store, deal_id: str) -> pd.DataFrame:
    hist = store.read("deal_history", where={"deal_id": deal_id, "field": "forecast_category"})
    return hist.sort_values("history_id").reset_index(drop=True)


def test_category_update_writes_one_history_row_with_old_and_new_value(store: Store) -> None:
    load(store)
    before = store.count("deal_history")
    at = pd.Timestamp("2024-03-20 10:00").to_pydatetime()
    row = store.update("deals", "D1", {"forecast_category": "commit"}, changed_by="ann", at=at)
    assert row["forecast_category"] == "commit"
    assert store.count("deal_history") == before + 1
    last = _category_history(store, "D1").iloc[-1]
    assert (last["old_value"], last["new_value"], last["changed_by"]) == (
        "pipeline",
        "commit",
        "ann",
    )
    assert last["changed_at"] == pd.Timestamp(at)
    store.update("deals", "D1", {"forecast_category": "commit", "name": "same category"})
    assert store.count("deal_history") == before + 1  # no change, no history row


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Best Case", "best_case"),
        ("best case", "best_case"),
        ("BestCase", "best_case"),
        ("best-case", "best_case"),
        ("COMMIT", "commit"),
        (" Omitted ", "omitted"),
        ("Forecast", "commit"),  # Salesforce's ForecastCategory value for Commit
        ("Not forecasted", "omitted"),  # HubSpot's
        ("Closed won", "closed"),  # HubSpot's
        ("OMIT", "omitted"),
    ],
)
def test_category_update_normalises_the_display_spellings(
    store: Store, given: str, stored: str
) -> None:
    load(store)
    assert store.update("deals", "D1", {"forecast_category": given})["forecast_category"] == stored
    assert _category_history(store, "D1").iloc[-1]["new_value"] == stored


def test_unknown_category_is_refused_naming_the_field_and_changes_nothing(store: Store) -> None:
    load(store)
    n_hist = store.count("deal_history")
    with pytest.raises(ValidationError, match="field 'forecast_category': must be one of") as e:
        store.update("deals", "D1", {"forecast_category": "maybe"})
    assert "\n" not in str(e.value)
    assert store.read("deals", where={"deal_id": "D1"})["forecast_category"].iloc[0] == "pipeline"
    assert store.count("deal_history") == n_hist


def test_new_deals_imported_with_display_categories_store_them_lowercase(store: Store) -> None:
    frames = small_company()
    frames["deals"] = frames["deals"].assign(forecast_category=["Best Case", "Closed", "OMITTED"])
    store.insert_many(frames)
    got = store.read("deals").set_index("deal_id")["forecast_category"].to_dict()
    assert got == {"D1": "best_case", "D2": "closed", "D3": "omitted"}
    assert _category_history(store, "D1")["new_value"].tolist() == ["best_case"]


# ---------------------------------------------------------------------- quotas
def _quota(store: Store) -> None:
    store.insert(
        "quotas",
        pd.DataFrame(
            {
                "scope": ["owner", "team"],
                "name": ["ann", "north"],
                "period": ["M", "Q"],
                "period_start": ["2024-04-01", "2024-04-01"],
                "amount": [20_000.0, 90_000.0],
            }
        ),
    )


@pytest.mark.parametrize(
    "day",
    [dt.date(2024, 4, 1), pd.Timestamp("2024-04-01"), "2024-04-01"],
    ids=["date", "timestamp", "text"],
)
def test_quota_edit_finds_its_row_by_a_date_key_of_any_type(store: Store, day: object) -> None:
    _quota(store)
    row = store.update("quotas", ("owner", "ann", "M", day), {"amount": 25_000}, expected_version=1)
    assert (row["amount"], row["row_version"]) == (25_000.0, 2)
    q = store.read("quotas").set_index("name")["amount"].to_dict()
    assert q == {"ann": 25_000.0, "north": 90_000.0}


def test_quota_edit_with_stale_version_is_refused_and_changes_nothing(store: Store) -> None:
    _quota(store)
    key = ("team", "north", "Q", dt.date(2024, 4, 1))
    store.update("quotas", key, {"amount": 95_000}, expected_version=1)
    with pytest.raises(ConflictError, match="changed by someone else"):
        store.update("quotas", key, {"amount": 1.0}, expected_version=1)
    assert store.read("quotas", where={"name": "north"})["amount"].iloc[0] == 95_000.0


def test_clear_empties_quotas_and_forecast_calls(store: Store) -> None:
    from crmkit.store.calls import add_call

    _quota(store)
    add_call(
        store,
        scope="company",
        name="all",
        period="M",
        period_start="2024-04-01",
        amount=1.0,
        author="cfo",
    )
    store.clear()
    assert store.count("quotas") == 0 and store.count("forecast_calls") == 0


def _many_orders(n: int, prefix: str = "B") -> pd.DataFrame:
    """``n`` orders of the small company, text that needs escaping in COPY, exact floats."""
    tricky = ["back\\slash", "tab\there", "new\nline", "cr\rhere", "\\N", "\\.", "Zoë 東京", "x"]
    return pd.DataFrame(
        {
            "order_id": [f"{prefix}{i}{tricky[i % len(tricky)]}" for i in range(n)],
            "account_id": ["A1", "A2"] * (n // 2),
            "ordered_at": pd.to_datetime("2024-01-01 08:00:00.123456")
            + pd.to_timedelta(range(n), unit="s"),
            "amount": [0.1 + 0.2 + i / 7 for i in range(n)],
            "deal_id": pd.Series([None, "D1"] * (n // 2), dtype=object),
        }
    )


def test_bulk_insert_of_many_rows_reads_back_the_same_values(store: Store) -> None:
    # more than 100 rows: PostgreSQL writes them as one COPY text block per chunk
    load(store)
    df = _many_orders(400)
    assert store.insert_many({"orders": df}) == {"orders": 400}
    got = store.read("orders").set_index("order_id").loc[df["order_id"]].reset_index()
    assert got["order_id"].tolist() == df["order_id"].tolist()
    assert got["amount"].tolist() == df["amount"].tolist()  # exact, every digit
    assert (pd.to_datetime(got["ordered_at"]) == df["ordered_at"]).all()
    assert [None if pd.isna(v) else v for v in got["deal_id"]] == df["deal_id"].tolist()


def test_bulk_insert_refused_by_a_constraint_writes_nothing(store: Store) -> None:
    load(store)
    counts = store.counts()
    df = _many_orders(300)
    df.loc[250, "order_id"] = "O1"  # already stored: the database refuses the whole COPY
    with pytest.raises(ConflictError, match="orders") as info:
        store.insert_many({"orders": df}, validate=False)
    assert "\n" not in str(info.value) and "B0" not in str(info.value)
    assert store.counts() == counts
