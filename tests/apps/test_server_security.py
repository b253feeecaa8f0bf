"""The served app refuses what it must: real Voilà servers, real HTTP requests and websockets.

Each test starts Voilà as ``crmkit app`` builds it (``build_app_command``) or ``crmkit app``
itself, then talks to it over loopback: without the token, with a foreign ``Host`` (DNS
rebinding) or ``Origin`` (a page elsewhere), and checks what a local user could see of the
database password (log, ``/proc/<pid>/cmdline``) and what is left after a stop.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from crmkit.apps.browser import free_port
from crmkit.apps.server import build_app_command, private_dir
from crmkit.errors import CrmkitError
from crmkit.store import Store
from tests.browser.support import ServedApp, served_app
from tests.conftest import pg_role_schema
from tests.snapshot_factory import make_fake_snapshot

CRMKIT = str(Path(sys.executable).with_name("crmkit"))
#: Bounds that only stop a hung run; nothing is timed.
START_S = 120
STOP_S = 90
SECRET = "S3cretPw9"


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Voilà's settings go to a folder of this test, not the user's."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """One server for the request checks, also answering to a reverse proxy's name."""
    root = tmp_path_factory.mktemp("secure")
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    old = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        with Store.open(root / "app.db") as store:
            store.save_snapshot(make_fake_snapshot(seed=3))
        with served_app(
            root / "app.db", root / "voila.log", start_timeout=START_S,
            allow_hosts=["crm.example.com"],
        ) as served:  # fmt: skip
            yield served
    finally:
        if old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = old


