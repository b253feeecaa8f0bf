"""Marketing widgets: thin views over crmkit's campaign and marketing-mix functions.

* :class:`ContributionPanel` -- choose channels and a period; see weekly contributions and
  ROAS with their intervals (calls ``contribution_summary`` and ``roas``).
* :class:`ScenarioEditor` -- an editable grid of planned weekly spend; every edit reruns
  :func:`crmkit.models.mmm.scenario.scenario` and redraws the outcome and its range, and,
  given a :class:`crmkit.forecast.plans.PlanForecast`, the revenue forecast per period.
* :class:`CampaignExplorer` -- campaign results filtered by channel and period, sorted by
  any column, as a table and a chart.

No sampling happens in a callback: the views take a fitted model (or computed results).
Numbers shown together are written at one precision that tells them apart
(:func:`crmkit.plots.format.format_numbers`), with their units: ``outcome`` names what the
model was fitted on (``"new deals"``, ``"revenue"``).
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
from crmkit.plots.format import format_estimates, format_numbers, rate_scale


def _outcome(target: str) -> str:
    """The outcome's name for labels: ``new_deals`` is "new deals"."""
    return str(target).replace("_", " ")


class ContributionPanel(w.VBox):
    """Channels and period selectors over a fitted model's contributions and ROAS.

    Parameters
    ----------
    mmm
        A fitted :class:`~crmkit.models.mmm.model.MarketingMixModel`.
    n_draws
        Posterior draws used for the figures.
    outcome
        What the model was fitted on (``mmm_frame``'s ``target``: ``"new_deals"``,
        ``"new_deal_value"``, ``"revenue"``), named in the table and axis labels.
    """

    def __init__(
        self, mmm: MarketingMixModel, *, n_draws: int = 300, outcome: str = "outcome"
    ) -> None:
        self.mmm = mmm
        self.n_draws = n_draws
        self.outcome = _outcome(outcome)
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
        self.table.value = roas_table_html(roas, outcome=self.outcome)
        with self.out:
            display(pm_plots.contribution_chart(summary, outcome=self.outcome))
            display(pm_plots.roas_chart(roas, outcome=self.outcome))


def roas_table_html(roas: pd.DataFrame, *, outcome: str = "outcome") -> str:
    """Write the ROAS table of :class:`ContributionPanel` as HTML.

    Every column is written at a precision that tells its numbers and their intervals apart
    (``0.21 [0.09–0.40]``, never ``0.00 [0.00-0.00]``); ROAS and marginal ROAS share one
    unit, per 1, 1k or 1M spent, whichever reads (:func:`crmkit.plots.format.rate_scale`).

    Parameters
    ----------
    roas
        :meth:`~crmkit.models.mmm.model.MarketingMixModel.roas` output.
    outcome
        What the model's target counts (``"new deals"``), named in the headers.

    Returns
    -------
    str
        An HTML table.
    """
    cols = [f"{n}{k}" for n in ("roas", "mroas") for k in ("", "_lo", "_hi")]
    factor, per = rate_scale(roas[cols].to_numpy(float).ravel())
    spend = format_numbers(roas["spend"], kind="amount")
    contribution = format_estimates(
        roas["contribution"], roas["contribution_lo"], roas["contribution_hi"]
    )
    # one unit for both; each column at the precision its own values need
    shown = {
        name: format_estimates(*(roas[f"{name}{k}"] * factor for k in ("", "_lo", "_hi")))
        for name in ("roas", "mroas")
    }
    rows = "".join(
        f"<tr><td>{html.escape(str(ch))}</td><td>{spend[i]}</td><td>{contribution[i]}</td>"
        f"<td>{shown['roas'][i]}</td><td>{shown['mroas'][i]}</td></tr>"
        for i, ch in enumerate(roas["channel"])
    )
    unit = html.escape(f"{outcome} per {per} spent")
    return (
        '<table class="crmkit-roas"><tr><th>channel</th><th>spend</th>'
        f"<th>contribution [90%] ({html.escape(outcome)})</th>"
        f"<th>ROAS [90%] ({unit})</th><th>marginal ROAS [90%] ({unit})</th></tr>"
        f"{rows}</table>"
    )


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
    outcome
        What the model was fitted on (``"new_deals"``, ``"revenue"``), for the labels.
    """

    def __init__(
        self,
        mmm: MarketingMixModel,
        *,
        weeks: int = 12,
        n_draws: int = 300,
        forecast: PlanForecast | None = None,
        outcome: str = "outcome",
    ) -> None:
        self.mmm = mmm
        self.outcome = _outcome(outcome)
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
        spend = format_numbers([t.spend_plan, t.spend_baseline], kind="amount")
        (plan,) = format_estimates([t.plan_mean], [t.plan_lo], [t.plan_hi])
        (diff,) = format_estimates(
            [t.difference_mean], [t.difference_lo], [t.difference_hi], signed=True
        )
        self.summary.value = html.escape(
            f"Plan spend {spend[0]} vs baseline {spend[1]}. "
            f"Forecast {plan} {self.outcome} (mean [90%]); difference {diff}."
        )
        self.out.clear_output(wait=True)
        with self.out:
            display(pm_plots.scenario_chart(self.result_["weekly"], outcome=self.outcome))
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
        self.revenue.value = revenue_table_html(table)
        self.revenue_out.clear_output(wait=True)
        with self.revenue_out:
            display(pm_plots.plan_forecast_chart(table))


def revenue_table_html(table: pd.DataFrame) -> str:
    """Write the revenue table of :class:`ScenarioEditor` as HTML.

    Baseline and plan (median [80% range]) are written together, at a precision that tells
    them apart; the difference is the mean of the draw-by-draw differences with their 80%
    range (often ``0–0`` in the first months: most draws win no extra deal that soon, a few
    win one, so the mean is above the range); extra new deals keep their decimals.

    Parameters
    ----------
    table
        :meth:`crmkit.forecast.plans.PlanForecast.summary` output.

    Returns
    -------
    str
        A title and an HTML table.
    """
    n = len(table)
    levels = format_estimates(
        [*table["baseline_p50"], *table["plan_p50"]],
        [*table["baseline_lo"], *table["plan_lo"]],
        [*table["baseline_hi"], *table["plan_hi"]],
        kind="amount",
    )
    diff = format_estimates(
        table["difference_mean"],
        table["difference_lo"],
        table["difference_hi"],
        kind="amount",
        signed=True,
    )
    deals = format_numbers(table["extra_deals"], kind="count", signed=True)
    rows = "".join(
        f"<tr><td>{html.escape(str(p))}</td><td>{levels[i]}</td><td>{levels[n + i]}</td>"
        f"<td>{diff[i]}</td><td>{deals[i]}</td></tr>"
        for i, p in enumerate(table["period"])
    )
    return (
        "<b>Revenue forecast per period (total of all sources)</b>"
        '<table class="crmkit-plan-revenue"><tr><th>period</th>'
        "<th>baseline revenue, median [80% range]</th><th>plan revenue, median [80% range]</th>"
        "<th>plan − baseline revenue, mean [80% range]</th><th>extra new deals (mean)</th></tr>"
        f"{rows}</table>"
        "<small>Extra deals close over the following months: early on most draws win none yet "
        "and a few win one, so the difference's range can read 0–0 while its mean does not."
        "</small>"
    )


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
