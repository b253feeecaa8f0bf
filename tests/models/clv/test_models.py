"""CLV models: published CDNOW values, likelihood checks, recovery, predictions, persistence."""

from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import special

from crmkit.data.cdnow import load_cdnow_summary, simulate_bgnbd_gammagamma
from crmkit.errors import CrmkitWarning, ValidationError
from crmkit.models.clv.likelihoods import (
    NP,
    betageo_loglike,
    paretonbd_loglike,
    paretonbd_loglike_hyp2f1,
)
from crmkit.models.clv.models import (
    BetaGeo,
    GammaGamma,
    ParetoNBD,
    compress_rows,
    customer_lifetime_value,
    repeat_purchases,
)
from tests.conftest import shared_dataset

BG_TRUTH = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
GG_TRUTH = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow_summary(shared_dataset("cdnow"))


def _fake(model_cls, truth: dict[str, float], data: pd.DataFrame, n: int = 50):
    """A model whose 'posterior' is the truth repeated (a fake fit for prediction tests)."""
    m = model_cls()
    m.idata_ = az.from_dict(posterior={k: np.full((1, n), v) for k, v in truth.items()})
    m.method_ = "fake"
    m.diagnostics_ = {"ok": True}
    m.fit_data_ = data
    m.params_ = dict(truth)
    return m


# -- published maximum-likelihood values ---------------------------------------------------


def _sig3(a: float, b: float) -> bool:
    return f"{a:.3g}" == f"{b:.3g}"


def test_betageo_mle_reproduces_published_cdnow(cdnow):
    m = BetaGeo().fit(cdnow, method="mle")
    for k, v in {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}.items():
        assert _sig3(m.params_[k], v), (k, m.params_[k])
    assert round(m.diagnostics_["loglike"], 1) == -9582.4
    assert m.method_ == "mle" and m.diagnostics_["ok"]


def test_paretonbd_mle_reproduces_published_cdnow(cdnow):
    m = ParetoNBD().fit(cdnow, method="mle")
    for k, v in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert abs(m.params_[k] / v - 1) < 5e-4 * max(1, 10 / v), (k, m.params_[k])
    assert round(m.diagnostics_["loglike"], 1) == -9595.0


def test_gammagamma_mle_reproduces_published_cdnow(cdnow):
    m = GammaGamma().fit(cdnow, method="mle")
    for k, v in GG_TRUTH.items():
        assert _sig3(m.params_[k], v), (k, m.params_[k])
    assert round(m.diagnostics_["loglike"], 2) == -4055.92
    # 946 repeat buyers enter the fit.
    assert (cdnow["frequency"] > 0).sum() == 946


def test_mle_draws_spread_around_the_estimate(cdnow):
    m = BetaGeo(random_seed=3).fit(cdnow, method="mle")
    d = m.posterior_draws()
    assert d.sizes["sample"] == 1000
    lo, hi = float(d["r"].quantile(0.05)), float(d["r"].quantile(0.95))
    assert lo < m.params_["r"] < hi and hi - lo > 0.01


# -- likelihoods ------------------------------------------------------------------------


def test_pareto_quadrature_matches_hypergeometric_closed_form():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, 400).astype(float)
    T = rng.uniform(1, 80, 400)
    tx = np.where(x > 0, T * rng.uniform(0, 1, 400), 0.0)
    tx[:5] = T[:5]  # last purchase at the cut-off: empty integral
    for _ in range(30):
        prm = np.exp(rng.uniform(np.log([0.05, 0.5, 0.05, 0.5]), np.log([5, 50, 5, 50])))
        a = paretonbd_loglike(NP, *prm, x, tx, T)
        b = paretonbd_loglike_hyp2f1(*prm, x, tx, T)
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-7)


def test_betageo_loglike_matches_direct_formula():
    r, alpha, a, b = 0.3, 5.0, 0.8, 2.5
    x, tx, T = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([30.0, 35.0])
    got = betageo_loglike(NP, r, alpha, a, b, x, tx, T)

    def direct(x, tx, T):
        beta = special.beta
        g = special.gamma
        head = beta(a, b + x) / beta(a, b) * g(r + x) * alpha**r / g(r)
        term = (alpha + T) ** -(r + x)
        if x > 0:
            term += beta(a + 1, b + x - 1) / beta(a, b + x) * (alpha + tx) ** -(r + x)
        return np.log(head * term)

    np.testing.assert_allclose(got, [direct(*v) for v in zip(x, tx, T, strict=True)], rtol=1e-10)


