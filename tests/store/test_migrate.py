"""Schema versions: an empty database migrates to head; downgrade and upgrade again."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from crmkit.errors import CrmkitError
from crmkit.store import Store, migrate
from crmkit.store.schema import TABLES


def test_empty_database_is_migrated_to_head(store: Store) -> None:
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert set(TABLES) <= set(sa.inspect(store.engine).get_table_names())


def test_downgrade_to_base_and_back(store: Store) -> None:
    migrate.upgrade(store.engine, "head")  # idempotent
    from alembic import command

    with store.engine.connect().execution_options(crmkit_write=True) as conn:
        command.downgrade(migrate._config(conn), "base")
        conn.commit()
    names = set(sa.inspect(store.engine).get_table_names())
    assert not (set(TABLES) & names)
    migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert store.count("deals") == 0


def test_schema_of_migrations_equals_declared_schema(store: Store) -> None:
    """The migrations build exactly the tables and columns schema.py declares."""
    insp = sa.inspect(store.engine)
    for name, table in TABLES.items():
        cols = {c["name"] for c in insp.get_columns(name)}
        assert cols == set(table.c.keys()), name


def _set_revision(store: Store, revision: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_older_crmkit_database_is_upgraded_on_open(store: Store) -> None:
    from alembic import command

    first = min(migrate.known_revisions())  # the oldest revision: "0001"
    with store.engine.connect().execution_options(crmkit_write=True) as conn:
        command.downgrade(migrate._config(conn), first)
        conn.commit()
    assert migrate.current_revision(store.engine) == first
    reopened = Store.open(store.engine.url.render_as_string(hide_password=False))
    assert migrate.current_revision(reopened.engine) == migrate.head_revision()
    assert reopened.count("deals") == 0


def test_database_from_a_newer_crmkit_is_refused_naming_both_revisions(tmp_path) -> None:
    db = tmp_path / "crm.db"
    with Store.open(db) as s:
        _set_revision(s, "9999_future")
    with pytest.raises(CrmkitError) as info:
        Store.open(db)
    msg = str(info.value)
    assert "'9999_future'" in msg and repr(migrate.head_revision()) in msg
    assert "newer crmkit" in msg and "\n" not in msg
    with Store.open(db, migrate_db=False) as s:  # untouched
        assert migrate.current_revision(s.engine) == "9999_future"


def test_another_programs_alembic_revision_is_refused(tmp_path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    con.execute("INSERT INTO alembic_version VALUES ('ae1027a6acf')")
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    for adopt in (False, True):
        with pytest.raises(
            CrmkitError,
            match=r"holds another program's tables \(invoices\) with its own schema revision "
            r"'ae1027a6acf'",
        ):
            Store.open(db, adopt=adopt)


def test_check_schema_decisions() -> None:
    head = migrate.head_revision()
    ours = ["accounts", "deals", "alembic_version"]
    assert migrate.check_schema(ours, head, label="x", create=False) == migrate.OK
    older = sorted(migrate.known_revisions() - {head})
    for rev in older:  # every older revision, however many migrations there are
        assert migrate.check_schema(ours, rev, label="x", create=False) == migrate.UPGRADE
    assert migrate.check_schema([], None, label="x", create=True) == migrate.CREATE
    assert migrate.check_schema(["t"], None, label="x", create=False, adopt=True) == "create"
    with pytest.raises(CrmkitError, match="no crmkit database at x"):
        migrate.check_schema(["alembic_version"], None, label="x", create=False)
    with pytest.raises(CrmkitError, match=r"tables named like crmkit's \(accounts\)"):
        migrate.check_schema(["accounts", "t"], None, label="x", create=True, adopt=True)
    many = [f"t{i}" for i in range(8)]
    with pytest.raises(CrmkitError, match=r"\(t0, t1, t2, t3, t4 and 3 more\)"):
        migrate.check_schema(many, None, label="x", create=True)


def _downgrade(store: Store, revision: str) -> None:
    from alembic import command

    with store.engine.connect().execution_options(crmkit_write=True) as conn:
        command.downgrade(migrate._config(conn), revision)
        conn.commit()


def test_upgrade_from_0002_keeps_the_data_and_adds_quotas_and_calls(store: Store) -> None:
    from crmkit.store.calls import add_call
    from tests.factories import small_company

    store.insert_many(small_company())
    counts = {n: store.count(n) for n in ("accounts", "deals", "orders", "stages")}
    deals = store.read("deals")
    _downgrade(store, "0002")
    assert migrate.current_revision(store.engine) == "0002"
    names = set(sa.inspect(store.engine).get_table_names())
    assert "quotas" not in names and "forecast_calls" not in names
    reopened = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        assert migrate.current_revision(reopened.engine) == migrate.head_revision()
        assert {n: reopened.count(n) for n in counts} == counts
        pd.testing.assert_frame_equal(reopened.read("deals"), deals)
        assert reopened.count("quotas") == 0 and reopened.count("forecast_calls") == 0
        call_id = add_call(
            reopened,
            scope="team",
            name="East",
            period="M",
            period_start="2026-10-01",
            amount=10.0,
            author="Erin",
        )
        assert reopened.read("forecast_calls")["call_id"].tolist() == [call_id]
        insp = sa.inspect(reopened.engine)
        pk = insp.get_pk_constraint("quotas")["constrained_columns"]
        assert pk == ["scope", "name", "period", "period_start"]
    finally:
        reopened.close()


def test_downgrade_of_0003_drops_quotas_calls_and_category_history(store: Store) -> None:
    from tests.factories import small_company

    store.insert_many(small_company())
    store.insert(
        "quotas",
        pd.DataFrame(
            {
                "scope": ["owner"],
                "name": ["ann"],
                "period": ["M"],
                "period_start": ["2026-10-01"],
                "amount": [5.0],
            }
        ),
    )
    n_deals = store.count("deals")
    hist = store.read("deal_history")
    kept = int((hist["field"] != "forecast_category").sum())
    assert kept < len(hist)  # the factory's deals have categories
    _downgrade(store, "0002")
    names = set(sa.inspect(store.engine).get_table_names())
    assert not {"quotas", "forecast_calls"} & names
    with store.engine.connect() as conn:
        fields = conn.execute(sa.text("SELECT DISTINCT field FROM deal_history")).scalars().all()
        n_hist = conn.execute(sa.text("SELECT COUNT(*) FROM deal_history")).scalar()
    assert "forecast_category" not in fields and n_hist == kept
    assert store.count("deals") == n_deals


def test_deal_history_field_has_no_database_check_of_its_values(store: Store) -> None:
    """A CHECK on deal_history.field would need migrating for forecast_category: there is none."""
    checks = sa.inspect(store.engine).get_check_constraints("deal_history")
    assert checks == []
