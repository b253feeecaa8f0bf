"""Numba CLV kernels: equal to the PyMC model's logp and gradient; NUTS through them."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import special

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.errors import CrmkitWarning
from crmkit.models.clv import kernels as clv_numba
from crmkit.models.clv.models import BetaGeo, GammaGamma, ParetoNBD


@pytest.fixture(scope="module")
def sim():
    return simulate_bgnbd_gammagamma(600, T_min=5.0, T_max=40.0, seed=3)


def _pymc_logp(model, arrays):
    """Compiled PyMC logp and dlogp in the unconstrained space, as functions of z."""
    _, _, logp, dlogp, _, point = model._log_space_model(arrays)
    return (lambda z: float(logp(point(z)))), (lambda z: np.asarray(dlogp(point(z)), float))


def test_digamma_matches_scipy():
    xs = np.concatenate([np.geomspace(1e-4, 1e4, 57), [0.5, 1.0, 2.5, 5.999, 6.0, 6.001]])
    ours = np.array([clv_numba.digamma(v) for v in xs])
    np.testing.assert_allclose(ours, special.digamma(xs), rtol=1e-12, atol=1e-13)


#: Gamma-Gamma's unrestricted q prior (the default is q > 1: TruncatedNormal, lower=1).
GG_LOG_PRIOR = {"q": {"dist": "HalfNormal", "sigma": 10.0}}

CASES = [
    (BetaGeo, None, [0.25, 4.4, 0.8, 2.4]),
    (ParetoNBD, None, [0.55, 10.6, 0.6, 11.7]),
    (GammaGamma, GG_LOG_PRIOR, [6.2, 3.7, 15.4]),
    (GammaGamma, None, [6.2, 3.7, 15.4]),
    (
        BetaGeo,
        {
            "r": {"dist": "Gamma", "alpha": 2.0, "beta": 3.0},
            "alpha": {"dist": "Exponential", "lam": 0.1},
            "a": {"dist": "LogNormal", "mu": 0.0, "sigma": 1.5},
        },
        [0.25, 4.4, 0.8, 2.4],
    ),
]


@pytest.mark.parametrize(("cls", "config", "center"), CASES)
def test_kernel_equals_pymc_logp_and_gradient(sim, cls, config, center):
    model = cls(model_config=config)
    arrays = model._prepare(sim)
    logp, dlogp = _pymc_logp(model, arrays)
    table = clv_numba.prior_table(model.priors, model.param_names)
    if cls is ParetoNBD:  # the PyMC graph integrates with 48 nodes
        kernel = clv_numba.paretonbd_kernel(arrays, table, n_nodes=48)
    else:
        kernel = model._numba_kernel(arrays)
    rng = np.random.default_rng(0)
    for _ in range(5):
        z = kernel.to_unconstrained(center) + rng.normal(0.0, 0.7, len(center))
        lp, grad = kernel(z)
        np.testing.assert_allclose(lp, logp(z), rtol=1e-8)
        np.testing.assert_allclose(grad, dlogp(z), rtol=1e-7, atol=1e-6)


def test_paretonbd_default_nodes_close_to_48(sim):
    model = ParetoNBD()
    arrays = model._prepare(sim)
    table = clv_numba.prior_table(model.priors, model.param_names)
    fine = clv_numba.paretonbd_kernel(arrays, table, n_nodes=48)
    default = model._numba_kernel(arrays)
    rng = np.random.default_rng(1)
    for _ in range(5):
        z = np.log([0.55, 10.6, 0.6, 11.7]) + rng.normal(0.0, 0.7, 4)
        np.testing.assert_allclose(default(z)[0], fine(z)[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(default(z)[1], fine(z)[1], rtol=0, atol=1e-4)


def test_kernel_survives_extreme_values(sim):
    model = BetaGeo()
    kernel = model._numba_kernel(model._prepare(sim))
    for z in ([-30.0, 30.0, -30.0, 30.0], [30.0, -30.0, 30.0, -30.0], [5.0, -20.0, 0.0, 0.0]):
        lp, grad = kernel(np.array(z))
        assert not np.isnan(lp)
        assert grad.shape == (4,)


def test_unsupported_prior_falls_back_to_pymc_graph():
    model = BetaGeo(model_config={"r": {"dist": "HalfCauchy", "beta": 1.0}})
    assert clv_numba.prior_table(model.priors, model.param_names) is None
    assert model._numba_kernel({}) is None


@pytest.mark.parametrize("cls", [BetaGeo, ParetoNBD, GammaGamma])
def test_short_nuts_agrees_with_map(sim, cls):
    config = GG_LOG_PRIOR if cls is GammaGamma else None
    model = cls(model_config=config, random_seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CrmkitWarning)  # few draws: ESS below the default bar
        model.fit(sim, method="nuts", chains=2, tune=300, draws=300)
    assert model.diagnostics_["sampler"] == "nutpie-numba"
    assert model.diagnostics_["r_hat_max"] < 1.05
    post = model.idata_.posterior
    mode = json.loads(
        cls(model_config=config, random_seed=5).fit(sim, method="map").idata_.attrs["map"]
    )
    for name in model.param_names:
        logs = np.log(post[name].to_numpy().ravel())
        # The posterior median of log(theta) is within one posterior sd of the mode.
        assert abs(np.median(logs) - np.log(mode[name])) < 1.0 * logs.std() + 0.02


def test_gammagamma_series_equals_row_sums(sim):
    model = GammaGamma(model_config=GG_LOG_PRIOR)
    arrays = model._prepare(sim)
    table = clv_numba.prior_table(model.priors, model.param_names)
    series = clv_numba.gammagamma_kernel(arrays, table)
    rows = clv_numba.gammagamma_kernel(arrays, table, n_terms=0)
    g0 = series.args[-3]
    rng = np.random.default_rng(2)
    for _ in range(5):  # gamma near its mode: the series is used
        z = np.array([np.log(6.0), np.log(3.7), np.log(g0) + rng.uniform(-0.2, 0.2)])
        assert abs(np.exp(z[2]) - g0) <= 0.5 * series.args[-2]
        np.testing.assert_allclose(series(z)[0], rows(z)[0], rtol=1e-12)
        np.testing.assert_allclose(series(z)[1], rows(z)[1], rtol=1e-9, atol=1e-9)


def test_gammagamma_default_q_prior_samples_log_q_minus_one_with_the_numba_kernel(sim):
    model = GammaGamma()
    assert model.priors["q"]["lower"] == 1.0
    kernel = model._numba_kernel(model._prepare(sim))
    assert kernel is not None
    assert kernel.shift == (0.0, 1.0, 0.0)
    theta = np.array([6.2, 1.0001, 15.4])
    np.testing.assert_allclose(kernel.to_natural(kernel.to_unconstrained(theta)), theta)
    # q - 1 = exp(z) > 0 for every z: the mean spend p gamma / (q - 1) stays finite
    assert kernel.to_natural(np.array([0.0, -20.0, 0.0]))[1] > 1.0


def test_truncated_prior_is_refused_by_kernels_that_do_not_read_the_shift():
    priors = {"r": {"dist": "TruncatedNormal", "mu": 0.0, "sigma": 1.0, "lower": 1.0}}
    assert clv_numba.prior_table(priors, ("r",)) is None
    assert clv_numba.prior_table(priors, ("r",), shifted=True) is not None


def test_gammagamma_nuts_with_default_prior_uses_the_kernel_and_keeps_q_above_one(sim):
    model = GammaGamma(random_seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CrmkitWarning)  # few draws: ESS below the default bar
        model.fit(sim, method="nuts", chains=2, tune=300, draws=300)
    assert model.diagnostics_["sampler"] == "nutpie-numba"
    assert model.diagnostics_["r_hat_max"] < 1.05
    q = model.idata_.posterior["q"].to_numpy()
    assert q.min() > 1.0
    mode = json.loads(GammaGamma(random_seed=5).fit(sim, method="map").idata_.attrs["map"])
    for name in model.param_names:
        logs = np.log(model.idata_.posterior[name].to_numpy().ravel())
        assert abs(np.median(logs) - np.log(mode[name])) < 1.0 * logs.std() + 0.02
