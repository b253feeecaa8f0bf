"""Shared fixtures: stores on SQLite and PostgreSQL (CI starts it), shared data, a fake snapshot.

Two databases are built once per session and read-only: the seeded demo company
(:func:`demo_db_file`) and the simulated deals (:func:`sim_deals_db_file`). Tests that write
open a copy (:func:`copy_db`, :func:`sim_deals_store`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crmkit.store import Snapshot, Store

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()
DATASETS = SHARED / "datasets"
PG_ENV = "CRMKIT_TEST_PG_URL"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")


def shared_dataset(*parts: str) -> Path:
    """Path of a file under ../shared/datasets, skipping the test when it is absent."""
    path = DATASETS.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI; ../shared must be beside the clone")
        pytest.skip(f"needs {path} (../shared/datasets beside the project), absent here")
    return path


def pg_url() -> str:
    """The test PostgreSQL URL, skipping (or failing in CI) when none is configured."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI; .ci/run must start PostgreSQL")
        pytest.skip(f"set {PG_ENV} to run against PostgreSQL (bash dev.sh test does)")
    return url


@contextlib.contextmanager
def pg_role_schema(prefix: str = "rol") -> Iterator[tuple[str, str]]:
    """A PostgreSQL role with a unique password owning a fresh schema: ``(url, password)``.

    The password is a random string that occurs nowhere else, so a test can search every
    output for it (the CI role's password, ``crm``, is part of "crmkit").
    """
    role, password = f"{prefix}_{uuid.uuid4().hex[:8]}", f"Pw-{uuid.uuid4().hex}"
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url())
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    base = sa.make_url(pg_url()).set(username=role, password=password, query={})
    url = base.render_as_string(hide_password=False) + f"?options=-csearch_path%3D{schema}"
    try:
        yield url, password
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    url = pg_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        s = Store.open(tmp_path / "crm.db")
    else:
        s = Store.open(request.getfixturevalue("pg_schema_url"))
    yield s
    s.close()


@pytest.fixture
def mem_store() -> Iterator[Store]:
    """An empty in-memory SQLite store."""
    s = Store.open("sqlite://")
    yield s
    s.close()


@pytest.fixture
def company(tmp_path: Path) -> Iterator[Store]:
    """A SQLite file store holding the small test company (see :mod:`tests.factories`)."""
    from tests.factories import small_company

    s = Store.open(tmp_path / "crm.db")
    s.insert_many(small_company())
    yield s
    s.close()


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    """A fake forecast snapshot of known draws (see :mod:`tests.snapshot_factory`)."""
    from tests.snapshot_factory import make_fake_snapshot

    return make_fake_snapshot()


def _sqlite_copy(src: Path, dst: Path) -> Path:
    """Copy a SQLite database file (WAL included) with SQLite's backup API; ``dst``."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return dst


@pytest.fixture(scope="session")
def copy_db() -> Callable[[Path, Path], Path]:
    """Copy a session database into a directory: ``copy_db(src, directory) -> path``."""
    return lambda src, directory: _sqlite_copy(src, Path(directory) / Path(src).name)


#: The demo company the segment, widget and notebook tests share.
DEMO_SIZES = {"n_customers": 150, "n_deals": 200, "seed": 3}


@pytest.fixture(scope="session")
def demo_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded demo company (:data:`DEMO_SIZES`) in a SQLite file, built once; read-only."""
    from crmkit.data.demo.company import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    with Store.open(path) as store:
        build_demo(store, **DEMO_SIZES)
    return path


@pytest.fixture(scope="session")
def sim_deals() -> dict[str, pd.DataFrame]:
    """Thirty months of simulated deals, 30 arrivals a month (:mod:`tests.sim_deals`)."""
    from tests.sim_deals import simulate

    return simulate(n_months=30, arrivals=30, seed=2)


@pytest.fixture(scope="session")
def sim_deals_db_file(
    tmp_path_factory: pytest.TempPathFactory, sim_deals: dict[str, pd.DataFrame]
) -> Path:
    """:func:`sim_deals` loaded into a SQLite file, built once; read-only."""
    path = tmp_path_factory.mktemp("sim_deals") / "deals.db"
    with Store.open(path) as store:
        store.insert_many(
            {
                "accounts": sim_deals["accounts"],
                "stages": sim_deals["stages"],
                "deals": sim_deals["deals"],
                "deal_history": sim_deals["deal_history"].drop(columns=["history_id"]),
            },
            changed_by="test",
        )
    return path


@pytest.fixture
def sim_deals_store(
    sim_deals_db_file: Path, copy_db: Callable[[Path, Path], Path], tmp_path: Path
) -> Iterator[Store]:
    """A writable copy of :func:`sim_deals_db_file`, for one test."""
    s = Store.open(copy_db(sim_deals_db_file, tmp_path))
    yield s
    s.close()
