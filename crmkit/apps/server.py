"""The managers' app: the Voilà page built from a forecast snapshot, and ``crmkit app``.

:func:`manager_app` builds the page's widgets (the notebook ``notebooks/apps/manager.ipynb``
only calls it), :func:`deal_editor_app` the deal editor's; :func:`build_app_command` and
:func:`serve_app` start Voilà with the settings that keep it quick under load and safe to
serve: a token by default (never on a command line), only requests addressed to this server
(``Host`` and ``Origin``), settings in a private folder, the database URL in the environment
and masked in messages, and no kernel left behind when it stops (``docs/serving.md``). The
page reads a saved snapshot through :mod:`crmkit.apps.dashboard` and never imports the
modelling stack.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
    """Return the folder of the Voilà apps: ``apps`` in crmkit's shipped notebooks.

    Found in the installed package (or the checkout of an editable install), never in the
    current folder: see :func:`crmkit.apps.notebooks.notebooks_dir`.
    """
    from crmkit.apps.notebooks import notebooks_dir

    return notebooks_dir() / "apps"


#: Host names that reach this machine only; the app answers requests addressed to them (with
#: its port) and to the names given with ``--allow-host``, and no others.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Environment variable naming the viewer recorded in the deal history (``--user``).
USER_ENV = "CRMKIT_APP_USER"
#: Environment variable that hides the manager page's refit action when ``"0"``
#: (``crmkit app --no-refit``).
REFIT_ENV = "CRMKIT_APP_REFIT"
#: Seconds ``crmkit app`` waits for Voilà to stop its kernels after a stop signal before it
#: kills what is left.
STOP_GRACE_SECONDS = 20


@dataclass(frozen=True)
class AppCommand:
    """A ready-to-run Voilà command: argv, environment and the page's address.

    The environment holds the database URL (``CRMKIT_DB_URL``) and the URL holds the token,
    so neither is shown by ``repr``. The token is in ``voila.json`` (mode 0600) in
    ``config_dir``, a private folder made for this command; :meth:`cleanup` removes it.
    """

    argv: list[str]
    env: dict[str, str] = field(repr=False)
    url: str = field(repr=False)
    db_url: str = field(repr=False)
    token: str = field(default="", repr=False)
    config_dir: Path | None = None
    ip: str = "127.0.0.1"

    def cleanup(self) -> None:
        """Remove the private settings folder (token included) made for this command."""
        if self.config_dir is not None:
            shutil.rmtree(self.config_dir, ignore_errors=True)


def private_dir(folder: str | os.PathLike[str]) -> Path:
    """Create a folder only this user may use, or check an existing one; return it.

    Parameters
    ----------
    folder
        The folder (created with mode 0700 when missing).

    Returns
    -------
    Path

    Raises
    ------
    CrmkitError
        If it is a symbolic link or not a folder, is owned by another user, or other users
        may write to it (crmkit would load settings from it that someone else planted).

    """
    path = Path(folder)
    try:
        if not path.exists() and not path.is_symlink():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
        st = os.lstat(path)
    except OSError as err:
        raise CrmkitError(f"cannot make the private folder {path}: {err.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise CrmkitError(f"{path} must be a folder, not a link or a file; remove it and retry")
    if st.st_uid != os.getuid():
        raise CrmkitError(
            f"{path} is owned by user id {st.st_uid}, not by you ({os.getuid()}); "
            "someone else may have planted it: remove it and retry"
        )
    if st.st_mode & 0o022:
        raise CrmkitError(
            f"{path} may be written by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            "remove it or chmod 700 it and retry"
        )
    return path


def config_root() -> Path:
    """Return the private folder for Voilà's settings, checked by :func:`private_dir`.

    It is ``$XDG_RUNTIME_DIR/crmkit`` (a per-user folder the system clears at logout), else
    ``~/.cache/crmkit``; created with mode 0700.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "crmkit" if runtime else Path.home() / ".cache" / "crmkit"
    return private_dir(base)


