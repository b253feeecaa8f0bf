"""Forecasts of many marketing spend plans from one set of fitted models.

:class:`PlanForecast` draws the baseline forecast once and, for each plan, redraws only
the new-business source with the plan's extra arrivals (see
:mod:`crmkit.forecast.sources.marketing`), for the notebook's planned-spend grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import add_total
from crmkit.forecast.engine import fit_models, forecast_draws, load_frames, new_business_draws
from crmkit.forecast.sources.marketing import fit_marketing, plan_arrivals
from crmkit.models.mmm.model import MarketingMixModel
from crmkit.store.summary import last_data_day


class PlanForecast:
    """The revenue forecast of many spend plans from one set of fitted models.

    The baseline forecast is drawn once; :meth:`run` redraws only the new-business source
    with a plan's extra arrivals, with the same seeds, so it equals
    ``forecast_draws(..., plan=plan)`` at a fraction of the cost.

    Parameters
    ----------
    models
        :func:`crmkit.forecast.engine.fit_models` output with ``"marketing"`` added.
    frames
        The store's tables.
    **settings
        ``as_of``, ``horizon`` and the other keyword arguments of
        :func:`crmkit.forecast.engine.forecast_draws` (not ``plan``).
    """

    def __init__(
        self, models: dict[str, Any], frames: dict[str, pd.DataFrame], **settings: Any
    ) -> None:
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
            As in :func:`crmkit.forecast.engine.run_forecast`.
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
        """Forecast draws with a plan (as :func:`~crmkit.forecast.engine.forecast_draws`)."""
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
        revenue = base["revenue"].copy()
        if nb is not None:
            revenue.loc[{"source": "new_business"}] = nb
        return {**base, "revenue": add_total(revenue), "marketing": summary}

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
        b = self.baseline_["revenue"].sel(source="total", group="all").to_numpy()
        p = res["revenue"].sel(source="total", group="all").to_numpy()
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
