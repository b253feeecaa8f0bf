"""Marketing widgets: thin views over crmkit's campaign and marketing-mix functions.

* :class:`ContributionPanel` -- choose channels and a period; see weekly contributions and
  ROAS with their intervals (calls ``contribution_summary`` and ``roas``).
* :class:`ScenarioEditor` -- an editable grid of planned weekly spend; every edit reruns
  :func:`crmkit.models.mmm.scenario.scenario` and redraws the outcome and its range, and,
  given a :class:`crmkit.forecast.plans.PlanForecast`, the revenue forecast per period.
* :class:`CampaignExplorer` -- campaign results filtered by channel and period, sorted by
  any column, as a table and a chart.

No sampling happens in a callback: the views take a fitted model (or computed results).
"""

from __future__ import annotations

import html

import ipywidgets as w
import pandas as pd
from ipydatagrid import DataGrid
from IPython.display import display

from crmkit.errors import CrmkitError
from crmkit.forecast.plans import PlanForecast
from crmkit.models.mmm import scenario
from crmkit.models.mmm.campaigns import campaign_table
from crmkit.models.mmm.model import MarketingMixModel
from crmkit.plots import marketing as pm_plots


def _fmt(v: float) -> str:
    """A number with thousands separators and no decimals."""
    return f"{v:,.0f}"


