"""The managers' app: the Voilà page built from a forecast snapshot, and ``crmkit app``.

:func:`manager_app` builds the page's widgets (the notebook ``notebooks/apps/manager.ipynb``
only calls it); :func:`build_app_command` and :func:`serve_app` start Voilà on 127.0.0.1
with the settings that keep it quick under load. The page reads a saved snapshot through
:mod:`crmkit.apps.dashboard` and never imports the modelling stack.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from crmkit.errors import CrmkitError

#: Front-end extensions no app in ``notebooks/apps`` uses; Voilà would load each on every
#: page view. (``ipydatagrid`` and the ``bqplot``/``bqscales`` it needs stay: without them
#: the deal editor's grid never appears.)
DENIED_EXTENSIONS = (
    "jupyter-matplotlib",
    "jupyterlab_pygments",
    "@voila-dashboards/jupyterlab-preview",
)
#: Seconds a kernel of a closed page may idle before it is shut down, and the check interval.
CULL_IDLE_SECONDS = 300
CULL_INTERVAL_SECONDS = 60
#: Seconds a cell may run before Voilà gives up on the page.
EXECUTE_TIMEOUT_SECONDS = 120
#: Cell time limit with preheated kernels: they wait in a cell until a viewer comes.
POOL_WAIT_SECONDS = 7 * 24 * 3600
#: Seconds Voilà waits for a cell's output messages after the kernel says the cell is done.
#: nbclient's default (4 s) is too short when many pages are built at once on two cores:
#: the page's widget output then arrives late, is dropped, and the browser shows a blank
#: page forever. This was why pages "hung" when viewers outnumbered the pool.
IOPUB_TIMEOUT_SECONDS = 120
#: Kernels started ahead of viewers by ``crmkit app`` (see :func:`wait_for_viewer`): enough
#: for 10 viewers arriving at once. Each idle preheated kernel holds about 110 MB (PSS;
#: benchmarks/results/app.md). A viewer beyond the pool waits for a replacement kernel.
DEFAULT_POOL = 10
#: Seconds before Voilà replaces a used preheated kernel (Voilà's default: 1). Replacing
#: one costs a few CPU-seconds (start Python and ipykernel, import the page's modules);
#: waiting keeps that work out of the way of a crowd being served.
POOL_FILL_DELAY_SECONDS = 30
#: Front-end extensions the manager page does not use but other apps do (dropped from its
#: page only, by a Voilà ``page_config_hook``): ipydatagrid's many script chunks and the
#: bqplot scales it builds on.
MANAGER_DENIED_EXTENSIONS = ("ipydatagrid", "bqplot", "bqscales")
#: The deal editor app, and its preheated kernels when a pool is on: it waits for its viewer
#: before reading the store (:func:`wait_for_viewer`), so a preheated page is never stale.
EDITOR_NOTEBOOK = "edit_deals.ipynb"
EDITOR_POOL = 1
#: The notebook managers open.
APP_NOTEBOOK = "manager.ipynb"
#: crmkit's Voilà template: Voilà's lab template with a still "loading" notice instead of
#: animations, which cost every waiting viewer's browser CPU on machines without a GPU.
TEMPLATE = "crmkit"


def voila_template_settings(env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Voilà options and environment that serve pages with crmkit's template.

    Parameters
    ----------
    env
        Environment to extend (default: this process's).

    Returns
    -------
    argv : list of str
        Options for the ``voila`` command.
    env : dict
        ``env`` with the template's folder first on ``JUPYTER_PATH``.
    """
    env = dict(os.environ if env is None else env)
    share = str(Path(__file__).resolve().parent / "voila_share")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (share, env.get("JUPYTER_PATH")) if p)
    return [f"--template={TEMPLATE}"], env


def apps_dir() -> Path:
    """Return the folder of the Voilà apps (``notebooks/apps`` in the project)."""
    from crmkit.store.engine import project_root

    return project_root() / "notebooks" / "apps"


@dataclass(frozen=True)
class AppCommand:
    """A ready-to-run Voilà command: argv, environment and the page's address."""

    argv: list[str]
    env: dict[str, str]
    url: str
    db_url: str


