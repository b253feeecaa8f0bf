"""Tests of crmkit.models.clv.calendar and .spend: residual bookkeeping, the walk, the API."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.errors import CrmkitError
from crmkit.models.clv.calendar import (
    CalendarEffect,
    calendar_repeat_purchases,
    expected_by_period,
    repeat_counts_by_period,
)
from crmkit.models.clv.models import BetaGeo, repeat_purchases

TRUTH = {"r": 0.8, "alpha": 6.0, "a": 0.8, "b": 2.5}


@dataclass
class _Stub:
    """A 'fitted' BG/NBD with known parameters (the truth of the simulation)."""

    fit_data_: pd.DataFrame
    params_: dict = field(default_factory=lambda: dict(TRUTH))
    kind: str = "bgnbd"
    time_unit: str = "W"

    def check_fitted(self) -> None:
        pass


def _simulate(n, first, cut, step_at=None, step=1.0, seed=0):
    """BG/NBD repeat purchase times (weeks) with an optional rate step in calendar time.

    A common multiplier of the rate is a change of clock for BG/NBD: simulate in operational
    time u(w) = w + (step - 1) * max(w - step_at, 0) and map the purchases back.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUTH["r"], 1.0 / TRUTH["alpha"], n)
    drop = rng.beta(TRUTH["a"], TRUTH["b"], n)
    n_max = rng.geometric(drop)  # repeat purchases until dropout

    def op(w):
        return w if step_at is None else w + (step - 1.0) * np.maximum(w - step_at, 0.0)

    def cal(u):
        if step_at is None:
            return u
        return np.where(u <= step_at, u, step_at + (u - step_at) / step)

    gaps = rng.exponential(1.0, (n, 200)) / lam[:, None]
    times_op = op(first)[:, None] + np.cumsum(gaps, axis=1)
    keep = (np.arange(200)[None, :] < n_max[:, None]) & (times_op <= op(cut))
    assert not keep[:, -1].any()
    return cal(times_op)[keep], np.nonzero(keep)[0]


def _weekly(times, cut, n_weeks):
    """Counts per week before the cut-off, oldest first."""
    back = np.floor(cut - times).astype(int)
    return np.bincount(back[back < n_weeks], minlength=n_weeks)[::-1].astype(float)


def test_expected_by_period_matches_simulated_weekly_counts():
    n, cut = 12_000, 30.0
    first = np.floor(np.random.default_rng(5).uniform(0, 10, n) * 7) / 7  # day grid
    times, _ = _simulate(n, first, cut, seed=1)
    obs = _weekly(times, cut, 30)
    exp_ = expected_by_period("bgnbd", TRUTH, cut - first, 30, 1.0)
    assert exp_[:10].sum() < exp_[10:20].sum()  # the ramp-up of acquisition
    z = (obs - exp_) / np.sqrt(exp_ + 1.0)
    assert np.max(np.abs(z)) < 5.0
    assert abs(obs.sum() - exp_.sum()) < 4 * np.sqrt(3 * exp_.sum())


def test_calendar_effect_finds_a_rate_step_and_no_step():
    n, cut = 12_000, 45.0
    first = np.floor(np.random.default_rng(6).uniform(0, 10, n) * 7) / 7  # day grid
    data = pd.DataFrame({"T": cut - first})
    levels = {}
    for step in (1.0, 1.4):
        times, _ = _simulate(n, first, cut, step_at=30.0, step=step, seed=2)
        eff = CalendarEffect().fit(_weekly(times, cut, 45), purchase_model=_Stub(data))
        levels[step] = eff.summary()
    for step, s in levels.items():
        assert abs(s["level"] - np.log(step)) < 3 * s["level_sd"] + 0.02
    assert levels[1.4]["level"] - levels[1.0]["level"] > 0.15


def test_repeat_counts_by_period_boundaries():
    cut = pd.Timestamp("2024-03-31")
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 1, 2, 2, 3],
            "date": pd.to_datetime(
                [
                    "2024-03-01",  # first purchase of 1: not a repeat
                    "2024-03-24",  # 7 days before the cut-off: period 1 from the end
                    "2024-03-25",  # 6 days before: the last period
                    "2024-03-31 18:00",  # on the cut-off day
                    "2024-03-31 19:00",  # the same day again: counted once
                    "2024-03-10",
                    "2024-04-01",  # after the cut-off
                    "2024-03-20",  # customer 3 is not in the summary
                ],
                format="ISO8601",
            ),
        }
    )
    got = repeat_counts_by_period(tx, [1, 2], cut, 3)
    np.testing.assert_array_equal(got, [0.0, 1.0, 2.0])


