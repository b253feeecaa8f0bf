"""The ``crmkit`` command: demo data, import, export and a summary of the database."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import warnings
from collections.abc import Callable, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from crmkit import __version__
from crmkit.errors import CrmkitError, CrmkitWarning, ValidationError


def _add_db(p: argparse.ArgumentParser) -> None:
    """Add the --db option every subcommand takes."""
    p.add_argument(
        "--db",
        metavar="PATH_OR_URL",
        default=None,
        help=(
            "SQLite file or SQLAlchemy URL (default: $CRMKIT_DB_URL, else data/crmkit.db in a "
            "checkout, ~/.local/share/crmkit/crmkit.db when installed)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``crmkit`` command."""
    from crmkit.forecast.params import METHODS

    parser = argparse.ArgumentParser(
        prog="crmkit",
        description="CRM data, segments and Bayesian revenue forecasts.",
    )
    parser.add_argument("--version", action="version", version=f"crmkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "init",
        help="create an empty crmkit database, or bring one to the newest schema",
        description="Create crmkit's tables in a new or empty database, or migrate an older "
        "crmkit database. Also the explicit opt-in to add crmkit's tables to a SQLite file or "
        "PostgreSQL schema that already holds another program's tables. (Only demo, init and "
        "import create a database; the other commands refuse a --db that does not exist.)",
    )
    _add_db(p)

    p = sub.add_parser("demo", help="build the seeded demo company into the database")
    _add_db(p)
    p.add_argument("--customers", type=int, default=2000, help="number of customers (accounts)")
    p.add_argument("--deals", type=int, default=3000, help="number of deals")
    p.add_argument("--seed", type=int, default=42, help="random seed")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--if-missing", action="store_true", help="do nothing if the database has accounts"
    )
    g.add_argument("--replace", action="store_true", help="delete all data first")

    p = sub.add_parser(
        "import",
        help="import a CSV or Excel file into an entity",
        description="Import rows from CSV or Excel. Every bad row is reported with its line "
        "number, field and reason; nothing is written if any row is bad, unless --skip-bad.",
    )
    _add_db(p)
    p.add_argument(
        "entity",
        help="accounts, contacts, deals, orders, ...; or salesforce, pipedrive, hubspot",
    )
    p.add_argument(
        "file",
        type=Path,
        help="a .csv, .xlsx or .xls file (salesforce, pipedrive, hubspot: a folder)",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FILE_COLUMN=FIELD",
        help="rename a file column to a crmkit field (repeatable)",
    )
    p.add_argument("--mapping", type=Path, help="JSON file {file column: field}")
    p.add_argument("--encoding", help="file encoding, if not UTF-8 (e.g. latin-1)")
    p.add_argument("--sheet", help="Excel sheet name")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="load the good rows and write the rejected ones to --rejects",
    )
    p.add_argument(
        "--rejects", type=Path, help="CSV for rejected rows with their reasons (not the input)"
    )
    p.add_argument("--by", default="import", help="name recorded in the deal history")
    p.add_argument(
        "--decimal",
        default=".",
        choices=[".", ","],
        help="decimal mark of numbers in the file (default .; --decimal , reads 1234,56)",
    )
    p.add_argument(
        "--thousands",
        default=None,
        metavar="SEP",
        help="thousands separator of numbers in the file, e.g. . with --decimal , (1.234,56)",
    )
    p.add_argument(
        "--max-amount",
        type=float,
        default=None,
        metavar="AMOUNT",
        help="refuse money amounts above this (default 1e12)",
    )
    p.add_argument(
        "--allow-future",
        action="store_true",
        help="accept dates more than a year after today (refused by default as typos)",
    )
    p.add_argument(
        "--strict-ids",
        action="store_true",
        help="refuse ids that differ only by case from another id (default: import with a "
        "'likely duplicate' warning)",
    )

    p = sub.add_parser(
        "export",
        help="export an entity to CSV or Parquet (by file suffix)",
        description="Export an entity. CSV text cells starting with =, +, -, @, tab or "
        "carriage return get a leading ' so spreadsheets do not run them as formulas.",
    )
    _add_db(p)
    p.add_argument("entity")
    p.add_argument("file", type=Path, help="a .csv or .parquet file")
    p.add_argument(
        "--raw",
        action="store_true",
        help="write CSV text cells as stored, without the ' before formula-like text",
    )

    p = sub.add_parser(
        "config", help="show the company's settings, or set one (currency, fiscal year)"
    )
    p.add_argument(
        "assignments",
        nargs="*",
        metavar="NAME=VALUE",
        help="settings to change, e.g. reporting_currency=EUR fiscal_year_start_month=4",
    )
    _add_db(p)

    p = sub.add_parser("summary", help="print what the database holds")
    _add_db(p)

    p = sub.add_parser(
        "forecast",
        help="fit the models, forecast revenue with its spread, save a snapshot",
        description="Fit the pipeline, new-business and repeat-revenue models on the data as "
        "of a day, forecast revenue per period (P10/P50/P90 per source and in total), save the "
        "snapshot in the database and write it as JSON. A forecast whose checks fail (a "
        "model's diagnostics not ok, all zero where the past had revenue) is saved as a draft "
        "that the app never shows; its reasons are printed and the exit code is 3.",
        epilog="exit codes: 0 published, 1 error (nothing saved), 2 bad usage, "
        "3 saved as a draft (not shown in the app)",
    )
    _add_db(p)
    p.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="forecast day, within the data (default: today, or the last day with deals or "
        "orders when the data end earlier; never a future day)",
    )
    p.add_argument("--horizon", type=int, default=6, help="number of periods (default 6)")
    p.add_argument("--period", default="M", choices=["M", "Q"], help="months or quarters")
    p.add_argument("--draws", type=int, default=1000, help="forecast draws (default 1000)")
    p.add_argument(
        "--if-missing", action="store_true", help="do nothing if a snapshot is already saved"
    )
    p.add_argument("--target", type=float, help="revenue target per period")
    p.add_argument(
        "--method",
        default="auto",
        choices=list(METHODS),
        help="auto (default): nuts when the data sample in about 2 minutes, else map; "
        "nuts: full MCMC (about 1 minute on the demo); map: seconds (Laplace approximation)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--plan",
        metavar="CSV|campaigns",
        help="planned marketing spend: a CSV of channel,week_start,spend (or date plus one "
        "column per channel), or 'campaigns' for the campaigns in the database; its extra new "
        "deals against spend as usual (last 13 weeks' average) enter the new-business forecast",
    )
    p.add_argument(
        "--no-repeat",
        dest="repeat",
        action="store_false",
        help="forecast without repeat revenue from orders (e.g. too few customers with orders)",
    )
    p.add_argument("--out", type=Path, help="write the forecast as JSON here")
    p.add_argument(
        "--currency",
        metavar="CODE",
        help="write the JSON's amounts in this currency at the --as-of day's exchange rate "
        "(default: the reporting currency; the snapshot and --target stay in it)",
    )
    p.add_argument(
        "--open-deals",
        action="store_true",
        help="also write each open deal's P(win in the first period), P(slip) and expected "
        "revenue in the JSON",
    )

    p = sub.add_parser(
        "app",
        help="start the managers' Voilà app on 127.0.0.1",
        description="Serve the manager app (notebooks/apps) with Voilà and print its address.",
    )
    from crmkit.apps.server import add_app_arguments

    add_app_arguments(p)

    p = sub.add_parser(
        "report",
        help="run the forecast report with Papermill: notebook, HTML and PDF",
        description="Run notebooks/reports/forecast_report.ipynb with Papermill. Parameters are "
        "checked first; outputs are written under temporary names and renamed only on success.",
    )
    from crmkit.apps.report import add_report_arguments

    add_report_arguments(p)

    p = sub.add_parser(
        "notebooks",
        help="copy the analyst notebooks (01-04) into a folder, to open in JupyterLab",
        description="Copy crmkit's analyst notebooks (customers and deals, segmentation, "
        "forecast, marketing) into DIR. Open them with `jupyter lab DIR`; they use "
        "$CRMKIT_DB_URL, else data/crmkit.db under the folder JupyterLab starts in.",
    )
    p.add_argument("dest", type=Path, metavar="DIR", help="folder to copy into (made if missing)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace notebooks of the same name in DIR"
    )
    return parser


