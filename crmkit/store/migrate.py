"""Schema versions: bring a database to the newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config(connection: sa.Connection):
    """Return an Alembic config bound to ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """Return the newest migration's revision id."""
    from alembic.script import ScriptDirectory

    cfg = _config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """Return the database's revision, or None for an empty database."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run the migrations needed to bring the database at ``engine`` to ``revision``.

    Parameters
    ----------
    engine
        The database.
    revision
        Target revision, ``"head"`` for the newest.

    """
    from alembic import command

    with engine.connect().execution_options(crmkit_write=True) as conn:
        command.upgrade(_config(conn), revision)
        conn.commit()
