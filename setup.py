"""crmkit's one build step beyond pyproject.toml: ship the notebooks inside the package.

``notebooks/`` at the top of the project is the one source of the analyst notebooks (01-04),
the Voilà apps (``apps/``) and the report (``reports/``). Building the package (wheel or
regular install) copies them into ``crmkit/notebooks``, where ``crmkit app``, ``crmkit report``
and ``crmkit notebooks`` find them with :mod:`importlib.resources` in any folder. An
editable install reads them from ``notebooks/`` in the checkout instead. Everything else
about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "notebooks"


def _notebooks() -> list[Path]:
    """The notebooks to ship, relative to ``notebooks/`` (no Jupyter checkpoints)."""
    return sorted(
        p.relative_to(SOURCE)
        for p in SOURCE.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


class BuildWithNotebooks(build_py):
    """build_py that also copies ``notebooks/`` to ``crmkit/notebooks`` in the build."""

    def run(self) -> None:
        """Build the package, then add the notebooks (not for an editable install)."""
        super().run()
        if getattr(self, "editable_mode", False):
            return
        files = _notebooks()
        if not any(f.parts[0] == "apps" for f in files):
            raise SystemExit(f"crmkit build: no notebooks found in {SOURCE}")
        target = Path(self.build_lib) / "crmkit" / "notebooks"
        for rel in files:
            self.mkpath(str((target / rel).parent))
            self.copy_file(str(SOURCE / rel), str(target / rel))


setup(cmdclass={"build_py": BuildWithNotebooks})
