"""The report run never lies, leaks or hangs: real Papermill runs with faults put in.

A password-protected PostgreSQL database (the password is in no output), a run killed with
SIGKILL (its temporary folder and kernel do not outlive it), a stalled notebook (timed out,
retried once, the previous report kept byte for byte, no kernel left).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
import sqlalchemy as sa

from crmkit.apps import report as report_module
from crmkit.apps.report import ReportError, main, run_report
from crmkit.store import Store
from crmkit.store.engine import masked_url
from tests.apps.test_report import shown_numbers
from tests.conftest import pg_role_schema
from tests.snapshot_factory import make_fake_snapshot

TMP_GLOB = ".forecast_report.tmp-*"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
#: Longest wait for a child to reach a state (a guard against hanging, not a speed check).
PATIENCE_SECONDS = 600


def _state(out: Path) -> dict[str, bytes]:
    """Every file in ``out`` (hidden ones too) and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _alive(proc: psutil.Process) -> bool:
    """Tell whether a process still runs (a zombie has died)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Wait until the processes have ended; return those still running after the patience."""
    end = time.monotonic() + PATIENCE_SECONDS
    while any(_alive(p) for p in procs) and time.monotonic() < end:
        time.sleep(0.2)
    return [p for p in procs if _alive(p)]


def _kernels_under(pid: int) -> list[psutil.Process]:
    """Jupyter kernels running under process ``pid``."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(p.cmdline()) and _alive(p):
                found.append(p)
        except psutil.Error:
            pass
    return found


def sleepy_notebook(path: Path, pid_file: Path) -> Path:
    """A report notebook that appends its kernel's pid to ``pid_file``, then sleeps."""
    params = nbformat.v4.new_code_cell(
        'as_of = "2026-10-31"\nhorizon = 3\nperiod = "M"\ntarget = None\ndb_url = None\n'
        'draws = 1000\nfilters = {}\nout_dir = "."\nrefit = False\nmethod = "map"\nseed = 0\n'
        "backtest = 0"
    )
    params.metadata["tags"] = ["parameters"]
    work = nbformat.v4.new_code_cell(
        f"import os, time\nwith open({str(pid_file)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\ntime.sleep(3600)"
    )
    nb = nbformat.v4.new_notebook(cells=[params, work])
    nb.metadata["kernelspec"] = KERNELSPEC
    nbformat.write(nb, path)
    return path


def _pids(pid_file: Path) -> list[int]:
    return [int(x) for x in pid_file.read_text().split()] if pid_file.exists() else []


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A database with two fake snapshots and a finished report (no PDF)."""
    root = tmp_path_factory.mktemp("faults")
    db_path = root / "crm.db"
    with Store.open(db_path) as store:
        store.save_snapshot(make_fake_snapshot(seed=3, scale=0.9, label="older"))
        store.save_snapshot(make_fake_snapshot(seed=4))
    return {"db": db_path, "root": root}


def _fresh_report(done: dict, tmp_path: Path) -> Path:
    """A folder holding a finished report of ``done``'s database."""
    out = tmp_path / "reports"
    run_report("2026-11-15", 3, db=done["db"], out_dir=out, refit=False, pdf=False, log=None)
    return out


# ---------------------------------------------------------------------- the password
def _pdf_texts(pdf: bytes) -> list[bytes]:
    """The PDF's bytes and every deflated stream in it, inflated."""
    found = [pdf]
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            found.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass
    return found


@pytest.fixture(scope="module")
def pg_db() -> Iterator[dict]:
    """A PostgreSQL role with a password, owning a fresh schema holding two fake snapshots."""
    with pg_role_schema("rep") as (url, password):
        with Store.open(url) as store:
            store.save_snapshot(make_fake_snapshot(seed=3, scale=0.9, label="older"))
            snap = make_fake_snapshot(seed=4)
            store.save_snapshot(snap)
        yield {"url": url, "password": password, "snap": snap}


