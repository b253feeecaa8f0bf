"""Marketing widgets over a model with given (fake) posterior draws: no sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.models.mmm.campaigns import campaign_results
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm
from crmkit.widgets.marketing import (
    CampaignExplorer,
    ContributionPanel,
    ScenarioEditor,
    revenue_table_html,
    roas_table_html,
)
from tests.widgets.conftest import fire_cell_edit


@pytest.fixture(scope="module")
def mmm() -> MarketingMixModel:
    df, _ = simulate_mmm(60, seed=3)
    rng = np.random.default_rng(0)
    n = 40

    def draws(mean, sd, *shape):
        return mean + sd * rng.standard_normal((1, n, *shape))

    post = {
        "intercept": draws(0.6, 0.01),
        "trend": draws(0.0, 0.01),
        "fourier": draws(0.0, 0.01, 2),
        "decay": np.clip(draws(0.4, 0.05, 2), 0.01, 0.95),
        "lam": np.abs(draws(2.0, 0.2, 2)),
        "beta": np.abs(draws(0.2, 0.02, 2)),
        "sigma": np.abs(draws(0.03, 0.003)),
    }
    return MarketingMixModel(["x1", "x2"], yearly_order=1).set_posterior(df, post)


def test_contribution_panel_follows_channels_and_period(mmm):
    panel = ContributionPanel(mmm, n_draws=20)
    assert list(panel.roas_["channel"]) == ["x1", "x2"]
    panel.channels.value = ("x2",)
    assert list(panel.roas_["channel"]) == ["x2"]
    dates = panel.period.options
    panel.period.value = (dates[10][1], dates[19][1])
    summary, roas = panel.view()
    assert summary["date"].nunique() == 10
    assert roas["spend"].iloc[0] == pytest.approx(mmm.data_["x2"].iloc[10:20].sum())
    panel.channels.value = ()
    assert "at least one channel" in panel.table.value


def test_scenario_editor_updates_forecast_on_edit(mmm):
    ed = ScenarioEditor(mmm, weeks=6, n_draws=20)
    assert ed.result_["total"]["difference_mean"].iloc[0] == pytest.approx(0.0)
    before = ed.result_["total"]["plan_mean"].iloc[0]
    fire_cell_edit(ed.grid, 0, "x1", 9000)  # the front end sends numbers
    assert ed.plan.loc[0, "x1"] == 9000.0
    t = ed.result_["total"].iloc[0]
    assert t["difference_lo"] > 0 and t["plan_mean"] > before
    assert "difference" in ed.summary.value
    ed._on_edit({"row": 1, "column": "x2", "value": "lots"})
    assert "not a number" in ed.summary.value
    assert ed.plan.loc[1, "x2"] == ed.baseline.loc[1, "x2"]
    ed.reset_button.click()
    assert ed.result_["total"]["difference_mean"].iloc[0] == pytest.approx(0.0)


class RecordingForecast:
    """Stands in for a PlanForecast: its table grows with the plan's total spend."""

    def __init__(self, channels: list[str]) -> None:
        self.channels = channels
        self.plans: list[pd.DataFrame] = []

    def summary(self, plan: pd.DataFrame) -> pd.DataFrame:
        self.plans.append(plan.copy())
        spend = float(plan[self.channels].to_numpy().sum())
        row = {f"{n}_{q}": spend for n in ("baseline", "plan") for q in ("lo", "p50", "hi")}
        return pd.DataFrame(
            [
                {
                    "period": "2025-01",
                    **row,
                    "difference_mean": spend,
                    "difference_lo": 0.0,
                    "difference_hi": spend,
                    "extra_deals": 1.5,
                }
            ]
        )