def test_compressed_fit_equals_fit_on_repeated_rows():
    sim = simulate_bgnbd_gammagamma(300, seed=1)
    doubled = pd.concat([sim, sim.assign(customer_id=sim["customer_id"] + 10_000)])
    u, w, inv = compress_rows(doubled["frequency"], doubled["recency"], doubled["T"])
    assert w.sum() == len(doubled) and len(u) <= len(sim)
    np.testing.assert_array_equal(u[inv, 0], doubled["frequency"].to_numpy())
    a = BetaGeo().fit(sim, method="mle").diagnostics_["loglike"]
    b = BetaGeo().fit(doubled, method="mle").diagnostics_["loglike"]
    assert b == pytest.approx(2 * a, rel=1e-6)


def test_validation_names_row_and_field():
    bad = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "frequency": [1, -1, 0],
            "recency": [5.0, 0, 2.0],
            "T": [4, 5, 6],
        }
    )
    with pytest.raises(ValidationError) as e:
        BetaGeo().fit(bad, method="mle")
    fields = {(err.row, err.field) for err in e.value.errors}
    assert {(0, "recency"), (1, "frequency"), (2, "recency")} <= fields
    with pytest.raises(ValidationError, match="monetary_value"):
        GammaGamma().fit(bad.drop(index=[1, 2]).assign(recency=1.0), method="mle")


# -- Bayesian fits --------------------------------------------------------------------------


def test_map_laplace_close_to_mle_and_priors_are_overridable(cdnow):
    mle = BetaGeo().fit(cdnow, method="mle").params_
    m = BetaGeo(random_seed=1).fit(cdnow, method="map")
    assert m.method_ == "map"
    mode = json.loads(m.idata_.attrs["map"])
    for k, v in mle.items():
        # The mode is taken in log space (with the Jacobian), so b moves by ~15% here.
        assert mode[k] == pytest.approx(v, rel=0.25)
        lo, hi = np.quantile(m.posterior_draws()[k], [0.01, 0.99])
        assert lo < v < hi
    tight = BetaGeo(model_config={"r": {"dist": "LogNormal", "mu": np.log(2.0), "sigma": 0.01}})
    assert tight.fit(cdnow, method="map").params_["r"] == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_parameter_recovery_map_laplace(seed):
    sim = simulate_bgnbd_gammagamma(4000, seed=seed)
    bg = BetaGeo(random_seed=seed).fit(sim, method="map")
    gg = GammaGamma(random_seed=seed).fit(sim, method="map")
    covered = 0
    for model, truth in ((bg, BG_TRUTH), (gg, GG_TRUTH)):
        d = model.posterior_draws()
        for k, v in truth.items():
            lo, hi = np.quantile(d[k], [0.025, 0.975])
            covered += lo <= v <= hi
    assert covered >= 6  # 7 parameters at 95%: missing more than one is very unlikely


def test_tiny_nuts_fit_reports_failed_diagnostics(cdnow):
    sub = cdnow.iloc[:500]
    with pytest.warns(CrmkitWarning, match="fails its diagnostics"):
        m = BetaGeo(random_seed=4).fit(
            sub, method="nuts", chains=1, tune=100, draws=100, sampler="pymc"
        )
    assert m.method_ == "nuts" and m.diagnostics_["ok"] is False
    assert m.diagnostics_["sampler"] == "pymc"
    assert m.diagnostics_["ess_bulk_min"] < 400
    assert m.idata_.posterior.sizes["draw"] == 100
    pa = m.probability_alive()
    assert pa.attrs["diagnostics_ok"] == 0 and "ess" in pa.attrs["diagnostics"]


@pytest.mark.slow
def test_nutpie_fit_agrees_with_mle(cdnow):
    mle = BetaGeo().fit(cdnow, method="mle").params_
    m = BetaGeo(random_seed=5).fit(cdnow, method="nuts", chains=2, tune=1000, draws=1000)
    assert m.diagnostics_["sampler"] == "nutpie-numba" and m.diagnostics_["ok"]
    for k in ("r", "alpha"):
        assert m.params_[k] == pytest.approx(mle[k], rel=0.1)