class ContributionPanel(w.VBox):
    """Channels and period selectors over a fitted model's contributions and ROAS.

    Parameters
    ----------
    mmm
        A fitted :class:`~crmkit.models.mmm.model.MarketingMixModel`.
    n_draws
        Posterior draws used for the figures.
    """

    def __init__(self, mmm: MarketingMixModel, *, n_draws: int = 300) -> None:
        self.mmm = mmm
        self.n_draws = n_draws
        dates = list(mmm.design_["dates"])
        self.channels = w.SelectMultiple(
            options=list(mmm.channels), value=tuple(mmm.channels), description="Channels"
        )
        opts = [(d.strftime("%Y-%m-%d"), d) for d in dates]
        self.period = w.SelectionRangeSlider(
            options=opts, index=(0, len(opts) - 1), description="Period", layout={"width": "90%"}
        )
        self.out = w.Output()
        self.table = w.HTML()
        self.channels.observe(self._refresh, "value")
        self.period.observe(self._refresh, "value")
        super().__init__([w.HBox([self.channels]), self.period, self.table, self.out])
        self._refresh()

    def view(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Contribution summary and ROAS table of the current selection."""
        chans = list(self.channels.value)
        if not chans:
            raise CrmkitError("choose at least one channel")
        start, end = self.period.value
        summary = self.mmm.contribution_summary(
            channels=chans, start=start, end=end, n_draws=self.n_draws
        )
        roas = self.mmm.roas(start, end, n_draws=self.n_draws)
        return summary, roas[roas["channel"].isin(chans)].reset_index(drop=True)

    def _refresh(self, *_: object) -> None:
        """Recompute and redraw."""
        self.out.clear_output(wait=True)
        try:
            summary, roas = self.view()
        except CrmkitError as exc:
            self.table.value = f"<b>{html.escape(str(exc))}</b>"
            return
        self.roas_ = roas
        rows = "".join(
            f"<tr><td>{html.escape(str(r.channel))}</td><td>{_fmt(r.spend)}</td>"
            f"<td>{_fmt(r.contribution)} [{_fmt(r.contribution_lo)}-{_fmt(r.contribution_hi)}]</td>"
            f"<td>{r.roas:.2f} [{r.roas_lo:.2f}-{r.roas_hi:.2f}]</td>"
            f"<td>{r.mroas:.2f} [{r.mroas_lo:.2f}-{r.mroas_hi:.2f}]</td></tr>"
            for r in roas.itertuples()
        )
        self.table.value = (
            "<table><tr><th>channel</th><th>spend</th><th>contribution [90%]</th>"
            f"<th>ROAS [90%]</th><th>marginal ROAS [90%]</th></tr>{rows}</table>"
        )
        with self.out:
            display(pm_plots.contribution_chart(summary))
            display(pm_plots.roas_chart(roas))


class ScenarioEditor(w.VBox):
    """An editable grid of planned weekly spend and the forecast it implies.

    Parameters
    ----------
    mmm
        A fitted model.
    weeks
        Horizon in weeks.
    n_draws
        Posterior draws per scenario.
    forecast
        A :class:`crmkit.forecast.plans.PlanForecast` over the same fitted model: every
        edit then also redraws the total revenue forecast per period and its range (the
        plan's extra new deals enter the new-business arrivals only).
    """

    def __init__(
        self,
        mmm: MarketingMixModel,
        *,
        weeks: int = 12,
        n_draws: int = 300,
        forecast: PlanForecast | None = None,
    ) -> None:
        self.mmm = mmm
        self.n_draws = n_draws
        self.forecast = forecast
        self.baseline = scenario.baseline_plan(mmm, weeks)
        shown = self.baseline.assign(date=self.baseline["date"].dt.strftime("%Y-%m-%d"))
        self.grid = DataGrid(shown.round(2), editable=True, layout={"height": "260px"})
        self.grid.on_cell_change(self._on_edit)
        self.summary = w.HTML()
        self.out = w.Output()
        self.revenue = w.HTML()
        self.revenue_out = w.Output()
        self.reset_button = w.Button(description="Reset to baseline")
        self.reset_button.on_click(self._reset)
        parts = [self.grid, self.reset_button, self.summary, self.out]
        if forecast is not None:
            parts += [self.revenue, self.revenue_out]
        super().__init__(parts)
        self.plan = self.baseline.copy()
        self._refresh()

    def _on_edit(self, cell: dict) -> None:
        """Store an edited spend value (cast to float) and recompute."""
        col = cell["column"]
        if col not in self.mmm.channels:
            self.summary.value = "<b>Only the spend columns can be edited.</b>"
            return
        try:
            value = float(cell["value"])
        except (TypeError, ValueError):
            self.summary.value = f"<b>{html.escape(str(cell['value']))} is not a number.</b>"
            return
        plan = self.plan.copy()
        plan.loc[int(cell["row"]), col] = value
        self.set_plan(plan, show=False)

    def set_plan(self, plan: pd.DataFrame, *, show: bool = True) -> None:
        """Use a new plan (same weeks), show it in the grid and recompute the scenario."""
        self.plan = plan.reset_index(drop=True)
        if show:
            self.grid.data = self.plan.assign(
                date=pd.to_datetime(self.plan["date"]).dt.strftime("%Y-%m-%d")
            ).round(2)
        self._refresh()

    def _reset(self, *_: object) -> None:
        """Go back to the baseline plan."""
        self.set_plan(self.baseline.copy())

    def _refresh(self) -> None:
        """Recompute the scenario and redraw."""
        try:
            self.result_ = scenario.scenario(
                self.mmm, self.plan, self.baseline, n_draws=self.n_draws
            )
        except CrmkitError as exc:
            self.summary.value = f"<b>{html.escape(str(exc))}</b>"
            return
        t = self.result_["total"].iloc[0]
        self.summary.value = (
            f"Plan spend {_fmt(t.spend_plan)} vs baseline {_fmt(t.spend_baseline)}. "
            f"Forecast {_fmt(t.plan_mean)} [90%: {_fmt(t.plan_lo)} - {_fmt(t.plan_hi)}]; "
            f"difference {_fmt(t.difference_mean)} "
            f"[{_fmt(t.difference_lo)} - {_fmt(t.difference_hi)}]."
        )
        self.out.clear_output(wait=True)
        with self.out:
            display(pm_plots.scenario_chart(self.result_["weekly"]))
        if self.forecast is not None:
            self._refresh_revenue()

    def _refresh_revenue(self) -> None:
        """Redraw the revenue forecast of the plan against the baseline."""
        try:
            table = self.forecast.summary(self.plan)
        except CrmkitError as exc:
            self.revenue.value = f"<b>{html.escape(str(exc))}</b>"
            return
        self.revenue_table_ = table
        rows = "".join(
            f"<tr><td>{html.escape(str(r.period))}</td>"
            f"<td>{_fmt(r.baseline_p50)} [{_fmt(r.baseline_lo)}-{_fmt(r.baseline_hi)}]</td>"
            f"<td>{_fmt(r.plan_p50)} [{_fmt(r.plan_lo)}-{_fmt(r.plan_hi)}]</td>"
            f"<td>{_fmt(r.difference_mean)} [{_fmt(r.difference_lo)}-{_fmt(r.difference_hi)}]"
            f"</td><td>{r.extra_deals:+.1f}</td></tr>"
            for r in table.itertuples()
        )
        self.revenue.value = (
            "<b>Revenue forecast (total of all sources), median [80% range]</b><table>"
            "<tr><th>period</th><th>baseline</th><th>plan</th><th>plan - baseline</th>"
            f"<th>extra new deals</th></tr>{rows}</table>"
        )
        self.revenue_out.clear_output(wait=True)
        with self.revenue_out:
            display(pm_plots.plan_forecast_chart(table))


class CampaignExplorer(w.VBox):
    """Campaign results by channel and period, sortable, as a table and a chart.

    Parameters
    ----------
    results
        :func:`crmkit.models.mmm.campaigns.campaign_results` output.
    metric
        Column drawn in the chart (with its interval).
    """

    SORTS = (
        "channel",
        "period",
        "expected_roi",
        "roi",
        "cost",
        "won_revenue",
        "win_rate",
        "expected_cost_per_won",
    )

    def __init__(self, results: pd.DataFrame, *, metric: str = "expected_roi") -> None:
        self.results = results
        self.metric = metric
        self.channels = w.SelectMultiple(
            options=sorted(results["channel"].unique()), description="Channels"
        )
        self.periods = w.SelectMultiple(
            options=sorted(results["period"].unique()), description="Periods"
        )
        self.sort_by = w.Dropdown(
            options=[s for s in self.SORTS if s in results.columns],
            value="channel",
            description="Sort by",
        )
        self.descending = w.Checkbox(description="Descending", value=False)
        self.grid = DataGrid(pd.DataFrame(), layout={"height": "300px"})
        self.out = w.Output()
        for c in (self.channels, self.periods, self.sort_by, self.descending):
            c.observe(self._refresh, "value")
        super().__init__(
            [
                w.HBox([self.channels, self.periods]),
                w.HBox([self.sort_by, self.descending]),
                self.grid,
                self.out,
            ]
        )
        self._refresh()

    COLUMNS = (
        "campaign_id",
        "name",
        "channel",
        "period",
        "cost",
        "deals",
        "won",
        "lost",
        "open",
        "won_revenue",
        "roi",
        "win_rate",
        "win_rate_lo",
        "win_rate_hi",
        "expected_roi",
        "expected_roi_lo",
        "expected_roi_hi",
        "expected_cost_per_won",
    )

    def view(self) -> pd.DataFrame:
        """The filtered, sorted table."""
        return campaign_table(
            self.results,
            channels=list(self.channels.value) or None,
            periods=list(self.periods.value) or None,
            sort_by=self.sort_by.value,
            ascending=not self.descending.value,
        )

    def _refresh(self, *_: object) -> None:
        """Recompute the table and redraw the chart."""
        self.table_ = self.view()
        cols = [c for c in self.COLUMNS if c in self.table_.columns]
        self.grid.data = self.table_[cols].round(3)
        self.out.clear_output(wait=True)
        with self.out:
            display(pm_plots.campaign_chart(self.table_, metric=self.metric))
