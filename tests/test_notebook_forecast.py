"""Run the forecast notebook top to bottom on a small demo database (in a temporary copy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from crmkit import datasets
from crmkit.forecast import run_forecast
from crmkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_forecast.ipynb"

pytestmark = pytest.mark.notebook


def code_outputs(nb: nbformat.NotebookNode, needle: str) -> list:
    """Outputs of the code cells whose source contains ``needle``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert cells, f"no cell contains {needle!r}"
    return [o for c in cells for o in c.outputs]


def test_forecast_notebook_has_parameters_and_python3_kernel():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("db_url", "as_of", "horizon", "draws", "method", "target"):
        assert f"{name} =" in tagged[0].source


def test_forecast_notebook_runs(tmp_path):
    db = tmp_path / "demo.db"
    with Store.open(db) as store:
        datasets.build_demo(store, n_customers=300, n_deals=400, seed=1)
        # an earlier forecast, so the notebook has a previous snapshot to compare with
        run_forecast(store, as_of="2026-09-30", horizon=3, draws=20, include_repeat=False)
    src = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, src)
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(src),
        str(out),
        parameters={"db_url": str(db), "draws": 100},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]  # fmt: skip
    assert not errors
    fan = code_outputs(nb, "fan_chart(")
    assert any("image/png" in o.get("data", {}) for o in fan)
    stages = code_outputs(nb, "stage_rates = db.pipeline_by_stage(snap)")
    html = "".join(o.get("data", {}).get("text/html", "") for o in stages)
    assert "learned_mean" in html and "configured" in html
    reasons = "".join(
        o.get("data", {}).get("text/html", "") for o in code_outputs(nb, 'changes["reasons"]')
    )
    assert "new_business" in reasons
    clv = "".join(
        o.get("data", {}).get("text/plain", "") for o in code_outputs(nb, "clv_by_segment(")
    )
    assert "clv_total" in clv
