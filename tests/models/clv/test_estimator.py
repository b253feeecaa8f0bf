"""The shared estimator base: Laplace draws of the MLE and MAP fits, on toy quadratic models.

The toy log-likelihoods are quadratic in the log-parameters, so the Hessian of the
negative log-density in the unconstrained (log) space is known by hand.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest

from crmkit.errors import CrmkitWarning
from crmkit.models.clv.estimator import BayesianEstimator

PREC = np.array([[4.0, 1.5], [1.5, 2.0]])  # Hessian of -loglike in log space
MODE = np.array([0.5, -1.0])  # log-parameters at the maximum likelihood
DATA = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0]})


class _Quadratic(BayesianEstimator):
    """loglike = -(z - MODE)' PREC (z - MODE) / 2 with z = log(params)."""

    param_names = ("a", "b")
    default_model_config: ClassVar = {
        "a": {"dist": "HalfFlat"},
        "b": {"dist": "HalfFlat"},
    }
    prec: ClassVar[np.ndarray] = PREC

    def _prepare(self, data):
        return {"unused": np.zeros(1)}

    def _loglike_np(self, params, arrays):
        z = np.log(params) - MODE
        return float(-0.5 * z @ self.prec @ z)

    def _loglike_pt(self, params, arrays):
        z = [pt.log(p) - m for p, m in zip(params, MODE, strict=True)]
        return -0.5 * sum(
            self.prec[i, j] * z[i] * z[j] for i in range(2) for j in range(2) if self.prec[i, j]
        )

    def _start(self, arrays):
        return np.exp(MODE + 0.4)


class _FlatInB(_Quadratic):
    """The likelihood ignores ``b`` and its prior is Flat: the Hessian is singular in ``b``."""

    default_model_config: ClassVar = {"a": {"dist": "HalfFlat"}, "b": {"dist": "Flat"}}

    def _loglike_np(self, params, arrays):
        return float(-2.0 * (np.log(params[0]) - MODE[0]) ** 2)

    def _loglike_pt(self, params, arrays):
        return -2.0 * (pt.log(params[0]) - MODE[0]) ** 2


def _log_draws(model: BayesianEstimator) -> np.ndarray:
    """Draws of the log-parameters, shape (n, k)."""
    post = model.idata_.posterior
    return np.log(np.column_stack([post[n].values.ravel() for n in model.param_names]))


def test_mle_draws_have_the_inverse_hessian_as_covariance():
    m = _Quadratic(random_seed=3).fit(DATA, method="mle", approx_draws=20_000)
    z = _log_draws(m)
    assert m.diagnostics_["hessian_positive_definite"] and m.diagnostics_["ok"]
    np.testing.assert_allclose(np.log([m.params_["a"], m.params_["b"]]), MODE, atol=1e-4)
    np.testing.assert_allclose(z.mean(axis=0), MODE, atol=0.02)
    np.testing.assert_allclose(np.cov(z.T), np.linalg.inv(PREC), rtol=0.05, atol=0.005)


def test_map_draws_have_the_inverse_hessian_as_covariance():
    # HalfFlat priors: in log space the log-Jacobian adds sum(z), so the mode moves to
    # MODE + inv(PREC) @ 1 while the Hessian stays PREC.
    m = _Quadratic(random_seed=4).fit(DATA, method="map", approx_draws=20_000)
    z = _log_draws(m)
    cov = np.linalg.inv(PREC)
    assert m.diagnostics_["hessian_positive_definite"] and m.diagnostics_["ok"]
    np.testing.assert_allclose(z.mean(axis=0), MODE + cov @ np.ones(2), atol=0.02)
    np.testing.assert_allclose(np.cov(z.T), cov, rtol=0.05, atol=0.005)


def _fit_flat(method: str) -> _FlatInB:
    """A fit of the flat model, which must warn that it fails its diagnostics."""
    # (the MLE's floored log-draws overflow exp: numpy's warning is expected there)
    with pytest.warns(CrmkitWarning, match="fails its diagnostics"), np.errstate(over="ignore"):
        m = _FlatInB(random_seed=5).fit(DATA, method=method, approx_draws=4000)
    assert not m.diagnostics_["hessian_positive_definite"] and not m.diagnostics_["ok"]
    a = np.log(m.idata_.posterior["a"].values.ravel())
    assert np.all(np.isfinite(a))
    assert np.std(a) == pytest.approx(0.5, rel=0.05)  # 1 / sqrt(4): unaffected by the floor
    return m


@pytest.mark.filterwarnings("ignore:grad method was asked:UserWarning")  # b is not in logp
def test_map_singular_hessian_gives_finite_draws_at_the_floor_variance():
    """A flat direction gets the eigenvalue floor's variance (1e6), not a false certainty."""
    b = _fit_flat("map").idata_.posterior["b"].values.ravel()  # Flat prior: no transform
    assert np.all(np.isfinite(b))
    # A pseudo-inverse plus 1e-6 * I would give sd 0.001 here: a flat direction reported as known.
    assert np.std(b) == pytest.approx(1000.0, rel=0.05)


def test_mle_singular_hessian_is_flagged_and_floored():
    m = _fit_flat("mle")
    # b's log-draws have sd 1000, so its draws run from 0 to overflow.
    with np.errstate(divide="ignore"):
        b = np.log(m.idata_.posterior["b"].values.ravel())
    # P(|N(0, 1000)| > 100) = 0.92
    assert np.mean(b < -100) > 0.4 and np.mean(b > 100) > 0.4