def _fitted_effect(level=0.0, sigma=0.0, tau=0.0, var=0.0, L=1.0):
    eff = CalendarEffect()
    eff.grid_ = pd.DataFrame(
        {
            "sigma": [sigma],
            "tau": [tau],
            "phi": [1.0],
            "weight": [1.0],
            "level_mean": [level],
            "level_var": [var],
        }
    )
    eff.params_ = {"period_length": L}
    return eff


def test_multiplier_draws_average_over_periods_and_widen_with_horizon():
    flat = _fitted_effect(level=np.log(2.0))
    m = flat.multiplier_draws(np.array([0.0, 2.5, 4.35, 10.0]), 5)
    np.testing.assert_allclose(m, 2.0)
    walk = _fitted_effect(sigma=0.05, var=0.01)
    m = walk.multiplier_draws(np.arange(0, 53, 4.0), 4000, seed=1)
    sd = np.log(m).std(axis=0)
    assert sd[-1] > 2 * sd[0]
    # sd of the mean over weeks 49-52 of a walk: sqrt(0.01 + 0.05^2 * ~50.5) ~ 0.38
    assert 0.3 < sd[-1] < 0.45
    noisy = _fitted_effect(tau=0.3).multiplier_draws(np.array([0.0, 1.0]), 4000, noise=True)
    assert abs(np.log(noisy).std() - 0.3) < 0.03


def test_fit_rejects_too_few_periods():
    data = pd.DataFrame({"T": [5.0, 6.0]})
    with pytest.raises(CrmkitError, match="at least 4"):
        CalendarEffect().fit(np.array([1.0, 2.0]), purchase_model=_Stub(data))


def test_calendar_repeat_purchases_multiplies_the_standard_draws():
    sim = simulate_bgnbd_gammagamma(2_000, seed=8)
    bg = BetaGeo(random_seed=0).fit(sim, method="mle")
    rng = np.random.default_rng(0)
    observed = rng.poisson(30.0, 39).astype(float)
    kw = {"periods": 4, "n_draws": 200}
    got = calendar_repeat_purchases(bg, observed, seed=3, **kw)
    std = repeat_purchases(bg, seed=3, **kw)
    eff = CalendarEffect().fit(observed, purchase_model=bg)
    mult = eff.multiplier_draws(np.concatenate([[0.0], std["period_end"].to_numpy()]), 200, seed=4)
    assert got.dims == std.dims and "calendar_effect" in got.attrs
    np.testing.assert_allclose(got.to_numpy(), std.to_numpy() * mult, rtol=1e-12)
    assert not np.allclose(mult, 1.0)


