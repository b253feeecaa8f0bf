"""MAP + Laplace against an exact conjugate posterior, and MLE on a one-parameter likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crmkit.models.inference.approx import fit_map, fit_mle
from crmkit.models.inference.diagnostics import EXTRA_KEYS, KEYS


def _schema(diag: dict, method: str) -> None:
    assert set(KEYS) <= set(diag) and set(diag) - set(KEYS) <= set(EXTRA_KEYS)
    assert diag["method"] == method and diag["r_hat_max"] is None


def test_map_and_laplace_are_the_exact_normal_posterior() -> None:
    import pymc as pm

    y = np.random.default_rng(0).normal(2.0, 1.0, 40)
    prior_sd = 3.0
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, prior_sd)
        pm.Normal("y", mu, 1.0, observed=y)
    precision = len(y) + 1 / prior_sd**2
    mean, sd = y.sum() / precision, 1 / np.sqrt(precision)
    idata, diag = fit_map(model, ["mu"], n_draws=4000, seed=1)
    _schema(diag, "map")
    assert diag["ok"] and diag["converged"] and diag["hessian_positive_definite"]
    assert json.loads(idata.attrs["map"])["mu"] == pytest.approx(mean, abs=1e-5)
    draws = idata.posterior["mu"]
    assert draws.dims == ("chain", "draw") and draws.shape == (1, 4000)
    assert float(draws.mean()) == pytest.approx(mean, abs=3 * sd / np.sqrt(4000))
    assert float(draws.std()) == pytest.approx(sd, rel=0.05)


def test_mle_of_an_exponential_rate() -> None:
    x = np.random.default_rng(2).exponential(1 / 3.0, 200)
    n, total = len(x), x.sum()

    def loglike(p: np.ndarray) -> float:
        return n * np.log(p[0]) - p[0] * total

    idata, diag = fit_mle(loglike, np.array([1.0]), ["rate"], n_draws=4000, seed=0)
    _schema(diag, "mle")
    rate = n / total  # the closed-form estimate
    assert diag["ok"] and diag["converged"] and diag["hessian_positive_definite"]
    assert json.loads(idata.attrs["mle"])["rate"] == pytest.approx(rate, rel=1e-4)
    assert diag["loglike"] == pytest.approx(n * np.log(rate) - n, rel=1e-6)
    # draws of log(rate) are normal with the inverse Fisher information, 1 / n
    log_draws = np.log(idata.posterior["rate"].to_numpy().ravel())
    assert log_draws.std() == pytest.approx(1 / np.sqrt(n), rel=0.05)


def test_mle_of_a_flat_likelihood_is_not_ok() -> None:
    with np.errstate(over="ignore"):  # draws from the floored Hessian are huge on log scale
        idata, diag = fit_mle(lambda p: 0.0, np.array([1.0, 2.0]), ["a", "b"], n_draws=10, seed=0)
    assert diag["ok"] is False and diag["hessian_positive_definite"] is False
    assert "Hessian" in diag["message"]
    assert set(idata.posterior.data_vars) == {"a", "b"}


def test_map_whose_posterior_is_not_finite_names_the_element_in_one_line() -> None:
    import pymc as pm
    import pytensor.tensor as pt

    from crmkit.models.inference.laplace import LaplaceError

    with pm.Model() as model:
        pm.HalfNormal("s", 1.0)
        mu = pm.Normal("mu", 0.0, 1.0, shape=3)
        pm.Potential("kink", pt.sqrt(-(mu[1] ** 2)))  # no finite gradient in mu[1] at its mode
    with pytest.raises(LaplaceError) as err:
        fit_map(model, ["s", "mu"], n_draws=10, seed=0)
    assert str(err.value) == (
        "Laplace approximation failed: the posterior is flat or not finite in mu[1] "
        "(the data do not identify them)"
    )