# -- predictions on fake posteriors (known truth) -------------------------------------------


def test_betageo_predictions_match_simulated_holdout():
    sim = simulate_bgnbd_gammagamma(20_000, holdout=39.0, seed=5)
    bg = _fake(BetaGeo, BG_TRUTH, sim)
    ep = bg.expected_purchases(39.0)
    assert ep.dims == ("sample", "customer_id")
    total = float(ep.isel(sample=0).sum())
    obs = sim["frequency_holdout"].sum()
    assert abs(total - obs) < 4 * np.sqrt(obs) + 0.02 * obs
    pa = bg.probability_alive().isel(sample=0)
    assert float(pa.sum()) == pytest.approx(sim["alive"].sum(), rel=0.03)
    assert (pa.to_numpy()[sim["frequency"].to_numpy() == 0] == 1).all()


def test_paretonbd_predictions_match_simulation():
    rng = np.random.default_rng(6)
    n, r, alpha, s, beta, h = 20_000, 0.55, 10.6, 0.61, 11.7, 39.0
    T = np.floor(rng.uniform(27, 39, n) * 7) / 7
    lam, mu = rng.gamma(r, 1 / alpha, n), rng.gamma(s, 1 / beta, n)
    death = rng.exponential(1 / mu)
    active = np.minimum(death, T)
    x = rng.poisson(lam * active)
    tx = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1), 0.0)
    future = rng.poisson(lam * np.clip(death - T, 0, h))
    df = pd.DataFrame({"customer_id": np.arange(n), "frequency": x, "recency": tx, "T": T})
    pn = _fake(ParetoNBD, {"r": r, "alpha": alpha, "s": s, "beta": beta}, df, n=2)
    total = float(pn.expected_purchases(h).isel(sample=0).sum())
    assert abs(total - future.sum()) < 4 * np.sqrt(future.sum()) + 0.02 * future.sum()
    alive = float(pn.probability_alive().isel(sample=0).sum())
    assert alive == pytest.approx((death > T).sum(), rel=0.03)


def test_expected_spend_averages_to_true_mean_spend():
    sim = simulate_bgnbd_gammagamma(20_000, seed=7)
    gg = _fake(GammaGamma, GG_TRUTH, sim)
    es = gg.expected_spend().isel(sample=0).to_numpy()
    rep = sim["frequency"].to_numpy() > 0
    # E[spend | x, mean spend] averaged over buyers equals E[p / nu] = p gamma / (q - 1).
    prior_mean = GG_TRUTH["p"] * GG_TRUTH["gamma"] / (GG_TRUTH["q"] - 1)
    assert es[rep].mean() == pytest.approx(prior_mean, rel=0.03)
    assert np.allclose(es[~rep], prior_mean)


def test_totals_are_sums_of_per_customer_draws_and_chunking_does_not_matter():
    sim = simulate_bgnbd_gammagamma(3000, seed=8)
    sim["segment"] = np.where(sim["customer_id"] % 3 == 0, "a", "b")
    bg = BetaGeo(random_seed=1).fit(sim, method="mle")
    gg = GammaGamma(random_seed=1).fit(sim, method="mle")
    tot = repeat_purchases(bg, periods=6, period_length=4.0, n_draws=40)
    assert tot.dims == ("sample", "period") and tot.sizes == {"sample": 40, "period": 6}
    per_customer = bg.expected_purchases(24.0, n_draws=40).sum("customer_id")
    np.testing.assert_allclose(tot.sum("period"), per_customer, rtol=1e-8)
    seg = repeat_purchases(
        bg,
        sim,
        periods=6,
        period_length=4.0,
        spend_model=gg,
        segment="segment",
        n_draws=40,
        chunk_size=97,
    )
    rev = repeat_purchases(bg, sim, periods=6, period_length=4.0, spend_model=gg, n_draws=40)
    assert seg.dims == ("sample", "segment", "period")
    np.testing.assert_allclose(seg.sum("segment"), rev, rtol=1e-8)
    clv = customer_lifetime_value(bg, gg, sim, periods=6, period_length=4.0, n_draws=40)
    np.testing.assert_allclose(clv.sum("customer_id"), rev.sum("period"), rtol=1e-8)
    discounted = customer_lifetime_value(
        bg, gg, sim, periods=6, period_length=4.0, discount_rate=0.05, n_draws=40
    )
    assert (discounted.sum("customer_id") < clv.sum("customer_id")).all()
    assert float(tot.sum("period").std("sample")) > 0


