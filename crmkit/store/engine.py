"""Where the database is and how to connect to it: URL resolution and engine settings."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

#: Environment variable that selects the database (a SQLAlchemy URL or a file path).
ENV_URL = "CRMKIT_DB_URL"
#: Milliseconds a SQLite writer waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Page cache per SQLite connection, in KiB.
SQLITE_CACHE_KIB = 262_144


def project_root() -> Path:
    """Return the project folder (the one holding ``pyproject.toml``), or the working directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def default_db_path() -> Path:
    """Return the embedded database file: ``data/crmkit.db`` in the project folder."""
    return project_root() / "data" / "crmkit.db"


def resolve_url(url_or_path: str | os.PathLike[str] | None = None) -> str:
    """Turn a path, a SQLAlchemy URL or nothing into a SQLAlchemy URL.

    Parameters
    ----------
    url_or_path
        A SQLAlchemy URL (``postgresql+psycopg://...``, ``sqlite:///file.db``, ``sqlite://``),
        a path to a SQLite file, or None for ``$CRMKIT_DB_URL`` and then the embedded file.

    Returns
    -------
    str
        The SQLAlchemy URL.

    """
    if url_or_path is None or str(url_or_path) == "":
        url_or_path = os.environ.get(ENV_URL) or default_db_path()
    text = str(url_or_path)
    if "://" in text:
        if text.startswith("postgresql://"):
            text = "postgresql+psycopg://" + text[len("postgresql://") :]
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    """Set SQLite pragmas and hand transaction control to SQLAlchemy."""
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    # A 256 MiB page cache (allocated only as used) and in-memory temporary B-trees keep
    # bulk loads and the purchase summary from thrashing once tables outgrow the default 2 MiB.
    cur.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    cur.execute("PRAGMA temp_store = MEMORY")
    cur.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    """Begin writes with BEGIN IMMEDIATE so two writers queue instead of deadlocking."""
    write = conn.get_execution_options().get("crmkit_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine(url: str) -> sa.Engine:
    """Create an engine with crmkit's settings (WAL and busy timeout for SQLite files).

    Parameters
    ----------
    url
        A SQLAlchemy URL from :func:`resolve_url`.

    Returns
    -------
    sqlalchemy.Engine

    """
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        else:
            engine = sa.create_engine(
                "sqlite://",
                connect_args={"check_same_thread": False},
                poolclass=sa.pool.StaticPool,
            )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)
