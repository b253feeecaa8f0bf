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
* :class:`PlanForecast` -- the forecast of many plans from one set of fitted models, for
  the notebook's planned-spend grid (only the new-business draws are recomputed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmkit.campaigns import roas_prior
from crmkit.errors import CrmkitError
from crmkit.history import end_of_day
from crmkit.models import marketing_plan
from crmkit.models.marketing import MarketingMixModel, mmm_frame

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
        (:func:`crmkit.campaigns.roas_prior`, campaigns ended by ``as_of``) when the store
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
        return marketing_plan.plan_from_campaigns(mmm, frames["campaigns"], end)
    if isinstance(plan, str | Path):
        path = Path(plan)
        if not path.is_file():
            raise CrmkitError(f"no spend plan file at {path}")
        return pd.read_csv(path)
    raise CrmkitError(f"a spend plan is a DataFrame, a CSV path or 'campaigns', not {plan!r}")


def _month_end(month: int) -> pd.Timestamp:
    """Last day of a month index."""
    return pd.Timestamp(year=month // 12, month=month % 12 + 1, day=1) + pd.offsets.MonthEnd(0)


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
        The forecast's :class:`crmkit.forecast.PeriodAxis`.
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
    end = _month_end(axis.first_month + axis.months - 1)
    frame = resolve_plan(plan, mmm, frames, end)
    full, base = marketing_plan.horizon_plans(mmm, frame, end)
    extra = marketing_plan.extra_arrivals_by_month(
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
            k: d.get(k) for k in ("ok", "method", "max_rhat", "min_ess_bulk", "divergences")
        },
    }
    return extra, summary


class PlanForecast:
    """The revenue forecast of many spend plans from one set of fitted models.

    The baseline forecast is drawn once; :meth:`run` redraws only the new-business source
    with a plan's extra arrivals, with the same seeds, so it equals
    ``forecast_draws(..., plan=plan)`` at a fraction of the cost.

    Parameters
    ----------
    models
        :func:`crmkit.forecast.fit_models` output with ``"marketing"`` added.
    frames
        The store's tables.
    **settings
        ``as_of``, ``horizon`` and the other keyword arguments of
        :func:`crmkit.forecast.forecast_draws` (not ``plan``).
    """

    def __init__(
        self, models: dict[str, Any], frames: dict[str, pd.DataFrame], **settings: Any
    ) -> None:
        from crmkit.forecast import forecast_draws

        if models.get("marketing") is None:
            raise CrmkitError("PlanForecast needs models['marketing'], a fitted MarketingMixModel")
        self.models = models
        self.frames = frames
        self.settings = settings
        self.baseline_ = forecast_draws(models, frames, **settings)

    @classmethod
    def from_store(
        cls,
        store,
        *,
        as_of: object = None,
        horizon: int = 3,
        period: str = "M",
        draws: int = 1000,
        seed: int = 0,
        method: str = "map",
        mmm: MarketingMixModel | None = None,
        outcome: str = "new_deals",
        include_repeat: bool = True,
    ) -> PlanForecast:
        """Fit the forecast models on a store and draw the baseline forecast once.

        Parameters
        ----------
        store
            A :class:`crmkit.Store`.
        as_of
            Forecast day; by default the last day with data.
        horizon, period, draws, seed
            As in :func:`crmkit.forecast.run_forecast`.
        method
            Fit method of the pipeline and new-business models (and of the marketing-mix
            model when one is fitted here).
        mmm
            A marketing-mix model already fitted on the store's weekly data (reused when
            ``outcome`` is ``"new_deals"``; otherwise one is fitted on new deals).
        outcome
            What ``mmm`` was fitted on (``mmm_frame``'s ``target``).
        include_repeat
            Forecast repeat revenue too (it does not depend on the plan).

        Returns
        -------
        PlanForecast

        """
        from crmkit.forecast import fit_models, load_frames
        from crmkit.summary import last_data_day

        as_of = as_of or last_data_day(store)
        if as_of is None:
            raise CrmkitError("the store has no deals or orders to forecast from")
        frames = load_frames(store, marketing=True)
        models = fit_models(frames, as_of=as_of, method=method, seed=seed)
        if mmm is None or outcome != "new_deals":
            mmm = fit_marketing(frames, as_of=as_of, method=method, seed=seed)
        models["marketing"] = mmm
        return cls(
            models,
            frames,
            as_of=as_of,
            horizon=horizon,
            period=period,
            draws=draws,
            seed=seed,
            include_repeat=include_repeat,
            repeat_method="map" if method == "nuts" else method,
        )

    def run(self, plan: pd.DataFrame | str | Path) -> dict[str, Any]:
        """Forecast draws with a plan (the :func:`~crmkit.forecast.forecast_draws` result)."""
        from crmkit.forecast import new_business_draws

        base = self.baseline_
        axis, s = base["axis"], base["settings"]
        extra, summary = plan_arrivals(
            self.models,
            self.frames,
            plan,
            as_of=self.settings["as_of"],
            axis=axis,
            n_draws=s["n_p"],
        )
        nb, _ = new_business_draws(
            self.models["new_business"],
            self.frames.get("accounts"),
            axis,
            s["gindex"],
            draws=s["draws"],
            n_p=s["n_p"],
            seed=s["seed"],
            extra=extra,
        )
        rollup = base["rollup"].copy()
        if nb is not None:
            rollup[:, :, 1, :] = nb
        rollup[:, :, 3, :] = rollup[:, :, :3, :].sum(axis=2)
        return {**base, "rollup": rollup, "marketing": summary}

    def summary(self, plan: pd.DataFrame | str | Path, *, ci: float = 0.8) -> pd.DataFrame:
        """Total revenue per period for the baseline and the plan, and their difference.

        Returns
        -------
        pandas.DataFrame
            period; ``baseline_`` and ``plan_`` mean, lo, p50, hi of the total (quantiles
            ``(1 - ci) / 2`` and ``1 - (1 - ci) / 2``); ``difference_`` mean, lo, hi (draw by
            draw, same seeds); ``extra_deals`` (mean).

        """
        res = self.run(plan)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        b = self.baseline_["rollup"][:, :, 3, 0]
        p = res["rollup"][:, :, 3, 0]
        d = p - b
        out = pd.DataFrame({"period": res["axis"].labels})
        for name, a in (("baseline", b), ("plan", p)):
            out[f"{name}_mean"] = a.mean(axis=0)
            out[f"{name}_lo"] = np.quantile(a, lo, axis=0)
            out[f"{name}_p50"] = np.quantile(a, 0.5, axis=0)
            out[f"{name}_hi"] = np.quantile(a, hi, axis=0)
        out["difference_mean"] = d.mean(axis=0)
        out["difference_lo"] = np.quantile(d, lo, axis=0)
        out["difference_hi"] = np.quantile(d, hi, axis=0)
        out["extra_deals"] = [e["mean"] for e in res["marketing"]["extra_deals"]]
        return out
