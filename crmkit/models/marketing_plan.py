"""Planning with a fitted marketing-mix model: spend scenarios, budget allocation, forecast input.

The public names of three modules, importable from here:

* :mod:`crmkit.models.marketing_scenario` -- :func:`scenario`: planned weekly spend per
  channel over a horizon gives outcome draws per week, against a baseline plan (by default:
  the average spend of the last weeks, continued, :func:`baseline_plan`); the difference is
  computed draw by draw, so it carries the posterior spread. :func:`predict_plan` and
  :func:`marketing_arrivals` (extra new deals per period).
* :mod:`crmkit.models.marketing_budget` -- :func:`optimize_budget`: split a weekly budget
  across channels to maximise the expected (posterior-mean) steady-state response, then
  evaluate the posterior draws at the optimum.
* :mod:`crmkit.models.marketing_forecast_input` -- the single place marketing enters the
  revenue forecast: the extra new deals per month a plan brings against the baseline plan
  (:func:`extra_arrivals_by_month`, see ``docs/marketing.md``), from long or wide plans
  (:func:`plan_overrides`) or the store's campaigns (:func:`plan_from_campaigns`).
"""

from __future__ import annotations

from crmkit.models.marketing_budget import optimize_budget, steady_response
from crmkit.models.marketing_forecast_input import (
    PLAN_LONG_COLUMNS,
    extra_arrivals_by_month,
    horizon_plans,
    horizon_weeks,
    plan_from_campaigns,
    plan_overrides,
)
from crmkit.models.marketing_scenario import (
    baseline_plan,
    marketing_arrivals,
    predict_plan,
    scenario,
)

__all__ = [
    "PLAN_LONG_COLUMNS",
    "baseline_plan",
    "extra_arrivals_by_month",
    "horizon_plans",
    "horizon_weeks",
    "marketing_arrivals",
    "optimize_budget",
    "plan_from_campaigns",
    "plan_overrides",
    "predict_plan",
    "scenario",
    "steady_response",
]
