"""The scheduled forecast report: Papermill runs the notebook, then HTML and PDF exports.

:func:`run_report` checks its parameters before anything runs, executes
``notebooks/reports/forecast_report.ipynb`` with Papermill into a temporary folder,
converts it to HTML without code (``jupyter nbconvert --no-input``) and prints that to PDF
with headless chromium. Only when every step succeeded are the files renamed to their
final names, so a failed run leaves the last good report in place and raises
:class:`ReportError` saying why.

Papermill runs in a child process, bounded by a whole-run timeout (retried once), and is
killed with its kernel when the run times out or the report process dies. The models' fit
lines (:func:`fit_progress`, written by the notebook's refit to the kernel's own stderr, not
into the notebook) reach the caller live through ``progress``: ``crmkit report`` prints them
to stderr while a fit of a minute or more runs. The database
URL reaches the kernel through ``$CRMKIT_DB_URL``; every file, log line and error shows it
with the password masked. Temporary folders left by a killed run are removed by the next.

The notebook itself calls :mod:`crmkit.apps.report_sections`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from crmkit.apps import dashboard as db
from crmkit.apps.browser import CHROMIUM_FLAGS, chromium_path
from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.forecast.params import METHODS
from crmkit.store.engine import ENV_URL, masked_url, password_forms, scrub_password

#: Seconds the PDF printer may take.
PDF_TIMEOUT_SECONDS = 180
#: Seconds a whole report run (notebook, HTML, PDF) may take by default; it is retried once.
DEFAULT_TIMEOUT_SECONDS = 1800
#: Prefix of the progress lines the notebook's kernel writes to its stderr (:func:`fit_progress`).
PROGRESS_PREFIX = "crmkit: "
#: Past month ends the report backtests from by default: the fewest for which the backtest
#: gives a verdict against the run rate (:data:`crmkit.forecast.skill.MIN_COMPARE_ORIGINS`;
#: the fourth origin costs about 5 s on the default demo). With so few only a large
#: difference shows, and the verdict line says so; ``--backtest 7`` or more tells more.
DEFAULT_BACKTEST_ORIGINS = 4
#: Files the notebook writes into its ``out_dir``: headline figures (JSON) and the fan chart.
SUMMARY_FILE = "summary.json"
FANCHART_FILE = "fanchart.png"


class ReportError(CrmkitError):
    """The report run failed; the previous report files were left untouched."""


def fit_progress(line: str) -> None:
    """Write a fit's progress line to this process's real stderr, at once.

    In the report notebook's kernel, ``sys.stderr`` is the notebook's stderr stream; its
    ``fileno()`` is the kernel process's original stderr (or, when ipykernel does not watch
    the file descriptors, file descriptor 2 still is), which the report run reads
    (:func:`run_report`'s ``progress``), so the line is shown live and never lands in the
    report itself. Elsewhere it is plain stderr.

    Parameters
    ----------
    line
        The line (without the :data:`PROGRESS_PREFIX`), e.g. from
        :func:`crmkit.forecast.engine.fit_report`.

    """
    text = f"{PROGRESS_PREFIX}{line}".replace("\n", " ") + "\n"
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = 2  # ipykernel without fd capture (e.g. under pytest): fd 2 is the process's own
    with contextlib.suppress(OSError):
        os.write(fd, text.encode("utf-8", "replace"))


def _stderr_line(line: str) -> None:
    """Print a progress line to stderr at once."""
    print(line, file=sys.stderr, flush=True)


def report_template() -> Path:
    """Return the report notebook, ``reports/forecast_report.ipynb`` of crmkit's notebooks.

    Found in the installed package (or the checkout of an editable install), never in the
    current folder: see :func:`crmkit.apps.notebooks.notebooks_dir`.
    """
    from crmkit.apps.notebooks import notebooks_dir

    return notebooks_dir() / "reports" / "forecast_report.ipynb"


def _is_int(x: object) -> bool:
    """Tell whether ``x`` is an integer (and not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool)


def validate_parameters(
    as_of: object,
    horizon: object,
    period: object = "M",
    target: object = None,
    db_url: object = None,
    draws: object = 1000,
    filters: object = None,
    out_dir: object = "reports",
    refit: object = True,
    method: object = "auto",
    seed: object = 0,
    backtest: object = DEFAULT_BACKTEST_ORIGINS,
    *,
    today: dt.date | None = None,
) -> dict:
    """Check the report's parameters and return them in the form the notebook takes.

    Parameters
    ----------
    as_of
        The forecast day: a date or ``"YYYY-MM-DD"``, not after today.
    horizon
        Number of periods, 1-36 months or 1-12 quarters.
    period
        ``"M"`` or ``"Q"``.
    target
        None, a positive amount per period, or ``{period label: amount}``.
    db_url
        SQLite file or SQLAlchemy URL (None: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    draws
        Forecast draws, 10-100000.
    filters
        None or ``{"team" | "owner" | "segment": value}`` (one at a time).
    out_dir
        Folder of the report (must not be a file).
    refit
        Fit the models and save a new snapshot (True) or report on the newest one (False).
    method
        ``"auto"`` (NUTS when the data sample in about 2 minutes, else MAP:
        :func:`crmkit.forecast.engine.resolve_method`), ``"map"``, ``"nuts"`` or ``"advi"``.
        The backtests refit with MAP whatever the method (``"nuts"`` for them is asked of
        :func:`crmkit.forecast.backtest.backtest` directly).
    seed
        Random seed, an integer >= 0.
    backtest
        Number of past month ends to backtest the forecast from (0-24; 0: none). Each
        refits the models (MAP, a few seconds each on the demo). The default,
        :data:`DEFAULT_BACKTEST_ORIGINS`, is the fewest for which the report gives a verdict
        against the run rate (only a large difference shows with so few: the line says so);
        with fewer its line says how many are needed.
    today
        The day ``as_of`` may not exceed (default: today).

    Returns
    -------
    dict
        JSON-serialisable parameters: ``as_of`` as ``"YYYY-MM-DD"``, ``db_url`` resolved.

    Raises
    ------
    ValidationError
        Listing every bad parameter with its value and the reason.

    """
    from crmkit.forecast.params import check_forecast_parameters
    from crmkit.store.engine import resolve_url

    # the forecast's own parameters: the one shared validator (the data's span is checked
    # when the forecast runs, against the database)
    forecast, errors = check_forecast_parameters(
        None, as_of=as_of, horizon=horizon, period=period, draws=draws, target=target,
        method=method, seed=seed, today=today,
    )  # fmt: skip

    def bad(name: str, reason: str, value: object) -> None:
        errors.append(RowError(None, name, reason, value))

    try:
        flt = db.Filter.from_mapping(filters if filters else {})
    except (CrmkitError, TypeError, ValueError) as exc:
        bad("filters", str(exc), filters)
        flt = db.Filter()
    if not isinstance(out_dir, str | os.PathLike) or not str(out_dir):
        bad("out_dir", "must be a folder path", out_dir)
    elif Path(out_dir).exists() and not Path(out_dir).is_dir():
        bad("out_dir", f"{out_dir} exists and is not a folder", out_dir)
    if not isinstance(refit, bool):
        bad("refit", "must be True or False", refit)
    if not _is_int(backtest) or not 0 <= backtest <= 24:
        bad("backtest", "must be a whole number of origins from 0 to 24", backtest)
    if db_url is not None and not isinstance(db_url, str | os.PathLike):
        bad("db_url", "must be a file path or a SQLAlchemy URL", db_url)
    if errors:
        raise ValidationError("report parameters", errors)
    return {
        "as_of": forecast["as_of"],
        "horizon": forecast["horizon"],
        "period": forecast["period"],
        "target": forecast["target"],
        "db_url": resolve_url(db_url),  # type: ignore[arg-type]
        "draws": forecast["draws"],
        "filters": {flt.dimension: flt.value} if flt.dimension != "all" else {},
        "out_dir": str(out_dir),
        "refit": bool(refit),
        "method": forecast["method"],
        "seed": forecast["seed"],
        "backtest": int(backtest),  # type: ignore[arg-type]
    }


def _is_number(x: object) -> bool:
    """Tell whether ``x`` is a real number (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and x == x


@dataclass
class ReportResult:
    """Where a finished report was written, and the snapshot it shows."""

    notebook: Path
    html: Path
    pdf: Path | None
    fanchart: Path | None
    summary: dict = field(default_factory=dict)


class _RunTimeoutError(Exception):
    """A step of the report run reached the run's deadline (its processes were killed)."""


def _check_timeout(timeout: object) -> float:
    """Return ``timeout`` as seconds, or raise ValidationError naming it."""
    if not _is_number(timeout) or not 0 < timeout <= 7 * 86_400:  # type: ignore[operator]
        raise ValidationError(
            "report parameters",
            [RowError(None, "timeout", "must be a number of seconds above 0 (at most a week)",
                      timeout)],
        )  # fmt: skip
    return float(timeout)  # type: ignore[arg-type]


def run_report(
    as_of: object,
    horizon: object,
    period: object = "M",
    target: object = None,
    db: object = None,
    draws: object = 1000,
    filters: object = None,
    out_dir: object = "reports",
    *,
    refit: object = True,
    method: object = "auto",
    seed: object = 0,
    backtest: object = DEFAULT_BACKTEST_ORIGINS,
    pdf: bool = True,
    name: str = "forecast_report",
    notebook: str | os.PathLike[str] | None = None,
    kernel: str = "python3",
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    log=print,
    progress=_stderr_line,
) -> ReportResult:
    """Run the forecast report and write its notebook, HTML (no code) and PDF.

    The database URL reaches the notebook's kernel through ``$CRMKIT_DB_URL`` in the
    environment of that run only; the notebook, its metadata, the HTML, the PDF, the log
    lines and the errors show it with the password masked (:func:`crmkit.store.engine.masked_url`).

    A run that takes longer than ``timeout`` seconds is stopped (papermill, its kernel,
    nbconvert or chromium are killed) and started again once; when the second run times out
    too, :class:`ReportError` says so, so the whole call ends within about twice
    ``timeout``. Temporary folders ``.<name>.tmp-*`` left in ``out_dir`` by a run that was
    killed (its process is gone, or the folder is older than twice ``timeout``) are removed
    first.

    Parameters
    ----------
    as_of, horizon, period, target, db, draws, filters, out_dir, refit, method, seed, backtest
        See :func:`validate_parameters` (``db`` is its ``db_url``).
    pdf
        Also print the HTML to PDF with headless chromium.
    name
        Base name of the files: ``<name>.ipynb``, ``.html``, ``.pdf``, ``.summary.json``
        (headline figures) and ``.fanchart.png``.
    notebook
        The report notebook (default: :func:`report_template`).
    kernel
        Jupyter kernel to run it with.
    timeout
        Seconds one run (notebook, HTML and PDF) may take; it is retried once.
    log
        Callable taking a line about the run's steps (``print`` by default; None for
        silence).
    progress
        Callable taking each line the notebook's kernel reports while it runs (the models'
        fit lines, e.g. ``"crmkit: method auto -> nuts (1,769 deals: NUTS takes about 55
        s)"``, ``"crmkit: pipeline model fitted in 41 s: checks passed (...)"``), as they
        come; stderr by default, None for silence.

    Returns
    -------
    ReportResult

    Raises
    ------
    ValidationError
        A parameter is wrong; nothing ran.
    ReportError
        A step failed or the run timed out twice; the files of the previous report are
        unchanged.

    """
    params = validate_parameters(
        as_of, horizon, period, target, db, draws, filters, out_dir, refit, method, seed, backtest
    )
    seconds = _check_timeout(timeout)
    template = Path(notebook) if notebook is not None else report_template()
    if not template.exists():
        raise ReportError(f"report notebook {template} is missing")
    chromium = chromium_path()
    if pdf and chromium is None:
        raise ReportError("chromium is not installed (apt-get install chromium); or pass pdf=False")
    secrets = password_forms(params["db_url"])
    from crmkit.store import Store  # a missing or foreign database is refused, never created

    Store.open(params["db_url"], create=False).close()

    def say(msg: str) -> None:
        if log is not None:
            log(scrub_password(msg, secrets))

    def shout(msg: str) -> None:
        if progress is not None:
            progress(scrub_password(msg, secrets))

    # absolute: the notebook runs in its own folder, where a relative path means another place
    out = Path(params["out_dir"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in _stale_tmp_dirs(out, name, max_age=2 * seconds):
        say(f"removing {stale.name}, left by a report run that was stopped")
        shutil.rmtree(stale, ignore_errors=True)
    env = {**os.environ, ENV_URL: params["db_url"]}
    shown = {**params, "db_url": masked_url(params["db_url"])}
    for attempt in (1, 2):
        tmp = out / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            deadline = time.monotonic() + seconds
            files = _build(template, tmp, name, shown, env, kernel, chromium if pdf else None,
                           say, deadline, progress=shout)  # fmt: skip
            final = {k: out / p.name for k, p in files.items()}
            for k, p in files.items():
                os.replace(p, final[k])
            break
        except _RunTimeoutError:
            if attempt == 2:
                raise ReportError(
                    f"the report run timed out after {seconds:g} s (retried once); "
                    "the previous report was kept"
                ) from None
            say(f"the report run timed out after {seconds:g} s; retrying once")
        except ReportError as exc:  # one line, password masked
            lines = (ln.strip() for ln in scrub_password(str(exc), secrets).splitlines())
            raise ReportError(" | ".join(ln for ln in lines if ln)) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = json.loads(final["summary"].read_text())
    say(f"report written: {final['html']}")
    return ReportResult(
        notebook=final["notebook"],
        html=final["html"],
        pdf=final.get("pdf"),
        fanchart=final.get("fanchart"),
        summary=summary,
    )


def _stale_tmp_dirs(out: Path, name: str, *, max_age: float) -> list[Path]:
    """Temporary folders of report runs that are gone (or older than ``max_age`` seconds)."""
    import psutil

    stale = []
    now = time.time()
    for path in out.glob(f".{name}.tmp-*"):
        if path.is_symlink() or not path.is_dir():
            continue
        made = path.stat().st_mtime
        if now - made > max_age:
            stale.append(path)
            continue
        owner = path.name.rsplit(".tmp-", 1)[1].split("-")[0]
        if not owner.isdigit() or int(owner) == os.getpid():
            continue  # no owner recorded (kept until old), or this very process
        try:
            proc = psutil.Process(int(owner))
            # a zombie has died; a process started after the folder last changed reuses the pid
            gone = proc.status() == psutil.STATUS_ZOMBIE or proc.create_time() > made + 2
        except psutil.NoSuchProcess:
            gone = True
        except psutil.Error:
            gone = False
        if gone:
            stale.append(path)
    return stale


#: Runs Papermill in a child process: argv template, output, cwd, kernel, parameters (JSON).
#: A thread stops the kernel and exits when the report process dies (e.g. ``kill -9``).
_PAPERMILL_CHILD = r"""
import json, os, sys, threading, time
import papermill as pm
import psutil
from crmkit.apps.kernel_client import papermill_kwargs

src, out, cwd, kernel, params = sys.argv[1:6]
parent = os.getppid()


def watch():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            for child in psutil.Process().children(recursive=True):
                try:
                    child.kill()
                except psutil.Error:
                    pass
            os._exit(3)


threading.Thread(target=watch, daemon=True).start()
try:
    pm.execute_notebook(src, out, parameters=json.loads(params), kernel_name=kernel,
                        progress_bar=False, cwd=cwd, **papermill_kwargs())
except pm.PapermillExecutionError as exc:
    why = {"cell": exc.exec_count, "ename": exc.ename, "evalue": exc.evalue}
except Exception as exc:
    why = {"cell": None, "ename": type(exc).__name__, "evalue": str(exc)}
else:
    sys.exit(0)
sys.stderr.write("\ncrmkit-report-error " + json.dumps(why) + "\n")
sys.exit(2)
"""


def _build(
    template: Path,
    tmp: Path,
    name: str,
    params: dict,
    env: dict[str, str],
    kernel: str,
    chromium: str | None,
    say,
    deadline: float,
    progress=None,
) -> dict[str, Path]:
    """Run the three steps inside ``tmp`` before ``deadline`` and return the files made."""
    nb_path = tmp / f"{name}.ipynb"
    say(f"running {template.name} (as of {params['as_of']}, horizon {params['horizon']})")

    def on_err(line: str) -> None:
        if progress is not None and line.startswith(PROGRESS_PREFIX):
            progress(line.rstrip("\n"))

    code, _out, err = _child(
        [sys.executable, "-c", _PAPERMILL_CHILD, str(template), str(nb_path), str(tmp), kernel,
         json.dumps({**params, "out_dir": str(tmp)})],
        deadline, env=env, cwd=tmp, on_err=on_err,
    )  # fmt: skip
    if code != 0:
        marker = [ln for ln in err.splitlines() if ln.startswith("crmkit-report-error ")]
        if not marker:
            tail = " | ".join(err.strip().splitlines()[-3:]) or f"exit {code}"
            raise ReportError(f"the report could not run: {tail}; the previous report was kept")
        why = json.loads(marker[-1].split(" ", 1)[1])
        if why["cell"] is not None:
            raise ReportError(
                f"the report notebook failed in cell {why['cell']}: {why['ename']}: "
                f"{why['evalue']}; the previous report was kept"
            )
        raise ReportError(
            f"the report could not run: {why['ename']}: {why['evalue']}; "
            "the previous report was kept"
        )
    files = {"notebook": nb_path}
    summary = tmp / SUMMARY_FILE
    if not summary.exists():
        raise ReportError("the report notebook wrote no summary; the previous report was kept")
    files["summary"] = summary.rename(tmp / f"{name}.summary.json")
    if (tmp / FANCHART_FILE).exists():
        files["fanchart"] = (tmp / FANCHART_FILE).rename(tmp / f"{name}.fanchart.png")
    say("exporting HTML without code")
    html = tmp / f"{name}.html"
    _run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--no-input", "--output", html.stem,
         "--output-dir", str(tmp), str(nb_path)],
        "nbconvert", deadline,
    )  # fmt: skip
    if not html.exists():
        raise ReportError("nbconvert wrote no HTML; the previous report was kept")
    files["html"] = html
    if chromium:
        say("printing PDF with headless chromium")
        pdf = tmp / f"{name}.pdf"
        _run(
            [chromium, "--headless", *CHROMIUM_FLAGS, "--no-pdf-header-footer",
             "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000",
             f"--print-to-pdf={pdf}", html.resolve().as_uri()],
            "chromium", deadline, timeout=PDF_TIMEOUT_SECONDS,
        )  # fmt: skip
        if not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
            raise ReportError("chromium wrote no PDF; the previous report was kept")
        files["pdf"] = pdf
    return files


def _run(argv: list[str], what: str, deadline: float, timeout: float = 600) -> None:
    """Run a tool, raising ReportError with the end of its output when it fails."""
    own = time.monotonic() + timeout
    try:
        code, out, err = _child(argv, min(own, deadline))
    except _RunTimeoutError:
        if own < deadline:  # the tool's own limit, not the run's
            raise ReportError(
                f"{what} took longer than {timeout:g} s; the previous report was kept"
            ) from None
        raise
    if code != 0:
        tail = (err or out).strip().splitlines()[-3:]
        raise ReportError(
            f"{what} failed (exit {code}): {' | '.join(tail)}; the previous report was kept"
        )


def _child(
    argv: list[str],
    deadline: float,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_err=None,
) -> tuple[int, str, str]:
    """Run ``argv`` until ``time.monotonic()`` reaches ``deadline``; its exit code and output.

    On time-out, or if this process is interrupted, the child and every process under it
    (a Jupyter kernel runs in a session of its own) are killed before this returns.
    ``on_err``, when given, receives each stderr line as it comes.
    """
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=env, cwd=cwd, start_new_session=True,
    )  # fmt: skip
    try:
        if on_err is None:
            out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.01))
        else:
            out, err = _stream(proc, deadline, on_err)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        raise _RunTimeoutError from None
    except BaseException:
        kill_tree(proc)
        raise
    return proc.returncode, out, err


