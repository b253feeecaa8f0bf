"""Running the analyst notebooks in tests: a demo database, a temporary copy, papermill.

The notebook tests (``test_notebooks.py`` for 01 and 02, ``test_notebook_forecast.py`` for
03, ``test_notebook_marketing.py`` for 04) execute a copy of a notebook in a temporary
directory (its working directory too) against a small demo database, then read the outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm

from crmkit.apps.kernel_client import papermill_kwargs
from crmkit.data.demo import company as datasets
from crmkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"


def demo_database(path: Path, **sizes: Any) -> Path:
    """Build the seeded demo company (``datasets.build_demo`` settings) in a SQLite file."""
    with Store.open(path) as store:
        datasets.build_demo(store, **sizes)
    return path


def run_notebook(
    name: str,
    tmp_path: Path,
    parameters: dict[str, Any],
    *,
    execution_timeout: int | None = None,
) -> nbformat.NotebookNode:
    """Execute a copy of ``notebooks/<name>`` in ``tmp_path`` with papermill; its output.

    ``execution_timeout`` (seconds per cell) makes a stalled kernel fail the test.
    """
    src = tmp_path / name
    shutil.copy(NOTEBOOKS / name, src)
    out = tmp_path / f"out_{name}"
    pm.execute_notebook(
        str(src),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
        execution_timeout=execution_timeout,
        **papermill_kwargs(),
    )
    return nbformat.read(out, as_version=4)


def parameters_source(name: str) -> str:
    """The source of the notebook's one ``parameters`` cell, checking the python3 kernel."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} has {len(tagged)} cells tagged parameters"
    return tagged[0].source


def outputs_of(nb: nbformat.NotebookNode, needle: str) -> list:
    """Outputs of the code cells whose source contains ``needle``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert cells, f"no cell contains {needle!r}"
    return [o for c in cells for o in c.outputs]


def mimes(outputs: list) -> set[str]:
    """The MIME types of a list of outputs."""
    return {m for o in outputs for m in o.get("data", {})}


def errors_of(nb: nbformat.NotebookNode) -> list:
    """The error outputs of an executed notebook."""
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
