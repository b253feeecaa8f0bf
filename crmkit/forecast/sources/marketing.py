"""A marketing spend plan in the revenue forecast: the one place marketing enters it.

A marketing-mix model fitted on *weekly new deals* turns a plan into extra new deals per
month against the baseline plan (the last 13 weeks' average spend, continued); the
forecast adds them to the new-business arrival means, and the new-business win timing, win
rates and amounts turn them into revenue. Pipeline and repeat revenue are untouched, and
the baseline plan adds exactly nothing, so no marketing effect is counted twice (see
``docs/marketing.md``).

* :func:`fit_marketing` -- the model on the store's ``channel_spend`` and deals up to a day;
* :func:`resolve_plan` -- a plan from a frame, a CSV file or the campaigns in the store;
* :func:`plan_arrivals` -- the extra arrivals per forecast month and a summary for the
  snapshot;

The forecast of many plans from one set of fitted models is
:class:`crmkit.forecast.plans.PlanForecast`. This source never imports the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.models.mmm import plan_input
from crmkit.models.mmm.campaigns import roas_prior
from crmkit.models.mmm.model import MarketingMixModel, mmm_frame
from crmkit.store.history import end_of_day, month_end

#: Sampler settings of the model fitted inside a forecast (``method="nuts"``).
FORECAST_MMM_DRAWS = 500


def marketing_weeks(frames: dict[str, pd.DataFrame], as_of: object) -> pd.DataFrame:
    """Weekly spend per channel and new deals of the weeks complete on ``as_of``."""
    spend = frames.get("channel_spend")
    if spend is None or spend.empty:
        raise CrmkitError("a spend plan needs weekly spend per channel (the channel_spend table)")
    last = pd.Timestamp(as_of).normalize() - pd.Timedelta(days=6)
    spend = spend[pd.to_datetime(spend["week_start"]) <= last]
    deals = frames["deals"]
    deals = deals[pd.to_datetime(deals["created_at"]) <= end_of_day(as_of)]
    weekly = mmm_frame(spend, deals, target="new_deals")
    if len(weekly) < 26:
        raise CrmkitError(
            f"a spend plan needs at least 26 weeks of channel spend before {as_of}, "
            f"not {len(weekly)}"
        )
    return weekly


def fit_marketing(
    frames: dict[str, pd.DataFrame],
    *,
    as_of: object,
    method: str = "map",
    seed: int = 0,
    progress: bool = False,
    saturation: str = "hill",
    model_config: dict | None = None,
    campaign_prior: bool = True,
) -> MarketingMixModel:
    """Fit the marketing-mix model on weekly new deals known on ``as_of``.

    Parameters
    ----------
    frames
        The store's tables (``channel_spend``, ``deals`` and, for ROAS priors from campaign
        results, ``campaigns``).
    as_of
        Only the weeks complete on this day are used.
    method
        ``"nuts"`` (nutpie, 2 chains x 500 draws) or ``"map"`` / ``"advi"``.
    seed, progress
        Sampler seed and progress bar.
    saturation
        ``"hill"`` or ``"logistic"``.
    model_config
        Prior overrides (see ``MarketingMixModel.default_model_config``).
    campaign_prior
        Put the ROAS prior of each channel on its campaign attribution
        (:func:`crmkit.models.mmm.campaigns.roas_prior`, campaigns ended by ``as_of``) when the
        store
        attributes deals to campaigns: what identifies always-on channels. Otherwise (or
        with False) the effect prior is the default ``beta`` prior.

    Returns
    -------
    MarketingMixModel
        Fitted, with ``target`` the weekly number of new deals.

    """
    weekly = marketing_weeks(frames, as_of)
    channels = [c for c in weekly.columns if c not in ("date", "y")]
    config = dict(model_config or {})
    effect = "beta"
    prior = campaign_roas_prior(frames, channels, as_of) if campaign_prior else None
    if prior is not None and "roas" not in config:
        config.update(prior)
        effect = "roas"
    mmm = MarketingMixModel(
        channels,
        saturation=saturation,
        effect_prior=effect,
        model_config=config or None,
        random_seed=seed,
        progressbar=progress,
    )
    kind = "nuts" if method == "nuts" else "map"
    return mmm.fit(weekly, method=kind, draws=FORECAST_MMM_DRAWS, tune=FORECAST_MMM_DRAWS)


def campaign_roas_prior(
    frames: dict[str, pd.DataFrame], channels: list[str], as_of: object
) -> dict | None:
    """ROAS priors from the campaigns ended by ``as_of`` and their deals; None without any."""
    camp = frames.get("campaigns")
    if camp is None or camp.empty or "campaign_id" not in frames["deals"]:
        return None
    ended = camp[pd.to_datetime(camp["end_date"]) <= pd.Timestamp(as_of)]
    deals = frames["deals"][pd.to_datetime(frames["deals"]["created_at"]) <= end_of_day(as_of)]
    if ended.empty or not deals["campaign_id"].isin(ended["campaign_id"]).any():
        return None
    return roas_prior(ended, deals, channels, target="new_deals")


def resolve_plan(
    plan: pd.DataFrame | str | Path,
    mmm: MarketingMixModel,
    frames: dict[str, pd.DataFrame],
    end: object,
) -> pd.DataFrame:
    """A plan frame from a frame, a CSV path, or ``"campaigns"`` (the store's campaigns)."""
    if isinstance(plan, pd.DataFrame):
        return plan
    if isinstance(plan, str) and plan == "campaigns":
        if frames.get("campaigns") is None:
            raise CrmkitError("plan='campaigns' needs the campaigns table")
        return plan_input.plan_from_campaigns(mmm, frames["campaigns"], end)
    if isinstance(plan, str | Path):
        path = Path(plan)
        if not path.is_file():
            raise CrmkitError(f"no spend plan file at {path}")
        return pd.read_csv(path)
    raise CrmkitError(f"a spend plan is a DataFrame, a CSV path or 'campaigns', not {plan!r}")


def plan_arrivals(
    models: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    plan: pd.DataFrame | str | Path,
    *,
    as_of: object,
    axis: Any,
    n_draws: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Extra new deals per forecast month from a plan, and a JSON-ready summary.

    Parameters
    ----------
    models
        Fitted models; ``models["marketing"]`` is the marketing-mix model on new deals.
    frames
        The store's tables (``campaigns`` for ``plan="campaigns"``).
    plan
        See :func:`resolve_plan`; weeks and channels it leaves out follow the baseline.
    as_of
        Forecast day; plan days up to it are not forecast.
    axis
        The forecast's :class:`crmkit.forecast.axes.PeriodAxis`.
    n_draws
        Parameter draws (rows of the result).

    Returns
    -------
    (numpy.ndarray, dict)
        ``(n_draws, months)`` extra arrivals (negative when the plan spends less), and
        ``{"method", "channels", "weeks", "spend_plan", "spend_baseline", "extra_deals":
        [{"period", "mean", "p05", "p95"}], "diagnostics"}``.

    """
    mmm = models.get("marketing")
    if mmm is None:
        raise CrmkitError("a spend plan needs a fitted marketing-mix model in models['marketing']")
    end = month_end(axis.first_month + axis.months - 1)
    frame = resolve_plan(plan, mmm, frames, end)
    full, base = plan_input.horizon_plans(mmm, frame, end)
    extra = plan_input.extra_arrivals_by_month(
        mmm, frame, as_of=as_of, first_month=axis.first_month, months=axis.months, n_draws=n_draws
    )
    per = np.zeros((n_draws, len(axis.labels)))
    np.add.at(per.T, axis.period_of_k, extra.T)
    d = mmm.diagnostics_
    summary = {
        "method": d.get("method"),
        "channels": list(mmm.channels),
        "weeks": len(full),
        "spend_plan": float(full[mmm.channels].to_numpy().sum()),
        "spend_baseline": float(base[mmm.channels].to_numpy().sum()),
        "extra_deals": [
            {
                "period": lab,
                "mean": float(per[:, i].mean()),
                "p05": float(np.quantile(per[:, i], 0.05)),
                "p95": float(np.quantile(per[:, i], 0.95)),
            }
            for i, lab in enumerate(axis.labels)
        ],
        "diagnostics": {
            k: d.get(k) for k in ("ok", "method", "r_hat_max", "ess_bulk_min", "divergences")
        },
    }
    return extra, summary
