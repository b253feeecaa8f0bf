"""crmkit installs anywhere: honest dependencies, the notebooks shipped, the command's entry points.

The full check (a wheel installed with its dependencies into a fresh environment outside the
checkout, then demo, forecast, report and app run from a temporary folder) is
``scripts/smoke_install.py``, which ``bash dev.sh test`` runs; these tests cover the parts
that need no fresh environment, with real subprocesses, a real wheel and a real SQLite file.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import warnings
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import crmkit
from crmkit.apps.notebooks import ANALYST_NOTEBOOKS, copy_notebooks, notebooks_dir
from crmkit.apps.report import report_template
from crmkit.apps.server import APP_NOTEBOOK, EDITOR_NOTEBOOK, apps_dir
from crmkit.errors import CrmkitError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BIN = Path(sys.executable).parent
#: Declared dependencies crmkit's code never imports, and why each is needed all the same.
USED_WITHOUT_IMPORT = {
    "psycopg": "SQLAlchemy's PostgreSQL driver (postgresql+psycopg:// URLs)",
    "openpyxl": "pandas' reader of .xlsx/.xlsm imports",
    "python-calamine": "the reader of legacy .xls imports (crmkit.data.reading)",
    "ipykernel": "the kernel that runs the notebooks, the Voilà app and the report",
    "jupyterlab": "opens the analyst notebooks (crmkit notebooks DIR)",
    "nbconvert": "crmkit report runs `jupyter nbconvert` for the HTML",
    "papermill": "crmkit report runs the notebook with it in a child process",
}
#: Import names whose distribution differs from the name, where the environment may not say.
IMPORT_TO_DIST = {"IPython": "ipython", "psycopg": "psycopg", "yaml": "pyyaml"}
#: pip name -> conda-forge name, where they differ (after canonicalising).
CONDA_NAMES = {"jupyter-client": "jupyter_client"}


SMOKE_SCRIPT = ROOT / "scripts" / "smoke_install.py"


def _requirements(items: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in items]
    return {canonicalize_name(r.name): r for r in reqs}


def _environment_yml() -> tuple[str, dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    """(python pin, runtime packages, test-extra packages) of environment.yml."""
    runtime: dict[str, SpecifierSet] = {}
    test: dict[str, SpecifierSet] = {}
    python = ""
    section = runtime
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:")
    for line in lines[start + 1 :]:
        if line.strip() == "# test extra":
            section = test
            continue
        m = re.fullmatch(r"  - ([A-Za-z0-9_.\-]+)(?:=(\S+)|([<>=!~][^#\s]*))?", line)
        if not m:
            continue
        name, pin, spec = m.groups()
        if name == "python":
            python = pin or ""
        elif name != "pip":
            section[canonicalize_name(name)] = SpecifierSet(spec or "")
    return python, runtime, test


def _as_conda(reqs: dict[str, Requirement]) -> dict[str, SpecifierSet]:
    return {canonicalize_name(CONDA_NAMES.get(n, n)): r.specifier for n, r in reqs.items()}


def test_environment_yml_lists_the_runtime_dependencies_of_pyproject() -> None:
    _, runtime, _ = _environment_yml()
    assert runtime == _as_conda(_requirements(PYPROJECT["project"]["dependencies"]))


def test_environment_yml_lists_the_test_extra_of_pyproject() -> None:
    _, _, test = _environment_yml()
    extra = _requirements(PYPROJECT["project"]["optional-dependencies"]["test"])
    assert test == _as_conda(extra)


def test_environment_yml_python_satisfies_requires_python() -> None:
    python, _, _ = _environment_yml()
    assert python, "environment.yml pins no python"
    assert Version(python) in SpecifierSet(PYPROJECT["project"]["requires-python"])


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level module -> files of crmkit importing it (function-level imports included)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "crmkit").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("crmkit", "__future__"):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


def _distribution(module: str) -> str:
    dists = _packages_distributions().get(module) or [IMPORT_TO_DIST.get(module, module)]
    return canonicalize_name(dists[0])


def test_every_package_crmkit_imports_is_a_declared_dependency() -> None:
    declared = set(_requirements(PYPROJECT["project"]["dependencies"]))
    missing = {
        f"{module} ({_distribution(module)}): {files[0]}"
        for module, files in _third_party_imports().items()
        if _distribution(module) not in declared
    }
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(missing)


def test_every_declared_dependency_is_used() -> None:
    imported = {_distribution(m) for m in _third_party_imports()}
    unused = [
        name
        for name in _requirements(PYPROJECT["project"]["dependencies"])
        if name not in imported and name not in USED_WITHOUT_IMPORT
    ]
    assert not unused, f"declared but never used: {unused}"
    assert "ipympl" not in _requirements(PYPROJECT["project"]["dependencies"])


def test_pytensor_which_crmkit_imports_is_declared_itself() -> None:
    assert "pytensor" in _third_party_imports()
    assert "pytensor" in _requirements(PYPROJECT["project"]["dependencies"])


def test_xls_workbook_imports_with_the_declared_reader(tmp_path: Path) -> None:
    from crmkit.data import io
    from crmkit.store import Store

    store = Store.open(tmp_path / "x.db")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated reader either
        result = io.import_file(store, "accounts", ROOT / "tests" / "fixtures" / "accounts.xls")
    assert result.written == {"accounts": 2}
    got = store.read("accounts", where={"account_id": ["XLS1", "XLS2"]})
    assert sorted(got["name"]) == ["Legacy Ltd", "Old Books GmbH"]
    store.close()


def _run(*argv: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRMKIT_DB_URL"}
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_crmkit_version_prints_the_installed_version(tmp_path: Path) -> None:
    out = _run(BIN / "crmkit", "--version", cwd=tmp_path).stdout.strip()
    assert out == f"crmkit {md.version('crmkit')}"
    assert md.version("crmkit") == crmkit.__version__


def test_python_m_crmkit_runs_the_crmkit_command(tmp_path: Path) -> None:
    out = _run(sys.executable, "-m", "crmkit", "--version", cwd=tmp_path).stdout.strip()
    assert out == f"crmkit {crmkit.__version__}"
    helptext = _run(sys.executable, "-m", "crmkit", "--help", cwd=tmp_path).stdout
    for command in ("demo", "forecast", "app", "report", "notebooks"):
        assert command in helptext
    missing = tmp_path / "no.db"
    bad = _run(
        sys.executable, "-m", "crmkit", "summary", "--db", missing, cwd=tmp_path, check=False
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_crmkit_notebooks_copies_the_four_analyst_notebooks(tmp_path: Path) -> None:
    dest = tmp_path / "mine" / "notebooks"
    proc = _run(BIN / "crmkit", "notebooks", dest, cwd=tmp_path)
    assert sorted(p.name for p in dest.iterdir()) == list(ANALYST_NOTEBOOKS)
    for name in ANALYST_NOTEBOOKS:
        assert (dest / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
        assert json.loads((dest / name).read_text())["cells"]
        assert str(dest / name) in proc.stdout
    assert f"jupyter lab {dest}" in proc.stdout


def test_crmkit_notebooks_refuses_to_overwrite_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "03_forecast.ipynb").write_text("my edits")
    proc = _run(BIN / "crmkit", "notebooks", tmp_path, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path} already holds 03_forecast.ipynb; nothing was copied "
        "(--overwrite replaces them)"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["03_forecast.ipynb"]
    assert (tmp_path / "03_forecast.ipynb").read_text() == "my edits"
    _run(BIN / "crmkit", "notebooks", tmp_path, "--overwrite", cwd=tmp_path)
    assert json.loads((tmp_path / "03_forecast.ipynb").read_text())["cells"]


def test_crmkit_notebooks_refuses_a_file_as_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(CrmkitError, match="is a file, not a folder"):
        copy_notebooks(target)
    assert target.read_text() == "x"


def test_notebooks_of_an_editable_install_are_the_checkouts_not_the_current_folder(
    tmp_path: Path,
) -> None:
    decoy = tmp_path / "notebooks" / "apps"
    decoy.mkdir(parents=True)
    (decoy / APP_NOTEBOOK).write_text("{}")
    code = (
        "from crmkit.apps.server import apps_dir; from crmkit.apps.report import "
        "report_template; print(apps_dir()); print(report_template())"
    )
    out = _run(sys.executable, "-c", code, cwd=tmp_path).stdout.split()
    assert out == [str(notebooks_dir() / "apps"), str(report_template())]
    assert notebooks_dir() == ROOT / "notebooks"
    assert (apps_dir() / APP_NOTEBOOK).is_file() and report_template().is_file()


# ---------------------------------------------------------------------- the built wheel
def _copy_of_the_checkout(dest: Path) -> Path:
    """The project's files as a fresh clone would have them (the smoke script's copy)."""
    spec = importlib.util.spec_from_file_location("smoke_install", SMOKE_SCRIPT)
    assert spec is not None and spec.loader is not None
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    return smoke.copy_checkout(dest)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """crmkit's wheel, built (without dependencies) from a copy of the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    src = _copy_of_the_checkout(base / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", base / "dist", src],
        check=True, capture_output=True,
    )  # fmt: skip
    (built,) = (base / "dist").glob("crmkit-*.whl")
    return built


