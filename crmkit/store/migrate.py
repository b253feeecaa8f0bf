"""Schema versions: bring a database to the newest Alembic revision."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import sqlalchemy as sa

from crmkit.errors import CrmkitError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: What :func:`check_schema` decides for a database: nothing to do, migrate it, or create it.
OK, UPGRADE, CREATE = "ok", "upgrade", "create"
#: Tables named in a refusal before "and N more".
_SHOWN_TABLES = 5


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


def known_revisions() -> set[str]:
    """Return the revision ids of every migration this crmkit has."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config(None))  # type: ignore[arg-type]
    return {rev.revision for rev in script.walk_revisions()}


def _crmkit_version() -> str:
    """The installed crmkit's version, for messages."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crmkit")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _names(tables: Collection[str]) -> str:
    """A short, sorted list of table names for a message."""
    names = sorted(tables)
    more = len(names) - _SHOWN_TABLES
    shown = ", ".join(names[:_SHOWN_TABLES])
    return f"{shown} and {more} more" if more > 0 else shown


def check_schema(
    tables: Collection[str],
    revision: str | None,
    *,
    label: str,
    create: bool,
    adopt: bool = False,
) -> str:
    """Decide what opening a database needs, or refuse it with a one-line error.

    Parameters
    ----------
    tables
        The names of the tables the database holds (in its schema).
    revision
        Its ``alembic_version``, None without one.
    label
        How to name the database in messages (a path, or a URL without password).
    create
        Whether an empty database may be given crmkit's tables.
    adopt
        Whether crmkit may add its tables to a database holding another program's tables
        (``crmkit init``'s explicit opt-in).

    Returns
    -------
    str
        :data:`OK` (at the newest revision), :data:`UPGRADE` (an older revision of crmkit)
        or :data:`CREATE` (an empty database, or a foreign one with ``adopt``).

    Raises
    ------
    CrmkitError
        When there is no crmkit database and ``create`` is false; when the database holds
        another program's tables; when its revision is unknown here (a newer crmkit's, or
        another program's).

    """
    from crmkit.store.schema import TABLES

    ours = set(TABLES)
    tables = {t for t in tables if not t.startswith("sqlite_")}
    foreign = tables - ours - {"alembic_version"}
    if revision is None:
        if not tables - {"alembic_version"}:  # empty, or migrated down to nothing
            if create:
                return CREATE
            raise CrmkitError(
                f"no crmkit database at {label}; create one with `crmkit demo` or `crmkit init`"
            )
        if tables & ours:
            raise CrmkitError(
                f"{label} has tables named like crmkit's ({_names(tables & ours)}) but no "
                "crmkit schema revision; crmkit will not use or change it"
            )
        if not adopt:
            raise CrmkitError(
                f"{label} holds another program's tables ({_names(foreign)}); crmkit will not "
                f"add its tables to it; use `crmkit init --db {label}` to do so anyway"
            )
        return CREATE
    head = head_revision()
    if revision == head:
        return OK
    if revision in known_revisions():
        return UPGRADE
    if tables & ours:
        raise CrmkitError(
            f"{label} has crmkit schema revision {revision!r}, which this crmkit "
            f"({_crmkit_version()}, newest schema revision {head!r}) does not know: it was "
            "written by a newer crmkit; upgrade crmkit to use it"
        )
    raise CrmkitError(
        f"{label} holds another program's tables ({_names(foreign) or 'none'}) with its own "
        f"schema revision {revision!r} (crmkit's newest is {head!r}); crmkit will not use it"
    )


def database_state(engine: sa.Engine) -> tuple[list[str], str | None]:
    """Return the table names and the ``alembic_version`` of the database at ``engine``."""
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        revision = None
        if "alembic_version" in tables:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return tables, revision


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