@pytest.mark.postgres
def test_postgres_password_appears_in_no_output_and_numbers_are_right(
    pg_db: dict, tmp_path: Path
) -> None:
    url, password, snap = pg_db["url"], pg_db["password"], pg_db["snap"]
    # the wrong password is refused: the run below really needs the right one
    wrong = sa.create_engine(url.replace(password, "not-the-password"))
    with pytest.raises(sa.exc.OperationalError):
        wrong.connect().close()
    wrong.dispose()
    out = tmp_path / "reports"
    # the command as cron runs it: the URL in the environment, no --db on the command line
    env = {**os.environ, "CRMKIT_DB_URL": url}
    argv = [
        sys.executable, "-m", "crmkit.apps.report", "--as-of", "2026-11-15", "--horizon", "3",
        "--no-refit", "--backtest", "0", "--out-dir", str(out),
    ]  # fmt: skip
    leaks_in_argv: list[str] = []
    stop = threading.Event()

    def watch_argv() -> None:  # every process's command line, while the report runs
        while not stop.is_set():
            for p in psutil.process_iter(["cmdline"]):
                line = " ".join(p.info["cmdline"] or [])
                if password in line:
                    leaks_in_argv.append(line)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_argv, daemon=True)
    watcher.start()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, cwd=tmp_path)
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert leaks_in_argv == []
    secret = password.encode()
    assert secret not in proc.stdout and secret not in proc.stderr
    files = _state(out)
    assert set(files) == {
        "forecast_report.ipynb", "forecast_report.html", "forecast_report.pdf",
        "forecast_report.summary.json", "forecast_report.fanchart.png",
    }  # fmt: skip
    for name, data in files.items():
        assert secret not in data, name
    for text in _pdf_texts(files["forecast_report.pdf"]):
        assert secret not in text
    nb = nbformat.reads(files["forecast_report.ipynb"].decode(), as_version=4)
    shown_url = nb.metadata["papermill"]["parameters"]["db_url"]
    assert shown_url == masked_url(url) and ":***@" in shown_url
    html = files["forecast_report.html"].decode()
    assert ":***@" in html  # the database is named, with its password masked
    # the right numbers, from the snapshot in PostgreSQL
    assert f'data-snapshot-id="{snap.snapshot_id}"' in html
    closed = snap.quantiles.query("group == 'all' and source == 'total'")["closed_to_date"].sum()
    sums = snap.revenue.sel(source="total", group="all").sum("period").to_numpy() + closed
    assert int(shown_numbers(html)["total", "p50"].replace(",", "")) == round(np.median(sums))


@pytest.mark.postgres
def test_a_failed_run_masks_the_password_in_its_error_and_log(pg_db: dict, tmp_path: Path) -> None:
    # the notebook fails with the real URL in its message
    url, secret = pg_db["url"], pg_db["password"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("db_url = None\nout_dir = '.'"),
        nbformat.v4.new_code_cell(
            "import os\nprint('connecting to', os.environ['CRMKIT_DB_URL'])\n"
            "raise RuntimeError('cannot reach ' + os.environ['CRMKIT_DB_URL'])"
        ),
    ])  # fmt: skip
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = KERNELSPEC
    path = tmp_path / "fails.ipynb"
    nbformat.write(nb, path)
    lines: list[str] = []
    with pytest.raises(ReportError) as err:
        run_report("2026-11-15", 3, db=url, out_dir=tmp_path / "out", pdf=False, notebook=path,
                   log=lines.append)  # fmt: skip
    message = str(err.value)
    assert f"RuntimeError: cannot reach {masked_url(url)}" in message
    assert secret not in message and "\n" not in message
    assert lines and not any(secret in line for line in lines)
    assert not list((tmp_path / "out").glob(TMP_GLOB))


