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
