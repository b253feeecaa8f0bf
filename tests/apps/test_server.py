"""The app launcher builds a safe Voilà command; the page is built from the snapshot alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crmkit.apps import dashboard as db
from crmkit.apps.section_html import format_share
from crmkit.apps.server import (
    APP_NOTEBOOK,
    DENIED_EXTENSIONS,
    EDITOR_NOTEBOOK,
    EDITOR_POOL,
    TEMPLATE,
    apps_dir,
    build_app_command,
    manager_app,
    voila_template_settings,
)
from crmkit.errors import CrmkitError
from crmkit.plots.format import format_amount
from crmkit.store import Store
from crmkit.store.engine import masked_url, resolve_url
from tests.snapshot_factory import make_fake_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Voilà's settings go to a folder of this test, not the user's."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


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
    assert cmd.url == f"http://127.0.0.1:18999/voila/render/{APP_NOTEBOOK}?token={cmd.token}"
    assert not any(a.startswith("--preheat_kernel") for a in cmd.argv)
    # late output of a busy kernel must not be dropped (blank pages in a crowd)
    assert int(_opt(cmd.argv, "VoilaExecutor.iopub_timeout")) >= 60


def test_pages_use_crmkits_template_found_first_on_jupyter_path() -> None:
    cmd = build_app_command("sqlite://", port=18996)
    assert _opt(cmd.argv, "template") == TEMPLATE
    first = Path(cmd.env["JUPYTER_PATH"].split(os.pathsep)[0])
    folder = first / "voila" / "templates" / TEMPLATE
    assert json.loads((folder / "conf.json").read_text())["base_template"] == "lab"
    spinner = (folder / "spinner.macro.html.j2").read_text()
    # Voilà's scripts update and remove these elements; nothing on the notice animates
    assert 'id="loading"' in spinner and 'id="loading_text"' in spinner
    assert "animation:" not in spinner and "@keyframes" not in spinner
    # an existing JUPYTER_PATH is kept after the template's folder
    argv, env = voila_template_settings({"JUPYTER_PATH": "/opt/jupyter"})
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(first), "/opt/jupyter"]
    assert argv == [f"--template={TEMPLATE}"]


def test_token_and_pool_options() -> None:
    cmd = build_app_command("sqlite://", port=18998, token="s3cret-token-0123456789", pool_size=2)
    assert cmd.url.endswith("?token=s3cret-token-0123456789")
    assert "--preheat_kernel=True" in cmd.argv and _opt(cmd.argv, "pool_size") == "2"
    assert int(_opt(cmd.argv, "VoilaExecutor.timeout")) >= 24 * 3600  # pooled kernels wait
    pools = json.loads(_opt(cmd.argv, "VoilaKernelManager.kernel_pools_config"))
    assert pools == {
        "default": {"pool_size": 0},
        APP_NOTEBOOK: {"pool_size": 2},
        EDITOR_NOTEBOOK: {"pool_size": EDITOR_POOL},
    }
    assert float(_opt(cmd.argv, "VoilaKernelManager.fill_delay")) > 1
    cmd = build_app_command("sqlite://", port=18998, pool_size=2, pool_fill_delay=0.5)
    assert float(_opt(cmd.argv, "VoilaKernelManager.fill_delay")) == 0.5
    with pytest.raises(CrmkitError, match="pool_fill_delay"):
        build_app_command("sqlite://", pool_size=2, pool_fill_delay=-1)
    generated = build_app_command("sqlite://", token="generate")
    assert len(generated.token) >= 32


def _voila_settings(cmd) -> dict:
    """Voilà's settings as Voilà loads them from the command's private folder."""
    from traitlets.config import Config
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    folder = Path(json.loads(_opt(cmd.argv, "Voila.config_file_paths"))[0])
    config = Config()
    config.merge(PyFileConfigLoader("voila.py", path=str(folder)).load_config())
    config.merge(JSONFileConfigLoader("voila.json", path=str(folder)).load_config())
    return config


def test_token_is_made_by_default_and_kept_in_a_private_file_never_in_argv(
    private_runtime_dir: Path,
) -> None:
    cmd = build_app_command("sqlite://", port=18995)
    token = cmd.token
    assert len(token) >= 32 and cmd.url.endswith(f"?token={token}")
    assert not any(token in a for a in cmd.argv)  # ps shows argv to every local user
    assert not any(a.startswith("--token") for a in cmd.argv)
    assert token not in repr(cmd)
    assert cmd.config_dir is not None and cmd.config_dir.parent == private_runtime_dir / "crmkit"
    for path in (cmd.config_dir.parent, cmd.config_dir):
        assert path.stat().st_mode & 0o777 == 0o700 and path.stat().st_uid == os.getuid()
    for name in ("voila.py", "voila.json"):
        assert (cmd.config_dir / name).stat().st_mode & 0o777 == 0o600
    assert _voila_settings(cmd).Voila.token == token
    # each command gets its own token and folder; cleanup removes the folder
    other = build_app_command("sqlite://", port=18995)
    assert other.token != token and other.config_dir != cmd.config_dir
    cmd.cleanup()
    assert not cmd.config_dir.exists() and other.config_dir.exists()
    # Jupyter's own token variables cannot replace crmkit's
    assert "JUPYTER_TOKEN" not in other.env and "JUPYTER_TOKEN_FILE" not in other.env


def test_no_token_is_an_explicit_choice_for_loopback_only() -> None:
    cmd = build_app_command("sqlite://", port=18994, token=False)
    assert cmd.token == "" and "token" not in cmd.url
    assert _voila_settings(cmd).Voila.token == ""
    with pytest.raises(CrmkitError, match="needs a token"):
        build_app_command("sqlite://", port=18994, token=False, ip="0.0.0.0")
    with pytest.raises(CrmkitError, match="IP address"):
        build_app_command("sqlite://", port=18994, ip="example.com")
    with pytest.raises(CrmkitError, match="token must be"):
        build_app_command("sqlite://", port=18994, token="short")


def test_non_loopback_address_with_token_is_served_there() -> None:
    cmd = build_app_command("sqlite://", port=18993, ip="0.0.0.0")
    assert _opt(cmd.argv, "Voila.ip") == "0.0.0.0"
    assert cmd.url.startswith("http://127.0.0.1:18993/") and cmd.token in cmd.url


def test_allowed_hosts_reach_voilas_settings_and_bad_ones_are_refused() -> None:
    cmd = build_app_command(
        "sqlite://", port=18992, allow_hosts=["CRM.example.com", "crm.example.com:8443"]
    )
    settings = _voila_settings(cmd)
    assert list(settings.CrmkitIdentityProvider.allowed_hosts) == [
        "crm.example.com",
        "crm.example.com:8443",
    ]
    assert settings.CrmkitIdentityProvider.port == 18992
    tornado = settings.Voila.tornado_settings
    assert tornado["allow_remote_access"] is False  # Jupyter's own Host check stays on
    assert "crm.example.com" in tornado["local_hostnames"]
    for bad in ("http://crm.example.com/", "crm.example.com:notaport", "", "a/b"):
        with pytest.raises(CrmkitError, match="allow-host"):
            build_app_command("sqlite://", port=18992, allow_hosts=[bad])


def test_voila_config_drops_unused_extensions_from_the_manager_page_only() -> None:
    cmd = build_app_command("sqlite://", port=18997)
    hook = _voila_settings(cmd).VoilaConfiguration.page_config_hook
    exts = [
        {"name": "ipydatagrid"},
        {"name": "bqscales"},
        {"name": "@jupyter-widgets/jupyterlab-manager"},
    ]

    def names(nb: str) -> list[str]:
        page = hook({"federated_extensions": list(exts)}, base_url="/", notebook_path=nb)
        return [e["name"] for e in page["federated_extensions"]]

    assert names(APP_NOTEBOOK) == ["@jupyter-widgets/jupyterlab-manager"]
    assert names("edit_deals.ipynb") == [e["name"] for e in exts]
    # the deal editor's grid needs ipydatagrid and the bqplot scales: never denied globally
    assert {"ipydatagrid", "bqplot", "bqscales"}.isdisjoint(DENIED_EXTENSIONS)


@pytest.mark.parametrize("port", [80, 70000, "8866", True])
def test_bad_port_is_refused(port) -> None:
    with pytest.raises(CrmkitError, match="port"):
        build_app_command("sqlite://", port=port)


def test_missing_notebook_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CrmkitError, match=APP_NOTEBOOK):
        build_app_command("sqlite://", notebooks=tmp_path)


def test_page_without_snapshot_says_how_to_make_one(tmp_path: Path) -> None:
    page = manager_app(str(tmp_path / "empty.db")).children[-1].children[0]  # under the refit bar
    assert "crmkit-no-snapshot" in page.value and "crmkit report" in page.value


def _svg_values(page_html: str, css: str) -> list[float]:
    """The numbers of the first SVG element with this class (its ``data-values``)."""
    m = re.search(rf'class="{css}"[^>]*data-values="([^"]*)"', page_html)
    assert m, css
    return [float(v) for v in m.group(1).split()]


def test_page_shows_the_snapshot_and_filters_update_it(db_with_snapshot: Path) -> None:
    from crmkit.apps.manager import ManagerView

    snap = db.latest_snapshot(Store.open(db_with_snapshot))
    view = ManagerView(snap, top_n=3)
    body = view.body.value
    total = db.headline(snap).loc["total"]
    assert f'data-q="p50">{format_amount(total["p50"])}<' in body
    assert format_share(total["p_target"]) in body
    # the fan chart is SVG drawn from the snapshot's numbers
    fan = db.fan_data(snap)
    fc = fan[(fan["source"] == "total") & (fan["kind"] == "forecast")]
    assert "<svg" in body and 'class="crmkit-fan-svg"' in body
    np.testing.assert_allclose(_svg_values(body, "crmkit-fan-p50"), fc["p50"], atol=0.01)
    assert 'class="crmkit-stage-svg' in body or "crmkit-bars-svg crmkit-stage-svg" in body
    assert "crmkit-segment-svg" in view.static.value and "Spring webinar" in view.static.value
    first_body = body
    view.dropdowns["owner"].value = "ann"
    view.dropdowns["team"].value = "north"  # resets owner: one roll-up at a time
    assert view.dropdowns["owner"].value == "All"
    body = view.body.value
    north = db.headline(snap, db.Filter(team="north")).loc["total"]
    assert f'data-q="p50">{format_amount(north["p50"])}<' in body
    assert 'data-group="team=north"' in body
    fan_n = db.fan_data(snap, db.Filter(team="north"))
    fc_n = fan_n[(fan_n["source"] == "total") & (fan_n["kind"] == "forecast")]
    np.testing.assert_allclose(_svg_values(body, "crmkit-fan-p50"), fc_n["p50"], atol=0.01)
    assert body != first_body
    risk = body.split("crmkit-risk", 1)[1]
    assert "<td>cy</td>" not in risk and "<td>ann</td>" in risk
    assert risk.count("<tr") == 1 + 3  # header and top_n rows
    # pipeline by stage follows the team: north's open deals only
    stages = db.pipeline_by_stage(snap, db.Filter(team="north"))
    assert f"<td>{stages['n_deals'].iloc[0]:.0f}</td>" in body.split("crmkit-stages", 1)[1]
    view.dropdowns["team"].value = "All"
    assert 'data-group="all"' in view.body.value


def test_page_code_path_never_imports_the_modelling_stack(
    db_with_snapshot: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from crmkit.apps.server import manager_app\n"
        f"page = manager_app({str(db_with_snapshot)!r})\n"
        "heavy = sorted(m for m in ('pymc', 'pytensor', 'arviz', 'nutpie', 'matplotlib',"
        " 'scipy', 'alembic') if m in sys.modules)\n"
        "print(type(page).__name__, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "VBox []"


def test_notebook_has_a_parameters_cell_and_only_calls_crmkit() -> None:
    nb = json.loads((apps_dir() / APP_NOTEBOOK).read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    body = "".join("".join(c["source"]) for c in code[1:])
    assert "manager_app(" in body and "import pymc" not in body
    assert all(not c.get("outputs") for c in code)


def test_wait_for_viewer_returns_at_once_outside_a_preheated_kernel(monkeypatch) -> None:
    from crmkit.apps.server import wait_for_viewer, warm_up

    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    assert wait_for_viewer() is None
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    assert wait_for_viewer() is None
    warm_up()


def _parse(*argv: str):
    import argparse

    from crmkit.apps import server as app

    parser = argparse.ArgumentParser()
    app.add_app_arguments(parser)
    return parser.parse_args(list(argv))


def test_command_line_options_reach_the_command(monkeypatch) -> None:
    from crmkit.apps import server as app

    seen = {}
    monkeypatch.setattr(app, "serve_app", lambda *a, **k: seen.update(args=a, kw=k) or 0)
    args = _parse("--db", "x.db", "--port", "9001", "--pool", "0", "--user", "Ann")
    assert app.app_command(args) == 0
    assert seen == {
        "args": ("x.db", 9001, True, False),
        "kw": {
            "pool_size": 0,
            "pool_fill_delay": app.POOL_FILL_DELAY_SECONDS,
            "ip": "127.0.0.1",
            "allow_hosts": [],
            "user": "Ann",
            "allow_refit": True,
        },
    }
    args = _parse("--pool", "3", "--pool-fill-delay", "2.5", "--no-token", "--allow-host", "a",
                  "--allow-host", "b:443", "--ip", "::1", "--no-refit")  # fmt: skip
    app.app_command(args)
    assert seen["args"][2] is False and seen["kw"]["allow_refit"] is False
    assert seen["kw"]["pool_size"] == 3
    assert seen["kw"]["pool_fill_delay"] == 2.5 and seen["kw"]["ip"] == "::1"
    assert seen["kw"]["allow_hosts"] == ["a", "b:443"]
    assert _parse().pool == app.DEFAULT_POOL
    app.app_command(_parse("--token", "generate"))  # the old spelling of the default
    assert seen["args"][2] is True


def test_token_on_the_command_line_is_refused_and_a_token_file_is_read(
    monkeypatch, tmp_path: Path
) -> None:
    from crmkit.apps import server as app

    seen = {}
    monkeypatch.setattr(app, "serve_app", lambda *a, **k: seen.update(args=a, kw=k) or 0)
    with pytest.raises(CrmkitError, match="--token-file") as err:
        app.app_command(_parse("--token", "s3cret-token-0123456789"))
    assert "s3cret" not in str(err.value)
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789abcdef\n")
    token_file.chmod(0o644)
    with pytest.raises(CrmkitError, match="chmod 600"):
        app.app_command(_parse("--token-file", str(token_file)))
    token_file.chmod(0o600)
    app.app_command(_parse("--token-file", str(token_file)))
    assert seen["args"][2] == "file-token-0123456789abcdef"


def test_database_password_is_refused_on_the_command_line_and_read_from_a_private_file(
    monkeypatch, tmp_path: Path
) -> None:
    from crmkit.apps import server as app

    seen = {}
    monkeypatch.setattr(app, "serve_app", lambda *a, **k: seen.update(args=a, kw=k) or 0)
    url = "postgresql+psycopg://crm:Pa55word@db.example:5432/crm"
    with pytest.raises(CrmkitError, match="--db-file") as err:
        app.app_command(_parse("--db", url))
    assert "Pa55word" not in str(err.value) and "crm:***@db.example" in str(err.value)
    db_file = tmp_path / "db-url"
    db_file.write_text(url + "\n")
    db_file.chmod(0o640)
    with pytest.raises(CrmkitError, match="may be read by other users"):
        app.app_command(_parse("--db-file", str(db_file)))
    db_file.chmod(0o600)
    assert app.app_command(_parse("--db-file", str(db_file))) == 0
    assert seen["args"][0] == url
    with pytest.raises(CrmkitError, match="not both"):
        app.app_command(_parse("--db-file", str(db_file), "--db", "x.db"))
    # the URL reaches Voilà and its kernels by environment only; messages mask it
    cmd = build_app_command(url, port=18991)
    assert cmd.env["CRMKIT_DB_URL"] == url and not any("Pa55word" in a for a in cmd.argv)
    assert "Pa55word" not in repr(cmd)
    assert masked_url(url) == "postgresql+psycopg://crm:***@db.example:5432/crm"


def test_edit_after_entering_a_name_records_that_name(tmp_path: Path) -> None:
    from crmkit.apps.server import deal_editor_app
    from tests.factories import small_company

    path = tmp_path / "crm.db"
    with Store.open(path) as store:
        store.insert_many(small_company())
    page = deal_editor_app(str(path))
    assert page.grid is None and page.user is None  # nothing to edit before a name
    page.name.value = "   "
    page.start.click()
    assert page.grid is None and "type your name" in page.message.value
    page.name.value = "  Alice  "  # Enter in the box
    assert page.user == "Alice" and page.grid is not None
    assert "Editing as <b>Alice</b>" in page.widget.children[0].value
    row = list(page.grid.page.index).index("D1")
    assert page.grid.apply_edit(row, "stage", "Negotiation")
    with Store.open(path) as store:
        h = store.read("deal_history", where={"deal_id": "D1", "field": "stage"})
    last = h.sort_values("history_id").iloc[-1]
    assert (last["new_value"], last["changed_by"]) == ("Negotiation", "Alice")
    page.name.value = "Mallory"  # asked once: the name stays for this page
    assert page.user == "Alice" and page.grid.user == "Alice"


def test_editor_user_from_crmkit_app_user_skips_the_question(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmkit.apps.server import USER_ENV, deal_editor_app
    from tests.factories import small_company

    path = tmp_path / "crm.db"
    with Store.open(path) as store:
        store.insert_many(small_company())
    cmd = build_app_command(path, port=18990, user=" Bob ")
    assert cmd.env[USER_ENV] == "Bob"
    monkeypatch.setenv(USER_ENV, cmd.env[USER_ENV])
    page = deal_editor_app(str(path))
    assert page.user == "Bob" and page.grid is not None and page.grid.user == "Bob"
    with pytest.raises(CrmkitError, match="at most"):
        build_app_command(path, port=18990, user="x" * 61)


def test_editor_notebook_asks_the_viewer_instead_of_recording_voila() -> None:
    nb = json.loads((apps_dir() / EDITOR_NOTEBOOK).read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "user = None" in code[0] and '"voila"' not in "".join(code)
    assert "deal_editor_app(" in code[1]


def test_apps_dir_is_the_shipped_apps_folder_wherever_crmkit_runs(tmp_path: Path) -> None:
    # issue #15: not a folder under the current one (the notebooks ship in the package; an
    # editable install reads the checkout's); tests/test_packaging.py checks an installed wheel
    code = "from crmkit.apps.server import apps_dir; print(apps_dir())"
    (tmp_path / "notebooks" / "apps").mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == str(apps_dir())
    assert not Path(out).is_relative_to(tmp_path)
    assert (apps_dir() / APP_NOTEBOOK).is_file() and (apps_dir() / EDITOR_NOTEBOOK).is_file()
