"""Smoke test: crmkit's wheel installed into a fresh environment works from any folder.

Run with any Python 3.11+ (only the standard library is used)::

    python scripts/smoke_install.py [--keep]

Steps, each failing loudly (a message naming the step, its output, exit code 1):

1. copy the project's files as a fresh clone has them (tracked and new files, not ignored
   ones such as ``build/`` or databases) into a temporary folder, and build the wheel there
   (``pip wheel --no-deps``), so nothing of the checkout's own builds leaks in;
2. make a fresh virtual environment in the temporary folder (no ``--system-site-packages``:
   the checkout's editable install and its test tools stay invisible), and ``pip install``
   the wheel with its declared dependencies, resolved by pip as a user's install would be.
   This is the honest check that the dependency list is complete, and fast enough: pip's
   cache is warm from the install of ``.venv`` that ``dev.sh`` does first (on CI too), so
   nothing is downloaded twice (about a minute on CI's 2 cores; the first run on a machine
   with a cold cache downloads the dependencies once, a few minutes);
3. from an empty temporary folder (not the checkout): ``crmkit --version``, ``python -m
   crmkit --version``, ``crmkit demo``, ``crmkit forecast``, ``crmkit report --no-pdf``,
   ``crmkit notebooks``, and ``crmkit app``, whose page is fetched with its token (and
   refused without it) before the app is stopped with SIGTERM.

``bash dev.sh test`` runs it after the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Seconds the app may take to answer its first page (a kernel runs the page's notebook).
APP_WAIT_SECONDS = 240


class SmokeError(Exception):
    """A step failed."""


def log(msg: str) -> None:
    """Print a progress line."""
    print(f"[smoke] {msg}", flush=True)


def run(step: str, argv: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    """Run one step; return its stdout, or raise SmokeError with its output."""
    log(f"{step}: {' '.join(map(str, argv))}")
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SmokeError(
            f"{step} failed with exit code {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    log(f"{step}: ok ({time.monotonic() - t0:.0f} s)")
    return proc.stdout


def copy_checkout(dest: Path) -> Path:
    """Copy the project's tracked and new (not ignored) files into ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect (e.g. to the login page) instead of following it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        """Follow no redirect."""
        return None