def _get(app: ServedApp, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Status and body of one GET request to the server."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=START_S)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, resp.getheader("Location") or body
    finally:
        conn.close()


def _page(app: ServedApp) -> str:
    """The manager page's HTML, fetched with the token."""
    status, body = _get(app, app.path("/voila/render/manager.ipynb"))
    assert status == 200, body[:500]
    return body


def test_request_without_the_token_is_refused(app: ServedApp) -> None:
    status, where = _get(app, "/voila/render/manager.ipynb")
    assert status == 302 and where.startswith("/login")  # to the login form, no page
    status, _ = _get(app, app.path("/voila/render/manager.ipynb").replace("token=", "token=x"))
    assert status == 302
    kernel = re.search(r'"kernelId": *"([^"]+)"', _page(app)).group(1)
    assert _get(app, f"/api/kernels/{kernel}")[0] == 403  # the kernel API as well
    assert "crmkit-headline" not in _get(app, "/voila/render/manager.ipynb")[1]
    assert _get(app, app.path(f"/api/kernels/{kernel}"))[0] == 200  # control: with the token


def test_foreign_host_is_refused(app: ServedApp) -> None:
    page = app.path("/voila/render/manager.ipynb")
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends its Host
    for host in ("attacker.example", f"attacker.example:{app.port}", "localhost:1", "10.0.0.1"):
        assert _get(app, page, {"Host": host})[0] == 403, host
    for host in (f"127.0.0.1:{app.port}", f"localhost:{app.port}", "crm.example.com"):
        assert _get(app, page, {"Host": host})[0] == 200, host
    assert "attacker.example" in app.log_path.read_text()  # refusals are logged


def test_foreign_origin_is_refused(app: ServedApp) -> None:
    page = app.path("/voila/render/manager.ipynb")
    for origin in ("http://attacker.example", f"http://attacker.example:{app.port}",
                   "null", f"http://localhost:{app.port + 1}", "file://"):  # fmt: skip
        assert _get(app, page, {"Origin": origin})[0] == 403, origin
    for origin in (f"http://127.0.0.1:{app.port}", f"http://localhost:{app.port}",
                   "https://crm.example.com"):  # fmt: skip
        assert _get(app, page, {"Origin": origin})[0] == 200, origin


def _websocket_status(url: str, headers: dict[str, str]) -> int:
    """HTTP status of a websocket handshake (101 when it opens)."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def attempt() -> int:
        try:
            ws = await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=60))
        except HTTPClientError as err:
            return err.code
        ws.close()
        return 101

    return asyncio.run(attempt())


def test_kernel_websocket_needs_the_token_and_checks_the_origin(app: ServedApp) -> None:
    kernel = re.search(r'"kernelId": *"([^"]+)"', _page(app)).group(1)
    ws = f"ws://127.0.0.1:{app.port}/api/kernels/{kernel}/channels?session_id=s1"
    local = f"http://127.0.0.1:{app.port}"
    assert _websocket_status(ws, {"Origin": local}) == 403  # no token, no cookie
    with_token = f"{ws}&token={app.cmd.token}"
    assert _websocket_status(with_token, {"Origin": "http://attacker.example"}) == 403
    assert _websocket_status(with_token, {"Host": "attacker.example"}) == 403
    assert _websocket_status(with_token, {"Origin": local}) == 101  # control


def test_planted_config_folder_is_refused(private_runtime_dir: Path, tmp_path: Path) -> None:
    planted = private_runtime_dir / "crmkit"
    planted.mkdir()
    planted.chmod(0o777)  # another local user could put a voila.py in it
    with pytest.raises(CrmkitError, match=r"written by other users \(mode 0777\)"):
        build_app_command("sqlite://", port=free_port())
    assert list(planted.iterdir()) == []  # nothing written, nothing loaded
    out = subprocess.run(
        [CRMKIT, "app", "--db", str(tmp_path / "x.db"), "--port", str(free_port())],
        capture_output=True, text=True, env={**os.environ}, timeout=START_S,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert str(planted) in out.stderr
    planted.chmod(0o700)  # a folder of ours with mode 0700 is used
    assert build_app_command("sqlite://", port=free_port()).config_dir.parent == planted


def test_config_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() == 0:  # root can plant one as another user; others find one
        other = tmp_path / "planted"
        other.mkdir(mode=0o700)
        os.chown(other, 65534, 65534)
    else:
        other = Path("/")
    with pytest.raises(CrmkitError, match="is owned by user id"):
        private_dir(other)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(CrmkitError, match="not a link"):
        private_dir(link)


def _tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants."""
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cmdlines(procs: list[psutil.Process]) -> list[str]:
    """The ``/proc/<pid>/cmdline`` of each process (what ``ps`` shows every local user)."""
    out = []
    for p in procs:
        try:
            out.append(Path(f"/proc/{p.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return out


def _kernels(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if any("ipykernel_launcher" in c for c in _cmdlines([p]))]


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (the same processes: psutil checks)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_for(check, what: str, bound: float = START_S):
    """Poll ``check()`` until truthy; fail naming ``what`` past the bound."""
    deadline = time.monotonic() + bound
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.3)
    return value


def test_no_password_in_any_log_line_or_process_argument(tmp_path: Path) -> None:
    url = f"postgresql://crm_user:{SECRET}@127.0.0.1:1/crm"  # nothing listens: never connects
    with served_app(url, tmp_path / "voila.log", start_timeout=START_S, pool_size=1) as app:
        procs = _wait_for(lambda: len(_kernels(_tree(app.proc.pid))) >= 2 and _tree(app.proc.pid),
                          "the preheated kernels")  # fmt: skip
        _get(app, app.path("/voila/render/manager.ipynb"))  # a kernel tries the database
        procs = _tree(app.proc.pid)
        lines = _cmdlines(procs)
        assert len(_kernels(procs)) >= 2 and any("voila" in c for c in lines)
        assert not [c for c in lines if SECRET in c]
        assert not any(SECRET in a for a in app.cmd.argv)
    log = (tmp_path / "voila.log").read_text()
    assert "Kernel started" in log and SECRET not in log
    assert app.cmd.token not in log  # request lines show token=[secret]
    # crmkit app itself: the URL from a private file; its messages mask the password
    db_file = tmp_path / "db-url"
    db_file.write_text(url)
    db_file.chmod(0o600)
    out = subprocess.run(
        [CRMKIT, "app", "--db-file", str(db_file), "--port", str(free_port()), "--pool", "0"],
        capture_output=True, text=True, timeout=START_S,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert SECRET not in out.stdout + out.stderr and "crm_user:***@" in out.stderr
    out = subprocess.run([CRMKIT, "app", "--db", url], capture_output=True, text=True,
                         timeout=START_S)  # fmt: skip
    assert out.returncode == 1 and SECRET not in out.stdout + out.stderr
    assert "--db-file" in out.stderr


def _start_crmkit_app(tmp_path: Path, port: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    """Run ``crmkit app`` (a real subprocess) until it serves; return it and its log."""
    db = tmp_path / "app.db"
    if not db.exists():
        with Store.open(db) as store:
            store.save_snapshot(make_fake_snapshot(seed=5))
    log_path = tmp_path / f"crmkit-app-{port}-{time.monotonic_ns()}.log"
    env = {**os.environ, "CRMKIT_DB_URL": str(db)}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [CRMKIT, "app", "--port", str(port), *extra],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def serving() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"crmkit app ended: {log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return "?token=" in log_path.read_text()
        except OSError:
            return False

    _wait_for(serving, "crmkit app to serve")
    return proc, log_path


def _port_is_free(port: int) -> bool:
    """Nothing listens on the port and it can be bound again (as a server binds it)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        pass
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_sigterm_leaves_no_voila_process_or_kernel_and_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    proc, log_path = _start_crmkit_app(tmp_path, port, "--pool", "2")
    try:
        # 2 preheated manager kernels and 1 for the deal editor
        _wait_for(lambda: len(_kernels(_tree(proc.pid))) >= 3, "the preheated kernels")
        tree = _tree(proc.pid)[1:]
        voila = [p for p in tree if "voila" in " ".join(_cmdlines([p]))]
        assert voila and os.getpgid(voila[0].pid) != os.getpgid(proc.pid)  # its own group
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_S) == 0
        _wait_for(lambda: not _alive(tree), "Voilà and its kernels to end", bound=STOP_S)
        assert not [p for p in psutil.process_iter() if p.pid in {q.pid for q in _alive(tree)}]
        _wait_for(lambda: _port_is_free(port), "the port to be free", bound=STOP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text()  # (a kernel stopped while importing may print a traceback)
    assert "crmkit app: open http://127.0.0.1:" in log and "error:" not in log
    assert "Handle signal 15" in log  # Voilà got the SIGTERM and shut its kernels down


def _time_wait_on(port: int) -> bool:
    """Whether a TCP socket on local port ``port`` is in TIME-WAIT (``/proc/net/tcp``)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "06":
                return True
    return False


def test_restart_on_the_same_port_right_after_a_stop_succeeds(tmp_path: Path) -> None:
    port = free_port()
    proc, _ = _start_crmkit_app(tmp_path, port, "--pool", "0")
    try:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=START_S)
        client.request("GET", "/")  # a kept-alive connection the server closes on stop
        client.getresponse().read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_S) == 0
        client.close()
        # the stopped server's side of the connection holds the port in TIME-WAIT
        assert _time_wait_on(port)
        with socket.socket() as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))  # what the old check did: "port is in use"
    finally:
        if proc.poll() is None:
            proc.kill()
    again, log_path = _start_crmkit_app(tmp_path, port, "--pool", "0")
    try:
        status = http.client.HTTPConnection("127.0.0.1", port, timeout=START_S)
        status.request("GET", "/")
        assert status.getresponse().status == 302  # served (the login redirect)
        assert "is in use" not in log_path.read_text()
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=STOP_S)


@pytest.mark.postgres
def test_app_on_postgresql_shows_its_password_nowhere(tmp_path: Path) -> None:
    with pg_role_schema("app") as (url, password):
        Store.open(url).close()  # an empty crmkit database in a fresh schema
        _app_on_postgresql_shows_its_password_nowhere(tmp_path, url, password)


def _app_on_postgresql_shows_its_password_nowhere(tmp_path: Path, url: str, password: str) -> None:
    """Serve the app on ``url``; its password is in no process argument and no log line."""
    db_file = tmp_path / "db-url"
    db_file.write_text(url)
    db_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "CRMKIT_DB_URL"}
    port = free_port()
    log_path = tmp_path / "app.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [CRMKIT, "app", "--db-file", str(db_file), "--port", str(port), "--pool", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(lambda: len(_kernels(_tree(proc.pid))) >= 2, "the preheated kernels")
        lines = _cmdlines(_tree(proc.pid))
        assert lines and not [c for c in lines if password in c]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_S)
    log = log_path.read_text()
    assert "crmkit app: serving postgresql" in log and password not in log
