"""Run the analyst notebooks top to bottom on a small demo database (in temporary copies)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.notebook_runner import (
    WIDGET,
    mimes,
    outputs_of,
    parameters_source,
    run_notebook,
)

pytestmark = pytest.mark.notebook


@pytest.fixture
def demo_db(demo_db_file, copy_db, tmp_path) -> Path:
    """A copy of the session's demo company (``tests/conftest.py``) for one notebook."""
    return copy_db(demo_db_file, tmp_path)


def run(name: str, db: Path, tmp_path: Path) -> nbformat.NotebookNode:
    return run_notebook(name, tmp_path, {"db_url": str(db), "user": "nbtest"})


def test_notebooks_have_a_parameters_cell_and_python3_kernel():
    for name in ("01_customers_and_deals.ipynb", "02_segmentation.ipynb"):
        assert "db_url" in parameters_source(name)


def test_customers_and_deals_notebook(demo_db, tmp_path):
    nb = run("01_customers_and_deals.ipynb", demo_db, tmp_path)
    for needle in ('editor(store, "deals"', 'editor(store, "accounts"', 'editor(store, "contacts"'):
        assert WIDGET in mimes(outputs_of(nb, needle))
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
    assert WIDGET in mimes(outputs_of(nb, "SegmentExplorer(store"))