def test_purchase_noise_widens_interval_and_keeps_the_mean():
    sim = simulate_bgnbd_gammagamma(2000, seed=9)
    bg = _fake(BetaGeo, BG_TRUTH, sim, n=300)
    gg = _fake(GammaGamma, GG_TRUTH, sim, n=300)
    mean = repeat_purchases(bg, periods=3, period_length=13.0, n_draws=300)
    noisy = repeat_purchases(bg, periods=3, period_length=13.0, n_draws=300, noise=True, seed=2)
    assert float(mean.sum("period").std("sample")) == pytest.approx(0, abs=1e-9)  # one point
    total = noisy.sum("period")
    assert float(total.std()) > 10
    assert float(total.mean()) == pytest.approx(float(mean.sum("period").mean()), rel=0.03)
    rev = repeat_purchases(bg, periods=3, period_length=13.0, spend_model=gg, n_draws=300)
    nrev = repeat_purchases(
        bg, periods=3, period_length=13.0, spend_model=gg, n_draws=300, noise=True
    )
    assert float(nrev.sum("period").mean()) == pytest.approx(
        float(rev.sum("period").mean()), rel=0.05
    )


def test_paretonbd_noise_mean_matches_expectation():
    sim = simulate_bgnbd_gammagamma(1500, seed=10)
    pn = _fake(ParetoNBD, {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}, sim, n=200)
    mean = repeat_purchases(pn, periods=2, period_length=10.0, n_draws=200)
    noisy = repeat_purchases(pn, periods=2, period_length=10.0, n_draws=200, noise=True)
    np.testing.assert_allclose(noisy.mean("sample"), mean.mean("sample"), rtol=0.05)


