"""The one diagnostics schema and its thresholds, on tiny InferenceData of controlled draws."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from crmkit.models.inference.diagnostics import (
    ESS_BULK_MIN,
    EXTRA_KEYS,
    KEYS,
    R_HAT_MAX,
    diagnostics,
    fit_diagnostics,
    mcmc_diagnostics,
    summary_line,
)


def _idata(chains: int = 2, draws: int = 1000, *, shift: float = 0.0, diverging: int = 0):
    """Independent N(0, 1) draws of ``a`` and ``b``; chain c moved by ``c * shift``."""
    rng = np.random.default_rng(0)
    offset = shift * np.arange(chains)[:, None]
    div = np.zeros((chains, draws), dtype=bool)
    div.flat[:diverging] = True
    return az.from_dict(
        posterior={
            "a": rng.standard_normal((chains, draws)) + offset,
            "b": rng.standard_normal((chains, draws)),
        },
        sample_stats={"diverging": div},
    )


def _constant(value: float):
    """A stand-in for ``az.rhat`` / ``az.ess`` giving every variable ``value``."""
    return lambda ds, **_: xr.Dataset({v: xr.DataArray(value) for v in ds.data_vars})


def test_iid_chains_pass_with_the_schema_keys() -> None:
    d = mcmc_diagnostics(_idata(), seconds=1.5)
    assert set(d) == set(KEYS) | {"n_chains", "n_draws"}
    assert set(d) - set(KEYS) <= set(EXTRA_KEYS)
    assert d["ok"] is True and d["message"] is None
    assert d["method"] == "nuts" and d["seconds"] == 1.5
    assert (d["n_chains"], d["n_draws"], d["divergences"]) == (2, 1000, 0)
    assert d["r_hat_max"] <= R_HAT_MAX
    assert d["ess_bulk_min"] >= ESS_BULK_MIN and d["ess_tail_min"] >= ESS_BULK_MIN


def test_chains_that_disagree_fail_on_r_hat() -> None:
    d = mcmc_diagnostics(_idata(shift=1.0))
    assert d["ok"] is False
    assert d["r_hat_max"] > 1.1
    assert "R-hat" in d["message"]


@pytest.mark.parametrize(("r_hat", "ok"), [(1.01, True), (1.011, False)])
def test_r_hat_threshold_is_inclusive(monkeypatch, r_hat: float, ok: bool) -> None:
    monkeypatch.setattr(az, "rhat", _constant(r_hat))
    d = mcmc_diagnostics(_idata())
    assert d["r_hat_max"] == pytest.approx(r_hat)
    assert d["ok"] is ok
    assert (d["message"] is None) if ok else d["message"] == "R-hat 1.011 > 1.01"


@pytest.mark.parametrize(("ess", "ok"), [(400.0, True), (399.0, False)])
def test_ess_threshold_is_inclusive(monkeypatch, ess: float, ok: bool) -> None:
    monkeypatch.setattr(az, "ess", _constant(ess))
    d = mcmc_diagnostics(_idata())
    assert d["ess_bulk_min"] == d["ess_tail_min"] == ess
    assert d["ok"] is ok
    if not ok:
        assert d["message"] == "bulk ESS 399 < 400; tail ESS 399 < 400"


def test_one_divergence_fails() -> None:
    d = mcmc_diagnostics(_idata(diverging=1))
    assert d["divergences"] == 1
    assert d["ok"] is False and d["message"] == "1 divergences"


def test_one_chain_has_no_r_hat() -> None:
    d = mcmc_diagnostics(_idata(chains=1, draws=2000), method="pymc")
    assert d["r_hat_max"] is None and d["n_chains"] == 1
    assert d["method"] == "pymc"
    assert d["ok"] is True  # judged by ESS and divergences alone


def test_diagnostics_fills_the_schema_and_keeps_message_only_when_not_ok() -> None:
    good = diagnostics("map", ok=True, message="ignored", converged=True)
    assert set(good) == set(KEYS) | {"converged"}
    assert good["message"] is None and good["r_hat_max"] is None and good["ok"] is True
    bad = diagnostics("mle", ok=0)
    assert bad["ok"] is False and bad["message"] == "the fit fails its diagnostics"


def test_fit_diagnostics_drops_figures_outside_the_schema() -> None:
    raw = {"ok": False, "method": "x", "loglike": -3.0, "iterations": 12, "message": None}
    d = fit_diagnostics("mle", raw, 2.0, message="did not converge")
    assert set(d) == set(KEYS) | {"loglike"}
    assert d["method"] == "mle" and d["seconds"] == 2.0
    assert d["ok"] is False and d["message"] == "did not converge"


def test_summary_line_names_method_ok_and_figures() -> None:
    line = summary_line(diagnostics("nuts", ok=True, r_hat_max=1.0049, divergences=0))
    assert line == "method=nuts, ok=True, r_hat_max=1.005, divergences=0"
    assert summary_line({"method": "map", "ok": False}) == "method=map, ok=False"