def test_the_wheel_carries_the_notebooks_and_the_voila_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"crmkit/notebooks/{n}" for n in ANALYST_NOTEBOOKS} | {
        f"crmkit/notebooks/apps/{APP_NOTEBOOK}",
        f"crmkit/notebooks/apps/{EDITOR_NOTEBOOK}",
        "crmkit/notebooks/reports/forecast_report.ipynb",
        "crmkit/apps/voila_share/voila/templates/crmkit/index.html.j2",
        "crmkit/apps/voila_share/voila/templates/crmkit/conf.json",
        "crmkit/__main__.py",
    }
    assert shipped <= names, shipped - names
    assert not [n for n in names if ".ipynb_checkpoints" in n]
    meta = zipfile.ZipFile(wheel).read(f"crmkit-{crmkit.__version__}.dist-info/METADATA")
    assert f"Version: {crmkit.__version__}" in meta.decode()


def test_apps_dir_and_report_template_resolve_inside_the_installed_package(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel],
        check=True, capture_output=True,
    )  # fmt: skip
    work = tmp_path / "elsewhere"
    (work / "notebooks" / "apps").mkdir(parents=True)  # a decoy in the current folder
    (work / "notebooks" / "apps" / APP_NOTEBOOK).write_text("{}")
    code = (
        "import crmkit; from crmkit.apps.server import apps_dir; "
        "from crmkit.apps.report import report_template; "
        "print(crmkit.__file__); print(apps_dir()); print(report_template())"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    package = target / "crmkit"
    assert out == [
        str(package / "__init__.py"),
        str(package / "notebooks" / "apps"),
        str(package / "notebooks" / "reports" / "forecast_report.ipynb"),
    ]
    assert (package / "notebooks" / "apps" / APP_NOTEBOOK).is_file()


def test_importing_crmkit_silences_pytensors_blas_note_and_nothing_else() -> None:
    # pip's numpy gives PyTensor no BLAS to link; its warning on the first C compile was the
    # one noise line on every `crmkit forecast` run (crmkit samples with numba)
    code = (
        "import warnings, crmkit\n"
        "warnings.warn('PyTensor could not link to a BLAS installation. x', UserWarning)\n"
        "warnings.warn('another note', UserWarning)\n"
    )
    r = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, check=True
    )
    assert "could not link to a BLAS" not in r.stderr
    assert "another note" in r.stderr