def _mapping(args: argparse.Namespace) -> dict[str, str | None] | None:
    """Collect the column mapping from --mapping and --map."""
    from crmkit.data.mappings import load_mapping

    mapping: dict[str, str | None] = {}
    if args.mapping:
        mapping.update(load_mapping(args.mapping))
    for item in args.map:
        if "=" not in item:
            raise CrmkitError(f"--map takes FILE_COLUMN=FIELD, got {item!r}")
        src, dst = item.split("=", 1)
        mapping[src.strip()] = dst.strip()
    return mapping or None


def _cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo company."""
    from crmkit.data.demo import company as datasets
    from crmkit.store import Store

    store = Store.open(args.db)
    if store.count("accounts") > 0:
        if args.if_missing:
            print(f"demo database already present: {store.url}")
            return 0
        if not args.replace:
            raise CrmkitError(
                f"{store.url} already holds data; use --replace to rebuild it or --db for "
                "another database"
            )
        store.clear()
    demo = datasets.build_demo(
        store, n_customers=args.customers, n_deals=args.deals, seed=args.seed
    )
    print(f"demo company built in {store.url}")
    for name, df in demo.frames.items():
        print(f"  {name:<16} {len(df):>10,}")
    return 0


def _refused(exc: ValidationError) -> int:
    """Print an import's refused rows (the first 50) to stderr; return exit code 1."""
    from crmkit.data.reading import error_line

    print(
        f"error: {exc.entity}: {len(exc.errors)} problem(s); nothing was imported", file=sys.stderr
    )
    for e in exc.errors[:50]:
        print(f"  {error_line(e)}", file=sys.stderr)
    if len(exc.errors) > 50:
        print(f"  ... and {len(exc.errors) - 50} more", file=sys.stderr)
    return 1


