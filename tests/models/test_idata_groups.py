"""Every model's InferenceData: ``posterior``, ``observed_data``, ``posterior_predictive`` and
``log_likelihood`` with the right dims, kept by save / load (issue #17, checks you can see).

One named test per model. The pipeline model and the calendar effect add the last two on
request (``add_log_likelihood`` / ``add_posterior_predictive``: their docstrings say why fit
does not keep them); the others have them after ``fit``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.models.clv.calendar import CalendarEffect, month_weights
from crmkit.models.clv.models import BetaGeo, GammaGamma, ParetoNBD
from crmkit.models.inference.grid import kalman_filter
from crmkit.models.mmm.model import MarketingMixModel
from crmkit.models.pipeline.model import PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel
from tests.models.conftest import FitInput

GROUPS = {"posterior", "observed_data", "posterior_predictive", "log_likelihood"}


def _dims(idata, group: str, var: str) -> tuple[str, ...]:
    """Dims of a variable of a group."""
    return tuple(idata[group][var].dims)


def _same_groups_after_load(model, path) -> None:
    """Save, load, and assert the four groups come back equal."""
    model.save(path)
    back = type(model).load(path)
    assert GROUPS <= set(back.idata_.groups())
    for g in ("posterior_predictive", "log_likelihood"):
        for v in model.idata_[g].data_vars:
            np.testing.assert_allclose(
                back.idata_[g][v].to_numpy(), model.idata_[g][v].to_numpy(), rtol=1e-12
            )


def test_pipeline_idata_gets_the_four_groups_from_its_check_methods_and_keeps_them(
    pipeline_fit_input: FitInput, tmp_path
) -> None:
    model = PipelineModel(draws=100, chains=1, seed=3).fit(
        pipeline_fit_input.data, **pipeline_fit_input.kwargs
    )
    # fit keeps neither (cost and size: see the class docstring)
    assert "log_likelihood" not in model.idata_.groups()
    assert "posterior_predictive" not in model.idata_.groups()
    model.add_log_likelihood().add_posterior_predictive(n_draws=40, seed=1)
    idata = model.idata_
    assert GROUPS <= set(idata.groups())
    n_cells = len(model.cells_)
    assert _dims(idata, "observed_data", "cell_counts") == ("cell", "result")
    assert _dims(idata, "log_likelihood", "cell_counts") == ("chain", "draw", "cell")
    rep = idata.posterior_predictive["cell_counts"]
    assert rep.dims == ("chain", "draw", "cell", "result")
    assert rep.shape == (1, 40, n_cells, 3)
    # replicated cells keep their observed totals and split them as the model says
    obs = idata.observed_data["cell_counts"].to_numpy()
    np.testing.assert_allclose(
        rep.to_numpy().sum(axis=-1)[0], np.broadcast_to(obs.sum(1), (40, n_cells))
    )
    won_rep = rep.sel(result="won").sum("cell").to_numpy()
    assert won_rep.min() < obs[:, 1].sum() < won_rep.max()
    _same_groups_after_load(model, tmp_path / "pipe.nc")


def test_new_business_idata_has_posterior_predictive_arrivals_per_month(
    pipeline_fit_input: FitInput, tmp_path
) -> None:
    model = NewBusinessModel(draws=200, chains=1, seed=3).fit(
        pipeline_fit_input.data,
        pipeline_fit_input.kwargs["history"],
        as_of=pipeline_fit_input.kwargs["as_of"],
    )
    idata = model.idata_
    assert GROUPS <= set(idata.groups())
    assert _dims(idata, "observed_data", "arrivals") == ("month",)
    assert _dims(idata, "log_likelihood", "arrivals") == ("chain", "draw", "month")
    assert _dims(idata, "posterior_predictive", "arrivals") == ("chain", "draw", "month")
    rep = idata.posterior_predictive["arrivals"].to_numpy()
    assert rep.shape == (1, 200, len(model.arrivals_))
    # replicated monthly arrivals centre on the observed level
    assert abs(np.median(rep) - model.arrivals_.median()) < 0.3 * model.arrivals_.median()
    _same_groups_after_load(model, tmp_path / "nb.nc")


def _purchase_model_groups(model, data: pd.DataFrame, tmp_path) -> None:
    """Shared assertions of BG/NBD and Pareto/NBD."""
    idata = model.idata_
    assert GROUPS <= set(idata.groups())
    n = len(data)
    assert _dims(idata, "observed_data", "frequency") == ("obs",)
    assert _dims(idata, "log_likelihood", "loglike") == ("chain", "draw", "obs")
    assert _dims(idata, "posterior_predictive", "frequency") == ("chain", "draw", "obs")
    assert _dims(idata, "posterior_predictive", "frequency_total") == ("chain", "draw")
    assert idata.posterior_predictive["frequency"].shape[-1] == n
    total = idata.posterior_predictive["frequency_total"].to_numpy()
    assert np.quantile(total, 0.02) < data["frequency"].sum() < np.quantile(total, 0.98)
    _same_groups_after_load(model, tmp_path / f"{type(model).__name__}.nc")


def test_betageo_idata_has_log_likelihood_and_replicated_frequency_per_customer(
    clv_fit_input: FitInput, tmp_path
) -> None:
    model = BetaGeo(random_seed=1).fit(clv_fit_input.data, **clv_fit_input.kwargs)
    _purchase_model_groups(model, clv_fit_input.data, tmp_path)


def test_paretonbd_idata_has_log_likelihood_and_replicated_frequency_per_customer(
    clv_fit_input: FitInput, tmp_path
) -> None:
    model = ParetoNBD(random_seed=2, sampler_config={"approx_draws": 300}).fit(
        clv_fit_input.data, **clv_fit_input.kwargs
    )
    _purchase_model_groups(model, clv_fit_input.data, tmp_path)


def test_purchase_model_replicates_only_the_total_above_the_size_limit(
    clv_fit_input: FitInput,
) -> None:
    class Small(BetaGeo):
        log_likelihood_max_values = 1000

    model = Small(random_seed=1).fit(clv_fit_input.data, **clv_fit_input.kwargs)
    assert "frequency" not in model.idata_.posterior_predictive
    assert "frequency_total" in model.idata_.posterior_predictive


def test_gammagamma_idata_has_log_likelihood_and_replicated_mean_spend_per_repeat_buyer(
    clv_fit_input: FitInput, tmp_path
) -> None:
    data = clv_fit_input.data
    model = GammaGamma(random_seed=3).fit(data, **clv_fit_input.kwargs)
    idata = model.idata_
    assert GROUPS <= set(idata.groups())
    n_rep = int((data["frequency"] > 0).sum())
    assert _dims(idata, "observed_data", "monetary_value") == ("obs",)
    assert idata.observed_data["monetary_value"].shape == (n_rep,)
    assert _dims(idata, "log_likelihood", "loglike") == ("chain", "draw", "obs")
    assert _dims(idata, "posterior_predictive", "monetary_value") == ("chain", "draw", "obs")
    mean = idata.posterior_predictive["monetary_value_mean"].to_numpy()
    observed = data.loc[data["frequency"] > 0, "monetary_value"].mean()
    assert np.quantile(mean, 0.02) < observed < np.quantile(mean, 0.98)
    _same_groups_after_load(model, tmp_path / "gg.nc")


def test_mmm_idata_has_posterior_predictive_of_the_weekly_outcome(
    mmm_fit_input: FitInput, tmp_path
) -> None:
    model = MarketingMixModel(["x1", "x2"], yearly_order=1, l_max=6, random_seed=2)
    model.fit(mmm_fit_input.data, **mmm_fit_input.kwargs)
    idata = model.idata_
    assert GROUPS <= set(idata.groups())
    for g in ("log_likelihood", "posterior_predictive"):
        assert _dims(idata, g, "y") == ("chain", "draw", "date")
    rep = idata.posterior_predictive["y"].to_numpy().reshape(-1, len(mmm_fit_input.data))
    y = mmm_fit_input.data["y"].to_numpy(float)
    inside = (y >= np.quantile(rep, 0.05, axis=0)) & (y <= np.quantile(rep, 0.95, axis=0))
    assert inside.mean() > 0.7
    _same_groups_after_load(model, tmp_path / "mmm.nc")


@pytest.mark.parametrize("seasonal", [False, True])
def test_calendar_effect_log_likelihood_per_period_sums_to_the_filter_log_likelihood(
    calendar_fit_input: FitInput, seasonal: bool
) -> None:
    kwargs = dict(calendar_fit_input.kwargs)
    settings = {"half_lives": (1.0, 4.0), "grid_size": 12}
    if seasonal:
        kwargs["cutoff"] = "2024-04-30"
        settings["seasonality"] = "monthly"
    effect = CalendarEffect(**settings).fit(calendar_fit_input.data, **kwargs)
    assert bool(effect.params_["seasonal"]) is seasonal
    one = effect.one_step_predictions()
    post = effect.idata_.posterior
    obs = effect.idata_.observed_data
    expected = obs["expected"].to_numpy()
    keep = expected > 0
    y = np.log((obs["observed"].to_numpy()[keep] + 0.5) / (expected[keep] + 0.5))
    H = None
    if seasonal:
        L = effect.params_["period_length"]
        starts = (np.arange(len(keep)) - len(keep)) * L
        H = month_weights("2024-04-30", starts, L, effect.params_["days_per_unit"])[keep]
    total = kalman_filter(
        y,
        1.0 / (expected[keep] + 0.5),
        post["sigma"].to_numpy().ravel() ** 2,
        post["tau"].to_numpy().ravel() ** 2,
        post["phi"].to_numpy().ravel(),
        effect.level_sd**2,
        H,
        effect.season_sd**2,
    ).loglik
    np.testing.assert_allclose(one["loglik"].sum(axis=1), total, rtol=1e-9)


def test_calendar_effect_idata_gets_the_four_groups_and_keeps_them(
    calendar_fit_input: FitInput, tmp_path
) -> None:
    effect = CalendarEffect(half_lives=(1.0, 4.0), grid_size=12).fit(
        calendar_fit_input.data, **calendar_fit_input.kwargs
    )
    effect.add_log_likelihood().add_posterior_predictive(seed=2)
    idata = effect.idata_
    assert GROUPS <= set(idata.groups())
    n = len(calendar_fit_input.data)
    assert _dims(idata, "observed_data", "observed") == ("period",)
    for g in ("log_likelihood", "posterior_predictive"):
        assert _dims(idata, g, "observed") == ("chain", "draw", "period")
        assert idata[g]["observed"].shape == (1, CalendarEffect.N_DRAWS, n)
    rep = idata.posterior_predictive["observed"].to_numpy()[0]
    assert (rep >= 0).all()
    observed = idata.observed_data["observed"].to_numpy()
    inside = (observed >= np.quantile(rep, 0.05, axis=0)) & (
        observed <= np.quantile(rep, 0.95, axis=0)
    )
    assert inside.mean() > 0.7
    _same_groups_after_load(effect, tmp_path / "cal.nc")
