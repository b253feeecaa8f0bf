"""The pipeline and new-business models on the one model contract.

Settings stored as given, ``fit`` returning ``self``, ``idata_`` groups and dims, the one
diagnostics schema, the not-fitted error, and save / load round trips that predict exactly
what the fitted models did.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError, NotFittedError
from crmkit.models.inference.diagnostics import EXTRA_KEYS, KEYS
from crmkit.models.pipeline.data import GROUPS, deal_frame
from crmkit.models.pipeline.model import DEFAULT_PRIORS, PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel
from tests.sim_deals import simulate

AS_OF = "2024-04-30"
FIRST = 2024 * 12 + 4  # May 2024, the month after the cut-off


@pytest.fixture(scope="module")
def sim() -> dict[str, pd.DataFrame]:
    return simulate(n_months=28, arrivals=25, seed=4)


@pytest.fixture(scope="module")
def pipe(sim) -> PipelineModel:
    model = PipelineModel(draws=60, chains=2, seed=3)
    out = model.fit(
        deal_frame(sim["deals"], sim["accounts"]),
        sim["deal_history"],
        as_of=AS_OF,
        stages=sim["stages"],
    )
    assert out is model
    return model


@pytest.fixture(scope="module")
def nb(sim) -> NewBusinessModel:
    model = NewBusinessModel(draws=60, chains=2, seed=3)
    out = model.fit(deal_frame(sim["deals"], sim["accounts"]), sim["deal_history"], as_of=AS_OF)
    assert out is model
    return model


def _schema_ok(d: dict) -> None:
    assert set(KEYS) <= set(d), set(KEYS) - set(d)
    assert set(d) - set(KEYS) <= set(EXTRA_KEYS), set(d) - set(KEYS)
    assert (d["message"] is None) == d["ok"]
    json.dumps(d)


@pytest.mark.parametrize("cls", [PipelineModel, NewBusinessModel])
def test_settings_are_stored_as_given(cls) -> None:
    m = cls(window_months=18, method="nuts", draws=10)
    params = m.get_params()
    assert cls(**params).get_params() == params
    assert params["method"] == "nuts" and params["window_months"] == 18
    if cls is PipelineModel:
        assert params["priors"] is None  # not merged with the defaults
        assert m.priors_in_effect == DEFAULT_PRIORS
        given = {"stage_mu": -1.0}
        m2 = cls(priors=given)
        assert m2.priors is given
        assert m2.priors_in_effect == {**DEFAULT_PRIORS, "stage_mu": -1.0}


@pytest.mark.parametrize("cls", [PipelineModel, NewBusinessModel])
def test_results_before_fit_raise_not_fitted(cls, tmp_path) -> None:
    m = cls()
    assert not m.is_fitted
    with pytest.raises(NotFittedError):
        m.save(tmp_path / "m.nc")
    if cls is PipelineModel:
        with pytest.raises(NotFittedError):
            m.posterior_subset(10)
        with pytest.raises(NotFittedError):
            m.stage_probabilities()
    else:
        with pytest.raises(NotFittedError):
            m.arrival_means(FIRST, 3, 10)
        with pytest.raises(NotFittedError):
            m.win_cdf(FIRST, 3, 10)


def test_pipeline_idata_groups_and_dims(pipe) -> None:
    idata = pipe.idata_
    assert {"posterior", "observed_data"} <= set(idata.groups())
    post = idata.posterior
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 120  # MAP: one chain
    assert post["stage"].dims == ("chain", "draw", "outcome", "stage_level")
    assert list(post["stage_level"].values) == [*pipe.levels_.stage, "(unseen)"]
    assert post["due"].dims[-1] == "due_status"
    for g in GROUPS:
        assert post[f"u_{g}"].dims == ("chain", "draw", "outcome", f"{g}_level")
        assert post[f"sigma_{g}"].dims == ("chain", "draw", "outcome")
    obs = idata.observed_data
    assert obs["cell_counts"].dims == ("cell", "result")
    np.testing.assert_array_equal(
        obs["cell_counts"].sel(result="won").values, pipe.cells_["n_win"].to_numpy()
    )
    np.testing.assert_array_equal(obs["stage_code"].values, pipe.cells_["stage"].to_numpy())
    # posterior_subset reads the posterior: draw 0 of the chain is draw 0 of the subset
    sub = pipe.posterior_subset(120, seed=0)
    np.testing.assert_array_equal(sub["stage"], post["stage"].values[0])
    assert set(sub) == {*pipe.param_names(), "month_shock", "month_shock_first"}


def test_pipeline_log_likelihood_on_request(pipe, sim) -> None:
    m = PipelineModel(draws=20, chains=1, seed=1).fit(
        deal_frame(sim["deals"], sim["accounts"]), sim["deal_history"], as_of=AS_OF
    )
    assert "log_likelihood" not in m.idata_.groups()
    ll = m.add_log_likelihood().idata_.log_likelihood["cell_counts"]
    assert ll.dims == ("chain", "draw", "cell") and ll.shape == (1, 20, len(m.cells_))
    # the sum over cells is the model's log-likelihood of the draw
    post = m.posterior_subset(20)
    c = m.cells_
    i = int(np.argmax(c["n_win"].to_numpy()))
    eta = post["stage"][0, :, c["stage"].iloc[i]].copy()
    for name in ("ahead", "age", "due", "miq"):
        eta += post[name][0, :, c[name].iloc[i]]
    for g in GROUPS:
        eta += post[f"u_{g}"][0, :, c[g].iloc[i]]
    logp = eta - np.log1p(np.exp(eta).sum())
    logp_open = -np.log1p(np.exp(eta).sum())
    expected = c["n_win"].iloc[i] * logp[0] + c["n_lose"].iloc[i] * logp[1]
    expected += c["n_stay"].iloc[i] * logp_open
    assert float(ll[0, 0, i]) == pytest.approx(expected, rel=1e-10)


def test_new_business_idata_groups_and_dims(nb) -> None:
    idata = nb.idata_
    assert {"posterior", "observed_data", "log_likelihood"} <= set(idata.groups())
    post = idata.posterior
    assert post["a"].dims == ("chain", "draw") and post.sizes["draw"] == 120
    assert post["miq_free"].dims == ("chain", "draw", "month_of_quarter")
    assert post["fourier"].dims == ("chain", "draw", "harmonic")
    obs = idata.observed_data
    np.testing.assert_array_equal(obs["arrivals"].values, nb.arrivals_.to_numpy())
    np.testing.assert_array_equal(obs["month"].values, nb.arrivals_.index.to_numpy())
    assert obs["lag_counts"].dims == ("lag", "close_month_of_quarter", "outcome")
    assert idata.log_likelihood["arrivals"].shape == (1, 120, len(nb.arrivals_))
    assert np.isfinite(idata.log_likelihood["arrivals"].values).all()
    assert nb.params_["a"] == pytest.approx(float(post["a"].mean()))
    assert set(nb.params_["fourier"]) == {"sin", "cos"}


@pytest.mark.parametrize("name", ["pipe", "nb"])
def test_diagnostics_are_the_one_schema(name, request) -> None:
    m = request.getfixturevalue(name)
    d = m.diagnostics_
    _schema_ok(d)
    assert d["method"] == m.method_ == "map"
    assert d["r_hat_max"] is None and d["divergences"] is None
    assert d["ok"] and d["converged"] and d["hessian_positive_definite"]


def test_method_given_to_fit_overrides_the_setting(sim) -> None:
    m = NewBusinessModel(method="nuts", draws=20, chains=1)
    m.fit(deal_frame(sim["deals"]), sim["deal_history"], as_of=AS_OF, method="map")
    assert m.method_ == "map" and m.method == "nuts"
    with pytest.raises(CrmkitError, match="method"):
        m.fit(deal_frame(sim["deals"]), sim["deal_history"], as_of=AS_OF, method="mle")


def test_few_months_give_no_arrivals_model(sim) -> None:
    deals = deal_frame(sim["deals"])
    m = NewBusinessModel().fit(deals, sim["deal_history"], as_of="2022-01-31")
    assert m.is_fitted and not m.has_arrivals and m.posterior_ is None
    assert "posterior" not in m.idata_.groups() and m.params_ == {}
    _schema_ok(m.diagnostics_)
    assert not m.diagnostics_["ok"] and "fewer than 2 months" in m.diagnostics_["message"]
    mu, alpha = m.arrival_means(FIRST, 3, 5)
    assert not mu.any() and alpha.shape == (5,)


def test_pipeline_save_load_round_trips(pipe, tmp_path) -> None:
    back = PipelineModel.load(pipe.save(tmp_path / "pipe.nc"))
    assert back.get_params() == pipe.get_params()
    assert back.method_ == pipe.method_
    assert back.params_ == pipe.params_
    assert back.diagnostics_ == pipe.diagnostics_
    assert back.levels_ == pipe.levels_ and back.as_of_ == pipe.as_of_
    assert back.data_ == pipe.data_
    for attr in ("cells_", "frame_", "history_", "stages_"):
        pd.testing.assert_frame_equal(getattr(back, attr), getattr(pipe, attr), check_exact=True)
    a, b = pipe.posterior_subset(40, seed=5), back.posterior_subset(40, seed=5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    pd.testing.assert_frame_equal(back.stage_probabilities(), pipe.stage_probabilities())
    pd.testing.assert_frame_equal(back.open_deals(), pipe.open_deals(), check_exact=True)
    np.testing.assert_array_equal(back.amount_.draws(20, 1)[0], pipe.amount_.draws(20, 1)[0])
    assert set(back.idata_.groups()) == set(pipe.idata_.groups())


def test_new_business_save_load_round_trips(nb, tmp_path) -> None:
    back = NewBusinessModel.load(nb.save(tmp_path / "nb.nc"))
    assert back.get_params() == nb.get_params()
    assert back.method_ == nb.method_
    assert back.params_ == nb.params_
    assert back.diagnostics_ == nb.diagnostics_
    assert back.data_ == nb.data_ and back.as_of_ == nb.as_of_
    pd.testing.assert_series_equal(back.arrivals_, nb.arrivals_)
    pd.testing.assert_frame_equal(back.templates_, nb.templates_, check_exact=True)
    np.testing.assert_array_equal(
        back.arrival_means(FIRST, 3, 30)[0], nb.arrival_means(FIRST, 3, 30)[0]
    )
    np.testing.assert_array_equal(back.win_cdf(FIRST, 3, 10), nb.win_cdf(FIRST, 3, 10))
    assert set(back.idata_.groups()) == set(nb.idata_.groups())


def test_load_refuses_another_models_file(pipe, nb, tmp_path) -> None:
    with pytest.raises(CrmkitError, match="holds a 'PipelineModel'"):
        NewBusinessModel.load(pipe.save(tmp_path / "pipe.nc"))
    with pytest.raises(CrmkitError, match="holds a 'NewBusinessModel'"):
        PipelineModel.load(nb.save(tmp_path / "nb.nc"))
