"""NUTS through nutpie on a one-parameter normal model: diagnostics schema and posterior."""

from __future__ import annotations

import numpy as np
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.inference.diagnostics import ESS_BULK_MIN, EXTRA_KEYS, KEYS, R_HAT_MAX
from crmkit.models.inference.nuts import sample_nuts


def _normal_model():
    """mu ~ N(0, 10), 50 observations N(mu, 1): the exact posterior mean and sd."""
    import pymc as pm

    y = np.random.default_rng(0).normal(2.0, 1.0, 50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("y", mu, 1.0, observed=y)
    precision = len(y) + 1 / 100
    return model, y.sum() / precision, 1 / np.sqrt(precision)


def test_nutpie_samples_the_normal_posterior() -> None:
    model, mean, sd = _normal_model()
    idata, d = sample_nuts(model, ["mu"], draws=400, tune=300, chains=2, seed=1)
    assert set(KEYS) <= set(d) and set(d) - set(KEYS) <= set(EXTRA_KEYS)
    assert d["method"] == "nuts" and d["sampler"] == "nutpie"
    assert (d["n_chains"], d["n_draws"]) == (2, 400)
    assert d["r_hat_max"] is not None and d["divergences"] == 0
    passes = d["r_hat_max"] <= R_HAT_MAX and min(d["ess_bulk_min"], d["ess_tail_min"]) >= (
        ESS_BULK_MIN
    )
    assert d["ok"] is passes
    post = idata.posterior["mu"]
    assert post.shape == (2, 400)
    assert "diverging" in idata.sample_stats
    assert float(post.mean()) == pytest.approx(mean, abs=4 * sd / np.sqrt(d["ess_bulk_min"]))
    assert float(post.std()) == pytest.approx(sd, rel=0.15)


def test_unknown_sampler_and_missing_model_are_refused() -> None:
    with pytest.raises(CrmkitError, match="sampler must be"):
        sample_nuts(None, ["mu"], sampler="hmc")
    with pytest.raises(CrmkitError, match="needs a PyMC model"):
        sample_nuts(None, ["mu"], sampler="pymc")
