"""Schema versions: an empty database migrates to head; downgrade and upgrade again."""

from __future__ import annotations

import sqlite3

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
