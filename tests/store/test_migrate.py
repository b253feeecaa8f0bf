"""Schema versions: an empty database migrates to head; downgrade and upgrade again."""

from __future__ import annotations

import sqlalchemy as sa

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
