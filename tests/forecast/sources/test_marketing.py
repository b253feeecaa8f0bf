"""A spend plan in the revenue forecast: extra new-business arrivals only, never twice.

The marketing-mix model here has given (fake) posterior draws, so nothing is sampled
(``tests/forecast/fake_mmm.py``); the store, frames and fitted models are
``marketing_setup`` (``tests/forecast/conftest.py``). The plan-versus-baseline summary is in
``tests/forecast/test_plans.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from crmkit.errors import CrmkitError, ValidationError
from crmkit.forecast.engine import forecast_draws, run_forecast
from crmkit.forecast.sources.marketing import marketing_weeks, plan_arrivals
from crmkit.models.mmm import plan_input, scenario
from crmkit.models.mmm.model import MarketingMixModel
from crmkit.store.history import month_index
from tests.forecast.fake_mmm import AS_OF, LAST_WEEK, fake_mmm


def baseline_long(mmm: MarketingMixModel, weeks: int = 14) -> pd.DataFrame:
    """The baseline plan as long rows (channel, week_start, spend)."""
    base = scenario.baseline_plan(mmm, weeks)
    return base.melt(id_vars="date", var_name="channel", value_name="spend").rename(
        columns={"date": "week_start"}
    )


def test_baseline_plan_reproduces_the_forecast(marketing_setup):
    store, _, models = marketing_setup
    mmm = models["marketing"]
    kw = dict(as_of=AS_OF, horizon=3, draws=300, seed=1, save=False, include_repeat=False,
              method="map")  # fmt: skip
    plain = run_forecast(store, **kw)
    same = run_forecast(store, plan=baseline_long(mmm), mmm=mmm, **kw)
    xr.testing.assert_identical(same.revenue, plain.revenue)
    pd.testing.assert_frame_equal(same.quantiles, plain.quantiles)
    assert "marketing" not in plain.parameters
    extra = same.parameters["marketing"]["extra_deals"]
    assert [e["period"] for e in extra] == plain.coords["period"]
    assert all(e["mean"] == 0.0 for e in extra)


def test_more_spend_raises_new_business_by_the_implied_amount(marketing_setup):
    _, frames, models = marketing_setup
    mmm = models["marketing"]
    kw = dict(as_of=AS_OF, horizon=3, draws=6000, seed=4, include_repeat=False)
    base = forecast_draws(models, frames, **kw)
    plan = scenario.baseline_plan(mmm, 14)
    plan["x1"] *= 3.0
    more = forecast_draws(models, frames, plan=plan, **kw)
    axis = base["axis"]
    # the MMM's implied extra deals per month, turned into revenue with the new-business
    # model's own win timing and mean amount
    extra = plan_input.extra_arrivals_by_month(
        mmm, plan, as_of=AS_OF, first_month=axis.first_month, months=axis.months, n_draws=100
    )
    assert extra.mean() > 0.3
    nb = models["new_business"]
    cdf = nb.win_cdf(axis.first_month, axis.months, 100, 4)[:, :, -1]  # won within horizon
    amount = nb.templates_["amount"].astype(float).mean()
    implied = float((extra * cdf).sum(axis=1).mean() * amount)
    new_more = more["revenue"].sel(source="new_business")
    new_base = base["revenue"].sel(source="new_business")
    gain = float((new_more - new_base).sel(group="all").sum("period").mean())
    assert gain == pytest.approx(implied, rel=0.15)
    # pipeline untouched; the total moves by the new-business change exactly
    xr.testing.assert_identical(
        more["revenue"].sel(source="pipeline"), base["revenue"].sel(source="pipeline")
    )
    xr.testing.assert_allclose(
        more["revenue"].sel(source="total", drop=True)
        - base["revenue"].sel(source="total", drop=True),
        (new_more - new_base).drop_vars("source"),
    )
    assert more["marketing"]["spend_plan"] > more["marketing"]["spend_baseline"]


def test_less_spend_lowers_new_business(marketing_setup):
    _, frames, models = marketing_setup
    kw = dict(as_of=AS_OF, horizon=2, draws=2000, seed=4, include_repeat=False)
    base = forecast_draws(models, frames, **kw)
    off = pd.DataFrame(
        {"channel": "x1", "week_start": LAST_WEEK + pd.Timedelta(weeks=1) * np.arange(1, 10)}
    ).assign(spend=0.0)
    less = forecast_draws(models, frames, plan=off, **kw)
    sel = {"source": "new_business", "group": "all"}
    assert less["revenue"].sel(sel).mean() < base["revenue"].sel(sel).mean()


def test_bad_plan_rows_name_row_and_field(marketing_setup):
    _, frames, models = marketing_setup
    first = LAST_WEEK + pd.Timedelta(weeks=1)
    bad = pd.DataFrame(
        {
            "channel": ["x1", "tv", "x2", "x1", "x2"],
            "week_start": [first, first, "not a day", first + pd.Timedelta(days=3), first],
            "spend": [100.0, 50.0, 10.0, 10.0, -5.0],
        }
    )
    with pytest.raises(ValidationError) as err:
        forecast_draws(models, frames, as_of=AS_OF, horizon=2, draws=50, plan=bad)
    found = {(e.row, e.field) for e in err.value.errors}
    assert found == {(2, "channel"), (3, "week_start"), (4, "week_start"), (5, "spend")}
    assert "row 2, field 'channel'" in str(err.value)
    # a week the model was fitted on, and a wide plan's bad cell
    past = pd.DataFrame({"date": [LAST_WEEK, first], "x1": [1.0, "lots"]})
    with pytest.raises(ValidationError) as err:
        forecast_draws(models, frames, as_of=AS_OF, horizon=2, draws=50, plan=past)
    found = {(e.row, e.field) for e in err.value.errors}
    assert found == {(1, "date"), (2, "x1")}


def test_plan_needs_a_marketing_model(marketing_setup):
    _, frames, models = marketing_setup
    plain = {k: v for k, v in models.items() if k != "marketing"}
    with pytest.raises(CrmkitError, match="marketing-mix model"):
        forecast_draws(plain, frames, as_of=AS_OF, horizon=1, draws=20, plan=pd.DataFrame())


def test_plan_from_campaigns_and_csv(marketing_setup, tmp_path):
    _, frames, models = marketing_setup
    mmm = models["marketing"]
    first = LAST_WEEK + pd.Timedelta(weeks=1)
    campaigns = pd.DataFrame(
        {
            "campaign_id": ["C1"],
            "name": ["x1 push"],
            "channel": ["x1"],
            "start_date": [first + pd.Timedelta(weeks=2)],
            "end_date": [first + pd.Timedelta(weeks=5, days=6)],
            "budget": [40000.0],
            "cost": [None],
        }
    )
    axis_kw = dict(as_of=AS_OF, n_draws=20)
    from crmkit.forecast.axes import period_axis

    axis = period_axis(AS_OF, 3)
    extra, summary = plan_arrivals(
        models, {**frames, "campaigns": campaigns}, "campaigns", axis=axis, **axis_kw
    )
    plan = plan_input.plan_from_campaigns(mmm, campaigns, "2024-07-31")
    assert set(plan["channel"]) == {"x1"}  # x2 has no campaign: it follows the baseline
    assert plan["spend"].sum() == pytest.approx(40000.0)
    assert (plan.loc[plan["spend"] > 0, "spend"] == 10000.0).all()
    csv = tmp_path / "plan.csv"
    plan.to_csv(csv, index=False)
    from_csv, _ = plan_arrivals(models, frames, str(csv), axis=axis, **axis_kw)
    np.testing.assert_allclose(from_csv, extra)
    assert summary["weeks"] == 14  # 2024-04-29 .. 2024-07-29
    with pytest.raises(CrmkitError, match="no spend plan file"):
        plan_arrivals(models, frames, str(tmp_path / "none.csv"), axis=axis, **axis_kw)


def test_extra_arrivals_skip_days_up_to_as_of():
    mmm = fake_mmm()
    plan = scenario.baseline_plan(mmm, 6)
    plan["x1"] *= 4.0
    first = month_index(pd.Timestamp(AS_OF))  # April: only the last day of April is after
    extra = plan_input.extra_arrivals_by_month(
        mmm, plan, as_of=AS_OF, first_month=first, months=2, n_draws=10
    )
    weekly = scenario.predict_plan(mmm, plan, n_draws=10, noise=False).values
    weekly = (
        weekly
        - scenario.predict_plan(mmm, scenario.baseline_plan(mmm, 6), n_draws=10, noise=False).values
    )
    assert np.all(extra[:, 0] == 0)  # week of 2024-04-29: the 29th and 30th are not after
    # May: 5 of 7 days of the weeks of Apr 29 (May 1-5) and May 27 (to May 31), three whole
    may = (weekly[:, 0] + weekly[:, 4]) * 5 / 7 + weekly[:, 1:4].sum(axis=1)
    np.testing.assert_allclose(extra[:, 1], may)


def test_marketing_weeks_cut_at_as_of():
    days = pd.date_range("2023-01-02", periods=60, freq="7D")
    spend = pd.DataFrame({"channel": "x1", "week_start": days, "spend": 100.0})
    deals = pd.DataFrame({"created_at": days + pd.Timedelta(days=2)})
    weekly = marketing_weeks({"channel_spend": spend, "deals": deals}, "2023-12-31")
    assert weekly["date"].max() == pd.Timestamp("2023-12-25")
    assert (weekly["y"] == 1).all()
    with pytest.raises(CrmkitError, match="26 weeks"):
        marketing_weeks({"channel_spend": spend, "deals": deals}, "2023-03-01")
    with pytest.raises(CrmkitError, match="channel_spend"):
        marketing_weeks({"channel_spend": spend.iloc[:0], "deals": deals}, "2023-12-31")


def test_campaign_roas_prior_uses_campaigns_ended_by_as_of():
    campaigns = pd.DataFrame(
        {
            "campaign_id": ["A", "B", "C"],
            "channel": ["x1", "x1", "x2"],
            "start_date": pd.to_datetime(["2024-01-01", "2024-04-01", "2024-01-01"]),
            "end_date": pd.to_datetime(["2024-01-31", "2024-05-31", "2024-02-28"]),
            "budget": [1000.0, 9000.0, 500.0],
            "cost": [1000.0, None, 500.0],
        }
    )
    made = pd.to_datetime(["2024-01-10"] * 12 + ["2024-04-10"] * 30 + ["2024-02-01"] * 3)
    deals = pd.DataFrame({"created_at": made, "campaign_id": ["A"] * 12 + ["B"] * 30 + ["C"] * 3})
    from crmkit.forecast.sources.marketing import campaign_roas_prior

    prior = campaign_roas_prior({"campaigns": campaigns, "deals": deals}, ["x1", "x2"], AS_OF)
    roas = prior["roas"]
    # B has not ended on AS_OF: x1 is 12 deals for 1,000; x2 (3 deals) falls back to pooled
    np.testing.assert_allclose(np.exp(roas["mu"]), [12 / 1000, 15 / 1500])
    assert roas["sigma"][0] < roas["sigma"][1]
    early = campaign_roas_prior({"campaigns": campaigns, "deals": deals}, ["x1"], "2024-01-15")
    assert early is None
