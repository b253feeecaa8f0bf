"""Tests of crmkit.models.clv.calendar: residual bookkeeping, the random walk, the API."""

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
