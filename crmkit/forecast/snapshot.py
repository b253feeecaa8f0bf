"""The forecast snapshot: draws, quantiles, diagnostics and tables from a forecast's result.

:func:`build_snapshot` lays :func:`crmkit.forecast.engine.forecast_draws` output out as the
:class:`crmkit.store.Snapshot` of ``helper-notes/FORECAST_CONTRACT.md``: the rollup draws
and per-deal arrays, the quantile table, per-model diagnostics, and the tables the app shows
(stage probabilities, at-risk deals, actuals).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crmkit.forecast.axes import SOURCES, PeriodAxis
from crmkit.forecast.tables import actuals_table, quantile_table
from crmkit.store.history import month_index
from crmkit.store.snapshots import Snapshot

if TYPE_CHECKING:
    from crmkit.models.pipeline.model import PipelineModel


def build_snapshot(
    result: dict[str, Any],
    models: dict[str, Any],
    *,
    as_of: object,
    horizon: int,
    period: str,
    draws: int,
    seed: int,
    method: str,
    target: object = None,
    label: str | None = None,
) -> Snapshot:
    """A :class:`Snapshot` of forecast draws, quantiles, diagnostics and tables.

    Parameters
    ----------
    result
        :func:`crmkit.forecast.engine.forecast_draws` output.
    models
        The fitted ``"pipeline"`` and ``"new_business"`` models.
    as_of, horizon, period, draws, seed, method, target
        The forecast's settings (as in :func:`crmkit.forecast.engine.run_forecast`), kept in
        ``parameters``.
    label
        Snapshot label; by default ``"forecast as of <day> (<method>)"``.

    Returns
    -------
    Snapshot
        Laid out as ``helper-notes/FORECAST_CONTRACT.md`` describes (not saved).
    """
    axis: PeriodAxis = result["axis"]
    rollup = result["rollup"]
    groups = result["groups"]
    q = quantile_table(rollup, axis.labels, groups, result["closed_to_date"], target)
    pipe: PipelineModel = models["pipeline"]
    deals = result["deals"]
    at_risk = deals.sort_values("expected_revenue", ascending=False).head(200).copy()
    at_risk["expected_close_date"] = pd.to_datetime(at_risk["expected_close_date"]).dt.strftime(
        "%Y-%m-%d"
    )
    stage_tab = pipe.stage_probabilities()
    diag_models = {}
    for k, d in result["diagnostics"].items():
        diag_models[k] = {
            "ok": bool(d.get("ok", True)),
            "method": d.get("method"),
            "r_hat_max": d.get("r_hat_max"),
            "ess_bulk_min": d.get("ess_bulk_min"),
            "divergences": d.get("divergences"),
            "seconds": d.get("seconds"),
        }
    messages = [
        f"{k}: {d['message']}" for k, d in result["diagnostics"].items() if d.get("message")
    ]
    messages += [
        f"{k}: diagnostics not ok ({v['method']})" for k, v in diag_models.items() if not v["ok"]
    ]
    tables = {
        "stage_probabilities": stage_tab.to_dict("records"),
        "at_risk_deals": at_risk[
            [
                "deal_id",
                "name",
                "owner",
                "team",
                "stage",
                "amount",
                "expected_close_date",
                "p_win",
                "p_slip",
            ]
        ]
        .astype(object)
        .where(at_risk.notna(), None)
        .to_dict("records"),
        "actuals": actuals_table(pipe.frame_, as_of, period),
    }
    deal_ids = deals["deal_id"].astype(str).tolist()
    exp_m = month_index(deals["expected_close_date"])
    snap_draws = {
        "rollup": rollup.astype(np.float64),
        "deal_p_win": deals["p_win"].to_numpy(float),
        "deal_expected": deals["expected_revenue"].to_numpy(float),
        "deal_amount": deals["amount"].fillna(0).to_numpy(float),
        "deal_expected_month": np.asarray(exp_m, np.int64),
        "deal_stage": np.asarray(deals["stage"].astype(str).to_numpy(), dtype=str),
    }
    dims = {"rollup": ["sample", "period", "source", "group"]}
    dims.update({k: ["deal_id"] for k in snap_draws if k.startswith("deal_")})
    params = {
        "as_of": str(pd.Timestamp(as_of).date()),
        "horizon": int(horizon),
        "period": period,
        "draws": int(draws),
        "target": target,
        "seed": int(seed),
        "methods": {
            "pipeline": pipe.method,
            "new_business": models["new_business"].method,
            "repeat": result["diagnostics"]["repeat"].get("method"),
        },
        "data": {
            "pipeline": pipe.data_,
            "new_business": models["new_business"].data_,
            "open_deals": len(deals),
        },
        "tables": tables,
    }
    if result.get("marketing") is not None:
        params["marketing"] = result["marketing"]
    return Snapshot(
        as_of=pd.Timestamp(as_of).date(),
        horizon=int(horizon),
        period=period,
        quantiles=q,
        draws=snap_draws,
        coords={
            "period": axis.labels,
            "source": list(SOURCES),
            "group": groups,
            "deal_id": deal_ids,
        },
        dims=dims,
        parameters=params,
        diagnostics={
            "ok": all(v["ok"] for v in diag_models.values()),
            "models": diag_models,
            "messages": messages,
        },
        label=label or f"forecast as of {pd.Timestamp(as_of).date()} ({method})",
    )


__all__ = ["build_snapshot"]