def _stream(proc: subprocess.Popen, deadline: float, on_err) -> tuple[str, str]:
    """Read a child's stdout and stderr to its end, passing stderr lines on as they come."""
    import threading

    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def read(stream, key: str, each) -> None:
        for line in iter(stream.readline, ""):
            chunks[key].append(line)
            if each is not None:
                with contextlib.suppress(Exception):  # a progress line never stops the run
                    each(line)

    readers = [
        threading.Thread(target=read, args=(proc.stdout, "out", None), daemon=True),
        threading.Thread(target=read, args=(proc.stderr, "err", on_err), daemon=True),
    ]
    for t in readers:
        t.start()
    proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
    for t in readers:  # a kernel left behind may hold the pipes open: do not wait for ever
        t.join(timeout=max(deadline - time.monotonic(), 0.01))
    return "".join(chunks["out"]), "".join(chunks["err"])


def kill_tree(proc: subprocess.Popen) -> int:
    """Kill a child process and all its descendants, and wait for them.

    The tree is frozen first, so that no process starts another meanwhile; a kernel started
    in a session of its own is found as a descendant all the same.

    Parameters
    ----------
    proc
        The child process.

    Returns
    -------
    int
        How many processes were killed (the child included).
    """
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.suspend()
    for p in list(procs):
        with contextlib.suppress(psutil.Error):
            procs.extend(c for c in p.children(recursive=True) if c not in procs)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)
    proc.wait()
    psutil.wait_procs(procs, timeout=30)
    return len(procs)


