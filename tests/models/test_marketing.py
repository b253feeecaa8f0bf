"""Marketing-mix model: transforms by hand, validation, recovery, scenarios, allocation."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytest

from crmkit.errors import CrmkitError, ValidationError
from crmkit.models import marketing_plan as plan
from crmkit.models.marketing import (
    MarketingMixModel,
    fourier_terms,
    geometric_adstock,
    hill_saturation,
    logistic_saturation,
    mmm_frame,
    simulate_mmm,
)


# ---------------------------------------------------------------------- transforms
def test_geometric_adstock_hand_values():
    np.testing.assert_allclose(geometric_adstock([1.0, 0, 0, 0], 0.5), [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(geometric_adstock([1.0, 2.0, 0.0], 0.5), [1, 2.5, 1.25])
    np.testing.assert_allclose(geometric_adstock([1.0, 0, 0], 0.5, l_max=2), [1, 0.5, 0])
    x = np.array([[1.0, 10.0], [0.0, 0.0]])
    np.testing.assert_allclose(geometric_adstock(x, np.array([0.2, 0.9])), [[1, 10], [0.2, 9]])


def test_geometric_adstock_batched_decay():
    x = np.array([[1.0, 1.0], [0.0, 1.0]])
    out = geometric_adstock(x, np.array([[0.5, 0.0], [0.1, 1.0]]), l_max=3)
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out[0], [[1, 1], [0.5, 1]])
    np.testing.assert_allclose(out[1], [[1, 1], [0.1, 2]])


def test_saturation_hand_values():
    assert logistic_saturation(0.0, 3.0) == 0.0
    assert logistic_saturation(1.0, 1.0) == pytest.approx((1 - math.exp(-1)) / (1 + math.exp(-1)))
    assert logistic_saturation(100.0, 1.0) == pytest.approx(1.0)
    assert hill_saturation(5.0, 5.0, 1.7) == pytest.approx(0.5)
    assert hill_saturation(2.0, 1.0, 2.0) == pytest.approx(4 / 5)
    assert hill_saturation(0.0, 1.0, 2.0) == 0.0
    assert hill_saturation(3.0, 1.0, 1.0) == pytest.approx(3 / 4)


def test_fourier_terms_shape_and_values():
    f = fourier_terms(pd.to_datetime(["2025-01-01", "2025-07-02"]), 2)
    assert f.shape == (2, 4)
    ang = 2 * np.pi * 1 / 365.25
    assert f[0, 0] == pytest.approx(np.sin(ang)) and f[0, 1] == pytest.approx(np.cos(ang))


# ---------------------------------------------------------------------- data
def test_mmm_frame_counts_new_deals_per_week():
    spend = pd.DataFrame(
        {
            "channel": ["a", "a", "b"],
            "week_start": pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-06"]),
            "spend": [10.0, 20.0, 5.0],
        }
    )
    deals = pd.DataFrame(
        {
            "created_at": pd.to_datetime(
                ["2025-01-06 10:00", "2025-01-12 00:00", "2025-01-13 00:00", "2025-03-01 00:00"]
            ),
            "amount": [1.0, 2.0, 4.0, 8.0],
        }
    )
    out = mmm_frame(spend, deals, target="new_deals")
    assert out["date"].tolist() == list(pd.to_datetime(["2025-01-06", "2025-01-13"]))
    assert out["a"].tolist() == [10.0, 20.0] and out["b"].tolist() == [5.0, 0.0]
    assert out["y"].tolist() == [2.0, 1.0]
    assert mmm_frame(spend, deals, target="new_deal_value")["y"].tolist() == [3.0, 4.0]
    with pytest.raises(CrmkitError):
        mmm_frame(spend, deals, target="clicks")


def test_validation_names_row_and_field():
    df, _ = simulate_mmm(20, seed=0)
    bad = df.copy()
    bad.loc[3, "x1"] = -5.0
    bad.loc[5, "y"] = np.nan
    with pytest.raises(ValidationError) as exc:
        MarketingMixModel(["x1", "x2"]).build_model(bad)
    fields = {(e.row, e.field) for e in exc.value.errors}
    assert (4, "x1") in fields and (6, "y") in fields
    gap = df.drop(index=7)
    with pytest.raises(ValidationError, match="consecutive"):
        MarketingMixModel(["x1", "x2"]).build_model(gap)
    with pytest.raises(ValidationError, match="missing column"):
        MarketingMixModel(["x1", "x9"]).build_model(df)
    with pytest.raises(CrmkitError, match="unknown prior"):
        _ = MarketingMixModel(["x1"], model_config={"nope": {}}).priors


def test_unfitted_model_raises():
    with pytest.raises(CrmkitError, match="not fitted"):
        MarketingMixModel(["x1"]).roas()


# ---------------------------------------------------------------------- ROAS prior
def test_roas_parametrisation_gives_each_channel_its_roas():
    """With effect_prior="roas", beta is such that contribution / spend equals roas."""
    df, _ = simulate_mmm(40, seed=2)
    config = {"roas": {"dist": "LogNormal", "mu": [-3.0, -4.0], "sigma": [0.5, 0.5]}}
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, effect_prior="roas", model_config=config)
    model = mmm.build_model(df)
    assert "roas" in mmm.param_names and "beta" in mmm.param_names
    np.testing.assert_allclose(model["roas"].owner.inputs[-2].eval(), [-3.0, -4.0])  # mu
    free = [n for n in mmm.param_names if n != "beta"]
    fn = pytensor.function([model[n] for n in free], model["beta"], on_unused_input="ignore")
    p = {
        "intercept": np.array([0.5]),
        "trend": np.array([0.0]),
        "fourier": np.zeros((1, 2)),
        "decay": np.array([[0.3, 0.6]]),
        "lam": np.array([[2.0, 3.0]]),
        "roas": np.array([[0.05, 0.02]]),
        "sigma": np.array([0.1]),
    }
    p["beta"] = fn(*[p[n][0] for n in free])[None]
    mmm.set_posterior(df, {k: v[None] for k, v in p.items()})
    r = mmm.roas(n_draws=None).set_index("channel")["roas"]
    np.testing.assert_allclose(r.to_numpy(), [0.05, 0.02], rtol=1e-6)
    with pytest.raises(ValidationError, match="effect_prior"):
        MarketingMixModel(["x1", "x2"], effect_prior="lift").build_model(df)


def test_default_roas_prior_is_centred_on_a_tenth_of_outcome_per_spend():
    df, _ = simulate_mmm(30, seed=1)
    model = MarketingMixModel(["x1", "x2"], effect_prior="roas").build_model(df)
    mu = model["roas"].owner.inputs[-2].eval()
    expected = np.log(0.1 * df["y"].sum() / df[["x1", "x2"]].to_numpy().sum())
    np.testing.assert_allclose(mu, expected)


# ---------------------------------------------------------------------- a short fit
@pytest.fixture(scope="module")
def fitted():
    """A short NUTS fit on 2 years of data simulated from known adstock and saturation."""
    df, truth = simulate_mmm(
        104, decay=[0.3, 0.6], lam=[2.0, 3.0], beta=[300.0, 200.0], noise=30.0, seed=7
    )
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, random_seed=7)
    mmm.fit(df, draws=300, tune=400, chains=2)
    return mmm, df, truth


def test_numpy_contributions_match_the_pymc_model(fitted):
    mmm, df, _ = fitted
    model = mmm.build_model(df)
    rvs = [model[n] for n in mmm.param_names]
    fn = pytensor.function(rvs, model["channel_contribution_scaled"], on_unused_input="ignore")
    p = mmm.draws(3)
    for s in range(3):
        expected = fn(*[p[n][s] for n in mmm.param_names]) * mmm.scales_["y"]
        got = mmm.channel_response(
            df[["x1", "x2"]].to_numpy(float), {k: v[s : s + 1] for k, v in p.items()}
        )
        np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-6)


def test_recovers_roas_and_decay(fitted):
    mmm, _, truth = fitted
    roas = mmm.roas(ci=0.98).set_index("channel")  # one data set: 98% should hold the truth
    for ch in ("x1", "x2"):
        assert roas.loc[ch, "roas_lo"] <= truth["roas"][ch] <= roas.loc[ch, "roas_hi"], ch
    decay = mmm.idata_.posterior["decay"].quantile([0.01, 0.99], ("chain", "draw")).values
    for j, d in enumerate(truth["decay"]):
        assert decay[0, j] <= d <= decay[1, j]
    # total media contribution close to the truth
    contrib = mmm.contributions(200).sum(("date", "channel"))
    assert (
        float(contrib.quantile(0.02))
        <= truth["contributions"].sum()
        <= float(contrib.quantile(0.98))
    )
    assert mmm.diagnostics_["divergences"] < 10


def test_marginal_roas_below_average_roas_under_saturation(fitted):
    mmm, _, _ = fitted
    r = mmm.roas()
    assert (r["mroas"] < r["roas"]).all()  # concave response: the next dollar earns less
    assert (r["roas_lo"] <= r["roas"]).all() and (r["roas"] <= r["roas_hi"]).all()


def test_response_curves_monotone_from_zero(fitted):
    mmm, _, _ = fitted
    rc = mmm.response_curves(n_points=10)
    for _, g in rc.groupby("channel"):
        assert g["mean"].iloc[0] == 0.0
        assert g["mean"].is_monotonic_increasing
        assert (g["lo"] <= g["mean"]).all() and (g["mean"] <= g["hi"]).all()


def test_contribution_summary_filters(fitted):
    mmm, df, _ = fitted
    s = mmm.contribution_summary(
        channels=["x2"], start=df["date"].iloc[10], end=df["date"].iloc[19]
    )
    assert len(s) == 10 and set(s["channel"]) == {"x2"}
    assert np.allclose(s["spend"], df["x2"].iloc[10:20])
    with pytest.raises(CrmkitError, match="unknown channel"):
        mmm.contribution_summary(channels=["tv"])


def test_scenario_sanity(fitted):
    mmm, _, _ = fitted
    base = plan.baseline_plan(mmm, 8)
    same = plan.scenario(mmm, base, base, n_draws=100)
    assert np.allclose(same["difference"].values, 0.0)
    more = base.copy()
    more["x1"] *= 2
    sc = plan.scenario(mmm, more, base, n_draws=100)
    assert (sc["difference"].values >= -1e-9).all()  # more spend never lowers the mean
    assert sc["total"]["difference_lo"].iloc[0] > 0
    none = base.assign(x1=0.0, x2=0.0)
    assert plan.scenario(mmm, none, base, n_draws=100)["total"]["difference_hi"].iloc[0] < 0
    w = sc["weekly"]
    assert (w["plan_lo"] <= w["plan_mean"]).all() and (w["plan_mean"] <= w["plan_hi"]).all()
    bad = base.assign(x1=-1.0)
    with pytest.raises(ValidationError, match="x1"):
        plan.scenario(mmm, bad)


def test_marketing_arrivals_sum_weeks_by_month(fitted):
    mmm, _, _ = fitted
    base = plan.baseline_plan(mmm, 9)
    more = base.assign(x2=base["x2"] * 1.5)
    extra = plan.marketing_arrivals(mmm, more, base, n_draws=50)
    diff = plan.scenario(mmm, more, base, n_draws=50)["difference"]
    assert extra.dims == ("sample", "period")
    np.testing.assert_allclose(extra.sum("period").values, diff.sum("date").values)
    months = pd.DatetimeIndex(base["date"]).to_period("M").astype(str).unique().tolist()
    assert list(extra["period"].values) == sorted(months)


def test_optimize_budget_sanity(fitted):
    mmm, _, _ = fitted
    budget = 3000.0
    out = plan.optimize_budget(mmm, budget, n_draws=200)
    alloc = out["allocation"]
    assert alloc["optimal"].sum() == pytest.approx(budget, rel=1e-4)
    assert out["optimal_draws"].mean() >= out["current_draws"].mean() - 1e-6
    assert out["gain"]["lo"] <= out["gain"]["mean"] <= out["gain"]["hi"]
    capped = plan.optimize_budget(mmm, budget, bounds={"x1": (0.0, 500.0)}, n_draws=200)
    assert capped["allocation"].set_index("channel").loc["x1", "optimal"] <= 500.0 + 1e-6
    with pytest.raises(ValidationError):
        plan.optimize_budget(mmm, -1.0)
    with pytest.raises(CrmkitError, match="cannot add up"):
        plan.optimize_budget(mmm, budget, bounds={"x1": (0, 10), "x2": (0, 10)})


def test_events_and_controls_enter_model_and_baseline():
    df, _ = simulate_mmm(30, seed=2)
    df["promo"] = 0.0
    df.loc[[5, 6], "promo"] = 1.0
    df["price"] = np.linspace(10.0, 20.0, 30)
    mmm = MarketingMixModel(["x1", "x2"], events=["promo"], controls=["price"], yearly_order=0)
    model = mmm.build_model(df)
    assert model["event"].eval().shape == (1,) and model["control"].eval().shape == (1,)
    post = {
        "intercept": np.zeros((1, 2)),
        "trend": np.zeros((1, 2)),
        "control": np.array([[[0.0], [0.5]]]),
        "event": np.array([[[0.2], [0.0]]]),
        "decay": np.full((1, 2, 2), 0.5),
        "lam": np.ones((1, 2, 2)),
        "beta": np.zeros((1, 2, 2)),
        "sigma": np.full((1, 2), 0.1),
    }
    mmm.set_posterior(df, post)
    base = mmm.baseline(mmm.design_, mmm.draws())
    y_scale = mmm.scales_["y"]
    # draw 0: the event adds 0.2 * y_scale in weeks 5 and 6 only
    np.testing.assert_allclose(base[0], np.where(df["promo"] > 0, 0.2 * y_scale, 0.0))
    # draw 1: the control adds 0.5 * price / max(price) * y_scale
    np.testing.assert_allclose(base[1], 0.5 * df["price"] / 20.0 * y_scale)
    # a plan without the event / control columns takes them as 0
    from crmkit.models import marketing_plan as mp

    future = mp.predict_plan(mmm, mp.baseline_plan(mmm, 3), noise=False)
    np.testing.assert_allclose(future.values, 0.0, atol=1e-9)


def test_save_and_load_round_trip(tmp_path):
    df, _ = simulate_mmm(20, seed=4)
    rng = np.random.default_rng(0)
    post = {
        "intercept": rng.normal(0.5, 0.01, (1, 10)),
        "trend": rng.normal(0.0, 0.01, (1, 10)),
        "fourier": rng.normal(0.0, 0.01, (1, 10, 2)),
        "decay": rng.uniform(0.2, 0.5, (1, 10, 2)),
        "lam": rng.uniform(1, 3, (1, 10, 2)),
        "beta": rng.uniform(0.1, 0.3, (1, 10, 2)),
        "sigma": rng.uniform(0.01, 0.05, (1, 10)),
    }
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, l_max=6).set_posterior(df, post)
    path = mmm.save(tmp_path / "mmm.nc")
    back = MarketingMixModel.load(path)
    assert back.l_max == 6 and back.channels == ["x1", "x2"]
    pd.testing.assert_frame_equal(back.roas(), mmm.roas())
    other = tmp_path / "other.nc"
    az.from_dict(posterior={"a": np.zeros((1, 3))}).to_netcdf(str(other))
    with pytest.raises(CrmkitError, match="does not hold"):
        MarketingMixModel.load(other)


def test_custom_column_names():
    df, _ = simulate_mmm(12, seed=5)
    df = df.rename(columns={"date": "date_week", "y": "sales"})
    post = {
        "intercept": np.full((1, 4), 0.5),
        "decay": np.full((1, 4, 2), 0.3),
        "lam": np.full((1, 4, 2), 2.0),
        "beta": np.full((1, 4, 2), 0.1),
        "sigma": np.full((1, 4), 0.05),
    }
    mmm = MarketingMixModel(
        ["x1", "x2"], date_column="date_week", target="sales", trend=False, yearly_order=0
    ).set_posterior(df, post)
    c = mmm.contributions()
    assert c.dims == ("sample", "date", "channel") and c.sizes["date"] == 12
    s = mmm.contribution_summary()
    assert s["date"].nunique() == 12 and s["spend"].notna().all()
    assert mmm.fitted()["actual"].tolist() == df["sales"].tolist()
