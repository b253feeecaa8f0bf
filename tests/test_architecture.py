"""The package layout holds: imports point down only, no cycles, no private names across packages.

Reads every module's imports with ``ast`` (function-level imports included), so a layering
mistake fails here rather than in review. The levels are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "crmkit"

#: Package -> level; a module may import only its own package or lower levels.
LEVELS = {
    "errors": 0,
    "store": 1,
    "data": 2,
    "models": 3,
    "segments": 4,
    "forecast": 5,
    "plots": 6,
    "widgets": 7,
    "apps": 8,
    "cli": 9,
    "__main__": 10,
}
#: At most this many modules directly under crmkit/ (the public front).
MAX_TOP_MODULES = 6


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in ROOT.rglob("*.py")
        if "migrations" not in p.parts and "__pycache__" not in p.parts
    }


def _imports(path: Path, name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every crmkit import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("crmkit")]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            if mod.startswith("crmkit"):
                out.append((mod, [a.name for a in node.names], node.lineno))
    return out


def _resolve(target: str, names: list[str], modules: dict[str, Path]) -> list[str]:
    """The crmkit modules an import statement loads (a submodule named in ``from x import y``)."""
    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
    if names and len(subs) == len(names):  # from package import submodules
        return subs
    return ([target] if target in modules else []) + subs


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, path in modules.items():
        for target, names, _ in _imports(path, m):
            graph[m].update(t for t in _resolve(target, names, modules) if t != m)
    return graph


def test_the_top_level_holds_only_the_public_front() -> None:
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    assert set(packages) <= set(LEVELS), packages


def test_every_package_has_a_level() -> None:
    for m in _modules():
        pkg = _package(m)
        assert pkg == "" or pkg in LEVELS, f"{m}: add its package to LEVELS and the docs"


def test_imports_point_down_only() -> None:
    modules = _modules()
    upward = []
    for m, path in modules.items():
        pkg = _package(m)
        if not pkg:
            continue
        for target, _names, line in _imports(path, m):
            tpkg = _package(target)
            if tpkg and tpkg != pkg and LEVELS[tpkg] >= LEVELS[pkg]:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert not upward, "\n".join(upward)


def test_no_private_name_is_imported_across_packages() -> None:
    modules = _modules()
    bad = []
    for m, path in modules.items():
        for target, names, line in _imports(path, m):
            if _package(target) == _package(m):
                continue
            private = [n for n in names if n.startswith("_") and not n.endswith("__")]
            if private:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} takes {private} from {target}")
    assert not bad, "\n".join(bad)


def test_there_is_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # a package's __init__ importing its own submodule is not a cycle of concern
            if state.get(nxt) == 1 and not nxt.startswith(node + "."):
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("bad_import", ["crmkit.apps.dashboard", "crmkit.forecast.engine"])
def test_the_checker_catches_an_upward_import(tmp_path: Path, bad_import: str) -> None:
    fake = tmp_path / "crmkit" / "store"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text(f"def f():\n    import {bad_import}\n")
    found = _imports(fake / "x.py", "crmkit.store.x")
    assert found == [(bad_import, [], 2)]
    assert LEVELS[_package(bad_import)] > LEVELS["store"]
