"""Run the analyst notebooks top to bottom on a small demo database (in temporary copies)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from crmkit import datasets
from crmkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nb") / "demo.db"
    with Store.open(path) as store:
        datasets.build_demo(store, n_customers=150, n_deals=200, seed=3)
    return path


def run(name: str, db: Path, tmp_path: Path) -> nbformat.NotebookNode:
    src = tmp_path / name
    shutil.copy(NOTEBOOKS / name, src)
    out = tmp_path / f"out_{name}"
    pm.execute_notebook(
        str(src),
        str(out),
        parameters={"db_url": str(db), "user": "nbtest"},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    return nbformat.read(out, as_version=4)


def outputs_of(nb: nbformat.NotebookNode, needle: str) -> list:
    cells = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert cells, f"no cell contains {needle!r}"
    return [o for c in cells for o in c.outputs]


def mimes(outputs: list) -> set[str]:
    return {m for o in outputs for m in o.get("data", {})}


def test_notebooks_have_a_parameters_cell_and_python3_kernel():
    for name in ("01_customers_and_deals.ipynb", "02_segmentation.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "db_url" in tagged[0].source


def test_customers_and_deals_notebook(demo_db, tmp_path):
    nb = run("01_customers_and_deals.ipynb", demo_db, tmp_path)
    widget = "application/vnd.jupyter.widget-view+json"
    for needle in ('editor(store, "deals"', 'editor(store, "accounts"', 'editor(store, "contacts"'):
        assert widget in mimes(outputs_of(nb, needle))
    counts = outputs_of(nb, "store.counts()")[0]["data"]["text/plain"]
    assert "'deals': 200" in counts
    assert "text/html" in mimes(outputs_of(nb, "pipeline_totals"))


def test_segmentation_notebook(demo_db, tmp_path):
    nb = run("02_segmentation.ipynb", demo_db, tmp_path)
    pngs = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(pngs) >= 4  # RFM grid, segment bars, two cohort heat-maps
    assert "Champions" in outputs_of(nb, "segments.SEGMENT_RULES")[0]["data"]["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in mimes(
        outputs_of(nb, "SegmentExplorer(store")
    )
