"""Marketing widgets over a model with given (fake) posterior draws: no sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.models.mmm.campaigns import campaign_results
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm
from crmkit.widgets.marketing import CampaignExplorer, ContributionPanel, ScenarioEditor
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
