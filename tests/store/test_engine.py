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


def test_statement_errors_never_show_the_rows_values(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from crmkit.store.engine import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
        conn.execute(sa.text("INSERT INTO t VALUES (:k)"), {"k": "secret-row-value"})
    with pytest.raises(sa.exc.IntegrityError) as info, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (:k)"), {"k": "secret-row-value"})
    assert "secret-row-value" not in str(info.value)
    assert "UNIQUE constraint failed: t.k" in str(info.value)


def test_database_label_hides_the_password(tmp_path: Path) -> None:
    from crmkit.store.engine import database_label

    assert database_label("postgresql+psycopg://crm:s3cret@h/db") == (
        "postgresql+psycopg://crm:***@h/db"
    )
    assert database_label(resolve_url(tmp_path / "a.db")) == str(tmp_path / "a.db")


def test_busy_timeout_argument_is_checked() -> None:
    from crmkit.errors import CrmkitError
    from crmkit.store.engine import busy_timeout_seconds

    assert busy_timeout_seconds(0) == 0.0
    assert busy_timeout_seconds(2.5) == 2.5
    with pytest.raises(CrmkitError, match="busy_timeout must be a number of seconds >= 0"):
        busy_timeout_seconds(-1)


def test_masked_url_and_password_forms_hide_every_spelling_of_the_password() -> None:
    from crmkit.store.engine import masked_url, password_forms, scrub_password

    url = "postgresql+psycopg://crm:p%40ss+w@db.example:5432/crm"
    assert masked_url(url) == "postgresql+psycopg://crm:***@db.example:5432/crm"
    assert masked_url("/tmp/crm.db") == "/tmp/crm.db"  # a file path has no password
    forms = password_forms(url)
    assert "p@ss+w" in forms and "p%40ss+w" in forms  # decoded and as written
    text = f"cannot reach {url}: password p@ss+w refused"
    assert "p@ss" not in scrub_password(text, forms) and "%40" not in scrub_password(text, forms)
    assert password_forms("/tmp/crm.db") == []


def test_installed_crmkit_keeps_its_database_in_the_user_data_folder(monkeypatch, tmp_path) -> None:
    from crmkit.store.engine import user_data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "crmkit"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_data_dir() == tmp_path / "home" / ".local" / "share" / "crmkit"


def test_hide_password_masks_the_url_and_every_spelling_of_its_password() -> None:
    from crmkit.store.engine import hide_password, masked_url

    url = "postgresql+psycopg://crm:p%40ss@db.example/crm"
    text = f"connection to {url} failed: password p@ss rejected (p%40ss)"
    out = hide_password(text, url)
    assert masked_url(url) in out
    assert "p@ss" not in out and "p%40ss" not in out
    assert hide_password("a file path", "/tmp/crm.db") == "a file path"