def test_scenario_editor_redraws_the_revenue_forecast_on_edit(mmm):
    fc = RecordingForecast(mmm.channels)
    ed = ScenarioEditor(mmm, weeks=4, n_draws=20, forecast=fc)
    assert ed.revenue in ed.children and len(fc.plans) == 1
    fire_cell_edit(ed.grid, 2, "x2", 12345)
    assert fc.plans[-1].loc[2, "x2"] == 12345.0  # the edited plan reaches the forecast
    assert ed.revenue_table_["difference_mean"].iloc[0] == pytest.approx(
        fc.plans[-1][["x1", "x2"]].to_numpy().sum()
    )
    assert "extra new deals" in ed.revenue.value and "+1.5" in ed.revenue.value
    plain = ScenarioEditor(mmm, weeks=4, n_draws=20)
    assert plain.revenue not in plain.children


def test_campaign_explorer_filters_and_sorts():
    camp = pd.DataFrame(
        {
            "campaign_id": ["A", "B", "C"],
            "name": ["a", "b", "c"],
            "channel": ["search", "email", "search"],
            "start_date": pd.to_datetime(["2025-01-01", "2025-05-01", "2025-06-01"]),
            "cost": [300.0, 100.0, 200.0],
        }
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["d1", "d2", "d3"],
            "campaign_id": ["A", "B", "C"],
            "status": ["won", "lost", "won"],
            "amount": [1000.0, 50.0, 400.0],
            "source": "x",
        }
    )
    ex = CampaignExplorer(campaign_results(camp, deals, n_draws=100))
    assert list(ex.table_["campaign_id"]) == ["B", "A", "C"]  # by channel, then start
    ex.sort_by.value = "cost"
    ex.descending.value = True
    assert list(ex.table_["cost"]) == [300.0, 200.0, 100.0]
    ex.channels.value = ("search",)
    assert set(ex.grid.data["campaign_id"]) == {"A", "C"}


def test_contribution_panel_roas_table_tells_tiny_roas_apart(mmm):
    panel = ContributionPanel(mmm, n_draws=20, outcome="new_deals")
    table = panel.table.value
    assert "0.00 [0.00" not in table and "new deals per" in table
    roas = pd.DataFrame(
        {
            "channel": ["a", "b", "c"],
            "spend": [104_336.09, 502_499.7, 741_625.49],
            "contribution": [122.3, 103.2, 269.4],
            "contribution_lo": [28.2, 45.2, 83.2],
            "contribution_hi": [307.4, 199.0, 582.1],
            "roas": [0.021, 0.034, 0.047],
            "roas_lo": [0.015, 0.021, 0.030],
            "roas_hi": [0.028, 0.047, 0.070],
            "mroas": [0.0012, 0.0009, 0.0002],
            "mroas_lo": [0.0003, 0.0001, 0.0001],
            "mroas_hi": [0.0029, 0.0027, 0.0004],
        }
    )
    html = roas_table_html(roas, outcome="revenue")
    assert "0.021 [0.015–0.028]" in html and "0.047 [0.030–0.070]" in html
    assert "revenue per 1 spent" in html  # the unit, here per currency unit spent
    assert "0.00120 [0.00030–0.00290]" in html  # marginal ROAS: same unit, not 0.00
    assert "104k" in html and "742k" in html


def test_revenue_table_tells_plan_from_baseline_and_signs_the_difference():
    table = pd.DataFrame(
        {
            "period": ["2026-11", "2026-12"],
            "baseline_lo": [484_086.1, 574_165.6],
            "baseline_p50": [760_837.1, 906_454.1],
            "baseline_hi": [1_141_063.0, 1_295_833.0],
            "plan_lo": [484_086.1, 574_165.6],
            "plan_p50": [760_662.6, 907_614.3],
            "plan_hi": [1_141_063.0, 1_298_291.0],
            "difference_mean": [0.0, 1_436.2],
            "difference_lo": [0.0, 0.0],
            "difference_hi": [0.0, 0.0],
            "extra_deals": [0.74, 0.84],
        }
    )
    html = revenue_table_html(table)
    assert "760.8k [484.1k–1.141M]" in html and "760.7k [484.1k–1.141M]" in html
    assert "+1.44k [0–0]" in html and "+0.74" in html and "+0.84" in html
    assert "mean [80% range]" in html and "median [80% range]" in html
