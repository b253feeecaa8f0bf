"""A spend plan's forecast against the baseline (:class:`~crmkit.forecast.plans.PlanForecast`).

The fitted models and the fake marketing-mix model are ``marketing_setup`` (``conftest.py``).
"""

from __future__ import annotations

import xarray as xr

from crmkit.forecast.engine import forecast_draws
from crmkit.forecast.plans import PlanForecast
from crmkit.models.mmm import scenario
from tests.forecast.fake_mmm import AS_OF


def test_plan_forecast_equals_forecast_draws(marketing_setup):
    _, frames, models = marketing_setup
    kw = dict(as_of=AS_OF, horizon=2, draws=500, seed=2, include_repeat=False)
    plan = scenario.baseline_plan(models["marketing"], 10)
    plan["x2"] *= 2.0
    pf = PlanForecast(models, frames, **kw)
    direct = forecast_draws(models, frames, plan=plan, **kw)
    xr.testing.assert_identical(pf.run(plan)["revenue"], direct["revenue"])
    table = pf.summary(plan)
    assert list(table["period"]) == direct["axis"].labels
    assert (table["difference_mean"] >= 0).all() and table["difference_mean"].sum() > 0
    assert (table["plan_lo"] <= table["plan_p50"]).all()
    assert (table["plan_p50"] <= table["plan_hi"]).all()
    same = pf.summary(scenario.baseline_plan(models["marketing"], 10))
    assert (same["difference_mean"] == 0).all()


def test_more_spend_never_lowers_a_draw_of_the_revenue_forecast(marketing_setup):
    # the plan and the baseline share their random numbers: a plan with more arrivals has
    # the baseline's deals and more in every draw, so no draw, period or group loses revenue
    # (before, the extra deals reshuffled the draws: the notebook showed -104 beside +0.5 deals)
    _, frames, models = marketing_setup
    kw = dict(as_of=AS_OF, horizon=3, draws=2000, seed=5, include_repeat=False)
    plan = scenario.baseline_plan(models["marketing"], 14)
    plan["x1"] *= 3.0
    pf = PlanForecast(models, frames, **kw)
    diff = pf.run(plan)["revenue"] - pf.baseline_["revenue"]
    assert float(diff.min()) >= 0.0
    assert float(diff.sel(source="total", group="all").sum("period").mean()) > 0.0
    table = pf.summary(plan)
    assert (table["difference_lo"] >= 0).all() and (table["difference_mean"] >= 0).all()
