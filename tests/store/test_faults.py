"""The fault suite: real processes killed, racing and locking the same SQLite file.

Each case ends in a clean success or a one-line error, and always in an intact database
(``PRAGMA integrity_check`` is ``ok`` and the row counts are what they should be).

Some cases coordinate real ``crmkit`` processes through a probe: the process runs
``crmkit.cli.main`` with a SQLAlchemy event listener that only signals (by creating a file)
when the process reaches a given statement, or stops there, so that a kill or a race lands
at a known point instead of at a lucky moment.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmkit.cli import main

#: Runs ``crmkit.cli.main(argv)``; $PROBE_MODE "begin" creates $PROBE_MARKER just before the
#: process asks for the write lock; "stall" creates it after the second chunk of accounts was
#: inserted (inside the write transaction) and then waits there until killed.
PROBE = r"""
import os, sys, time
import sqlalchemy as sa
from sqlalchemy import event

marker, mode = os.environ.get("PROBE_MARKER"), os.environ.get("PROBE_MODE")
seen = {"inserts": 0}

@event.listens_for(sa.Engine, "before_cursor_execute")
def _before(conn, cursor, statement, *args):
    if mode == "begin" and statement.startswith("BEGIN IMMEDIATE"):
        open(marker, "w").close()

@event.listens_for(sa.Engine, "after_cursor_execute")
def _after(conn, cursor, statement, *args):
    if mode == "stall" and statement.startswith('INSERT INTO "accounts"'):
        seen["inserts"] += 1
        if seen["inserts"] == 2:
            open(marker, "w").close()
            time.sleep(600)

from crmkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def accounts_csv(path: Path, n: int, prefix: str = "A") -> Path:
    """Write ``n`` valid accounts (ids ``{prefix}0000001``...) to a CSV file."""
    lines = ["account_id,name,created_at"]
    lines += [f"{prefix}{i:07d},Company {i},2024-01-{1 + i % 28:02d}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(args: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``crmkit`` (through the probe) as a real process."""
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(path: Path, procs: list[subprocess.Popen[str]]) -> None:
    """Wait until ``path`` exists; fail with the output of a process that ended first."""
    while not path.exists():
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                pytest.fail(f"process ended before {path.name}: rc={p.returncode}\n{out}\n{err}")
        time.sleep(0.05)


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file."""
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def count(db: Path, table: str) -> int:
    """Rows of a table, read with plain sqlite3."""
    con = sqlite3.connect(db)
    try:
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    finally:
        con.close()


def assert_one_line_error(stderr: str) -> str:
    """The process reported exactly one line, an ``error:``, and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def crm_db(tmp_path: Path) -> Path:
    """A crmkit database holding 10 accounts."""
    db = tmp_path / "crm.db"
    assert main(["init", "--db", str(db)]) == 0
    small = accounts_csv(tmp_path / "small.csv", 10, prefix="S")
    assert main(["import", "accounts", str(small), "--db", str(db)]) == 0
    return db


def test_kill_9_during_an_import_leaves_the_database_intact(crm_db: Path, tmp_path: Path) -> None:
    big = accounts_csv(tmp_path / "big.csv", 120_000)
    before = count(crm_db, "accounts")
    marker = tmp_path / "stalled"
    proc = start(
        ["import", "accounts", str(big), "--db", str(crm_db)],
        env={"PROBE_MODE": "stall", "PROBE_MARKER": str(marker)},
    )
    try:
        wait_for(marker, [proc])  # two chunks of 50,000 rows are in, uncommitted
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert integrity(crm_db) == "ok"
    assert count(crm_db, "accounts") == before
    # The lock died with the process: the same import now lands whole.
    assert main(["import", "accounts", str(big), "--db", str(crm_db)]) == 0
    assert count(crm_db, "accounts") == before + 120_000
    assert integrity(crm_db) == "ok"


def test_two_importers_racing_one_wins_the_other_gets_one_line(
    crm_db: Path, tmp_path: Path
) -> None:
    """Both check the same file before either writes: the later writer's check is stale."""
    f = accounts_csv(tmp_path / "same.csv", 2_000)
    before = count(crm_db, "accounts")
    # This test holds the write lock while both importers check their rows, then lets go.
    holder = sqlite3.connect(crm_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    markers = [tmp_path / "ready-1", tmp_path / "ready-2"]
    procs = [
        start(
            ["import", "accounts", str(f), "--db", str(crm_db)],
            env={"PROBE_MODE": "begin", "PROBE_MARKER": str(m), "CRMKIT_BUSY_TIMEOUT": "600"},
        )
        for m in markers
    ]
    try:
        for m in markers:
            wait_for(m, procs)  # both validated and now ask for the write lock
    finally:
        holder.rollback()
        holder.close()
    results = [(p.wait(), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 1], results
    _, _, err = next(r for r in results if r[0] == 1)
    line = assert_one_line_error(err)
    assert "another writer" in line and "nothing was written" in line
    assert "Company" not in line  # no row data beyond the key named as the first problem
    assert count(crm_db, "accounts") == before + 2_000
    assert integrity(crm_db) == "ok"


def test_two_importers_started_together_into_a_new_file(tmp_path: Path) -> None:
    """Uncoordinated: whoever loses gets a clean refusal (a conflict or the duplicate rows)."""
    db = tmp_path / "fresh.db"
    f = accounts_csv(tmp_path / "same.csv", 5_000)
    procs = [start(["import", "accounts", str(f), "--db", str(db)]) for _ in range(2)]
    results = [(p.wait(), *p.communicate()) for p in procs]
    assert sorted(r[0] for r in results) == [0, 1], results
    _, _, err = next(r for r in results if r[0] == 1)
    assert "Traceback" not in err and err.startswith("error: "), err
    assert "IntegrityError" not in err and "parameters" not in err
    assert count(db, "accounts") == 5_000
    assert integrity(db) == "ok"


def test_writer_holding_the_lock_gives_a_one_line_busy_error(crm_db: Path, tmp_path: Path) -> None:
    f = accounts_csv(tmp_path / "new.csv", 50, prefix="N")
    before = count(crm_db, "accounts")
    # Another real process takes the write lock and keeps it until its stdin closes.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(crm_db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute(\"UPDATE accounts SET owner = 'holder'\")\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
            "c.execute('ROLLBACK')\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        r = subprocess.run(
            [sys.executable, "-m", "crmkit.cli", "import", "accounts", str(f), "--db", str(crm_db)],
            capture_output=True,
            text=True,
            env={**os.environ, "CRMKIT_BUSY_TIMEOUT": "0.5"},
        )
    finally:
        holder.communicate("")
    assert r.returncode == 1
    line = assert_one_line_error(r.stderr)
    assert line == (
        "error: the database is busy (locked by another writer for 0.5 s); nothing was "
        "written; try again"
    )
    assert count(crm_db, "accounts") == before
    assert integrity(crm_db) == "ok"
    # Once the other writer is done, the same command succeeds.
    assert main(["import", "accounts", str(f), "--db", str(crm_db)]) == 0
    assert count(crm_db, "accounts") == before + 50
