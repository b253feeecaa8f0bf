"""The scheduled forecast report: Papermill runs the notebook, then HTML and PDF exports.

:func:`run_report` checks its parameters before anything runs, executes
``notebooks/reports/forecast_report.ipynb`` with Papermill into a temporary folder,
converts it to HTML without code (``jupyter nbconvert --no-input``) and prints that to PDF
with headless chromium. Only when every step succeeded are the files renamed to their
final names, so a failed run leaves the last good report in place and raises
:class:`ReportError` saying why.

The notebook itself calls :mod:`crmkit.apps.report_sections`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from crmkit.apps import dashboard as db
from crmkit.apps.browser import CHROMIUM_FLAGS, chromium_path
from crmkit.errors import CrmkitError, RowError, ValidationError

#: Methods :func:`crmkit.forecast.engine.run_forecast` accepts.
METHODS = ("map", "nuts", "advi")
#: Largest horizon, in periods, by period kind.
MAX_HORIZON = {"M": 36, "Q": 12}
#: Seconds the PDF printer may take.
PDF_TIMEOUT_SECONDS = 180
#: Files the notebook writes into its ``out_dir``: headline figures (JSON) and the fan chart.
SUMMARY_FILE = "summary.json"
FANCHART_FILE = "fanchart.png"


class ReportError(CrmkitError):
    """The report run failed; the previous report files were left untouched."""


def report_template() -> Path:
    """Return the report notebook shipped in ``notebooks/reports``."""
    from crmkit.store.engine import project_root

    return project_root() / "notebooks" / "reports" / "forecast_report.ipynb"


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
    method: object = "map",
    seed: object = 0,
    backtest: object = 3,
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
        ``"map"``, ``"nuts"`` or ``"advi"``.
    seed
        Random seed, an integer >= 0.
    backtest
        Number of past month ends to backtest the forecast from (0-24; 0: none). Each
        refits the models, so each adds about one fit's time to the report.
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
    from crmkit.store.engine import resolve_url

    errors: list[RowError] = []

    def bad(name: str, reason: str, value: object) -> None:
        errors.append(RowError(None, name, reason, value))

    day = None
    if isinstance(as_of, dt.datetime):
        day = as_of.date()
    elif isinstance(as_of, dt.date):
        day = as_of
    elif isinstance(as_of, str):
        try:
            day = dt.date.fromisoformat(as_of.strip())
        except ValueError:
            bad("as_of", f"must be a date written YYYY-MM-DD, got {as_of!r}", as_of)
    else:
        bad("as_of", f"must be a date written YYYY-MM-DD, got {as_of!r}", as_of)
    if day is not None and day > (today or dt.date.today()):
        bad("as_of", f"{day} is in the future; a forecast is made as of a past day", as_of)
    if period not in MAX_HORIZON:
        bad("period", f"must be 'M' (months) or 'Q' (quarters), got {period!r}", period)
    limit = MAX_HORIZON.get(str(period), 36)
    if not _is_int(horizon) or not 1 <= horizon <= limit:
        bad("horizon", f"must be a whole number of periods from 1 to {limit}", horizon)
    if not _is_int(draws) or not 10 <= draws <= 100_000:
        bad("draws", "must be a whole number from 10 to 100000", draws)
    if target is not None:
        values = target.values() if isinstance(target, dict) else [target]
        if not all(_is_number(v) and v > 0 for v in values):
            bad("target", "must be a positive amount, {period: amount}, or None", target)
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
    if method not in METHODS:
        bad("method", f"must be one of {', '.join(METHODS)}", method)
    if not _is_int(seed) or seed < 0:
        bad("seed", "must be a whole number >= 0", seed)
    if not _is_int(backtest) or not 0 <= backtest <= 24:
        bad("backtest", "must be a whole number of origins from 0 to 24", backtest)
    if db_url is not None and not isinstance(db_url, str | os.PathLike):
        bad("db_url", "must be a file path or a SQLAlchemy URL", db_url)
    if errors:
        raise ValidationError("report parameters", errors)
    return {
        "as_of": str(day),
        "horizon": int(horizon),  # type: ignore[arg-type]
        "period": str(period),
        "target": dict(target) if isinstance(target, dict) else target,
        "db_url": resolve_url(db_url),  # type: ignore[arg-type]
        "draws": int(draws),  # type: ignore[arg-type]
        "filters": {flt.dimension: flt.value} if flt.dimension != "all" else {},
        "out_dir": str(out_dir),
        "refit": bool(refit),
        "method": str(method),
        "seed": int(seed),  # type: ignore[arg-type]
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
    method: object = "map",
    seed: object = 0,
    backtest: object = 3,
    pdf: bool = True,
    name: str = "forecast_report",
    notebook: str | os.PathLike[str] | None = None,
    kernel: str = "python3",
    log=print,
) -> ReportResult:
    """Run the forecast report and write its notebook, HTML (no code) and PDF.

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
    log
        Callable taking a progress line (``print`` by default; None for silence).

    Returns
    -------
    ReportResult

    Raises
    ------
    ValidationError
        A parameter is wrong; nothing ran.
    ReportError
        A step failed; the files of the previous report are unchanged.

    """
    params = validate_parameters(
        as_of, horizon, period, target, db, draws, filters, out_dir, refit, method, seed, backtest
    )
    template = Path(notebook) if notebook is not None else report_template()
    if not template.exists():
        raise ReportError(f"report notebook {template} is missing")
    chromium = chromium_path()
    if pdf and chromium is None:
        raise ReportError("chromium is not installed (apt-get install chromium); or pass pdf=False")
    say = log or (lambda _msg: None)
    # absolute: the notebook runs in its own folder, where a relative path means another place
    out = Path(params["out_dir"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = _build(template, tmp, name, params, kernel, chromium if pdf else None, say)
        final = {k: out / p.name for k, p in files.items()}
        for k, p in files.items():
            os.replace(p, final[k])
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


def _build(
    template: Path, tmp: Path, name: str, params: dict, kernel: str, chromium: str | None, say
) -> dict[str, Path]:
    """Run the three steps inside ``tmp`` and return the files made."""
    import papermill as pm

    nb_path = tmp / f"{name}.ipynb"
    say(f"running {template.name} (as of {params['as_of']}, horizon {params['horizon']})")
    try:
        pm.execute_notebook(
            str(template),
            str(nb_path),
            parameters={**params, "out_dir": str(tmp)},
            kernel_name=kernel,
            progress_bar=False,
            cwd=str(tmp),
        )
    except pm.PapermillExecutionError as exc:
        raise ReportError(
            f"the report notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}; "
            "the previous report was kept"
        ) from None
    except Exception as exc:  # kernel died, notebook unreadable, ...
        raise ReportError(f"the report could not run: {exc}; the previous report was kept") from exc
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
        "nbconvert",
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
            "chromium",
            timeout=PDF_TIMEOUT_SECONDS,
        )  # fmt: skip
        if not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
            raise ReportError("chromium wrote no PDF; the previous report was kept")
        files["pdf"] = pdf
    return files


def _run(argv: list[str], what: str, timeout: float | None = 600) -> None:
    """Run a tool, raising ReportError with the end of its output when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReportError(
            f"{what} took longer than {timeout} s; the previous report was kept"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ReportError(
            f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}; "
            "the previous report was kept"
        )


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
    p.add_argument("--method", default="map", choices=list(METHODS), help="fitting method")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--backtest", type=int, default=3, metavar="N",
        help="backtest from the N month ends before (default 3; 0: none)",
    )  # fmt: skip
    p.add_argument("--no-pdf", dest="pdf", action="store_false", help="skip the PDF")


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
            backtest=args.backtest, pdf=args.pdf,
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
