"""The forecast snapshot: the central data contract of the forecast, and how it is built.

:func:`build_snapshot` lays :func:`crmkit.forecast.engine.forecast_draws` output out as a
:class:`crmkit.store.Snapshot`; :func:`crmkit.forecast.engine.run_forecast` adds the extra
tables (:func:`crmkit.forecast.snapshot_tables.extra_tables`) and saves it. The manager app,
the report, the notebooks and the CLI read snapshots only, through this contract (the same
text is ``docs/architecture.md``).

What a snapshot holds
---------------------
``as_of``, ``horizon``, ``period``, ``label``
    The day the forecast was made as of (data after it are ignored), the number of
    periods, ``"M"`` (months, labels ``"2026-11"``) or ``"Q"`` (quarters, ``"2026-Q4"``),
    and a free-text name. The first period is the one holding ``as_of`` (only its rest is
    forecast) unless ``as_of`` is its last day. ``snapshot_id`` and ``created_at`` are set
    when it is saved.
``parameters`` (JSON)
    ``as_of``, ``horizon``, ``period``, ``draws`` (the sample count), ``target`` (None, a
    number per period, or ``{period: amount}``), ``seed``; ``methods`` (fit method of
    ``pipeline``, ``new_business`` and ``repeat``); ``method`` (as asked), ``method_used``
    (what ``auto`` resolved to) and ``method_reason``; ``data`` (what each model was fitted on,
    and ``open_deals``); ``tables`` (below); ``marketing`` (a spend plan's summary, only with
    a plan).
``diagnostics`` (JSON)
    ``ok`` (every model passed its checks), ``models`` (per model, ``pipeline``,
    ``new_business``, ``repeat``, the one diagnostics schema of
    :mod:`crmkit.models.inference.diagnostics`: ``ok``, ``method``, ``r_hat_max``,
    ``ess_bulk_min``, ``ess_tail_min``, ``divergences``, ``seconds``, ``message``; MCMC
    figures are None for approximations) and ``messages`` (warnings as text).
``quantiles`` (DataFrame)
    One row per group, source and period (in that order): ``group_by`` (``all``, ``team``,
    ``owner``, ``segment``), ``group`` (``all`` or the team, owner or segment), ``source``,
    ``period``, ``mean``, ``p05``, ``p10``, ``p25``, ``p50``, ``p75``, ``p90``, ``p95`` (of
    the revenue still to come after ``as_of``, from the draws), ``closed_to_date``
    (revenue won before ``as_of`` in the period; on ``total`` rows only, 0 elsewhere),
    ``target`` and ``p_target`` = P(closed_to_date + forecast >= target) (on the company
    ``total`` rows with a target; NaN elsewhere).
``draws`` (arrays, labelled by ``dims`` and ``coords``)
    ``revenue``: float64 ``(sample, period, source, group)``, currency amounts (the store's
    deal and order amounts) won in each period after ``as_of``; ``sample`` counts
    ``parameters["draws"]``; coordinates ``period`` (labels as above), ``source``
    (``pipeline`` open deals, ``new_business`` deals not yet created, ``repeat`` orders of
    existing customers, and ``total``, their sum draw by draw) and ``group`` (``all``, then
    ``team=..``, ``owner=..``, ``segment=..``; a group's draws are sums of its deals'
    draws, so quantiles of any roll-up are quantiles of summed draws). Read it as the
    ``xarray.DataArray`` :attr:`Snapshot.revenue <crmkit.store.Snapshot.revenue>` and select
    by name: ``snap.revenue.sel(source="total", group="all")``; never by position.
    Per open deal, dims ``(deal_id,)`` with coordinate ``deal_id``: ``deal_p_win``
    (chance of winning within the forecast months), ``deal_expected`` (expected revenue),
    ``deal_amount``, ``deal_expected_month`` (expected close month as ``year * 12 + month
    - 1``) and ``deal_stage``.
``parameters["tables"]`` (lists of JSON records)
    ``stage_probabilities`` (``pipeline``, ``stage``, ``configured``, ``learned_mean``,
    ``learned_p10``, ``learned_p90``, in stage order); ``at_risk_deals`` (the 200 open deals
    of most expected revenue: ``deal_id``, ``name``, ``owner``, ``team``, ``stage``,
    ``amount``, ``expected_close_date``, ``p_win``, ``p_slip``); ``pipeline_by_stage``,
    ``campaign_roi`` (when there are campaigns) and ``actuals``, from
    :mod:`crmkit.forecast.snapshot_tables`. ``actuals`` is the past revenue the fan chart
    draws before the forecast: records ``group``, ``period``, ``source`` (``deals``: won
    deals by close date; ``repeat``: orders without a deal by order date; ``total``: their
    sum) and ``amount``, for the last 12 periods with revenue up to the one holding
    ``as_of``. The forecast call's tables, from :mod:`crmkit.forecast.call`:
    ``forecast_call`` (per group ``all``, ``team=..``, ``owner=..`` and period: the
    category roll-ups ``closed``, ``commit``, ``best_case``, ``pipeline``, the model's
    ``p10`` / ``p50`` / ``p90`` of closed to date + forecast, ``p_commit`` and
    ``p_best_case`` = P(closed to date + forecast >= that roll-up), and the manager's latest
    call by ``as_of``: ``call``, ``call_author``, ``call_note``, ``call_at``, else None);
    ``attainment`` (per group and period with a quota of the snapshot's period kind:
    ``quota``, ``closed_to_date``, ``attainment_to_date``, ``expected_attainment``,
    ``att_p10``, ``att_p50``, ``att_p90``, ``p_attain``); ``open_deals`` (every open deal:
    ``deal_id``, ``p_win`` within the first period, ``p_slip``, ``expected_revenue`` within
    the horizon); ``model_checks`` (posterior predictive checks) and ``model_traces``
    (thinned draws of the main parameters), from :mod:`crmkit.forecast.checks`. An optional
    ``backtest`` table (saved inside the snapshot by a report that refits with a backtest;
    a ``--no-refit`` report's is kept beside the snapshot, in ``forecast_backtests``, and
    :meth:`crmkit.Store.load_snapshot` puts it here) holds accuracy scores,
    one record per forecaster (``model``, ``weighted_pipeline``, ``run_rate``) for the sum over
    the horizon (lead ``1-h``): ``origins``, ``crps``, ``mae_median``, ``cover50``, ``cover80``,
    ``cover95`` and the comparison with the run rate, ``crps_diff``, ``crps_diff_lo``,
    ``crps_diff_hi`` (mean paired CRPS difference and its 90% interval; None on the run rate's
    own rows) and ``vs_run_rate`` (``better``, ``worse``, ``not distinguishable``, ``too few
    origins`` or None) with ``vs_run_rate_how`` (the interval it rests on, e.g. "90%
    Diebold-Mariano (HLN) interval, overlap 3"), written and read by
    :func:`crmkit.forecast.snapshot_tables.backtest_records` and ``backtest_frame``. A table
    saved before the comparison was stored lacks those columns and is shown without the verdict
    line.

Publication
-----------
A snapshot is ``status`` ``"published"`` (the apps and the report read it) or ``"draft"``,
with ``reasons`` (text, one per failed check). :func:`publication_reasons` holds the checks
:func:`crmkit.forecast.engine.run_forecast` applies before saving: every model's diagnostics
are ok; the draws are finite and not negative; and the forecast is not zero in every period
while the past periods (the ``actuals`` table) had revenue. A draft is saved (to be looked
at) but :meth:`crmkit.Store.load_snapshot` and ``list_snapshots`` skip it unless asked
(``include_drafts=True``).

Version and migration
---------------------
The format version is :data:`crmkit.store.snapshots.SNAPSHOT_VERSION` (now 2), kept in the
header of the stored draws. Loading a snapshot saved in an older version upgrades it
(:func:`crmkit.store.snapshots.migrate`); version 1 (no version in the header) named the
revenue draws ``rollup`` and could hold ``actuals`` records without a ``group`` (won deals
of the whole company), which become group ``all``. A snapshot of a newer version than the
code knows is refused with a :class:`~crmkit.errors.CrmkitError` naming both versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crmkit.forecast.tables import quantile_table
from crmkit.models.inference.diagnostics import KEYS as DIAGNOSTIC_KEYS
from crmkit.store.history import month_index
from crmkit.store.snapshots import REVENUE, Snapshot

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
        Laid out as this module's docstring describes (not saved; without the extra
        tables of :func:`crmkit.forecast.snapshot_tables.extra_tables`).
    """
    revenue = result[REVENUE]
    q = quantile_table(revenue, result["closed_to_date"], target)
    pipe: PipelineModel = models["pipeline"]
    deals = result["deals"]
    at_risk = deals.sort_values("expected_revenue", ascending=False).head(200).copy()
    at_risk["expected_close_date"] = pd.to_datetime(at_risk["expected_close_date"]).dt.strftime(
        "%Y-%m-%d"
    )
    stage_tab = pipe.stage_probabilities()
    diag_models = {}
    for k, d in result["diagnostics"].items():
        diag_models[k] = {key: d.get(key) for key in DIAGNOSTIC_KEYS}
        diag_models[k]["ok"] = bool(d.get("ok", True))
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
    }
    deal_ids = deals["deal_id"].astype(str).tolist()
    exp_m = month_index(deals["expected_close_date"])
    snap_draws = {
        REVENUE: revenue.astype(np.float64),
        "deal_p_win": deals["p_win"].to_numpy(float),
        "deal_expected": deals["expected_revenue"].to_numpy(float),
        "deal_amount": deals["amount"].fillna(0).to_numpy(float),
        "deal_expected_month": np.asarray(exp_m, np.int64),
        "deal_stage": np.asarray(deals["stage"].astype(str).to_numpy(), dtype=str),
    }
    dims = {k: ["deal_id"] for k in snap_draws if k.startswith("deal_")}
    params = {
        "as_of": str(pd.Timestamp(as_of).date()),
        "horizon": int(horizon),
        "period": period,
        "draws": int(draws),
        "target": target,
        "seed": int(seed),
        "methods": {
            "pipeline": pipe.method_,
            "new_business": models["new_business"].method_,
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
        coords={"deal_id": deal_ids},
        dims=dims,
        parameters=params,
        diagnostics={
            "ok": all(v["ok"] for v in diag_models.values()),
            "models": diag_models,
            "messages": messages,
        },
        label=label or f"forecast as of {pd.Timestamp(as_of).date()} ({method})",
    )


def publication_reasons(snap: Snapshot) -> list[str]:
    """Why a forecast snapshot must not be published; empty when every check passes.

    Parameters
    ----------
    snap
        A forecast snapshot as :func:`crmkit.forecast.engine.run_forecast` builds it (with
        the ``actuals`` table when there is one).

    Returns
    -------
    list of str
        One line per failed check: a model whose diagnostics are not ok (with its method
        and message), revenue draws that are not finite or are negative, and a forecast of
        zero in every period while the past periods had revenue.
    """
    reasons = []
    models = (snap.diagnostics or {}).get("models", {})
    for name, d in models.items():
        if not d.get("ok", True):
            msg = f": {d['message']}" if d.get("message") else ""
            reasons.append(f"{name} model: diagnostics not ok ({d.get('method')}){msg}")
    if not models and not (snap.diagnostics or {}).get("ok", True):
        reasons.append("diagnostics not ok")
    if REVENUE in snap.draws:
        values = np.asarray(snap.draws[REVENUE], dtype=float)
        if not np.isfinite(values).all():
            reasons.append("the revenue draws hold NaN or infinite values")
        elif (values < 0).any():
            reasons.append("the revenue draws hold negative amounts")
        else:
            total = snap.revenue.sel(source="total", group="all")
            past = [
                float(r.get("amount") or 0.0)
                for r in (snap.parameters.get("tables") or {}).get("actuals") or []
                if r.get("group", "all") == "all" and r.get("source") == "total"
            ]
            if float(total.sum()) == 0.0 and sum(past) > 0:
                reasons.append(
                    f"the forecast is zero in every period, while the past {len(past)} "
                    f"period(s) had revenue of {sum(past):,.0f}"
                )
    return reasons


__all__ = ["build_snapshot", "publication_reasons"]