# ------------------------------------------------------------ spend effect and seasonality
def _retailer_fit(rate_season, spend_season, cut="2024-09-30", n=3000, seed=2):
    """A simulated seasonal retailer, BG/NBD + Gamma-Gamma (MLE) and both effects at ``cut``."""
    from crmkit.data.demo.seasonal_retailer import simulate_seasonal_retailer
    from crmkit.data.purchases import purchase_summary
    from crmkit.models.clv.models import GammaGamma
    from crmkit.models.clv.spend import fit_calendar_effects

    sim = simulate_seasonal_retailer(
        n, rate_season=rate_season, spend_season=spend_season, seed=seed
    )
    s = purchase_summary(sim.transactions, cut, time_unit="W", customer="customer_id", date="date")
    s = s[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    bg = BetaGeo(random_seed=0).fit(s, method="mle")
    gg = GammaGamma(random_seed=0).fit(s[s["frequency"] > 0], method="mle")
    rate, spend = fit_calendar_effects(sim.transactions, s, bg, gg, cut)
    return sim, s, bg, gg, rate, spend


@pytest.fixture(scope="module")
def seasonal_fit():
    return _retailer_fit((1.0,) * 10 + (1.6, 1.6), (1.0,) * 10 + (1.3, 1.3))


def _holiday_contrast(mult: np.ndarray) -> np.ndarray:
    """Draws of the Nov-Dec multiplier over the Jan-Oct one (geometric means)."""
    lg = np.log(mult)
    return np.exp(lg[:, 10:].mean(axis=1) - lg[:, :10].mean(axis=1))


def test_spend_effect_recovers_a_known_spend_seasonality(seasonal_fit):
    *_, rate, spend = seasonal_fit
    assert spend.params_["seasonal"] and rate.params_["seasonal"]
    for eff, truth in ((spend, 1.3), (rate, 1.6)):
        lo, hi = np.quantile(
            _holiday_contrast(eff.seasonal_multipliers(4000, seed=1)), [0.05, 0.95]
        )
        assert lo <= truth <= hi, (type(eff).__name__, lo, hi)
        assert hi / lo < 1.3  # an interval that says something
    # each of November and December on its own, relative to the year's mean month
    rel = spend.seasonal_multipliers(4000, seed=2)
    truth = seasonal_fit[0].relative("spend")
    for k in (10, 11):
        lo, hi = np.quantile(rel[:, k], [0.05, 0.95])
        assert lo <= truth[k] <= hi


def test_spend_effect_is_about_one_without_seasonality():
    *_, spend = _retailer_fit((1.0,) * 12, (1.0,) * 12, seed=4)
    rel = spend.seasonal_multipliers(4000, seed=1)
    # 12 months at once: each month's 98% interval holds 1 (about 80% of the time for all)
    lo, med, hi = np.quantile(rel, [0.01, 0.5, 0.99], axis=0)
    assert np.all(lo <= 1.0) and np.all(hi >= 1.0)
    assert np.all(np.abs(med - 1.0) < 0.07)
    lo, hi = np.quantile(_holiday_contrast(rel), [0.05, 0.95])
    assert lo <= 1.0 <= hi
    # and the forecast multiplier of the coming months is about one
    m = spend.multiplier_draws(np.arange(0, 14, 4.35), 2000, seed=3)
    assert np.all(np.abs(np.median(m, axis=0) - 1.0) < 0.06)
    assert abs(spend.summary()["level"]) < 0.05


def test_seasonal_forecast_puts_the_holiday_months_above_the_others(seasonal_fit):
    *_, rate, spend = seasonal_fit
    edges = np.array([0.0, 31, 61, 92]) / 7.0  # October, November, December 2024
    r = np.median(rate.multiplier_draws(edges, 2000, seed=1), axis=0)
    s = np.median(spend.multiplier_draws(edges, 2000, seed=1), axis=0)
    assert 1.35 < r[1] / r[0] < 1.85 and 1.35 < r[2] / r[0] < 1.85
    assert 1.15 < s[1] / s[0] < 1.45 and 1.15 < s[2] / s[0] < 1.45


def test_revenue_draws_include_the_spend_uncertainty(seasonal_fit):
    from crmkit.models.clv.models import repeat_purchases
    from crmkit.models.clv.spend import adjust_revenue

    _, s, bg, gg, rate, spend = seasonal_fit
    rev = repeat_purchases(bg, s, spend_model=gg, periods=3, n_draws=1000, seed=5)
    n = repeat_purchases(bg, s, periods=3, n_draws=1000, seed=5)
    rate_only = adjust_revenue(rev, rate, None, seed=7)
    both = adjust_revenue(rev, rate, spend, seed=7)
    assert "spend_effect" in both.attrs and "calendar_effect" in both.attrs
    # the same rate multipliers as the purchase draws' (joint, draw by draw)
    np.testing.assert_allclose(
        (rate_only / rev).to_numpy(), (rate.adjust(n, seed=7) / n).to_numpy(), rtol=1e-10
    )
    spread = {k: np.log(v.to_numpy()).std(axis=0) for k, v in (("r", rate_only), ("b", both))}
    assert np.all(spread["b"] > spread["r"])
    ratio = (both / rate_only).to_numpy()
    assert ratio.std(axis=0).min() > 0.02  # the spend multiplier varies draw by draw


def test_seasonality_needs_a_year_of_history_and_a_cutoff():
    data = pd.DataFrame({"T": np.linspace(1.0, 60.0, 500)})
    obs = np.random.default_rng(0).poisson(20.0, 60).astype(float)
    short = CalendarEffect().fit(obs[:40], purchase_model=_Stub(data), cutoff="2024-06-30")
    year = CalendarEffect().fit(obs, purchase_model=_Stub(data), cutoff="2024-06-30")
    no_day = CalendarEffect().fit(obs, purchase_model=_Stub(data))
    off = CalendarEffect(seasonality="none").fit(
        obs, purchase_model=_Stub(data), cutoff="2024-06-30"
    )
    assert year.params_["seasonal"] and "season" in year.idata_.posterior
    assert not any(e.params_["seasonal"] for e in (short, no_day, off))
    np.testing.assert_array_equal(short.seasonal_multipliers(10), 1.0)
    with pytest.raises(CrmkitError, match="seasonality must be one of"):
        CalendarEffect(seasonality="yearly").fit(obs, purchase_model=_Stub(data))


def test_seasonal_effect_survives_save_and_load(seasonal_fit, tmp_path):
    spend = seasonal_fit[-1]
    path = tmp_path / "spend.nc"
    spend.save(path)
    from crmkit.models.clv.spend import SpendEffect

    back = SpendEffect.load(path)
    edges = np.array([0.0, 4.0, 9.0])
    np.testing.assert_allclose(
        back.multiplier_draws(edges, 50, seed=1), spend.multiplier_draws(edges, 50, seed=1)
    )


def test_month_weights_split_periods_at_month_ends():
    from crmkit.models.clv.calendar import month_weights

    # time 0 = end of 2024-01-28; the week after it is Jan 29 .. Feb 4: 3 January days
    w = month_weights("2024-01-28", np.array([0.0, -1.0]), 1.0, 7.0)
    np.testing.assert_allclose(w[0, :2], [3 / 7, 4 / 7])
    np.testing.assert_allclose(w[1, 0], 1.0)  # Jan 22 .. 28
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_spend_effect_rejects_bad_input_in_one_line():
    from crmkit.models.clv.spend import SpendEffect

    n = np.full(10, 5.0)
    with pytest.raises(CrmkitError, match="at least 4 periods"):
        SpendEffect().fit(np.zeros(10), purchases=n, expected=n)
    with pytest.raises(CrmkitError, match="not negative"):
        SpendEffect().fit(-n, purchases=n, expected=n)
    with pytest.raises(CrmkitError, match="cv2"):
        SpendEffect().fit(n, purchases=n, expected=n, cv2=float("nan"))


def test_spend_effect_refuses_the_rate_effects_checks():
    from crmkit.models.clv.spend import SpendEffect

    effect = SpendEffect()
    for method in (effect.one_step_predictions, effect.add_log_likelihood):
        with pytest.raises(NotImplementedError, match="purchase-rate effect"):
            method()


# ------------------------------------------------ issue 17: which effect the data choose
def test_walk_prior_is_the_walks_share_whatever_the_number_of_half_lives():
    # 4 weeks of a tiny base: the data say almost nothing, so the posterior is the prior
    data = pd.DataFrame({"T": np.full(20, 30.0)})
    obs = np.array([1.0, 0.0, 1.0, 1.0])
    for hl in ((2.0,), (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)):
        new = CalendarEffect(half_lives=hl).fit(obs, purchase_model=_Stub(data))
        old = CalendarEffect(half_lives=hl, walk_prior=None).fit(obs, purchase_model=_Stub(data))
        assert abs(new.summary()["p_random_walk"] - 0.5) < 0.1
        assert abs(old.summary()["p_random_walk"] - 1 / (len(hl) + 1)) < 0.1
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(CrmkitError, match="walk_prior must be in"):
            CalendarEffect(walk_prior=bad).fit(obs, purchase_model=_Stub(data))


def test_rate_effect_on_a_constant_rate_is_sharper_than_the_walk_alone():
    n, cut = 12_000, 45.0
    first = np.floor(np.random.default_rng(6).uniform(0, 10, n) * 7) / 7  # day grid
    data = pd.DataFrame({"T": cut - first})
    times, _ = _simulate(n, first, cut, seed=4)  # no calendar effect at all
    obs = _weekly(times, cut, 45)
    new = CalendarEffect().fit(obs, purchase_model=_Stub(data))
    walk = CalendarEffect(half_lives=()).fit(obs, purchase_model=_Stub(data))  # before #17
    edges = np.array([0.0, 13.0, 26.0, 52.0])  # quarters, then half a year
    lo, hi = np.quantile(new.multiplier_draws(edges, 4000, seed=1), [0.05, 0.95], axis=0)
    wlo, whi = np.quantile(walk.multiplier_draws(edges, 4000, seed=1), [0.05, 0.95], axis=0)
    assert np.all(lo <= 1.0) and np.all(hi >= 1.0)
    # the walk's spread grows with the horizon; the data prefer mean reversion here
    assert np.all((hi - lo)[1:] < 0.7 * (whi - wlo)[1:])
    assert new.summary()["p_random_walk"] < 0.5
    assert walk.summary()["p_random_walk"] == pytest.approx(1.0)


def test_spend_effect_without_a_season_is_none_and_adds_no_spread():
    sim, s, bg, gg, _, spend = _retailer_fit((1.0,) * 12, (1.0,) * 12, seed=4)
    from crmkit.models.clv.spend import SpendEffect, fit_calendar_effects

    _, always = fit_calendar_effects(
        sim.transactions, s, bg, gg, "2024-09-30", spend=SpendEffect(none_prior=0.0)
    )
    assert spend.summary()["p_none"] > 0.8 and always.summary()["p_none"] == 0.0
    assert "P(no spend effect)" in spend.describe()
    edges = np.array([0.0, 4.35, 8.7, 13.0])
    width = {}
    for k, eff in (("new", spend), ("old", always)):
        lo, hi = np.quantile(eff.multiplier_draws(edges, 4000, seed=3), [0.05, 0.95], axis=0)
        assert np.all(lo <= 1.0) and np.all(hi >= 1.0)
        width[k] = hi - lo
    assert np.all(width["new"] < 0.5 * width["old"])


def test_spend_effect_with_a_basket_season_outweighs_no_effect(seasonal_fit):
    *_, rate, spend = seasonal_fit
    assert spend.summary()["p_none"] < 0.01  # the +30% Nov-Dec basket is found
    assert rate.summary()["p_none"] == 0.0  # the rate effect has no "none" model by default
    with pytest.raises(CrmkitError, match="none_prior must be in"):
        CalendarEffect(none_prior=1.0).fit(
            np.ones(8), purchase_model=_Stub(pd.DataFrame({"T": np.full(20, 30.0)}))
        )


def test_season_full_shrinks_months_seen_once_and_still_finds_the_season(seasonal_fit):
    from crmkit.models.clv.calendar import repeat_counts_by_period

    sim, s, bg, *_ = seasonal_fit
    cut = "2024-09-30"  # 21 months: Jan-Sep seen twice, Oct-Dec once
    n = int(np.floor(s["T"].max()))
    past = repeat_counts_by_period(sim.transactions, s["customer_id"], cut, n)
    kw = {"purchase_model": bg, "summary": s, "cutoff": cut}
    full = CalendarEffect().fit(past, **kw)
    shrunk = CalendarEffect(season_full=2.0).fit(past, **kw)
    c_full = np.median(_holiday_contrast(full.seasonal_multipliers(4000, seed=1)))
    c_shrunk = np.median(_holiday_contrast(shrunk.seasonal_multipliers(4000, seed=1)))
    assert 1.0 < c_shrunk < c_full  # pulled towards none, but the season is still there
    assert c_shrunk > 1.2


def test_no_effect_draws_of_the_rate_effect_predict_a_log_ratio_of_zero():
    data = pd.DataFrame({"T": np.full(400, 30.0)})
    obs = np.random.default_rng(3).poisson(expected_by_period("bgnbd", TRUTH, data["T"], 20, 1.0))
    eff = CalendarEffect(none_prior=0.9).fit(obs.astype(float), purchase_model=_Stub(data))
    one = eff.one_step_predictions()
    none = eff.idata_.posterior["sigma"].to_numpy().ravel() == 0.0
    assert 0.5 < none.mean() and eff.summary()["p_none"] > 0.5  # flat data: "none" is likely
    np.testing.assert_array_equal(one["mean"][none], 0.0)  # multiplier 1, nothing learnt
    assert np.all(one["mean"][~none].std(axis=1) > 0.0)
    assert "P(no rate effect)" in eff.describe()