# ---------------------------------------------------------------------- kill -9
def test_killed_run_leaves_no_kernel_and_next_run_removes_its_tmp_folder(
    done: dict, tmp_path: Path
) -> None:
    out = _fresh_report(done, tmp_path)
    before = _state(out)
    pid_file = tmp_path / "kernel.pids"
    nb = sleepy_notebook(tmp_path / "sleepy.ipynb", pid_file)
    code = (
        "from crmkit.apps.report import run_report\n"
        f"run_report('2026-11-15', 3, db={str(done['db'])!r}, out_dir={str(out)!r}, "
        f"refit=False, pdf=False, notebook={str(nb)!r}, log=None)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
    end = time.monotonic() + PATIENCE_SECONDS
    while not _pids(pid_file) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
    assert _pids(pid_file), "the sleeping notebook never started"
    under = psutil.Process(proc.pid).children(recursive=True)  # papermill's process, kernel
    kernel = psutil.Process(_pids(pid_file)[0])
    assert kernel in under
    tmps = list(out.glob(TMP_GLOB))
    assert len(tmps) == 1 and tmps[0].name.startswith(f".forecast_report.tmp-{proc.pid}-")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # papermill's process notices and stops the kernel: nothing of the run outlives it
    assert _wait_gone(under) == []
    assert tmps[0].exists()  # left behind by the killed run
    assert _state(out) == before  # the previous report, unchanged
    lines: list[str] = []
    r = run_report("2026-11-15", 3, db=done["db"], out_dir=out, refit=False, pdf=False,
                   log=lines.append)  # fmt: skip
    assert not list(out.glob(TMP_GLOB))
    assert any(tmps[0].name in line and "removing" in line for line in lines)
    assert (
        r.html.exists()
        and r.summary["snapshot_id"]
        == json.loads(before["forecast_report.summary.json"])["snapshot_id"]
    )


def test_tmp_folders_of_live_runs_are_kept_and_dead_or_old_ones_removed(
    done: dict, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        running = out / f".forecast_report.tmp-{live.pid}-aaaaaaaa"
        gone = out / f".forecast_report.tmp-{dead.pid}-bbbbbbbb"
        old = out / f".forecast_report.tmp-{live.pid}-cccccccc"
        for d in (running, gone, old):
            d.mkdir()
            (d / "forecast_report.ipynb").write_text("{}")
        week_ago = time.time() - 7 * 86_400
        os.utime(old, (week_ago, week_ago))
        run_report("2026-11-15", 3, db=done["db"], out_dir=out, refit=False, pdf=False,
                   timeout=600, log=None)  # fmt: skip
        assert sorted(p.name for p in out.glob(TMP_GLOB)) == [running.name]
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------------- a stalled run
def test_stalled_run_times_out_retries_once_keeps_previous_report_and_leaves_no_kernel(
    done: dict, tmp_path: Path
) -> None:
    out = _fresh_report(done, tmp_path)
    before = _state(out)
    pid_file = tmp_path / "kernel.pids"
    nb = sleepy_notebook(tmp_path / "sleepy.ipynb", pid_file)
    lines: list[str] = []
    with pytest.raises(ReportError) as err:
        run_report("2026-11-15", 3, db=done["db"], out_dir=out, refit=False, pdf=False,
                   notebook=nb, timeout=30, log=lines.append)  # fmt: skip
    assert str(err.value) == (
        "the report run timed out after 30 s (retried once); the previous report was kept"
    )
    assert sum("retrying once" in line for line in lines) == 1
    assert _state(out) == before  # byte-identical, and no temporary folder
    assert not list(out.glob(TMP_GLOB))
    kernels = [int(p) for p in _pids(pid_file)]
    assert kernels, "no kernel reached the sleeping cell"
    for pid in kernels:
        assert not psutil.pid_exists(pid) or not _alive(psutil.Process(pid))
    assert _kernels_under(os.getpid()) == []


def test_report_command_times_out_with_one_line_and_exit_1(
    done: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = _fresh_report(done, tmp_path)
    before = _state(out)
    pid_file = tmp_path / "kernel.pids"
    nb = sleepy_notebook(tmp_path / "sleepy.ipynb", pid_file)
    monkeypatch.setattr(report_module, "report_template", lambda: nb)
    code = main(["--as-of", "2026-11-15", "--horizon", "3", "--db", str(done["db"]),
                 "--out-dir", str(out), "--no-refit", "--no-pdf", "--timeout", "5"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "error: the report run timed out after 5 s (retried once); the previous report was kept\n"
    )
    assert _state(out) == before
    for pid in _pids(pid_file):  # any kernel that reached the sleeping cell was stopped
        assert not psutil.pid_exists(pid) or not _alive(psutil.Process(pid))
    assert _kernels_under(os.getpid()) == []
    code = main(["--as-of", "2026-11-15", "--horizon", "3", "--db", str(done["db"]),
                 "--out-dir", str(out), "--timeout", "0"])  # fmt: skip
    assert code == 1 and "timeout" in capsys.readouterr().err