# -- persistence ----------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path, cdnow):
    m = BetaGeo(model_config={"r": {"dist": "HalfNormal", "sigma": 3.0}}, random_seed=2)
    m.fit(cdnow, method="map")
    path = m.save(tmp_path / "bg.nc")
    back = BetaGeo.load(path)
    assert back.params_ == pytest.approx(m.params_)
    assert back.method_ == "map" and back.priors["r"]["sigma"] == 3.0
    np.testing.assert_allclose(back.expected_purchases(10.0), m.expected_purchases(10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception, match="BetaGeo"):
            GammaGamma.load(path)


def test_expected_spend_is_never_negative_when_q_is_below_one() -> None:
    import xarray as xr

    from crmkit.models.clv.predictions import expected_spend

    draws = xr.Dataset(
        {
            "p": ("sample", np.array([4.0, 4.0])),
            "q": ("sample", np.array([0.8, 3.0])),
            "gamma": ("sample", np.array([90.0, 90.0])),
        }
    )
    x = np.array([0.0, 2.0, 3.0])
    m = np.array([0.0, 50.0, 70.0])
    out = expected_spend(draws, x, m)
    assert (out > 0).all()
    buyers = 4.0 * (90.0 + x[1:] * m[1:]) / (4.0 * x[1:] + 0.8 - 1.0)
    assert out[0, 0] == pytest.approx(buyers.mean())  # q <= 1: mean of the repeat buyers
    assert out[1, 0] == pytest.approx(4.0 * 90.0 / 2.0)  # q > 1: the population mean


def test_idata_keeps_the_observations_and_their_log_likelihood():
    sim = simulate_bgnbd_gammagamma(400, seed=21)
    m = BetaGeo(random_seed=0).fit(sim, method="mle", approx_draws=30)
    obs = m.idata_.observed_data
    np.testing.assert_array_equal(obs["frequency"].to_numpy(), sim["frequency"].to_numpy())
    ll = m.idata_.log_likelihood["loglike"]
    assert ll.dims == ("chain", "draw", "obs") and ll.sizes["obs"] == len(sim)
    # per-customer values sum to the model's total log-likelihood at each draw
    post = m.idata_.posterior
    arrays = m._prepare(sim)
    for d in (0, 17):
        theta = np.array([float(post[n][0, d]) for n in m.param_names])
        assert float(ll[0, d].sum()) == pytest.approx(m._loglike_np(theta, arrays), rel=1e-10)
    gg = GammaGamma(random_seed=0).fit(sim, method="mle", approx_draws=30)
    assert gg.idata_.log_likelihood.sizes["obs"] == int((sim["frequency"] > 0).sum())


# -- Gamma-Gamma: q > 1 by default (a finite mean spend for customers without repeats) -------


def test_gammagamma_map_reproduces_published_cdnow_with_the_q_above_one_prior(cdnow):
    m = GammaGamma(random_seed=0).fit(cdnow, method="map")
    draws = m.posterior_draws()
    assert (draws["q"] > 1).all()
    for k, v in GG_TRUTH.items():  # Fader, Hardie & Lee (2005): p 6.25, q 3.74, gamma 15.44
        assert m.params_[k] == pytest.approx(v, rel=0.1)
        lo, hi = np.quantile(draws[k], [0.025, 0.975])
        assert lo < v < hi


@pytest.mark.parametrize(("p", "q", "gamma"), [(4.0, 2.5, 60.0), (3.0, 1.4, 20.0)])
def test_gammagamma_q_above_one_prior_recovers_simulated_truth(p, q, gamma):
    sim = simulate_bgnbd_gammagamma(3000, p=p, q=q, gamma=gamma, seed=21)
    m = GammaGamma(random_seed=0).fit(sim, method="map")
    draws = m.posterior_draws()
    assert (draws["q"] > 1).all()
    for k, v in {"p": p, "q": q, "gamma": gamma}.items():
        lo, hi = np.quantile(draws[k], [0.025, 0.975])
        assert lo < v < hi, (k, v, lo, hi)


def test_gammagamma_keeps_q_above_one_when_the_data_want_less():
    # spend heterogeneity heavier than any q > 1 allows: the unrestricted fit goes below 1
    sim = simulate_bgnbd_gammagamma(3000, p=4.0, q=0.7, gamma=20.0, seed=22)
    free = GammaGamma(model_config={"q": {"dist": "HalfNormal", "sigma": 10.0}}, random_seed=0)
    assert free.fit(sim, method="map").params_["q"] < 1
    kept = GammaGamma(random_seed=0).fit(sim, method="map")
    q = kept.posterior_draws()["q"].to_numpy()
    assert (q > 1).all()
    assert np.quantile(q, 0.05) < 1.02  # pressed against the bound: the fit check flags it
    spend = kept.expected_spend(sim.assign(frequency=0, recency=0.0, monetary_value=0.0))
    assert np.isfinite(spend).all() and (spend > 0).all()


def test_gammagamma_mle_has_no_prior_and_may_return_q_below_one():
    sim = simulate_bgnbd_gammagamma(3000, p=4.0, q=0.7, gamma=20.0, seed=22)
    assert GammaGamma().fit(sim, method="mle").params_["q"] < 1


def _iid_spend(n: int = 500, seed: int = 1) -> pd.DataFrame:
    """Every customer's orders drawn from one Gamma(4, scale 25): no differences to learn."""
    rng = np.random.default_rng(seed)
    k = rng.integers(2, 7, n)  # 2-6 orders each
    mean = np.array([rng.gamma(4.0, 25.0, size=ki - 1).mean() for ki in k])
    return pd.DataFrame(
        {"customer_id": np.arange(n), "frequency": k - 1, "recency": 10.0, "T": 20.0,
         "monetary_value": mean}
    )  # fmt: skip


def test_gammagamma_map_on_iid_spend_fails_in_one_line_naming_the_parameters():
    from crmkit.errors import CrmkitError
    from crmkit.models.inference.laplace import LaplaceError

    m = GammaGamma(random_seed=0)
    before = m.get_params()
    with pytest.raises(LaplaceError) as err:
        m.fit(_iid_spend(), method="map")
    msg = str(err.value)
    # before: numpy's "Eigenvalues did not converge" from the Laplace step
    assert msg == (
        "Laplace approximation failed: the posterior is flat or not finite in p, q, gamma "
        "(the data do not identify them)"
    )
    assert "\n" not in msg and isinstance(err.value, CrmkitError)
    # nothing changed: the model is as it was, unfitted
    assert m.get_params() == before
    assert not hasattr(m, "idata_") and not hasattr(m, "params_")