def build_app_command(
    db: str | os.PathLike[str] | None = None,
    port: int = 8866,
    token: str | None = None,
    open_browser: bool = False,
    *,
    pool_size: int = 0,
    pool_fill_delay: float = POOL_FILL_DELAY_SECONDS,
    notebooks: str | os.PathLike[str] | None = None,
    python: str | None = None,
    cull_idle: int = CULL_IDLE_SECONDS,
    timeout: int = EXECUTE_TIMEOUT_SECONDS,
) -> AppCommand:
    """Build the Voilà command that serves the manager app.

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
        The kernels receive it as ``CRMKIT_DB_URL``.
    port
        TCP port on 127.0.0.1 (1024-65535).
    token
        Access token the browser must present (``?token=...``); ``"generate"`` makes a
        random one; None serves without a token (loopback only).
    open_browser
        Not used by the command itself (see :func:`serve_app`); kept for the CLI's sake.
    pool_size
        Kernels started ahead of viewers for the manager page (0: start one kernel per page
        view). The page waits for its viewer before reading the snapshot
        (:func:`wait_for_viewer`), so a preheated page is never stale. Other notebooks in the
        folder get no pool.
    pool_fill_delay
        Seconds before a used preheated kernel is replaced. Longer keeps the replacing
        (a few CPU-seconds per kernel) out of a crowd's way; but a viewer who comes when
        every pooled kernel is in use waits for a replacement: this long plus a start.
    notebooks
        Folder served (default: ``notebooks/apps``).
    python
        Interpreter of the environment with Voilà (default: this one).
    cull_idle
        Seconds before the kernel of a closed page is shut down.
    timeout
        Seconds a cell may run before the page reports an error.

    Returns
    -------
    AppCommand

    """
    from crmkit.store.engine import resolve_url

    del open_browser
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
        raise CrmkitError(f"port must be an integer between 1024 and 65535, got {port!r}")
    if not isinstance(pool_size, int) or pool_size < 0:
        raise CrmkitError(f"pool_size must be a whole number >= 0, got {pool_size!r}")
    if not isinstance(pool_fill_delay, int | float) or not 0 <= pool_fill_delay <= 3600:
        raise CrmkitError(f"pool_fill_delay must be 0 to 3600 seconds, got {pool_fill_delay!r}")
    folder = Path(notebooks) if notebooks is not None else apps_dir()
    if not (folder / APP_NOTEBOOK).exists():
        raise CrmkitError(f"{folder / APP_NOTEBOOK} is missing; run crmkit from its project folder")
    if token == "generate":
        token = secrets.token_urlsafe(24)
    db_url = resolve_url(db)
    template_argv, env = voila_template_settings()
    argv = [
        python or sys.executable,
        "-m",
        "voila",
        str(folder),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        *template_argv,
        *(f"--VoilaConfiguration.extension_denylist={e}" for e in DENIED_EXTENSIONS),
        # a preheated kernel waits in a cell for its viewer: that wait must not time out
        f"--VoilaExecutor.timeout={POOL_WAIT_SECONDS if pool_size > 0 else int(timeout)}",
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_SECONDS}",
        f"--Voila.config_file_paths={json.dumps([str(_voila_config_dir())])}",
        f"--MappingKernelManager.cull_idle_timeout={int(cull_idle)}",
        f"--MappingKernelManager.cull_interval={CULL_INTERVAL_SECONDS}",
        f"--token={token or ''}",
    ]
    if pool_size > 0:
        pools = {
            "default": {"pool_size": 0},
            APP_NOTEBOOK: {"pool_size": pool_size},
            EDITOR_NOTEBOOK: {"pool_size": EDITOR_POOL},
        }
        argv += [
            "--preheat_kernel=True",
            f"--pool_size={pool_size}",
            f"--VoilaKernelManager.kernel_pools_config={json.dumps(pools)}",
            f"--VoilaKernelManager.fill_delay={float(pool_fill_delay)}",
        ]
    env |= {"CRMKIT_DB_URL": db_url, "MPLBACKEND": "Agg"}
    url = f"http://127.0.0.1:{port}/voila/render/{APP_NOTEBOOK}"
    if token:
        url += f"?token={token}"
    return AppCommand(argv=argv, env=env, url=url, db_url=db_url)


_VOILA_CONFIG = f"""# written by crmkit.apps.server: Voila settings command-line options cannot give
def _page_config_hook(page_config, **kwargs):
    # the manager page loads no front-end extension it does not use
    if str(kwargs.get("notebook_path") or "").endswith({APP_NOTEBOOK!r}):
        deny = {MANAGER_DENIED_EXTENSIONS!r}
        page_config["federated_extensions"] = [
            e for e in page_config.get("federated_extensions", []) if e.get("name") not in deny
        ]
    return page_config


c.VoilaConfiguration.page_config_hook = _page_config_hook
"""