def read_secret_file(path: str | os.PathLike[str], what: str) -> str:
    """Read a secret (a database URL, a token) from a file only its owner may read.

    Parameters
    ----------
    path
        The file; its first non-empty line is the secret.
    what
        What it holds, for messages (``"database URL"``).

    Returns
    -------
    str

    Raises
    ------
    CrmkitError
        If the file is missing, other users may read it, or it is empty.

    """
    p = Path(path)
    try:
        st = p.stat()
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise CrmkitError(f"cannot read the {what} file {p}: {err.strerror or err}") from None
    if st.st_mode & 0o077:
        raise CrmkitError(
            f"{p} may be read by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"a {what} file must be private: chmod 600 {p}"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise CrmkitError(f"the {what} file {p} is empty")
    return lines[0]


def _host_entry(name: str) -> str:
    """Check one ``--allow-host`` value (``NAME``, ``NAME:PORT``, ``[IPv6]:PORT``); normalise it."""
    text = str(name).strip().lower()
    try:
        parts = urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or parts.path or parts.query or parts.username is not None or "/" in text:
        raise CrmkitError(f"--allow-host takes a host name or NAME:PORT, got {str(name)[:80]!r}")
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


def _check_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse the address to listen on."""
    try:
        return ipaddress.ip_address(str(ip).strip("[]"))
    except ValueError:
        msg = f"--ip takes an IP address such as 127.0.0.1, got {str(ip)[:80]!r}"
        raise CrmkitError(msg) from None


def _url_host(ip: str) -> str:
    """The host to print in the page's address for a listening address."""
    addr = ipaddress.ip_address(ip)
    if addr.is_unspecified:
        return "127.0.0.1" if addr.version == 4 else "[::1]"
    return f"[{ip}]" if addr.version == 6 else ip


def build_app_command(
    db: str | os.PathLike[str] | None = None,
    port: int = 8866,
    token: str | bool | None = True,
    open_browser: bool = False,
    *,
    ip: str = "127.0.0.1",
    allow_hosts: Sequence[str] = (),
    user: str | None = None,
    allow_refit: bool = True,
    pool_size: int = 0,
    pool_fill_delay: float = POOL_FILL_DELAY_SECONDS,
    notebooks: str | os.PathLike[str] | None = None,
    python: str | None = None,
    cull_idle: int = CULL_IDLE_SECONDS,
    timeout: int = EXECUTE_TIMEOUT_SECONDS,
) -> AppCommand:
    """Build the Voilà command that serves the manager app.

    Secrets never appear in the command line: the database URL reaches Voilà and its kernels
    as ``CRMKIT_DB_URL`` in the environment, the token is written to ``voila.json`` (mode
    0600) in a fresh private folder (see :func:`config_root`), with the settings that make
    Voilà answer only requests addressed to this server (``Host`` and ``Origin`` headers of
    the loopback names with the port, or of ``allow_hosts``). Call
    :meth:`AppCommand.cleanup` when the server has stopped.

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    port
        TCP port (1024-65535).
    token
        Access token the browser must present (``?token=...``, then a cookie): True (the
        default) or ``"generate"`` makes a random one; a string is used as given; False or
        None serves without a token (only on a loopback address).
    open_browser
        Not used by the command itself (see :func:`serve_app`); kept for the CLI's sake.
    ip
        Address to listen on (default 127.0.0.1). Any other than a loopback one needs a token.
    allow_hosts
        Further host names (``NAME`` or ``NAME:PORT``) the app answers to, e.g. the public
        name of a TLS reverse proxy in front of it (``docs/serving.md``).
    user
        Name recorded as ``changed_by`` for every edit in the deal editor (default: each
        viewer types their name on the page).
    allow_refit
        Show the manager page's "Refit forecast" action (False: a read-only deployment;
        passed to the kernels as ``$CRMKIT_APP_REFIT``).
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
    from crmkit.apps.dashboard import viewer_name
    from crmkit.store.engine import resolve_url

    del open_browser
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
        raise CrmkitError(f"port must be an integer between 1024 and 65535, got {port!r}")
    if not isinstance(pool_size, int) or pool_size < 0:
        raise CrmkitError(f"pool_size must be a whole number >= 0, got {pool_size!r}")
    if not isinstance(pool_fill_delay, int | float) or not 0 <= pool_fill_delay <= 3600:
        raise CrmkitError(f"pool_fill_delay must be 0 to 3600 seconds, got {pool_fill_delay!r}")
    addr = _check_ip(ip)
    ip = str(addr)
    hosts = [_host_entry(h) for h in allow_hosts]
    if token is True or token == "generate":
        token = secrets.token_urlsafe(32)
    elif token is False or token is None:
        token = ""
    elif not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9._~\-]{16,256}", token):
        raise CrmkitError(
            "a token must be 16 to 256 letters, digits or . _ ~ - (leave it out to have one made)"
        )
    if not token and not addr.is_loopback:
        raise CrmkitError(
            f"--ip {ip} lets other machines reach the app; that needs a token (drop --no-token)"
        )
    if user is not None:
        user = viewer_name(user)
    folder = Path(notebooks) if notebooks is not None else apps_dir()
    if not (folder / APP_NOTEBOOK).exists():
        raise CrmkitError(
            f"{folder / APP_NOTEBOOK} is missing; reinstall crmkit (its package holds the app)"
        )
    db_url = resolve_url(db)
    template_argv, env = voila_template_settings()
    config_dir = _write_voila_config(token, port, hosts)
    argv = [
        python or sys.executable,
        "-m",
        "voila",
        str(folder),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={ip}",
        # a taken port is an error, not a reason to serve elsewhere than the printed address
        "--Voila.port_retries=0",
        "--strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        *template_argv,
        *(f"--VoilaConfiguration.extension_denylist={e}" for e in DENIED_EXTENSIONS),
        # a preheated kernel waits in a cell for its viewer: that wait must not time out
        f"--VoilaExecutor.timeout={POOL_WAIT_SECONDS if pool_size > 0 else int(timeout)}",
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_SECONDS}",
        f"--Voila.config_file_paths={json.dumps([str(config_dir)])}",
        f"--MappingKernelManager.cull_idle_timeout={int(cull_idle)}",
        f"--MappingKernelManager.cull_interval={CULL_INTERVAL_SECONDS}",
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
    env.pop(USER_ENV, None)
    if user is not None:
        env[USER_ENV] = user
    env[REFIT_ENV] = "1" if allow_refit else "0"
    if not addr.is_unspecified:  # where a preheated kernel asks for its viewer's request
        env["VOILA_APP_IP"] = ip
    # tokens Jupyter reads from the environment must not replace crmkit's
    for name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE"):
        env.pop(name, None)
    url = f"http://{_url_host(ip)}:{port}/voila/render/{APP_NOTEBOOK}"
    if token:
        url += f"?token={token}"
    return AppCommand(
        argv=argv, env=env, url=url, db_url=db_url, token=token, config_dir=config_dir, ip=ip
    )


#: Voilà's settings file written by :func:`build_app_command` into the private folder: what
#: command-line options cannot give. Host, port and token come from ``voila.json`` beside it.
VOILA_CONFIG = f"""# written by crmkit.apps.server for one run of crmkit app, removed when it ends
import ipaddress
from urllib.parse import urlsplit

from jupyter_server.auth.identity import PasswordIdentityProvider
from tornado import web
from traitlets import Int, List, Unicode


class CrmkitIdentityProvider(PasswordIdentityProvider):
    # Jupyter's token login that first refuses (403) any request whose Host or Origin header
    # names another server than this one: a page elsewhere (DNS rebinding, cross-site
    # scripts) can neither read the app nor open its kernels' websockets.
    allowed_hosts = List(Unicode(), config=True)
    port = Int(0, config=True)

    def host_allowed(self, netloc, default_port):
        try:
            parts = urlsplit("//" + netloc)
            host, port = parts.hostname, parts.port
        except ValueError:
            return False
        if not host or parts.username is not None or parts.path:
            return False
        port = default_port if port is None else port
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback and port == self.port:
            return True
        for entry in self.allowed_hosts:
            allowed = urlsplit("//" + entry)
            if host == allowed.hostname and allowed.port in (None, port):
                return True
        return False

    def get_user(self, handler):
        request = handler.request
        refused = None
        if not self.host_allowed(request.headers.get("Host", ""), None):
            refused = "Host", request.headers.get("Host", "")
        origin = request.headers.get("Origin")
        if refused is None and origin is not None:
            parts = urlsplit(origin.lower())
            default = {{"http": 80, "https": 443}}.get(parts.scheme)
            if default is None or not self.host_allowed(parts.netloc, default):
                refused = "Origin", origin
        if refused is not None:
            self.log.warning("crmkit: refused a request with %s %r", refused[0], refused[1][:100])
            handler.current_user = handler._jupyter_current_user = None  # for the error page
            # no log message: tornado would log the request's address with its token
            raise web.HTTPError(403, reason=f"{{refused[0]}} not allowed")
        return super().get_user(handler)


def _page_config_hook(page_config, **kwargs):
    # the manager page loads no front-end extension it does not use
    if str(kwargs.get("notebook_path") or "").endswith({APP_NOTEBOOK!r}):
        deny = {MANAGER_DENIED_EXTENSIONS!r}
        page_config["federated_extensions"] = [
            e for e in page_config.get("federated_extensions", []) if e.get("name") not in deny
        ]
    return page_config


c.Voila.identity_provider_class = CrmkitIdentityProvider
c.VoilaConfiguration.page_config_hook = _page_config_hook
"""
#: The lines of ``voila.py`` that differ between runs (the token is in ``voila.json``).
_VOILA_RUN_CONFIG = """
from jupyter_server.log import log_request  # request log lines without the token

c.CrmkitIdentityProvider.allowed_hosts = {hosts!r}
c.CrmkitIdentityProvider.port = {port!r}
c.Voila.tornado_settings = {{**{tornado!r}, "log_function": log_request}}
"""


def _write_private_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never following a link, never reusing a file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _write_voila_config(token: str, port: int, hosts: list[str]) -> Path:
    """Write Voilà's settings (hook, host checks, token) into a fresh private folder."""
    folder = Path(tempfile.mkdtemp(prefix="voila-", dir=config_root()))
    names = [str(urlsplit(f"//{h}").hostname) for h in hosts]
    ip_literal = False
    for name in names:
        with contextlib.suppress(ValueError):
            ip_literal |= not ipaddress.ip_address(name).is_loopback
    # Jupyter's own Host check as well (it cannot allow a non-loopback IP address)
    tornado = {"allow_remote_access": ip_literal, "local_hostnames": ["localhost", *names]}
    run = _VOILA_RUN_CONFIG.format(hosts=hosts, port=port, tornado=tornado)
    settings = {"Voila": {"token": token}}
    try:
        _write_private_file(folder / "voila.py", VOILA_CONFIG + run)
        _write_private_file(folder / "voila.json", json.dumps(settings, indent=1))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _port_free(port: int, ip: str = "127.0.0.1") -> bool:
    """Tell whether ip:port can be bound as the server binds it (with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # as tornado does: sockets of closed connections in TIME-WAIT do not hold the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def _proc_start(pid: int) -> float | None:
    """Start time of a process (to recognise it later), or None if it is gone."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def descendants(pid: int) -> dict[int, float]:
    """Return the processes started (directly or not) by process ``pid``, with start times.

    Parameters
    ----------
    pid
        The ancestor.

    Returns
    -------
    dict
        Process id to start time; empty when ``pid`` is gone.
    """
    import psutil

    try:
        return {c.pid: c.create_time() for c in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def _kill_leftovers(tracked: dict[int, float]) -> None:
    """Kill (with their process groups) the tracked processes that are still running."""
    for pid, started in tracked.items():
        if _proc_start(pid) != started:
            continue  # gone, or the number now belongs to another process
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:  # a kernel leads its own group: take its children too
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def stop_server(
    proc: subprocess.Popen,
    tracked: dict[int, float] | None = None,
    grace: float = STOP_GRACE_SECONDS,
) -> None:
    """Stop a Voilà server started in its own process group, and every kernel it started.

    Voilà gets SIGTERM (it then shuts its kernels down) and ``grace`` seconds; then its
    group, and any of its descendants still running, are killed.

    Parameters
    ----------
    proc
        The server, started with ``start_new_session=True``.
    tracked
        Descendants seen earlier (:func:`descendants`), for those Voilà no longer knows.
    grace
        Seconds Voilà may take to stop its kernels.
    """
    tracked = dict(tracked or {})
    if proc.poll() is None:
        tracked |= descendants(proc.pid)
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            tracked |= descendants(proc.pid)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in Voilà's group
    _kill_leftovers(tracked)


def run_app(cmd: AppCommand, *, on_started: Callable[[], None] | None = None) -> int:
    """Run a built Voilà command until it ends or this process is asked to stop.

    Voilà runs in its own process group. SIGTERM, SIGINT (Ctrl-C) and SIGHUP sent to this
    process are passed on as SIGTERM, on which Voilà shuts its kernels down; whatever is left
    after :data:`STOP_GRACE_SECONDS` (Voilà, its kernels and their children) is killed, so
    no kernel keeps running and the port is free once this returns.

    Parameters
    ----------
    cmd
        From :func:`build_app_command`.
    on_started
        Called once Voilà has been started.

    Returns
    -------
    int
        Voilà's exit code, or 0 after a stop signal.

    """
    stop: list[int] = []
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[sig] = signal.signal(sig, lambda signum, _frame: stop.append(signum))
    tracked: dict[int, float] = {}
    proc = subprocess.Popen(cmd.argv, env=cmd.env, start_new_session=True)
    deadline: float | None = None
    code: int | None = None
    try:
        if on_started is not None:
            on_started()
        polls = 0
        while code is None:
            try:
                code = proc.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                polls += 1
                if polls % 8 == 0 or (stop and deadline is None):
                    tracked |= descendants(proc.pid)
                if stop and deadline is None:
                    deadline = time.monotonic() + STOP_GRACE_SECONDS
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGTERM)
                elif deadline is not None and time.monotonic() > deadline:
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        stop_server(proc, tracked)
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    return 0 if stop else code


def _check_database(db_url: str) -> None:
    """Open the store once (migrating it; a missing one is refused); errors hide the password."""
    from sqlalchemy import exc as sa_exc

    from crmkit.store import Store
    from crmkit.store.engine import hide_password, masked_url

    try:
        Store.open(db_url, create=False).close()
    except CrmkitError as err:
        if hide_password(str(err), db_url) == str(err):
            raise
        raise CrmkitError(hide_password(str(err), db_url)) from None
    except (sa_exc.SQLAlchemyError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        detail = hide_password(first, db_url)[:300]
        raise CrmkitError(f"cannot open the database {masked_url(db_url)}: {detail}") from None


def serve_app(
    db: str | os.PathLike[str] | None = None,
    port: int = 8866,
    token: str | bool | None = True,
    open_browser: bool = False,
    **options: object,
) -> int:
    """Start the manager app with Voilà, print its address (with the token) and wait.

    Parameters
    ----------
    db, port, token
        See :func:`build_app_command`.
    open_browser
        Open the page in the default web browser once the server is started.
    **options
        Passed to :func:`build_app_command` (``ip``, ``allow_hosts``, ``user``,
        ``pool_size``, ``notebooks``, ...).

    Returns
    -------
    int
        Voilà's exit code (0 after Ctrl-C or SIGTERM).

    """
    from crmkit.store.engine import masked_url

    cmd = build_app_command(db, port, token, open_browser, **options)  # type: ignore[arg-type]
    try:
        if not _port_free(port, cmd.ip):
            raise CrmkitError(f"port {port} on {cmd.ip} is in use; choose another with --port")
        _check_database(cmd.db_url)  # fails early and clearly on a bad database
        print(f"crmkit app: serving {masked_url(cmd.db_url)}")
        print(f"crmkit app: open {cmd.url}   (Ctrl-C stops it)", flush=True)

        def started() -> None:
            if open_browser:
                threading.Timer(2.0, webbrowser.open, args=(cmd.url,)).start()

        return run_app(cmd, on_started=started)
    finally:
        cmd.cleanup()


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``crmkit app`` to a parser.

    Parameters
    ----------
    p
        The (sub)parser.
    """
    p.add_argument(
        "--db", metavar="PATH_OR_URL", default=None,
        help="SQLite file or SQLAlchemy URL (default: $CRMKIT_DB_URL, else data/crmkit.db); "
        "a URL with a password belongs in $CRMKIT_DB_URL or --db-file, not here",
    )  # fmt: skip
    p.add_argument(
        "--db-file", metavar="PATH", default=None,
        help="read the database URL from this file (mode 0600: only you may read it)",
    )  # fmt: skip
    p.add_argument("--port", type=int, default=8866, help="port to serve on (default 8866)")
    p.add_argument(
        "--ip", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); another than a loopback address "
        "needs the token",
    )  # fmt: skip
    p.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME[:PORT]", dest="allow_host",
        help="also answer requests addressed to this host name, e.g. a reverse proxy's "
        "public name (repeatable; default: loopback names only; see docs/serving.md)",
    )  # fmt: skip
    p.add_argument(
        "--no-token", action="store_true",
        help="serve without an access token (by default a random one is made and printed "
        "in the address); only on a loopback address",
    )  # fmt: skip
    p.add_argument(
        "--token-file", metavar="PATH", default=None,
        help="use the token in this file (mode 0600) instead of a random one",
    )  # fmt: skip
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: see app_command
    p.add_argument(
        "--user", default=None, metavar="NAME",
        help="record every edit in the deal editor as made by NAME (default: each viewer "
        "types their name on the page)",
    )  # fmt: skip
    p.add_argument(
        "--no-refit", action="store_true", dest="no_refit",
        help="hide the manager page's \"Refit forecast\" button (a read-only deployment; "
        "by default anyone with the token may refit)",
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
    from crmkit.store.engine import masked_url

    db = args.db
    if getattr(args, "db_file", None):
        if db is not None:
            raise CrmkitError("give the database with --db or --db-file, not both")
        db = read_secret_file(args.db_file, "database URL")
    elif db is not None and "://" in str(db) and _password_of(str(db)):
        raise CrmkitError(
            f"--db {masked_url(str(db))} shows its password to every user of this machine (ps); "
            "put the URL in $CRMKIT_DB_URL or in a file for --db-file (chmod 600)"
        )
    token: str | bool = True
    if getattr(args, "token", None) not in (None, "generate"):
        raise CrmkitError(
            "--token VALUE shows the token to every user of this machine (ps); a random token "
            "is made by default, or put yours in a file for --token-file (chmod 600)"
        )
    if getattr(args, "token_file", None):
        if getattr(args, "no_token", False):
            raise CrmkitError("give --token-file or --no-token, not both")
        token = read_secret_file(args.token_file, "token")
    elif getattr(args, "no_token", False):
        token = False
    return serve_app(
        db, args.port, token, args.open, pool_size=args.pool,
        pool_fill_delay=getattr(args, "pool_fill_delay", POOL_FILL_DELAY_SECONDS),
        ip=getattr(args, "ip", "127.0.0.1"), allow_hosts=getattr(args, "allow_host", []),
        user=getattr(args, "user", None), allow_refit=not getattr(args, "no_refit", False),
    )  # fmt: skip


def _password_of(url: str) -> str | None:
    """The password in a database URL, if any."""
    try:
        from sqlalchemy import make_url

        return make_url(url).password  # type: ignore[return-value]
    except Exception:
        return None


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


def manager_app(
    db: str | None = None,
    *,
    snapshot_id: int | None = None,
    top_n: int = 10,
    allow_refit: bool | None = None,
    method: str | None = None,
):
    """Build the manager page from the newest forecast snapshot, with its refit action.

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    snapshot_id
        Show this snapshot instead of the newest.
    top_n
        Number of deals in the "at risk of slipping" table.
    allow_refit
        Show the "Refit forecast" button (:class:`crmkit.apps.manager.ManagerPage`); None:
        yes unless ``crmkit app --no-refit`` (``$CRMKIT_APP_REFIT`` is ``"0"``).
    method
        Fit method of the refit (None: ``"auto"``, see
        :func:`crmkit.apps.manager.refit_parameters`).

    Returns
    -------
    ipywidgets.Widget
        The page: the snapshot's view, or a message saying how to make a forecast when
        there is none; above it the refit button and its status area.

    """
    from sqlalchemy import exc as sa_exc

    from crmkit.apps.changes import page_changes
    from crmkit.apps.dashboard import latest_snapshot
    from crmkit.apps.manager import ManagerPage
    from crmkit.store import Store

    # read only: no schema check or migration here (``crmkit app`` migrated at start), which
    # also keeps alembic out of the page; a database without the tables has no snapshot
    store = Store.open(db, migrate_db=False)
    changes = None
    try:
        snap = latest_snapshot(store, snapshot_id)
    except (sa_exc.OperationalError, sa_exc.ProgrammingError):
        snap = None
    else:  # what changed since the snapshot before it (the waterfall)
        changes = None if snap is None else page_changes(store, snap)
    finally:
        store.close()
    if allow_refit is None:
        allow_refit = os.environ.get(REFIT_ENV, "1") != "0"
    page = ManagerPage(
        db, snap, top_n=top_n, changes=changes, allow_refit=allow_refit, method=method
    )
    return page.widget


def deal_editor_app(db: str | None = None, *, user: str | None = None, page_size: int = 25):
    """Build the deal editor page (``notebooks/apps/edit_deals.ipynb``).

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    user
        Name recorded for every edit (default: ``crmkit app --user``, passed to the kernel
        as ``$CRMKIT_APP_USER``; without it the viewer types their name on the page).
    page_size
        Rows per page of the grid.

    Returns
    -------
    crmkit.apps.manager.DealEditorPage
        The page; display its ``widget``.

    """
    from crmkit.apps.manager import DealEditorPage

    if user is None:
        user = os.environ.get(USER_ENV) or None
    return DealEditorPage(db, user=user, page_size=page_size)
