"""The ``crmkit`` command: subcommands, --db, one-line errors and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmkit.cli import build_parser, main
from crmkit.store import Store


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "demo.db"
    assert main(["demo", "--db", str(path), "--customers", "200", "--deals", "300"]) == 0
    return path


def test_demo_builds_a_database(demo_db: Path) -> None:
    store = Store.open(demo_db)
    counts = store.counts()
    assert counts["accounts"] == 200
    assert counts["deals"] == 300
    assert counts["orders"] > 0
    assert counts["deal_history"] >= 300
    assert store.get_meta("demo_truth") is not None


def test_demo_refuses_to_overwrite_and_if_missing_keeps(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--db", str(demo_db)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--replace" in err[0]
    assert main(["demo", "--db", str(demo_db), "--if-missing"]) == 0
    assert Store.open(demo_db).count("accounts") == 200


def test_export_then_import_round_trip(demo_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "accounts.csv"
    assert main(["export", "accounts", str(out), "--db", str(demo_db)]) == 0
    exported = pd.read_csv(out)
    assert len(exported) == 200
    fresh = tmp_path / "fresh.db"
    assert main(["import", "accounts", str(out), "--db", str(fresh)]) == 0
    back = Store.open(fresh).read("accounts")
    assert (
        back["account_id"].tolist() == Store.open(demo_db).read("accounts")["account_id"].tolist()
    )


def test_export_parquet(demo_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "deals.parquet"
    assert main(["export", "deals", str(out), "--db", str(demo_db)]) == 0
    assert len(pd.read_parquet(out)) == 300


def test_import_with_bad_rows_reports_them_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "accounts.csv"
    f.write_text("id,company,created\nA1,Acme,2024-01-02\nA2,,2024-01-03\nA3,Initech,2024-02-30\n")
    db = tmp_path / "x.db"
    args = ["import", "accounts", str(f), "--db", str(db)]
    args += ["--map", "id=account_id", "--map", "company=name", "--map", "created=created_at"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "row 3" in err and "name" in err
    assert "row 4" in err and "created_at" in err
    assert Store.open(db).count("accounts") == 0
    rejects = tmp_path / "rejects.csv"
    assert main([*args, "--skip-bad", "--rejects", str(rejects)]) == 0
    assert Store.open(db).read("accounts")["account_id"].tolist() == ["A1"]
    assert len(pd.read_csv(rejects)) == 2


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    db = tmp_path / "y.db"
    cases = [
        ["import", "dealz", str(tmp_path / "none.csv"), "--db", str(db)],
        ["import", "accounts", str(tmp_path / "none.csv"), "--db", str(db)],
        ["export", "accounts", str(tmp_path / "out.txt"), "--db", str(db)],
    ]
    for args in cases:
        r = subprocess.run(
            [sys.executable, "-m", "crmkit.cli", *args], capture_output=True, text=True
        )
        assert r.returncode == 1, args
        assert "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def test_summary_prints_counts(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--db", str(demo_db)]) == 0
    out = capsys.readouterr().out
    assert "accounts" in out and "200" in out
    assert "win rate on closed deals" in out


def test_db_defaults_to_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("CRMKIT_DB_URL", f"sqlite:///{db}")
    assert main(["summary"]) == 0
    assert str(db) in capsys.readouterr().out


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "--db" in text, name
