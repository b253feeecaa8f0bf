"""Marketing-mix model: validation, the PyMC model, saving; scenarios and budgets on a fit.

The transforms, data frames, fitting and posterior computations are tested in
``test_marketing_transforms.py``, ``test_marketing_data.py``, ``test_marketing_fit.py`` and
``test_marketing_posterior.py``; the fitted model ``fitted`` is in ``conftest.py``.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytest

from crmkit.errors import CrmkitError, ValidationError
from crmkit.models.mmm import data as marketing_data
from crmkit.models.mmm import model as marketing
from crmkit.models.mmm import transforms as marketing_transforms
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm


def test_public_names_of_the_split_modules_are_importable_from_marketing():
    # the names other modules, notebooks and benchmarks import from crmkit.models.mmm.model
    homes = {
        "mmm_frame": marketing_data,
        "simulate_mmm": marketing_data,
        "YEAR_DAYS": marketing_transforms,
        "fourier_terms": marketing_transforms,
        "geometric_adstock": marketing_transforms,
        "hill_saturation": marketing_transforms,
        "logistic_saturation": marketing_transforms,
    }
    for name, module in homes.items():
        assert getattr(marketing, name) is getattr(module, name), name
        assert name in marketing.__all__
    assert "MarketingMixModel" in marketing.__all__


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
    from crmkit.models.mmm import scenario

    future = scenario.predict_plan(mmm, scenario.baseline_plan(mmm, 3), noise=False)
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
    with pytest.raises(CrmkitError, match="not a MarketingMixModel"):
        MarketingMixModel.load(other)


# -- lift tests: a measured incremental outcome as one more likelihood term -----------------


def _lift_window(df: pd.DataFrame, first: int, last: int) -> tuple[str, str]:
    """ISO start and end days of weeks ``first..last`` (inclusive)."""
    return str(df["date"].iloc[first].date()), str(df["date"].iloc[last].date())


def test_lift_test_pulls_the_channel_contribution_in_its_weeks_to_the_measurement(tmp_path):
    df, truth = simulate_mmm(104, decay=[0.3, 0.5], lam=[2.0, 2.0], beta=[200.0, 150.0], seed=3)
    ch = truth["channels"]
    true = float(truth["contributions"][20:33, 0].sum())
    start, end = _lift_window(df, 20, 32)
    # a measurement twice the truth, very precise: the fit must follow it in those weeks
    tests = [{"channel": ch[0], "start": start, "end": end, "delta": 2 * true, "sd": 0.02 * true}]
    kw = {"yearly_order": 1, "l_max": 6}
    free = MarketingMixModel(ch, **kw).fit(df, method="map", draws=200)
    lifted = MarketingMixModel(ch, lift_tests=tests, **kw).fit(df, method="map", draws=200)

    def window(m: MarketingMixModel) -> float:
        c = m.contributions(n_draws=200).sel(channel=ch[0]).isel(date=slice(20, 33))
        return float(c.sum("date").mean())

    assert window(free) == pytest.approx(true, rel=0.2)
    assert window(lifted) == pytest.approx(2 * true, rel=0.05)
    path = lifted.save(tmp_path / "mmm.nc")
    assert MarketingMixModel.load(path).lift_tests == tests


def test_lift_test_errors_name_the_test_and_field_and_change_nothing():
    df, _ = simulate_mmm(30, seed=0)
    start, end = _lift_window(df, 2, 5)
    good = {"channel": "x1", "start": start, "end": end, "delta": 10.0, "sd": 2.0}
    bad = [
        good,
        {**good, "channel": "tv"},
        {**good, "start": end, "end": start},
        {**good, "start": "2040-01-01", "end": "2040-03-01"},
        {**good, "sd": 0.0},
        {**good, "delta": "lots"},
        {"channel": "x1"},
    ]
    with pytest.raises(ValidationError) as exc:
        MarketingMixModel(["x1", "x2"], lift_tests=bad).build_model(df)
    fields = {(e.row, e.field) for e in exc.value.errors}
    assert fields == {
        (2, "lift_tests.channel"),
        (3, "lift_tests.end"),
        (4, "lift_tests.start"),
        (5, "lift_tests.sd"),
        (6, "lift_tests.delta"),
        (7, "lift_tests"),
    }
    assert "\n" not in str(exc.value) and "'tv' is not one of" in str(exc.value)
    assert "no week of the data in 2040-01-01..2040-03-01" in str(exc.value)