def get(url: str) -> tuple[int, str]:
    """GET a URL without following redirects: (status, body)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=APP_WAIT_SECONDS) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location", "")


def check_app(crmkit: Path, db: Path, *, cwd: Path, env: dict[str, str]) -> None:
    """Start ``crmkit app``, fetch its page with the token and without, stop it."""
    port = free_port()
    argv = [str(crmkit), "app", "--db", str(db), "--port", str(port), "--pool", "0"]
    log(f"app: {' '.join(argv)}")
    out = open(cwd / "app.log", "w+")
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        url = None
        deadline = time.monotonic() + APP_WAIT_SECONDS
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            m = re.search(r"open (http://\S+token=\S+)", (cwd / "app.log").read_text())
            url = m.group(1) if m else None
        if url is None:
            raise SmokeError(f"app printed no address\n{(cwd / 'app.log').read_text()[-4000:]}")
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = get(url)
                break
            except OSError:  # not listening yet
                time.sleep(1)
        widget = "application/vnd.jupyter.widget-view+json" in body  # the page's output
        if status != 200 or not widget or "error when executing" in body.lower():
            raise SmokeError(f"app page answered {status}\n{(cwd / 'app.log').read_text()[-4000:]}")
        refused, where = get(url.split("?")[0])
        if not (refused in (401, 403) or (refused in (302, 303) and "login" in where)):
            raise SmokeError(f"app page without its token answered {refused} {where}")
        log(f"app: page served with its token, refused ({refused}) without it")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise SmokeError("app did not stop within 60 s of SIGTERM") from None
            if code != 0:
                raise SmokeError(f"app exited {code} after SIGTERM")
        out.close()
    log("app: stopped")


def smoke(base: Path) -> None:
    """Build, install and exercise crmkit under ``base``."""
    build_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    src = copy_checkout(base / "src")
    run("build wheel", [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                        base / "dist", src], cwd=base, env=build_env)  # fmt: skip
    (wheel,) = (base / "dist").glob("crmkit-*.whl")
    shutil.rmtree(src)
    python = getattr(sys, "_base_executable", sys.executable)
    venv = base / "venv"
    run("fresh venv", [python, "-m", "venv", venv], cwd=base, env=build_env)
    py, crmkit = venv / "bin" / "python", venv / "bin" / "crmkit"
    install = [py, "-m", "pip", "install", "-q", "--no-compile", wheel]
    run("install wheel with its dependencies", install, cwd=base, env=build_env)

    work = base / "work"  # an empty folder, far from the checkout
    work.mkdir()
    env = {**build_env, "VIRTUAL_ENV": str(venv), "MPLBACKEND": "Agg"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CRMKIT_DB_URL", None)
    where = run("import from the venv", [py, "-c", "import crmkit; print(crmkit.__file__)"],
                cwd=work, env=env).strip()  # fmt: skip
    if not where.startswith(str(venv)):
        raise SmokeError(f"crmkit was imported from {where}, not the fresh environment")
    version = run("crmkit --version", [crmkit, "--version"], cwd=work, env=env).strip()
    if version != f"crmkit {wheel.name.split('-')[1]}":
        raise SmokeError(f"crmkit --version printed {version!r} for {wheel.name}")
    same = run("python -m crmkit", [py, "-m", "crmkit", "--version"], cwd=work, env=env)
    if same.strip() != version:
        raise SmokeError("python -m crmkit --version differs from crmkit --version")
    run("demo", [crmkit, "demo", "--customers", "200", "--deals", "300", "--db", "x.db"],
        cwd=work, env=env)  # fmt: skip
    run("forecast", [crmkit, "forecast", "--db", "x.db", "--draws", "50", "--horizon", "2",
                     "--out", "forecast.json"], cwd=work, env=env)  # fmt: skip
    as_of = json.loads((work / "forecast.json").read_text())["as_of"]
    run("report", [crmkit, "report", "--db", "x.db", "--as-of", str(as_of)[:10], "--horizon",
                   "2", "--draws", "50", "--no-pdf", "--backtest", "0", "--out-dir", "reports"],
        cwd=work, env=env)  # fmt: skip
    html = sorted((work / "reports").glob("*.html"))
    if not html or "forecast" not in html[0].read_text().lower():
        raise SmokeError(f"report wrote no HTML in {work / 'reports'}")
    run("notebooks", [crmkit, "notebooks", "nbs"], cwd=work, env=env)
    copied = sorted(p.name for p in (work / "nbs").glob("*.ipynb"))
    if [n[:2] for n in copied] != ["01", "02", "03", "04"]:
        raise SmokeError(f"crmkit notebooks copied {copied}")
    check_app(crmkit, work / "x.db", cwd=work, env=env)
    check_default_database(crmkit, base, env=env)


def check_default_database(crmkit: Path, base: Path, *, env: dict[str, str]) -> None:
    """Without --db an installed crmkit uses one per-user database, never the current folder."""
    env = {**env, "XDG_DATA_HOME": str(base / "xdg")}
    env.pop("CRMKIT_DB_URL", None)
    one, two = base / "one", base / "two"
    one.mkdir()
    two.mkdir()
    run("demo without --db", [crmkit, "demo", "--customers", "200", "--deals", "300"],
        cwd=one, env=env)  # fmt: skip
    expected = base / "xdg" / "crmkit" / "crmkit.db"
    if not expected.exists():
        raise SmokeError(f"crmkit demo without --db did not write {expected}")
    if list(one.iterdir()):
        raise SmokeError(f"crmkit demo without --db wrote into its folder: {list(one.iterdir())}")
    summary = run("summary from another folder", [crmkit, "summary"], cwd=two, env=env)
    if "deals" not in summary:
        raise SmokeError(f"crmkit summary from another folder printed {summary!r}")


def main() -> int:
    """Run the smoke test; 0 when every step passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="crmkit-smoke-"))
    t0 = time.monotonic()
    try:
        smoke(base)
    except SmokeError as err:
        print(f"[smoke] FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    log(f"passed in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
