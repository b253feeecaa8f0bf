"""The marketing-mix model on the one model contract.

Settings stored unmodified, ``fit`` returning ``self``, ``idata_`` groups and dimensions,
``params_`` / ``method_`` / ``diagnostics_`` in the one schema, the not-fitted error, and
save / load through :class:`crmkit.models.base.ModelContract`.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest

from crmkit.errors import CrmkitError, NotFittedError
from crmkit.models.base import ModelContract
from crmkit.models.inference.diagnostics import EXTRA_KEYS, KEYS
from crmkit.models.mmm import scenario
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm
from crmkit.models.persist import load_idata, save_idata


@pytest.fixture(scope="module")
def map_fit() -> tuple[MarketingMixModel, pd.DataFrame, MarketingMixModel]:
    """A MAP fit on 40 simulated weeks, what ``fit`` returned, and the data."""
    df, _ = simulate_mmm(40, seed=6)
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, l_max=6, random_seed=2)
    returned = mmm.fit(df, method="map", draws=60)
    return mmm, df, returned


def _given(**settings) -> tuple[MarketingMixModel, pd.DataFrame]:
    """A model with draws set by hand: Hill saturation, a control and an event, own names."""
    df, _ = simulate_mmm(30, seed=2)
    df = df.rename(columns={"date": "week", "y": "sales"})
    df["promo"] = 0.0
    df.loc[[5, 6], "promo"] = 1.0
    df["price"] = np.linspace(10.0, 20.0, 30)
    rng = np.random.default_rng(1)
    n = 8
    post = {
        "intercept": rng.normal(0.5, 0.01, (2, n)),
        "control": rng.normal(0.1, 0.01, (2, n, 1)),
        "event": rng.normal(0.2, 0.01, (2, n, 1)),
        "decay": rng.uniform(0.2, 0.5, (2, n, 2)),
        "half": rng.uniform(0.5, 1.0, (2, n, 2)),
        "slope": rng.uniform(1.0, 2.0, (2, n, 2)),
        "beta": rng.uniform(0.1, 0.3, (2, n, 2)),
        "sigma": rng.uniform(0.01, 0.05, (2, n)),
    }
    mmm = MarketingMixModel(
        ["x1", "x2"],
        date_column="week",
        target="sales",
        controls=["price"],
        events=["promo"],
        saturation="hill",
        l_max=5,
        yearly_order=0,
        trend=False,
        **settings,
    )
    return mmm.set_posterior(df, post), df


def _schema_ok(diag: dict) -> None:
    """Assert a diagnostics dict has exactly the schema's keys plus allowed extras."""
    assert set(KEYS) <= set(diag), set(KEYS) - set(diag)
    assert set(diag) - set(KEYS) <= set(EXTRA_KEYS), set(diag) - set(KEYS)


def test_is_a_model_contract_and_get_params_round_trips():
    config = {"decay": {"dist": "Beta", "alpha": 2.0, "beta": 2.0}}
    sampler = {"draws": 50, "chains": 1}
    mmm = MarketingMixModel(
        ["x1", "x2"], controls=["price"], model_config=config, sampler_config=sampler
    )
    assert isinstance(mmm, ModelContract)
    params = mmm.get_params()
    # stored unmodified: the very objects given, merged priors only in the property
    assert params["model_config"] is config and params["sampler_config"] is sampler
    assert params["channels"] == ["x1", "x2"] and params["controls"] == ["price"]
    assert mmm.priors["decay"] == config["decay"] and mmm.priors["lam"]["dist"] == "Gamma"
    assert mmm.sampler_settings["draws"] == 50 and mmm.sampler_settings["target_accept"] == 0.9
    again = MarketingMixModel(**params)
    assert again.get_params() == params
    assert set(params) == set(MarketingMixModel._init_param_names())
    assert again.set_params(l_max=4) is again and again.l_max == 4
    with pytest.raises(CrmkitError, match="no setting"):
        again.set_params(lmax=4)


def test_not_fitted_error_before_fit(tmp_path):
    mmm = MarketingMixModel(["x1", "x2"])
    assert not mmm.is_fitted
    for call in (
        mmm.roas,
        mmm.draws,
        mmm.contributions,
        mmm.fitted,
        lambda: mmm.save(tmp_path / "m.nc"),
        lambda: scenario.baseline_plan(mmm, 4),
    ):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


def test_fit_returns_self_with_idata_groups_and_named_dims(map_fit):
    mmm, df, returned = map_fit
    assert returned is mmm and mmm.is_fitted and mmm.method_ == "map"
    idata = mmm.idata_
    assert isinstance(idata, az.InferenceData)
    assert {"posterior", "observed_data", "log_likelihood"} <= set(idata.groups())
    post = idata.posterior
    assert set(post.data_vars) == set(mmm.param_names)
    assert post["intercept"].dims == ("chain", "draw")
    assert post["decay"].dims == ("chain", "draw", "channel")
    assert post["fourier"].dims == ("chain", "draw", "fourier_mode")
    assert list(post["fourier_mode"].values) == ["sin1", "cos1"]
    obs = idata.observed_data["y"]
    assert obs.dims == ("date",)
    np.testing.assert_array_equal(obs.values, df["y"].to_numpy(float))
    np.testing.assert_array_equal(obs["date"].values, pd.to_datetime(df["date"]).values)
    ll = idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "date") and ll.shape == (1, 60, 40)


