"""A spend plan in the revenue forecast: extra new-business arrivals only, never twice.

The marketing-mix model here has given (fake) posterior draws, so nothing is sampled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError, ValidationError
from crmkit.forecast.engine import fit_models, forecast_draws, load_frames, run_forecast
from crmkit.forecast.plans import PlanForecast
from crmkit.forecast.sources.marketing import marketing_weeks, plan_arrivals
from crmkit.models.mmm import plan_input, scenario
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm
from crmkit.store.history import month_index
from tests.sim_deals import simulate

AS_OF = "2024-04-30"
LAST_WEEK = pd.Timestamp("2024-04-22")  # the last week complete on AS_OF (a Monday)


def fake_mmm(n_weeks: int = 60, seed: int = 0) -> MarketingMixModel:
    """A model on weekly new deals (about 7 a week) ending the week before AS_OF."""
    start = LAST_WEEK - pd.Timedelta(weeks=n_weeks - 1)
    df, _ = simulate_mmm(
        n_weeks,
        decay=[0.3, 0.5],
        lam=[2.0, 2.0],
        beta=[2.0, 1.0],
        intercept=6.0,
        trend_per_year=0.0,
        season_amplitude=0.0,
        noise=1.0,
        start=str(start.date()),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    n = 50

    def draws(mean: float, sd: float, *shape: int) -> np.ndarray:
        return mean + sd * rng.standard_normal((1, n, *shape))

    post = {
        "intercept": draws(0.6, 0.01),
        "trend": draws(0.0, 0.001),
        "fourier": draws(0.0, 0.001, 2),
        "decay": np.clip(draws(0.4, 0.05, 2), 0.01, 0.95),
        "lam": np.abs(draws(2.0, 0.2, 2)),
        "beta": np.abs(draws(0.2, 0.03, 2)),
        "sigma": np.abs(draws(0.1, 0.01)),
    }
    return MarketingMixModel(["x1", "x2"], yearly_order=1).set_posterior(df, post)


@pytest.fixture(scope="module")
def setup():
    from crmkit.store import Store

    store = Store.open("sqlite://")
    sim = simulate(n_months=30, arrivals=30, seed=2)
    store.insert_many(
        {
            "accounts": sim["accounts"],
            "stages": sim["stages"],
            "deals": sim["deals"],
            "deal_history": sim["deal_history"].drop(columns=["history_id"]),
        },
        changed_by="test",
    )
    frames = load_frames(store)
    models = fit_models(frames, as_of=AS_OF)
    models["marketing"] = fake_mmm()
    yield store, frames, models
    store.close()


def baseline_long(mmm: MarketingMixModel, weeks: int = 14) -> pd.DataFrame:
    """The baseline plan as long rows (channel, week_start, spend)."""
    base = scenario.baseline_plan(mmm, weeks)
    return base.melt(id_vars="date", var_name="channel", value_name="spend").rename(
        columns={"date": "week_start"}
    )


def test_baseline_plan_reproduces_the_forecast(setup):
    store, _, models = setup
    mmm = models["marketing"]
    kw = dict(as_of=AS_OF, horizon=3, draws=300, seed=1, save=False, include_repeat=False)
    plain = run_forecast(store, **kw)
    same = run_forecast(store, plan=baseline_long(mmm), mmm=mmm, **kw)
    np.testing.assert_array_equal(same.draws["rollup"], plain.draws["rollup"])
    pd.testing.assert_frame_equal(same.quantiles, plain.quantiles)
    assert "marketing" not in plain.parameters
    extra = same.parameters["marketing"]["extra_deals"]
    assert [e["period"] for e in extra] == plain.coords["period"]
    assert all(e["mean"] == 0.0 for e in extra)


def test_more_spend_raises_new_business_by_the_implied_amount(setup):
    _, frames, models = setup
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
    gain = (more["rollup"][:, :, 1, 0] - base["rollup"][:, :, 1, 0]).sum(axis=1).mean()
    assert gain == pytest.approx(implied, rel=0.15)
    # pipeline untouched; the total moves by the new-business change exactly
    np.testing.assert_array_equal(more["rollup"][:, :, 0], base["rollup"][:, :, 0])
    np.testing.assert_allclose(
        more["rollup"][:, :, 3] - base["rollup"][:, :, 3],
        more["rollup"][:, :, 1] - base["rollup"][:, :, 1],
    )
    assert more["marketing"]["spend_plan"] > more["marketing"]["spend_baseline"]


def test_less_spend_lowers_new_business(setup):
    _, frames, models = setup
    kw = dict(as_of=AS_OF, horizon=2, draws=2000, seed=4, include_repeat=False)
    base = forecast_draws(models, frames, **kw)
    off = pd.DataFrame(
        {"channel": "x1", "week_start": LAST_WEEK + pd.Timedelta(weeks=1) * np.arange(1, 10)}
    ).assign(spend=0.0)
    less = forecast_draws(models, frames, plan=off, **kw)
    assert less["rollup"][:, :, 1, 0].mean() < base["rollup"][:, :, 1, 0].mean()


def test_plan_forecast_equals_forecast_draws(setup):
    _, frames, models = setup
    kw = dict(as_of=AS_OF, horizon=2, draws=500, seed=2, include_repeat=False)
    plan = scenario.baseline_plan(models["marketing"], 10)
    plan["x2"] *= 2.0
    pf = PlanForecast(models, frames, **kw)
    direct = forecast_draws(models, frames, plan=plan, **kw)
    np.testing.assert_array_equal(pf.run(plan)["rollup"], direct["rollup"])
    table = pf.summary(plan)
    assert list(table["period"]) == direct["axis"].labels
    assert (table["difference_mean"] >= 0).all() and table["difference_mean"].sum() > 0
    assert (table["plan_lo"] <= table["plan_p50"]).all()
    assert (table["plan_p50"] <= table["plan_hi"]).all()
    same = pf.summary(scenario.baseline_plan(models["marketing"], 10))
    assert (same["difference_mean"] == 0).all()


def test_bad_plan_rows_name_row_and_field(setup):
    _, frames, models = setup
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


def test_plan_needs_a_marketing_model(setup):
    _, frames, models = setup
    plain = {k: v for k, v in models.items() if k != "marketing"}
    with pytest.raises(CrmkitError, match="marketing-mix model"):
        forecast_draws(plain, frames, as_of=AS_OF, horizon=1, draws=20, plan=pd.DataFrame())


def test_plan_from_campaigns_and_csv(setup, tmp_path):
    _, frames, models = setup
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
    from crmkit.forecast.engine import period_axis

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