def _voila_config_dir() -> Path:
    """Write Voilà's ``voila.py`` (the page config hook) into a private folder; return it."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / f"crmkit-voila-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "voila.py"
    if not path.exists() or path.read_text() != _VOILA_CONFIG:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_VOILA_CONFIG)
        os.replace(tmp, path)
    return folder


def _port_free(port: int) -> bool:
    """Tell whether 127.0.0.1:port can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def serve_app(
    db: str | os.PathLike[str] | None = None,
    port: int = 8866,
    token: str | None = None,
    open_browser: bool = False,
    **options: object,
) -> int:
    """Start the manager app with Voilà on 127.0.0.1, print its address and wait.

    Parameters
    ----------
    db, port, token
        See :func:`build_app_command`.
    open_browser
        Open the page in the default web browser once the server is started.
    **options
        Passed to :func:`build_app_command` (``pool_size``, ``notebooks``, ...).

    Returns
    -------
    int
        Voilà's exit code (0 after Ctrl-C).

    """
    from crmkit.store import Store

    cmd = build_app_command(db, port, token, open_browser, **options)  # type: ignore[arg-type]
    if not _port_free(port):
        raise CrmkitError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    Store.open(cmd.db_url).close()  # fails early and clearly on a bad database
    print(f"crmkit app: serving {cmd.db_url}")
    print(f"crmkit app: open {cmd.url}   (Ctrl-C stops it)", flush=True)
    proc = subprocess.Popen(cmd.argv, env=cmd.env)
    if open_browser:
        threading.Timer(2.0, webbrowser.open, args=(cmd.url,)).start()
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return 0


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``crmkit app`` to a parser.

    Parameters
    ----------
    p
        The (sub)parser.
    """
    p.add_argument(
        "--db", metavar="PATH_OR_URL", default=None,
        help="SQLite file or SQLAlchemy URL (default: $CRMKIT_DB_URL, else data/crmkit.db)",
    )  # fmt: skip
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    p.add_argument(
        "--token", default=None,
        help='access token the browser must give; "generate" makes one (default: none)',
    )  # fmt: skip
    p.add_argument(
        "--pool", type=int, default=DEFAULT_POOL,
        help=f"kernels started ahead of viewers (default {DEFAULT_POOL}; 0: one per page view)",
    )  # fmt: skip
    p.add_argument(
        "--pool-fill-delay", type=float, default=POOL_FILL_DELAY_SECONDS, metavar="SECONDS",
        help="seconds before a used preheated kernel is replaced "
        f"(default {POOL_FILL_DELAY_SECONDS})",
    )  # fmt: skip
    p.add_argument("--open", action="store_true", help="open the page in a web browser")


def app_command(args: argparse.Namespace) -> int:
    """Run ``crmkit app`` from parsed arguments; return the exit code.

    Parameters
    ----------
    args
        Arguments from a parser set up by :func:`add_app_arguments`.

    Returns
    -------
    int
    """
    return serve_app(
        args.db, args.port, args.token, args.open, pool_size=args.pool,
        pool_fill_delay=getattr(args, "pool_fill_delay", POOL_FILL_DELAY_SECONDS),
    )  # fmt: skip


# ---------------------------------------------------------------------------- the page
def warm_up() -> None:
    """Import the page's modules, so that building the page is quick.

    In a preheated Voilà kernel this runs before any viewer asks for the page. (Not at a
    lower CPU priority: the kernel keeps it when it serves its viewer, and on a shared
    machine a niced kernel crawls.)
    """
    import sqlalchemy.dialects.sqlite  # noqa: F401  (the embedded database's driver)

    from crmkit.apps import manager as app_view

    del app_view  # imported for its side effect: every module the page needs is loaded


def wait_for_viewer() -> None:
    """In a preheated Voilà kernel, wait until a viewer opens the page; otherwise return at once.

    Voilà runs a preheated kernel's notebook before the request. Calling this between the
    imports and :func:`manager_app` keeps the slow part (starting Python, importing) ahead
    of time while the snapshot is still read when the page is requested, so it is never stale.
    """
    if os.environ.get("VOILA_PREHEAT", "False") == "False":
        return
    from voila.utils import wait_for_request

    wait_for_request()


def manager_app(db: str | None = None, *, snapshot_id: int | None = None, top_n: int = 10):
    """Build the manager page from the newest forecast snapshot.

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    snapshot_id
        Show this snapshot instead of the newest.
    top_n
        Number of deals in the "at risk of slipping" table.

    Returns
    -------
    ipywidgets.Widget
        The page, or a message saying how to make a forecast when there is none.

    """
    import ipywidgets as w
    from sqlalchemy import exc as sa_exc

    from crmkit.apps.dashboard import latest_snapshot, no_snapshot_message
    from crmkit.store import Store

    # read only: no schema check or migration here (``crmkit app`` migrated at start), which
    # also keeps alembic out of the page; a database without the tables has no snapshot
    store = Store.open(db, migrate_db=False)
    try:
        snap = latest_snapshot(store, snapshot_id)
    except (sa_exc.OperationalError, sa_exc.ProgrammingError):
        snap = None
    finally:
        url = store.url
        store.close()
    if snap is None:
        return w.HTML(
            f'<div class="crmkit-no-snapshot" style="font-size:1.1em;padding:1em">'
            f"{html.escape(no_snapshot_message(url))}</div>"
        )
    from crmkit.apps.manager import ManagerView

    return ManagerView(snap, top_n=top_n).widget