# ---------------------------------------------------------------------- command line
def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``crmkit report`` to a parser.

    Parameters
    ----------
    p
        The (sub)parser.

    """
    p.add_argument("--as-of", required=True, metavar="YYYY-MM-DD", help="forecast day")
    p.add_argument("--horizon", type=int, default=6, help="number of periods (default 6)")
    p.add_argument("--period", default="M", choices=["M", "Q"], help="months or quarters")
    p.add_argument("--target", type=float, help="revenue target per period")
    p.add_argument("--db", metavar="PATH_OR_URL", help="database (default: $CRMKIT_DB_URL)")
    p.add_argument("--draws", type=int, default=1000, help="forecast draws (default 1000)")
    p.add_argument(
        "--filter", action="append", default=[], metavar="DIM=VALUE",
        help="show one team, owner or segment, e.g. team=north",
    )  # fmt: skip
    p.add_argument("--out-dir", default="reports", help="report folder (default: reports)")
    p.add_argument(
        "--no-refit", dest="refit", action="store_false",
        help="report the newest saved snapshot instead of fitting the models",
    )  # fmt: skip
    p.add_argument(
        "--method", default="auto", choices=list(METHODS),
        help="fitting method; auto (default): nuts when the data sample in about 2 minutes, "
        "else map (the backtests use map)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--backtest", type=int, default=DEFAULT_BACKTEST_ORIGINS, metavar="N",
        help=f"backtest from the N month ends before (default {DEFAULT_BACKTEST_ORIGINS}, the "
        "fewest for a verdict against the run rate; only a large difference shows with so "
        "few, 7 or more tell more; 0: none)",
    )  # fmt: skip
    p.add_argument("--no-pdf", dest="pdf", action="store_false", help="skip the PDF")
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
        help="stop a run after SECONDS and retry it once; then fail, keeping the previous "
        f"report (default {DEFAULT_TIMEOUT_SECONDS})",
    )  # fmt: skip


def report_command(args: argparse.Namespace) -> int:
    """Run ``crmkit report`` from parsed arguments; return the exit code.

    Parameters
    ----------
    args
        Arguments from a parser set up by :func:`add_report_arguments`.

    Returns
    -------
    int
        0 on success, 1 when a parameter is wrong or a step failed (the reason is printed
        to stderr and the previous report is kept).

    """
    try:
        filters = dict(item.split("=", 1) for item in args.filter)
    except ValueError:
        print(f"error: --filter takes DIM=VALUE, got {args.filter}", file=sys.stderr)
        return 1
    try:
        result = run_report(
            args.as_of, args.horizon, args.period, args.target, args.db, args.draws, filters,
            args.out_dir, refit=args.refit, method=args.method, seed=args.seed,
            backtest=args.backtest, pdf=args.pdf, timeout=args.timeout,
        )  # fmt: skip
    except CrmkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in (result.html, result.pdf, result.notebook):
        if path is not None:
            print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the report from the command line (``python -m crmkit.apps.report``).

    Parameters
    ----------
    argv
        Arguments without the program name.

    Returns
    -------
    int
        The exit code.

    """
    parser = argparse.ArgumentParser(prog="crmkit report", description="Run the forecast report.")
    add_report_arguments(parser)
    return report_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