def _import_into(db: str | None, run: Callable[[Any], str]) -> int:
    """Run an import on the store at ``db`` and print its summary; a refusal changes nothing.

    ``run`` imports into the store it is given and returns the summary to print, or raises
    :class:`crmkit.errors.ValidationError`. An import may create its SQLite database, but a
    refused one must not leave even an empty file behind, and must never remove a database
    another process made meanwhile. So a new database is built in a private file beside the
    target and hard-linked into place only when the import succeeded (a link never replaces
    an existing file); if someone else created the target meanwhile, the import runs again
    into theirs.
    """
    from crmkit.store import Store
    from crmkit.store.engine import resolve_url, sqlite_path

    path = sqlite_path(resolve_url(db))
    if path is None or path.exists():
        return _import_run(Store.open(db), run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.importing-{os.getpid()}")
    try:
        with contextlib.redirect_stdout(StringIO()) as out:
            code = _import_run(Store.open(tmp), run)
        if code == 0:
            con = sqlite3.connect(tmp)  # fold the write-ahead log into the file we link
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it while we imported
                return _import_into(db, run)
            print(out.getvalue(), end="")
        return code
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)


def _import_run(store: Any, run: Callable[[Any], str]) -> int:
    """Run ``run`` on ``store``, print its summary or its refused rows, close the store."""
    try:
        summary = run(store)
    except ValidationError as exc:
        return _refused(exc)
    finally:
        store.close()
    print(summary)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    """Import a file."""
    from crmkit.data import io
    from crmkit.store.engine import resolve_url, sqlite_path
    from crmkit.store.validation import MAX_AMOUNT

    if args.skip_bad and not args.rejects:
        raise CrmkitError("--skip-bad needs --rejects FILE to write the rejected rows to")
    if args.entity in ("salesforce", "hubspot", "pipedrive"):
        return _import_vendor(args)
    if args.max_amount is not None and not 0 < args.max_amount < float("inf"):
        raise CrmkitError(f"--max-amount must be a positive number, not {args.max_amount}")
    io.check_rejects_path(args.file, args.rejects)  # before anything is read or opened
    target = sqlite_path(resolve_url(args.db))
    if args.rejects and target and args.rejects.resolve() == target.resolve():
        raise CrmkitError(f"{args.rejects}: the rejects file is the database; choose another")
    mapping = _mapping(args)

    def run(store) -> str:
        db_file = store.engine.url.database if store.dialect == "sqlite" else None
        if args.rejects and db_file and args.rejects.exists() and args.rejects.samefile(db_file):
            raise CrmkitError(f"{args.rejects}: the rejects file is the database; choose another")
        with warnings.catch_warnings():
            # the result's summary lists them ("likely duplicate"), once and without a file name
            warnings.simplefilter("ignore", CrmkitWarning)
            result = io.import_file(
                store,
                args.entity,
                args.file,
                mapping=mapping,
                encoding=args.encoding,
                sheet=args.sheet,
                on_error="skip" if args.skip_bad else "raise",
                rejects_path=args.rejects,
                changed_by=args.by,
                decimal=args.decimal,
                thousands=args.thousands,
                max_amount=MAX_AMOUNT if args.max_amount is None else args.max_amount,
                allow_future=args.allow_future,
                strict_ids=args.strict_ids,
            )
        return result.summary()

    return _import_into(args.db, run)


