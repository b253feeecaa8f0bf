"""Run the forecast notebook top to bottom on a small demo database (in a temporary copy)."""

from __future__ import annotations

import pytest

from crmkit.apps.notebook_views import ONE_CHAIN_NOTE
from crmkit.forecast.engine import run_forecast
from crmkit.store import Store
from tests.notebook_runner import (
    demo_database,
    errors_of,
    outputs_of,
    parameters_source,
    run_notebook,
)

NAME = "03_forecast.ipynb"

pytestmark = pytest.mark.notebook


def test_forecast_notebook_has_parameters_and_python3_kernel():
    source = parameters_source(NAME)
    for name in ("db_url", "as_of", "horizon", "draws", "method", "target", "backtest_origins"):
        assert f"{name} =" in source


def test_forecast_notebook_runs(tmp_path):
    db = demo_database(tmp_path / "demo.db", n_customers=300, n_deals=400, seed=1)
    with Store.open(db) as store:
        # an earlier forecast, so the notebook has a previous snapshot to compare with
        run_forecast(
            store, as_of="2026-09-30", horizon=3, draws=20, include_repeat=False, method="map"
        )
    nb = run_notebook(NAME, tmp_path, {"db_url": str(db), "draws": 100, "method": "map"})
    assert not errors_of(nb)
    # each model's fit prints its start and end line in the fit cell
    fit_text = "".join(o.get("text", "") for o in outputs_of(nb, "report=print"))
    assert "fitting the pipeline model" in fit_text and "pipeline model fitted in" in fit_text
    # "Model checks": the PPC figure (no older-snapshot note), rank/trace figures, LOO table
    heads = [c.source.splitlines()[0] for c in nb.cells if c.source.startswith("## ")]
    assert heads.index("## Model checks") == heads.index("## Model diagnostics") + 1
    ppc = outputs_of(nb, "ppc_figure(model_checks)")
    assert sum("image/png" in o.get("data", {}) for o in ppc) == 1
    assert "older crmkit" not in "".join(o.get("text", "") for o in ppc)
    assert "None" not in "".join(o.get("data", {}).get("text/plain", "") for o in ppc)
    traces = outputs_of(nb, "rank_figure(model_traces)")  # MAP: one chain, nothing to compare
    assert not any("image/png" in o.get("data", {}) for o in traces)
    assert ONE_CHAIN_NOTE in "".join(o.get("text", "") for o in traces)
    loo = "".join(o.get("data", {}).get("text/html", "") for o in outputs_of(nb, "loo_table("))
    assert "elpd_loo" in loo and "pipeline" in loo and "repeat purchases" in loo
    fan = outputs_of(nb, "fan_chart(")
    assert any("image/png" in o.get("data", {}) for o in fan)
    stages = outputs_of(nb, "stage_rates = db.pipeline_by_stage(snap)")
    html = "".join(o.get("data", {}).get("text/html", "") for o in stages)
    assert "learned_mean" in html and "configured" in html
    reasons = "".join(
        o.get("data", {}).get("text/html", "") for o in outputs_of(nb, 'changes["reasons"]')
    )
    assert "new_business" in reasons
    call_outputs = outputs_of(nb, "summarise_calls(call_scores")
    calls = "".join(o.get("data", {}).get("text/html", "") for o in call_outputs)
    assert "manager_call" in calls and "commit" in calls and "team=Strategic" in calls
    # the short backtest has enough origins for a verdict line (2 always said "too few")
    bt = "".join(o.get("data", {}).get("text/html", "") for o in outputs_of(nb, "short_backtest("))
    assert "vs_run_rate" in bt and "model" in bt
    assert "too few origins" not in bt
    assert any(v in bt for v in ("not distinguishable", "better", "worse")), bt[-2000:]
    clv_outputs = outputs_of(nb, "clv_by_segment(")
    clv = "".join(o.get("data", {}).get("text/plain", "") for o in clv_outputs)
    assert "clv_total" in clv
    # the fits' checks show as a warning box (or nothing); no raw diagnostics or params dict
    assert "fit_warning(bgf, ggf)" in "".join(c.source for c in nb.cells)
    assert "crmkit-fit-warning" not in clv  # the demo's repeat-order CLV fits pass
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text = o.get("text", "") + o.get("data", {}).get("text/plain", "")
            assert "'r_hat_max'" not in text and "'ess_bulk_min'" not in text
            assert "{'p':" not in text and "{'r':" not in text
