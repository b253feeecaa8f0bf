"""Shared fixtures: stores on SQLite and on the PostgreSQL server CI starts, and the shared data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crmkit.store import Store

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
