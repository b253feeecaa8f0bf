"""The app launcher builds a safe Voilà command; the page is built from the snapshot alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmkit import dashboard as db
from crmkit.app import APP_NOTEBOOK, DENIED_EXTENSIONS, apps_dir, build_app_command, manager_app
from crmkit.errors import CrmkitError
from crmkit.store import Store
from crmkit.store.engine import resolve_url
from tests.snapshot_factory import make_fake_snapshot

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_with_snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    with Store.open(path) as store:
        store.save_snapshot(make_fake_snapshot())
    return path


def _opt(argv: list[str], name: str) -> str:
    hits = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(hits) == 1, name
    return hits[0]


def test_command_serves_apps_on_loopback_with_load_settings(tmp_path: Path) -> None:
    cmd = build_app_command(tmp_path / "x.db", port=18999)
    assert cmd.argv[1:4] == ["-m", "voila", str(apps_dir())]
    assert _opt(cmd.argv, "Voila.ip") == "127.0.0.1"
    assert _opt(cmd.argv, "port") == "18999"
    assert "--no-browser" in cmd.argv
    denied = [a.split("=", 1)[1] for a in cmd.argv if "extension_denylist=" in a]
    assert denied == list(DENIED_EXTENSIONS)
    assert "@jupyter-widgets/jupyterlab-manager" not in denied  # the page needs the widgets
    assert int(_opt(cmd.argv, "MappingKernelManager.cull_idle_timeout")) > 0
    assert int(_opt(cmd.argv, "VoilaExecutor.timeout")) > 0
    assert _opt(cmd.argv, "strip_sources") == "True"
    assert cmd.env["CRMKIT_DB_URL"] == resolve_url(tmp_path / "x.db")
    assert cmd.url == f"http://127.0.0.1:18999/voila/render/{APP_NOTEBOOK}"
    assert not any(a.startswith("--preheat_kernel") for a in cmd.argv)


def test_token_and_pool_options() -> None:
    cmd = build_app_command("sqlite://", port=18998, token="s3cret", pool_size=2)
    assert cmd.url.endswith("?token=s3cret") and _opt(cmd.argv, "token") == "s3cret"
    assert "--preheat_kernel=True" in cmd.argv and _opt(cmd.argv, "pool_size") == "2"
    assert int(_opt(cmd.argv, "VoilaExecutor.timeout")) >= 24 * 3600  # pooled kernels wait
    pools = json.loads(_opt(cmd.argv, "VoilaKernelManager.kernel_pools_config"))
    assert pools == {"default": {"pool_size": 0}, APP_NOTEBOOK: {"pool_size": 2}}
    generated = build_app_command("sqlite://", token="generate")
    assert len(_opt(generated.argv, "token")) >= 24


@pytest.mark.parametrize("port", [80, 70000, "8866", True])
def test_bad_port_is_refused(port) -> None:
    with pytest.raises(CrmkitError, match="port"):
        build_app_command("sqlite://", port=port)


def test_missing_notebook_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CrmkitError, match=APP_NOTEBOOK):
        build_app_command("sqlite://", notebooks=tmp_path)


def test_page_without_snapshot_says_how_to_make_one(tmp_path: Path) -> None:
    page = manager_app(str(tmp_path / "empty.db"))
    assert "crmkit-no-snapshot" in page.value and "crmkit report" in page.value


def test_page_shows_the_snapshot_and_filters_update_it(db_with_snapshot: Path, monkeypatch) -> None:
    from crmkit.app_view import ManagerView, figure_cache_path

    snap = db.latest_snapshot(Store.open(db_with_snapshot))
    monkeypatch.setenv("CRMKIT_APP_CACHE", str(db_with_snapshot.parent / "cache"))
    view = ManagerView(snap, top_n=3)
    assert figure_cache_path(snap, "fan-all").read_bytes() == view.fan.value
    total = db.headline(snap).loc["total"]
    assert f'data-q="p50">{db.format_amount(total["p50"])}<' in view.headline.value
    assert db.format_share(total["p_target"]) in view.headline.value
    assert view.fan.value[:4] == b"\x89PNG"
    first_fan = view.fan.value
    view.dropdowns["owner"].value = "ann"
    view.dropdowns["team"].value = "north"  # resets owner: one roll-up at a time
    assert view.dropdowns["owner"].value == "All"
    north = db.headline(snap, db.Filter(team="north")).loc["total"]
    assert f'data-q="p50">{db.format_amount(north["p50"])}<' in view.headline.value
    assert 'data-group="team=north"' in view.headline.value
    assert view.fan.value != first_fan
    assert "<td>cy</td>" not in view.risk.value and "<td>ann</td>" in view.risk.value
    assert view.risk.value.count("<tr") == 1 + 3  # header and top_n rows
    view.dropdowns["team"].value = "All"
    assert 'data-group="all"' in view.headline.value


def test_page_code_path_never_imports_the_modelling_stack(
    db_with_snapshot: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from crmkit.app import manager_app\n"
        f"page = manager_app({str(db_with_snapshot)!r})\n"
        "heavy = sorted(m for m in ('pymc', 'pytensor', 'arviz', 'nutpie', 'matplotlib')"
        " if m in sys.modules)\n"
        "print(type(page).__name__, heavy)\n"
    )
    env = {**os.environ, "CRMKIT_APP_CACHE": str(tmp_path / "cache")}

    def run() -> str:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
            env=env,
        )  # fmt: skip
        return out.stdout.strip()

    assert run() == "VBox ['matplotlib']"  # the first viewer draws the figures
    assert len(list((tmp_path / "cache").glob("*.png"))) == 3
    assert run() == "VBox []"  # later viewers read them from the cache


def test_notebook_has_a_parameters_cell_and_only_calls_crmkit() -> None:
    nb = json.loads((apps_dir() / APP_NOTEBOOK).read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    body = "".join("".join(c["source"]) for c in code[1:])
    assert "manager_app(" in body and "import pymc" not in body
    assert all(not c.get("outputs") for c in code)


def test_wait_for_viewer_returns_at_once_outside_a_preheated_kernel(monkeypatch) -> None:
    from crmkit.app import wait_for_viewer, warm_up

    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    assert wait_for_viewer() is None
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    assert wait_for_viewer() is None
    warm_up()


def test_command_line_options_reach_the_command(monkeypatch) -> None:
    import argparse

    from crmkit import app

    parser = argparse.ArgumentParser()
    app.add_app_arguments(parser)
    seen = {}
    monkeypatch.setattr(app, "serve_app", lambda *a, **k: seen.update(args=a, kw=k) or 0)
    args = parser.parse_args(["--db", "x.db", "--port", "9001", "--token", "t", "--pool", "0"])
    assert app.app_command(args) == 0
    assert seen == {"args": ("x.db", 9001, "t", False), "kw": {"pool_size": 0}}
    assert parser.parse_args([]).pool == app.DEFAULT_POOL
