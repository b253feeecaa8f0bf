"""Where the database is and how to connect to it: URL resolution and engine settings."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import weakref
from pathlib import Path
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import event

from crmkit.errors import BusyError, CrmkitError

#: Environment variable that selects the database (a SQLAlchemy URL or a file path).
ENV_URL = "CRMKIT_DB_URL"
#: Environment variable with the busy timeout in seconds (see :func:`busy_timeout_seconds`).
ENV_BUSY_TIMEOUT = "CRMKIT_BUSY_TIMEOUT"
#: Seconds a writer waits for another writer's lock before giving up (the default).
DEFAULT_BUSY_TIMEOUT = 30.0
#: Milliseconds a SQLite writer waits for another writer by default (kept for callers).
SQLITE_BUSY_TIMEOUT_MS = int(DEFAULT_BUSY_TIMEOUT * 1000)
#: The busy timeout (seconds) each engine made by :func:`create_engine` was given.
_BUSY_TIMEOUTS: weakref.WeakKeyDictionary[sa.Engine, float] = weakref.WeakKeyDictionary()
#: Page cache per SQLite connection, in KiB.
SQLITE_CACHE_KIB = 262_144


def project_root() -> Path:
    """Return the project folder (the one holding ``pyproject.toml``), or the working directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def user_data_dir() -> Path:
    """Return crmkit's per-user data folder (``$XDG_DATA_HOME/crmkit``, ``%LOCALAPPDATA%``)."""
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "crmkit"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crmkit"


def default_db_path() -> Path:
    """Return the embedded database file.

    In a checkout (a folder holding crmkit's ``pyproject.toml``) it is ``data/crmkit.db``
    there; an installed crmkit uses ``crmkit.db`` in :func:`user_data_dir`, so a command run
    without ``--db`` finds the same database from any folder and never writes into the
    folder it was started in.
    """
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists():
        return here / "data" / "crmkit.db"
    return user_data_dir() / "crmkit.db"


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


def busy_timeout_seconds(seconds: float | None = None) -> float:
    """Return the busy timeout: ``seconds``, else ``$CRMKIT_BUSY_TIMEOUT``, else 30 s.

    Parameters
    ----------
    seconds
        Seconds a writer waits for another writer's lock (or a reader for a lock on
        SQLite) before :class:`crmkit.errors.BusyError` is raised; None for the default.

    Returns
    -------
    float

    Raises
    ------
    CrmkitError
        When the value (or the environment variable) is not a finite number >= 0.

    """
    source = "busy_timeout"
    value: object = seconds
    if seconds is None:
        text = os.environ.get(ENV_BUSY_TIMEOUT, "").strip()
        if not text:
            return DEFAULT_BUSY_TIMEOUT
        source, value = f"${ENV_BUSY_TIMEOUT}", text
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        shown = repr(value)[:40]
        raise CrmkitError(f"{source} must be a number of seconds >= 0, not {shown}")
    return number


def database_label(url: str) -> str:
    """Return how to name a database in messages: its file path, or its URL without password."""
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        return u.database if u.database and u.database != ":memory:" else "the in-memory database"
    return u.render_as_string(hide_password=True)


def masked_url(url: str) -> str:
    """Return a database URL with its password replaced by ``***`` (safe to show or store).

    Parameters
    ----------
    url
        A SQLAlchemy URL or a SQLite file path.

    Returns
    -------
    str
        The URL as :meth:`sqlalchemy.engine.URL.render_as_string` shows it with
        ``hide_password=True``; ``url`` itself when it has no password; for text SQLAlchemy
        cannot read, ``url`` with whatever looks like ``user:password@`` masked.
    """
    try:
        u = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))
    return url if u.password is None else u.render_as_string(hide_password=True)


def password_forms(url: str) -> list[str]:
    """Return every form of ``url``'s password to scrub from text, longest first.

    Parameters
    ----------
    url
        A SQLAlchemy URL (anything else has no password).

    Returns
    -------
    list of str
        The password as decoded, URL-quoted both ways and as written in ``url``; ``[]``
        without a password.
    """
    try:
        password = sa.make_url(url).password
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return []
    if not password:
        return []
    found = {str(password), quote(str(password), safe=""), quote_plus(str(password))}
    netloc = str(url).split("://", 1)[-1].split("@", 1)
    if len(netloc) == 2 and ":" in netloc[0]:
        found.add(netloc[0].split(":", 1)[1])  # as written, whatever its encoding
    return sorted((f for f in found if f), key=len, reverse=True)


def scrub_password(text: str, forms: list[str]) -> str:
    """Replace every form of a password (:func:`password_forms`) in ``text`` by ``***``."""
    for form in forms:
        text = text.replace(form, "***")
    return text


def hide_password(text: str, url: str) -> str:
    """Replace ``url`` by its masked form and every form of its password by ``***``."""
    return scrub_password(text.replace(url, masked_url(url)), password_forms(url))


def busy_message(seconds: float) -> str:
    """The one-line text of :class:`crmkit.errors.BusyError`."""
    return (
        f"the database is busy (locked by another writer for {seconds:g} s); nothing was "
        "written; try again"
    )


def refusal_reason(exc: sa.exc.DBAPIError) -> str:
    """The first line of the driver's message for a statement the database refused."""
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else "refused"


