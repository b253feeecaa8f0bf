"""Fitting the forecast's models: method "auto" and the repair of a failed NUTS fit."""

from __future__ import annotations

import re

from crmkit.forecast.engine import run_forecast
from tests.forecast.fake_mmm import AS_OF


# ------------------------------------------------- auto: a NUTS fit failing its checks
def _fake_fits(results: list[dict]):
    """A fit function returning models with the given diagnostics in turn, and its calls."""
    from types import SimpleNamespace

    calls: list[dict] = []

    def fit(how: dict) -> SimpleNamespace:
        calls.append(dict(how))
        return SimpleNamespace(diagnostics_=dict(results[len(calls) - 1]))

    return fit, calls


NUTS_HOW = {"method": "nuts", "draws": 2000, "tune": 500}
MAP_HOW = {"method": "map", "draws": 500, "tune": 500}
SHORT = {"ok": False, "r_hat_max": 1.003, "ess_bulk_min": 500.0, "ess_tail_min": 203.0,
         "divergences": 0}  # fmt: skip


def test_auto_nuts_short_of_effective_draws_samples_longer_and_keeps_nuts() -> None:
    from crmkit.forecast.fitting import fit_checked

    fit, calls = _fake_fits([SHORT, {"ok": True, "ess_tail_min": 900.0}])
    lines: list[str] = []
    model = fit_checked("pipeline", fit, NUTS_HOW, MAP_HOW, True, lines.append)
    assert [c["method"] for c in calls] == ["nuts", "nuts"]
    assert calls[1]["draws"] == 2000 * 3  # ceil(1.25 * 400 / 203) = 3
    assert model.diagnostics_["ok"] and "nuts" not in model.diagnostics_
    assert "pipeline model: effective draws 203 < 400; sampling longer" in lines


def test_auto_nuts_with_divergences_is_refitted_by_map_and_says_why() -> None:
    from crmkit.forecast.fitting import fit_checked

    bad = {**SHORT, "divergences": 3, "r_hat_max": 1.031}
    fit, calls = _fake_fits([bad, {"ok": True, "method": "map", "message": None}])
    lines: list[str] = []
    model = fit_checked("pipeline", fit, NUTS_HOW, MAP_HOW, True, lines.append)
    assert [c["method"] for c in calls] == ["nuts", "map"]
    assert model.diagnostics_["nuts"]["divergences"] == 3
    assert model.diagnostics_["message"] == (
        "NUTS failed its checks (R-hat 1.031, bulk ESS 500, tail ESS 203, 3 divergences); "
        "MAP + Laplace used"
    )
    assert "pipeline model: NUTS failed its checks; fitting it by MAP + Laplace instead" in lines


def test_auto_nuts_that_could_not_sample_longer_before_the_deadline_takes_map() -> None:
    import time

    from crmkit.forecast.fitting import fit_checked

    fit, calls = _fake_fits([SHORT, {"ok": True, "method": "map"}])
    model = fit_checked("pipeline", fit, NUTS_HOW, MAP_HOW, True, None, time.monotonic() - 1)
    assert [c["method"] for c in calls] == ["nuts", "map"]
    assert model.diagnostics_["nuts"]["ess_tail_min"] == 203.0


def test_explicit_nuts_keeps_a_fit_that_failed_its_checks() -> None:
    from crmkit.forecast.fitting import fit_checked

    fit, calls = _fake_fits([SHORT])
    model = fit_checked("pipeline", fit, NUTS_HOW, MAP_HOW, False, None)
    assert len(calls) == 1 and model.diagnostics_ == SHORT


# ------------------------------------------------- auto: through run_forecast
def test_run_forecast_auto_above_the_budget_reports_map_and_why(
    sim_deals_store, monkeypatch
) -> None:
    import crmkit.forecast.fitting as fitting

    store = sim_deals_store
    monkeypatch.setattr(fitting, "NUTS_BUDGET_SECONDS", 0.0)  # every company is "too big"
    lines: list[str] = []
    snap = run_forecast(store, as_of=AS_OF, horizon=1, draws=50, seed=1, save=False,
                        include_repeat=False, report=lines.append)  # fmt: skip
    assert re.fullmatch(
        r"method auto -> map \([\d,]+ deals: NUTS would take about \d+ s; MAP \+ Laplace used; "
        r"--method nuts to sample anyway\)",
        lines[0],
    ), lines[0]
    assert lines[1] == "fitting the pipeline model (map) ..."
    assert snap.parameters["method"] == "auto" and snap.parameters["method_used"] == "map"
    assert snap.parameters["methods"]["pipeline"] == "map"
    assert snap.parameters["method_reason"] in lines[0]
