"""The ``crmkit`` command: demo data, import, export and a summary of the database."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from crmkit.errors import CrmkitError, ValidationError


def _add_db(p: argparse.ArgumentParser) -> None:
    """Add the --db option every subcommand takes."""
    p.add_argument(
        "--db",
        metavar="PATH_OR_URL",
        default=None,
        help="SQLite file or SQLAlchemy URL (default: $CRMKIT_DB_URL, else data/crmkit.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``crmkit`` command."""
    parser = argparse.ArgumentParser(
        prog="crmkit",
        description="CRM data, segments and Bayesian revenue forecasts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    p.add_argument("entity", help="accounts, contacts, deals, orders, ...")
    p.add_argument("file", type=Path, help="a .csv, .xlsx or .xls file")
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
    p.add_argument("--rejects", type=Path, help="CSV for rejected rows with their reasons")
    p.add_argument("--by", default="import", help="name recorded in the deal history")

    p = sub.add_parser("export", help="export an entity to CSV or Parquet (by file suffix)")
    _add_db(p)
    p.add_argument("entity")
    p.add_argument("file", type=Path, help="a .csv or .parquet file")

    p = sub.add_parser("summary", help="print what the database holds")
    _add_db(p)
    return parser


def _mapping(args: argparse.Namespace) -> dict[str, str] | None:
    """Collect the column mapping from --mapping and --map."""
    mapping: dict[str, str] = {}
    if args.mapping:
        mapping.update(json.loads(Path(args.mapping).read_text()))
    for item in args.map:
        if "=" not in item:
            raise CrmkitError(f"--map takes FILE_COLUMN=FIELD, got {item!r}")
        src, dst = item.split("=", 1)
        mapping[src.strip()] = dst.strip()
    return mapping or None


def _cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo company."""
    from crmkit import datasets
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


def _cmd_import(args: argparse.Namespace) -> int:
    """Import a file."""
    from crmkit import io
    from crmkit.store import Store

    if args.skip_bad and not args.rejects:
        raise CrmkitError("--skip-bad needs --rejects FILE to write the rejected rows to")
    store = Store.open(args.db)
    try:
        result = io.import_file(
            store,
            args.entity,
            args.file,
            mapping=_mapping(args),
            encoding=args.encoding,
            sheet=args.sheet,
            on_error="skip" if args.skip_bad else "raise",
            rejects_path=args.rejects,
            changed_by=args.by,
        )
    except ValidationError as exc:
        report = exc.report()
        print(f"error: {exc.entity}: {len(report)} problem(s); nothing was imported", file=sys.stderr)
        for row in report.head(50).itertuples(index=False):
            where = f"row {row.row}" if row.row is not None else "file"
            field = f" {row.field}" if row.field else ""
            print(f"  {where}{field}: {row.reason}", file=sys.stderr)
        if len(report) > 50:
            print(f"  ... and {len(report) - 50} more", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """Export an entity."""
    from crmkit import io
    from crmkit.store import Store

    store = Store.open(args.db)
    n = io.export(store, args.entity, args.file)
    print(f"exported {n:,} {args.entity} rows to {args.file}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    """Print a summary of the database."""
    from crmkit.store import Store
    from crmkit.summary import database_summary

    store = Store.open(args.db)
    print(database_summary(store))
    return 0


COMMANDS = {
    "demo": _cmd_demo,
    "import": _cmd_import,
    "export": _cmd_export,
    "summary": _cmd_summary,
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
        0 on success, 1 for a user error (reported in one line), 2 for bad usage.
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

        if isinstance(exc, sqlalchemy.exc.OperationalError):
            print(f"error: cannot use the database: {exc.orig}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