def translate_db_error(exc: BaseException, seconds: float, label: str) -> CrmkitError | None:
    """Return the user error for a driver error, or None when it is not one of ours.

    Parameters
    ----------
    exc
        The driver's exception (sqlite3 or psycopg), not SQLAlchemy's wrapper.
    seconds
        The busy timeout in effect, named in :class:`crmkit.errors.BusyError`.
    label
        How to name the database (see :func:`database_label`).

    Returns
    -------
    CrmkitError or None
        :class:`crmkit.errors.BusyError` for a lock held past the busy timeout, a
        :class:`crmkit.errors.CrmkitError` for a file that is not (or no longer) a database.

    """
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc)
        if primary in (5, 6) or text.startswith(("database is locked", "database table is locked")):
            return BusyError(busy_message(seconds))
        if primary == 26 or text == "file is not a database":
            return CrmkitError(f"{label} is not a crmkit database (not an SQLite file)")
        if primary == 11 or "malformed" in text:
            return CrmkitError(f"{label} is damaged ({text}); restore it from a backup")
        return None
    if getattr(exc, "sqlstate", None) == "55P03":  # PostgreSQL lock_not_available
        return BusyError(busy_message(seconds))
    return None


def _sqlite_connect_listener(busy_ms: int):
    """Return the connect listener that sets crmkit's pragmas with this busy timeout."""

    def on_connect(dbapi_connection, record) -> None:
        _sqlite_on_connect(dbapi_connection, record, busy_ms)

    return on_connect


def _sqlite_on_connect(dbapi_connection, _record, busy_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """Set SQLite pragmas and hand transaction control to SQLAlchemy."""
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
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


def _pg_connect_listener(busy_ms: int):
    """Return the connect listener that sets PostgreSQL's lock timeout."""

    def on_connect(dbapi_connection, _record) -> None:
        cur = dbapi_connection.cursor()
        # 0 would mean "wait forever" to PostgreSQL; 1 ms is the nearest to "do not wait".
        cur.execute(f"SET lock_timeout = {max(int(busy_ms), 1)}")
        cur.close()
        dbapi_connection.commit()

    return on_connect


def _error_listener(seconds: float, label: str):
    """Return the handle_error listener that turns lock and damage errors into user errors."""

    def on_error(ctx: sa.engine.ExceptionContext) -> CrmkitError | None:
        return translate_db_error(ctx.original_exception, seconds, label)

    return on_error


def create_engine(
    url: str, *, busy_timeout: float | None = None, create_dirs: bool = True
) -> sa.Engine:
    """Create an engine with crmkit's settings (WAL and busy timeout for SQLite files).

    Statement parameters (row data) never appear in the engine's error messages, and a
    lock held by another writer past the busy timeout raises :class:`crmkit.errors.BusyError`
    from every statement, read or write.

    Parameters
    ----------
    url
        A SQLAlchemy URL from :func:`resolve_url`.
    busy_timeout
        Seconds to wait for another writer's lock (default: :func:`busy_timeout_seconds`).
        On PostgreSQL this is the ``lock_timeout``.
    create_dirs
        Create the folder of a SQLite file if it is missing.

    Returns
    -------
    sqlalchemy.Engine

    """
    seconds = busy_timeout_seconds(busy_timeout)
    busy_ms = round(seconds * 1000)
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            if create_dirs:
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": seconds}, hide_parameters=True)
        else:
            engine = sa.create_engine(
                "sqlite://",
                connect_args={"check_same_thread": False},
                poolclass=sa.pool.StaticPool,
                hide_parameters=True,
            )
        event.listen(engine, "connect", _sqlite_connect_listener(busy_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
        if u.get_backend_name() == "postgresql":
            event.listen(engine, "connect", _pg_connect_listener(busy_ms))
    event.listen(engine, "handle_error", _error_listener(seconds, database_label(url)))
    _BUSY_TIMEOUTS[engine] = seconds
    return engine


def busy_timeout_of(engine: sa.Engine) -> float:
    """Return the busy timeout (seconds) of an engine (the default for foreign engines)."""
    return _BUSY_TIMEOUTS.get(engine, DEFAULT_BUSY_TIMEOUT)


#: The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for an in-memory or non-SQLite database."""
    u = sa.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    if u.database.startswith("file:"):  # a URI filename: leave it to SQLite
        return None
    return Path(u.database)


def probe_sqlite_file(path: Path, busy_timeout: float) -> tuple[bool, list[str], str | None]:
    """Look at a SQLite file without changing it: does it exist, its tables, its revision.

    The file is read through a read-only connection, so a refused file (another program's
    database, a text file) is left exactly as it was.

    Parameters
    ----------
    path
        The database file.
    busy_timeout
        Seconds to wait for another writer's lock.

    Returns
    -------
    tuple
        ``(exists, table names, alembic revision or None)``; an empty file has no tables.

    Raises
    ------
    CrmkitError
        When the path is a folder, not an SQLite file, or a damaged one.

    """
    if not path.exists():
        return False, [], None
    if path.is_dir():
        raise CrmkitError(f"{path} is a folder, not a crmkit database")
    size = path.stat().st_size
    if size == 0:
        return True, [], None
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(SQLITE_MAGIC):
        raise CrmkitError(f"{path} is not a crmkit database (not an SQLite file)")
    if len(header) < 100:
        raise CrmkitError(
            f"{path} is damaged (it ends inside its header); restore it from a backup"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid when its "valid-for" number equals the change
    # counter (SQLite's own rule); a file shorter than that lost its end.
    if header[92:96] == header[24:28] and pages and size < pages * page_size:
        raise CrmkitError(
            f"{path} is damaged (the file has {size:,} of its {pages * page_size:,} bytes); "
            "restore it from a backup"
        )
    con = None
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout)
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        ]
        revision = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    except sqlite3.Error as exc:
        err = translate_db_error(exc, busy_timeout, str(path))
        if err is None:
            err = CrmkitError(f"{path} is damaged ({exc}); restore it from a backup")
        raise err from None
    finally:
        if con is not None:
            con.close()
    return True, tables, revision
