"""Tests of crmkit.models.clv.predictions: the numba totals against numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import special

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.models.clv import prediction_kernels as kern
from crmkit.models.clv import predictions as pred
from crmkit.models.clv.models import GammaGamma


def _draws(n: int, seed: int = 0, **means: float) -> xr.Dataset:
    """Parameter draws scattered around the given means (log-normal, 20%)."""
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {k: ("sample", v * np.exp(0.2 * rng.standard_normal(n))) for k, v in means.items()}
    )


@pytest.fixture(scope="module")
def base():
    sim = simulate_bgnbd_gammagamma(800, T_min=0.0, T_max=52.0, seed=4)
    x, tx, T, m = (sim[c].to_numpy(float) for c in ("frequency", "recency", "T", "monetary_value"))
    bg = _draws(40, r=0.243, alpha=4.414, a=0.793, b=2.426)
    gg = _draws(40, seed=1, p=6.25, q=3.74, gamma=15.44)
    return x, tx, T, m, bg, gg


@pytest.mark.parametrize("with_spend", [False, True])
@pytest.mark.parametrize("with_segment", [False, True])
def test_numba_totals_equal_numpy_path(base, monkeypatch, with_spend, with_segment):
    x, tx, T, m, bg, gg = base
    edges = np.arange(13) * pred.month_length("W")
    kw = {}
    if with_spend:
        kw.update(spend_draws=gg, mean_spend=m)
    if with_segment:
        kw["segment"] = np.where(x > 1, "loyal", np.where(T > 20, "old", "new"))
    fast, lab_fast = pred.expected_totals("bgnbd", bg, x, tx, T, edges, **kw)
    monkeypatch.setattr(pred, "_HAVE_KERNEL", False)
    slow, lab_slow = pred.expected_totals("bgnbd", bg, x, tx, T, edges, chunk_size=97, **kw)
    assert list(lab_fast) == list(lab_slow)
    assert fast.shape == slow.shape == (40, len(lab_fast), 12)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


def test_totals_equal_sum_of_per_customer_expectations(base):
    """Revenue total of one period = sum over customers of E[purchases] x E[spend]."""
    x, tx, T, m, bg, gg = base
    t = 30.0
    tot, _ = pred.expected_totals(
        "bgnbd", bg, x, tx, T, np.array([0.0, t]), spend_draws=gg, mean_spend=m
    )
    per = pred.expected_purchases("bgnbd", bg, x, tx, T, t) * pred.expected_spend(gg, x, m)
    np.testing.assert_allclose(tot[:, 0, 0], per.sum(axis=1), rtol=1e-9)


@pytest.mark.parametrize(
    ("kind", "kernel"), [("bgnbd", True), ("bgnbd", False), ("paretonbd", False)]
)
def test_totals_with_q_below_one_use_the_buyers_mean_spend(base, monkeypatch, kind, kernel):
    """Where p x + q - 1 <= 0 the totals use expected_spend's fallback, never < 0."""
    x, tx, T, m, bg, gg = base
    if kind == "paretonbd":
        bg = _draws(40, r=0.553, alpha=10.578, s=0.606, beta=11.669)
    monkeypatch.setattr(pred, "_HAVE_KERNEL", kernel)
    low = gg.assign(q=("sample", np.linspace(0.5, 3.0, gg.sizes["sample"])))
    t = 20.0
    tot, _ = pred.expected_totals(
        kind, bg, x, tx, T, np.array([0.0, t]), spend_draws=low, mean_spend=m, chunk_size=300
    )
    per = pred.expected_purchases(kind, bg, x, tx, T, t) * pred.expected_spend(low, x, m)
    assert (tot > 0).all()
    np.testing.assert_allclose(tot[:, 0, 0], per.sum(axis=1), rtol=1e-9)


@pytest.mark.parametrize(
    ("r", "alpha", "a", "b"),
    [
        (0.243, 4.414, 0.793, 2.426),
        (2.0, 30.0, 1.0 + 1e-13, 5.0),  # a = 1: no singularity in the Euler form
        (0.5, 1.0, 3.5, 0.4),  # a - 2 - r > 0: term ratios above 1 at first
        (0.1, 0.5, 0.2, 40.0),  # z close to 1
    ],
)
def test_series_matches_scipy_hyp2f1(r, alpha, a, b):
    """E[X(t) | alive, x, T] of the kernel against the closed form with scipy's 2F1."""
    edges = np.array([0.0, 1.0, 5.0, 26.0, 52.0, 104.0])
    for x in (0.0, 1.0, 7.0, 60.0):
        for T in (0.0, 3.0, 40.0):
            got = kern._cum_expected(r, alpha, a, b, x, T, edges)
            c = a + b + x - 1.0
            z = edges / (alpha + T + edges)
            head = ((alpha + T) / (alpha + T + edges)) ** (r + x)
            want = c / (a - 1.0) * (1 - head * special.hyp2f1(r + x, b + x, c, z))
            if abs(a - 1.0) < 1e-9:  # scipy's form is 0/0 here: compare with a = 1 +- 1e-6
                lo = kern._cum_expected(r, alpha, 1 - 1e-6, b, x, T, edges)
                hi = kern._cum_expected(r, alpha, 1 + 1e-6, b, x, T, edges)
                want = (lo + hi) / 2
                np.testing.assert_allclose(got, want, rtol=1e-6)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_unique_rows_match_numpy():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 7, size=(500, 4))
    uniq, inv = pred._unique_rows(codes)
    want, winv = np.unique(codes, axis=0, return_inverse=True)
    np.testing.assert_array_equal(uniq, want)
    np.testing.assert_array_equal(inv, winv.ravel())
    np.testing.assert_array_equal(uniq[inv], codes)


def test_finite_mean_spend_prior_keeps_q_above_one():
    sim = simulate_bgnbd_gammagamma(300, p=2.0, q=1.1, gamma=5.0, seed=3)
    buyers = sim[sim["frequency"] > 0]
    unrestricted = {"q": {"dist": "HalfNormal", "sigma": 10.0}}  # the pre-issue-17 default
    free = GammaGamma(model_config=unrestricted, random_seed=0).fit(buyers, method="map")
    kept = GammaGamma(model_config=pred.finite_mean_spend_prior(), random_seed=0).fit(
        buyers, method="map"
    )
    assert (free.posterior_draws()["q"] <= 1).any()  # an unrestricted prior allows q <= 1
    assert GammaGamma().priors["q"] == pred.finite_mean_spend_prior()["q"]  # now the default
    q = kept.posterior_draws()["q"].to_numpy()
    assert (q > 1).all()
    spend = kept.expected_spend(buyers.assign(frequency=0, recency=0.0, monetary_value=0.0))
    assert np.isfinite(spend).all() and (spend > 0).all()
