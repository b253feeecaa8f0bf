"""The Store front object: reads, writes, transactions, deal history, concurrency checks."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from crmkit import ConflictError, NotFoundError, Store, ValidationError
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
    with pytest.raises(sa.exc.IntegrityError):
        store.insert_many(frames, validate=False)
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
