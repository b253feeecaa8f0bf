"""The generic PyMC fit: one diagnostics schema for MAP, ADVI and NUTS."""

from __future__ import annotations

import numpy as np
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.inference.diagnostics import EXTRA_KEYS, KEYS
from crmkit.models.inference.pymc_fit import fit_model, flat_draws


def _normal_model():
    """mu ~ N(0, 10), sigma fixed at 1, 50 observations of mean 2: posterior N(~2, ~0.14)."""
    import pymc as pm

    y = np.random.default_rng(0).normal(2.0, 1.0, 50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("y", mu, 1.0, observed=y)
    post_sd = 1.0 / np.sqrt(50 + 1 / 100)
    post_mean = y.sum() / (50 + 1 / 100)
    return model, post_mean, post_sd


def _check_schema(diag: dict, method: str) -> None:
    assert set(KEYS) <= set(diag) and set(diag) - set(KEYS) <= set(EXTRA_KEYS)
    assert diag["method"] == method and diag["seconds"] >= 0


def test_map_is_the_exact_normal_posterior():
    model, mean, sd = _normal_model()
    idata, diag = fit_model(model, ["mu"], "map", draws=2000, chains=2, seed=1)
    post = flat_draws(idata, ["mu"])
    _check_schema(diag, "map")
    assert diag["ok"] and diag["r_hat_max"] is None and diag["message"] is None
    assert post["mu"].shape == (4000,)
    assert post["mu"].mean() == pytest.approx(mean, abs=0.02)
    assert post["mu"].std() == pytest.approx(sd, rel=0.05)


def test_idata_variant_has_chain_and_draw():
    model, mean, _ = _normal_model()
    idata, diag = fit_model(model, ["mu"], "advi", draws=300, chains=1, seed=2)
    _check_schema(diag, "advi")
    assert idata.posterior["mu"].dims == ("chain", "draw")
    assert idata.posterior.sizes["draw"] == 300
    assert float(idata.posterior["mu"].mean()) == pytest.approx(mean, abs=0.1)


def test_unknown_method_is_refused():
    model, _, _ = _normal_model()
    with pytest.raises(CrmkitError, match="unknown fit method"):
        fit_model(model, ["mu"], "laplace")