def test_log_likelihood_is_the_models_own_in_outcome_units(map_fit):
    mmm, df, _ = map_fit
    model = mmm.build_model(df)
    ref = pm.compute_log_likelihood(
        mmm.idata_.copy(),
        var_names=["y"],
        model=model,
        extend_inferencedata=False,
        progressbar=False,
    )
    # the PyMC model is on y / y_scale: the density in outcome units is lower by log(y_scale)
    np.testing.assert_allclose(
        mmm.idata_.log_likelihood["y"].values,
        ref["y"].values - np.log(mmm.scales_["y"]),
        rtol=1e-9,
        atol=1e-9,
    )


def test_params_are_posterior_means_by_label(map_fit):
    mmm, _, _ = map_fit
    p = mmm.params_
    post = mmm.idata_.posterior
    assert p["sigma"] == pytest.approx(float(post["sigma"].mean()))
    assert {"decay[x1]", "decay[x2]", "fourier[sin1]", "fourier[cos1]"} <= set(p)
    assert p["beta[x2]"] == pytest.approx(float(post["beta"].sel(channel="x2").mean()))
    n_values = sum(int(np.prod(post[n].shape[2:])) for n in mmm.param_names)
    assert len(p) == n_values and all(isinstance(v, float) for v in p.values())


def test_diagnostics_keys_are_the_one_schema(map_fit):
    mmm, _, _ = map_fit
    d = mmm.diagnostics_
    _schema_ok(d)
    assert d["method"] == "map" and d["ok"] and d["message"] is None
    assert d["r_hat_max"] is None and d["ess_bulk_min"] is None and d["divergences"] is None
    assert d["converged"] and d["hessian_positive_definite"] and d["seconds"] > 0
    given, _ = _given()
    _schema_ok(given.diagnostics_)
    assert given.method_ == "given" and given.diagnostics_["ok"]


def test_set_posterior_builds_idata(tmp_path):
    mmm, df = _given()
    idata = mmm.idata_
    assert {"posterior", "observed_data", "log_likelihood"} <= set(idata.groups())
    assert idata.posterior["control"].dims == ("chain", "draw", "control_name")
    assert idata.posterior["event"].dims == ("chain", "draw", "event_name")
    assert idata.log_likelihood["y"].shape == (2, 8, 30)
    np.testing.assert_array_equal(idata.observed_data["y"].values, df["sales"].to_numpy())
    assert mmm.params_["control[price]"] == pytest.approx(float(idata.posterior["control"].mean()))


def _predictions(mmm: MarketingMixModel) -> dict[str, pd.DataFrame]:
    """Everything a fitted model predicts, for comparing a model with its reloaded copy."""
    plan = scenario.baseline_plan(mmm, 6)
    return {
        "roas": mmm.roas(),
        "fitted": mmm.fitted(),
        "curves": mmm.response_curves(n_points=5),
        "summary": mmm.contribution_summary(),
        "plan": scenario.predict_plan(mmm, plan, n_draws=20).to_pandas(),
    }


@pytest.mark.parametrize("which", ["map", "given"])
def test_save_load_round_trip(which, map_fit, tmp_path):
    if which == "map":
        mmm = map_fit[0]
    else:
        mmm = _given(model_config={"sigma": {"dist": "HalfNormal", "sigma": 0.2}})[0]
    path = mmm.save(tmp_path / "mmm.nc")
    back = MarketingMixModel.load(path)
    assert back.get_params() == mmm.get_params()
    pd.testing.assert_frame_equal(back.data_, mmm.data_)
    assert back.params_ == mmm.params_ and back.method_ == mmm.method_
    assert back.diagnostics_ == mmm.diagnostics_
    assert back.scales_["y"] == mmm.scales_["y"] and back.scales_["t0"] == mmm.scales_["t0"]
    np.testing.assert_array_equal(back.scales_["x"], mmm.scales_["x"])
    np.testing.assert_array_equal(back.scales_["controls"], mmm.scales_["controls"])
    assert set(back.idata_.groups()) >= {"posterior", "observed_data", "log_likelihood"}
    got, want = _predictions(back), _predictions(mmm)
    for key in want:
        pd.testing.assert_frame_equal(got[key], want[key], obj=key)


def test_load_refuses_another_models_file_or_another_format(map_fit, tmp_path):
    mmm = map_fit[0]

    class OtherModel(MarketingMixModel):
        """Another model class with the same settings."""

    other = OtherModel(**mmm.get_params())
    other.set_posterior(mmm.data_, {k: mmm.idata_.posterior[k].values for k in mmm.param_names})
    path = other.save(tmp_path / "other.nc")
    with pytest.raises(CrmkitError, match="'OtherModel' fit, not a MarketingMixModel"):
        MarketingMixModel.load(path)
    plain = tmp_path / "plain.nc"
    az.from_dict(posterior={"a": np.zeros((1, 3))}).to_netcdf(str(plain))
    with pytest.raises(CrmkitError, match="not a MarketingMixModel"):
        MarketingMixModel.load(plain)
    # a file of another format version
    idata, frame, attrs = load_idata(mmm.save(tmp_path / "mmm.nc"))
    newer = save_idata(tmp_path / "newer.nc", idata, frame, {**attrs, "crmkit_format": "99"})
    with pytest.raises(CrmkitError, match="model format 99"):
        MarketingMixModel.load(newer)
