"""Where the database is: paths, URLs and the CRMKIT_DB_URL variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmkit.store.engine import default_db_path, resolve_url


def test_path_becomes_sqlite_url(tmp_path: Path) -> None:
    assert resolve_url(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"


def test_urls_pass_through_and_plain_postgresql_gets_psycopg() -> None:
    assert resolve_url("sqlite://") == "sqlite://"
    assert resolve_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"


def test_environment_variable_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMKIT_DB_URL", "sqlite:///x.db")
    assert resolve_url(None) == "sqlite:///x.db"
    monkeypatch.delenv("CRMKIT_DB_URL")
    assert resolve_url(None) == f"sqlite:///{default_db_path()}"
    assert default_db_path().parts[-2:] == ("data", "crmkit.db")