def _import_vendor(args: argparse.Namespace) -> int:
    """Import a CRM's export folder (``crmkit import salesforce|hubspot|pipedrive DIR``)."""
    if args.entity == "salesforce":
        from crmkit.data.salesforce import import_salesforce as importer
        from crmkit.data.salesforce import load_salesforce_mapping as load_mapping
    elif args.entity == "hubspot":
        from crmkit.data.hubspot import find_exports
        from crmkit.data.hubspot import import_hubspot as importer
        from crmkit.data.hubspot import load_hubspot_mapping as load_mapping

        find_exports(args.file)  # a wrong folder is refused before a database is opened
    else:
        from crmkit.data.pipedrive import import_pipedrive as importer
        from crmkit.data.pipedrive import load_pipedrive_mapping as load_mapping
    mapping = load_mapping(args.mapping) if args.mapping else None

    def run(store) -> str:
        result = importer(
            store,
            args.file,
            mapping=mapping,
            on_error="skip" if args.skip_bad else "raise",
            rejects_path=args.rejects,
            changed_by=args.by,
            allow_future=args.allow_future,
        )
        return result.summary()

    return _import_into(args.db, run)


def _cmd_export(args: argparse.Namespace) -> int:
    """Export an entity."""
    from crmkit.data.export import export
    from crmkit.store import Store

    store = Store.open(args.db, create=False)
    n = export(store, args.entity, args.file, raw=args.raw)
    print(f"exported {n:,} {args.entity} rows to {args.file}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    """Print a summary of the database."""
    from crmkit.store import Store
    from crmkit.store.summary import database_summary

    store = Store.open(args.db, create=False)
    print(database_summary(store))
    return 0


def _cmd_forecast(args: argparse.Namespace) -> int:
    """Fit, forecast, save the snapshot and write JSON; 3 when it was saved as a draft."""
    from crmkit.forecast.engine import run_forecast
    from crmkit.forecast.params import data_span, default_as_of
    from crmkit.forecast.tables import forecast_to_json
    from crmkit.store import Store

    store = Store.open(args.db, create=False)
    if args.if_missing and len(store.list_snapshots()):
        print(f"a forecast snapshot is already saved in {store.url}")
        return 0
    span = data_span(store)
    as_of = args.as_of or default_as_of(span)
    if span is not None and span.future_rows and not args.as_of:
        print(
            f"note: {span.future_rows} deal or order date(s) after today were left out of the "
            f"default --as-of {as_of}",
            file=sys.stderr,
        )
    _in_currency(store, {}, args.currency, as_of=as_of)  # a missing rate refuses before fitting
    snap = run_forecast(
        store,
        as_of=as_of,
        horizon=args.horizon,
        period=args.period,
        draws=args.draws,
        target=args.target,
        seed=args.seed,
        method=args.method,
        plan=args.plan,
        include_repeat=args.repeat,
        report=None if args.method == "map" else _progress_line,
    )
    result = {
        **forecast_to_json(snap, open_deals=args.open_deals),
        **{k: snap.parameters.get(k) for k in ("method", "method_used", "method_reason")},
        "status": snap.status,
        "reasons": list(snap.reasons),
    }
    result = _in_currency(store, result, args.currency, as_of=snap.as_of)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    else:
        print(text)
    if snap.status != "published":
        print(
            f"draft: forecast snapshot #{snap.snapshot_id} was saved as a draft, not shown in "
            f"the app: {'; '.join(snap.reasons)}",
            file=sys.stderr,
        )
        return 3
    if args.out:
        print(f"forecast snapshot #{snap.snapshot_id} saved; written to {args.out}")
    return 0


#: Amount fields of the forecast JSON (probabilities and ratios are not amounts).
_JSON_AMOUNTS = frozenset(
    {"p10", "p50", "p90", "mean", "closed_to_date", "target", "closed", "commit", "best_case",
     "pipeline", "call", "quota", "expected_revenue"}
)  # fmt: skip


def _in_currency(store, result: dict, currency: str | None, *, as_of: object) -> dict:
    """The forecast JSON with ``currency``, its amounts converted at ``as_of``'s rate if asked."""
    import re

    import pandas as pd

    from crmkit.store.currency import currency_factor, rate_table, scale_amounts
    from crmkit.store.settings import get_setting

    reporting = str(get_setting(store, "reporting_currency"))
    code = reporting if currency is None else currency.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise CrmkitError(f"--currency {currency[:40]!r} is not a 3-letter ISO 4217 code")
    if code == reporting:
        return {**result, "currency": reporting}
    try:
        day = pd.Timestamp(as_of)
    except (TypeError, ValueError):
        return result  # a bad --as-of: the forecast refuses it with its own message
    factor = currency_factor(rate_table(store), code, day, reporting)
    scaled = scale_amounts(result, factor, _JSON_AMOUNTS)
    return {**scaled, "currency": code, "converted_from": reporting, "exchange_rate": factor}


def _cmd_app(args: argparse.Namespace) -> int:
    """Serve the manager app."""
    from crmkit.apps.server import app_command

    return app_command(args)


def _cmd_report(args: argparse.Namespace) -> int:
    """Run the forecast report."""
    from crmkit.apps.report import report_command

    return report_command(args)


def _cmd_notebooks(args: argparse.Namespace) -> int:
    """Copy the analyst notebooks into a folder."""
    from crmkit.apps.notebooks import copy_notebooks

    for path in copy_notebooks(args.dest, overwrite=args.overwrite):
        print(path)
    print(f"open them with: jupyter lab {args.dest}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    """Create or migrate a crmkit database (also in a database with other tables)."""
    from crmkit.store import Store, migrate

    store = Store.open(args.db, create=True, adopt=True)
    try:
        revision = migrate.current_revision(store.engine)
        print(f"crmkit database ready: {store.url} (schema revision {revision})")
    finally:
        store.close()
    return 0


def _progress_line(text: str) -> None:
    """Print a progress line of a long fit to stderr at once."""
    print(f"crmkit: {text}", file=sys.stderr, flush=True)


def _cmd_config(args: argparse.Namespace) -> int:
    """Show the settings, or check and save ``NAME=VALUE`` assignments (all or none)."""
    from crmkit.store import Store
    from crmkit.store.settings import SETTINGS, all_settings, check_setting, set_setting

    pairs = []
    for a in args.assignments:
        name, sep, value = a.partition("=")
        if not sep:
            raise CrmkitError(f"{a[:40]!r}: write a setting as NAME=VALUE")
        pairs.append((name, check_setting(name, value)))  # all checked before any is saved
    store = Store.open(args.db, create=False)
    try:
        for name, value in pairs:
            set_setting(store, name, value)
        for name, value in all_settings(store).items():
            print(f"{name:<24} {value!s:<10} {SETTINGS[name].help}")
    finally:
        store.close()
    return 0


COMMANDS = {
    "init": _cmd_init,
    "config": _cmd_config,
    "forecast": _cmd_forecast,
    "app": _cmd_app,
    "report": _cmd_report,
    "demo": _cmd_demo,
    "import": _cmd_import,
    "export": _cmd_export,
    "summary": _cmd_summary,
    "notebooks": _cmd_notebooks,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crmkit`` command; returns the exit code.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 for a user error (reported in one line), 2 for bad usage, 3 when
        ``crmkit forecast`` saved its snapshot as a draft (its checks failed).

    """
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CrmkitError, FileNotFoundError, IsADirectoryError, PermissionError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. cannot connect to the database server
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.DBAPIError):
            # The driver's first line only: SQLAlchemy's text would add the statement and
            # PostgreSQL's DETAIL lines quote row values.
            reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            print(f"error: cannot use the database: {reason}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
