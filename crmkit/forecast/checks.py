"""Model checks you can see: posterior predictive checks, traces and LOO, as tables.

* :func:`posterior_predictive_checks`: past data the models were fitted on, against what
  the fitted models replicate (:data:`PPC_CHECKS`), one row per check and label with the
  observed value, the replicated P5/P10/P50/P90/P95 and whether the observed value is
  inside the 80% and 90% intervals. A model that fits has about 80% and 90% of its rows
  inside; a check with many misses is a model that does not describe its own data.
* :func:`trace_table`: the main scalar parameters of each model's posterior per chain and
  draw (thinned), for rank and trace plots (:mod:`crmkit.plots.checks`).
* :func:`compare_variants`: PSIS-LOO (``arviz.loo`` / ``arviz.compare``) of model
  variants on the same data: the pipeline model with and without owner effects; repeat
  purchases with and without the calendar effect.
* :func:`model_check_tables`: the first two as JSON records, which
  :func:`crmkit.forecast.engine.run_forecast` keeps in the snapshot's
  ``parameters["tables"]`` (``model_checks``, ``model_traces``), and why a check is
  missing (``model_checks_missing``: its model's fit failed on the data).

These are in-sample checks (the data were used for the fit): they find a model that
cannot reproduce its data, not one that forecasts badly (backtests do,
:mod:`crmkit.forecast.backtest`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError
from crmkit.forecast.sources.repeat import repeat_summary
from crmkit.models.clv.calendar import (
    CalendarEffect,
    expected_by_period,
    repeat_counts_by_period,
)
from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.kernels import hazard_paths
from crmkit.models.pipeline.model import PipelineModel
from crmkit.models.pipeline.shocks import training_months
from crmkit.store.history import deals_as_of, month_end, month_index, month_label

#: The posterior predictive checks, in the order of the table's rows.
PPC_CHECKS = (
    "monthly won revenue",
    "wins per stage",
    "new deals per month",
    "repeat purchases per week",
)
#: Columns of :func:`posterior_predictive_checks`' table.
PPC_COLUMNS = (
    "check",
    "label",
    "observed",
    "p05",
    "p10",
    "p50",
    "p90",
    "p95",
    "inside80",
    "inside90",
)
#: Columns of :func:`trace_table`.
TRACE_COLUMNS = ("model", "parameter", "chain", "draw", "value")
#: Columns of :func:`model_check_tables`' ``model_checks_missing``.
MISSING_COLUMNS = ("check", "reason")
#: Errors a fit raises on user data (a failed fit leaves its check out and says why): ours,
#: a singular or non-finite matrix, a bad value, and arithmetic failures such as PyMC's ADVI
#: "NaN occurred in optimization" (a FloatingPointError); any other exception is a bug and
#: propagates.
FIT_ERRORS = (CrmkitError, np.linalg.LinAlgError, ValueError, ArithmeticError)
#: Longest reason kept in ``model_checks_missing`` (characters).
REASON_MAX_CHARS = 300
#: Columns of :func:`compare_variants`.
COMPARE_COLUMNS = (
    "family",
    "variant",
    "elpd_loo",
    "se",
    "d_loo",
    "dse",
    "weight",
    "pareto_k_bad",
    "rank",
)
#: Groups of the pipeline variant without owner effects.
NO_OWNER_GROUPS = ("team", "segment", "source")
#: Weeks of repeat purchases checked when no calendar effect says which.
REPEAT_WEEKS = 26


# ---------------------------------------------------------------------- PPC
def _rows(check: str, labels: list[str], observed: np.ndarray, rep: np.ndarray) -> pd.DataFrame:
    """Table rows of one check: ``rep`` is ``(draw, label)`` replicated values."""
    q = np.quantile(rep, [0.05, 0.10, 0.50, 0.90, 0.95], axis=0)
    obs = np.asarray(observed, float)
    return pd.DataFrame(
        {
            "check": check,
            "label": labels,
            "observed": obs,
            "p05": q[0],
            "p10": q[1],
            "p50": q[2],
            "p90": q[3],
            "p95": q[4],
            "inside80": (obs >= q[1]) & (obs <= q[3]),
            "inside90": (obs >= q[0]) & (obs <= q[4]),
        }
    )


def check_months(pipe: PipelineModel) -> list[int]:
    """Month indices of the monthly checks: the pipeline's training window, closes seen.

    The months after each of the pipeline model's landmarks (its ``window_months`` month
    ends before the cut-off) up to the last full month, from the first month with a
    recorded close (before it, the data have no outcomes).
    """
    return training_months(pipe)


def _won_revenue_and_stage_wins(
    pipe: PipelineModel, nb: Any, months: list[int], n_draws: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The "monthly won revenue" and "wins per stage" rows (see the public docstring)."""
    rng = np.random.default_rng(seed + 11)
    post = pipe.posterior_subset(n_draws, seed)
    mu, sig = pipe.amount_.draws(n_draws, seed)
    hindex = pipe.history_index  # parsed once for every month
    final = deals_as_of(pipe.frame_, hindex, pipe.as_of_)
    won_m = np.where(final["status"].eq("won"), month_index(final["closed_at"]), -1)
    won_month = pd.Series(won_m, index=final["deal_id"].to_numpy())
    won_amount = pd.Series(final["amount"].fillna(0.0).to_numpy(float), index=won_month.index)
    stages = list(pipe.levels_.stage)
    rev_obs, rev_rep = [], []
    stage_obs = pd.Series(0.0, index=stages)
    stage_rep = np.zeros((n_draws, len(stages)))
    nb_part = _new_business_wins(nb, months, n_draws, seed) if nb is not None else None
    for i, m in enumerate(months):
        state = deals_as_of(pipe.frame_, hindex, month_end(m - 1))
        state = state[state["status"].eq("open")]
        ids = state["deal_id"].to_numpy()
        won_now = won_month.reindex(ids).to_numpy() == m
        amount = state["amount"].fillna(0.0).to_numpy(float)
        rep = np.zeros(n_draws)
        if len(state):
            p_win, _ = hazard_paths(post, pipe.deal_codes(state), first_month=m, months=1)
            wins = rng.random(p_win[:, :, 0].shape) < p_win[:, :, 0]  # (draw, deal)
            ratio = np.exp(mu[:, None] + sig[:, None] * rng.standard_normal(wins.shape))
            rep = (wins * amount[None, :] * ratio).sum(axis=1)
            st = state["stage"].astype(str).to_numpy()
            for j, s in enumerate(stages):
                on = st == s
                stage_rep[:, j] += wins[:, on].sum(axis=1)
                stage_obs[s] += float(won_now[on].sum())
        # observed: every deal won in the month (open at the month's start or created in it)
        in_month = won_month.to_numpy() == m
        rev_obs.append(float(won_amount.to_numpy()[in_month].sum()))
        rev_rep.append(rep + (nb_part[:, i] if nb_part is not None else 0.0))
    revenue = _rows(
        PPC_CHECKS[0],
        [month_label(m) for m in months],
        np.array(rev_obs),
        np.stack(rev_rep, axis=1),
    )
    wins = _rows(PPC_CHECKS[1], stages, stage_obs.to_numpy(), stage_rep)
    return revenue, wins


def _new_business_wins(nb: Any, months: list[int], n_draws: int, seed: int) -> np.ndarray:
    """Revenue ``(draw, month)`` of deals created in each month and won in that month."""
    if nb.posterior_ is None or not len(nb.templates_):
        return np.zeros((n_draws, len(months)))
    rng = np.random.default_rng(seed + 13)
    amounts = nb.templates_["amount"].to_numpy(float)
    out = np.zeros((n_draws, len(months)))
    for i, m in enumerate(months):
        mean, alpha = nb.arrival_means(m, 1, n_draws, seed + i)
        n = 1.0 / (alpha + 1e-3)
        arrivals = rng.negative_binomial(n, n / (n + mean[:, 0]))
        p_same = nb.win_cdf(m, 1, n_draws, seed + i)[:, 0, 0]
        wins = rng.binomial(arrivals, p_same)
        for d in np.flatnonzero(wins):
            out[d, i] = amounts[rng.integers(0, len(amounts), wins[d])].sum()
    return out


def _arrival_rows(nb: Any, n_draws: int, seed: int) -> pd.DataFrame:
    """The "new deals per month" rows: arrivals against the model's posterior predictive."""
    if "posterior_predictive" not in nb.idata_.groups():
        return pd.DataFrame(columns=list(PPC_COLUMNS))
    rep = nb.idata_.posterior_predictive["arrivals"]
    rep = rep.stack(sample=("chain", "draw")).transpose("sample", "month").to_numpy()
    pick = np.random.default_rng(seed).choice(len(rep), min(n_draws, len(rep)), replace=False)
    months = nb.arrivals_.index.to_numpy(np.int64)
    return _rows(
        PPC_CHECKS[2],
        [month_label(int(m)) for m in months],
        nb.arrivals_.to_numpy(float),
        rep[pick].astype(float),
    )


def _week_labels(cutoff: object, periods: np.ndarray, n_periods: int) -> list[str]:
    """ISO week (``"2026-W10"``) of the last day of each past weekly period."""
    cut = pd.Timestamp(cutoff).normalize()
    out = []
    for j in periods:
        iso = (cut - pd.Timedelta(days=7 * (n_periods - 1 - int(j)))).isocalendar()
        out.append(f"{iso.year}-W{iso.week:02d}")
    return out


def _repeat_rows(
    repeat: Any, calendar: CalendarEffect | None, orders: pd.DataFrame | None, as_of, n_draws, seed
) -> pd.DataFrame:
    """The "repeat purchases per week" rows (see :func:`posterior_predictive_checks`)."""
    summary = repeat.fit_data_
    if calendar is not None:
        one = calendar.one_step_predictions()
        observed = calendar.idata_.observed_data["observed"].to_numpy().astype(float)
        n_periods = len(observed)
        if "posterior_predictive" not in calendar.idata_.groups():
            calendar.add_posterior_predictive(seed)
        rep = calendar.idata_.posterior_predictive["observed"].to_numpy()
        rep = rep.reshape(-1, rep.shape[-1])
        pick = np.random.default_rng(seed).choice(len(rep), min(n_draws, len(rep)), replace=False)
        periods = one["period"]
        return _rows(
            PPC_CHECKS[3],
            _week_labels(as_of, periods, n_periods),
            observed[periods],
            rep[pick],
        )
    if orders is None:
        return pd.DataFrame(columns=list(PPC_COLUMNS))
    o = orders[orders["deal_id"].isna()] if "deal_id" in orders else orders
    observed = repeat_counts_by_period(
        o.rename(columns={"account_id": "customer_id"}),
        summary["customer_id"],
        as_of,
        REPEAT_WEEKS,
    )
    draws = repeat.posterior_draws(n_draws, seed=seed)
    T = summary["T"].to_numpy(float)
    rng = np.random.default_rng(seed + 17)
    rep = np.stack(
        [
            rng.poisson(
                expected_by_period(
                    repeat.kind,
                    {k: float(draws[k][d]) for k in repeat.param_names},
                    T,
                    REPEAT_WEEKS,
                    1.0,
                )
            )
            for d in range(draws.sizes["sample"])
        ]
    ).astype(float)
    periods = np.arange(REPEAT_WEEKS)
    return _rows(PPC_CHECKS[3], _week_labels(as_of, periods, REPEAT_WEEKS), observed, rep)


def posterior_predictive_checks(
    models: dict, frames: dict, *, as_of: object, seed: int = 0, n_draws: int = 200
) -> pd.DataFrame:
    """Observed past data against the fitted models' replications, per check and label.

    * ``"monthly won revenue"``: for each month of the pipeline's training window (from
      the first recorded close), the revenue of deals won in the month (their amounts on
      ``as_of``) against its replication as the forecast is built, one month ahead from
      the month's start: each deal open at the previous month end is won in the month
      with the pipeline model's hazard (its stage, age, due status and groups then), at
      its amount then times a draw of the won / listed amount ratio; plus the new
      business: deals created in the month (the arrivals model's negative binomial) won
      within it (lag-0 win hazard), each at the amount of a recently won deal. Parameter
      draws are from the posterior, so the spread is parameter plus outcome uncertainty.
    * ``"wins per stage"``: over those months, the deals won in the month among those
      open at its start, by the stage they were in then, against the same replication.
    * ``"new deals per month"``: deals created per month (the arrivals the new-business
      model was fitted on) against its posterior predictive.
    * ``"repeat purchases per week"``: repeat purchases (days with an order without a
      deal, after a customer's first) per week before ``as_of``, against the repeat
      purchase model (``models["repeat"]``, BG/NBD or Pareto/NBD fitted on
      :func:`crmkit.forecast.sources.repeat.repeat_summary`): with ``models["calendar"]``
      (a fitted :class:`~crmkit.models.clv.calendar.CalendarEffect`) its one-step-ahead
      posterior predictive over the weeks it was fitted on, otherwise the purchase
      model's expected purchases of the base per week (per parameter draw) with Poisson
      noise over the last :data:`REPEAT_WEEKS` weeks. Left out without ``models["repeat"]``.

    Parameters
    ----------
    models
        Fitted models: ``pipeline`` and ``new_business`` (as
        :func:`crmkit.forecast.engine.fit_models` returns), optionally ``repeat`` and
        ``calendar``.
    frames
        The store's frames (:func:`crmkit.forecast.engine.load_frames`): ``orders`` for the
        repeat check.
    as_of
        The cut-off the models were fitted on.
    seed
        Random seed.
    n_draws
        Replications per row.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PPC_COLUMNS`: ``check`` (of :data:`PPC_CHECKS`), ``label`` (month
        ``"2026-03"``, stage name, week ``"2026-W10"``), ``observed``, ``p05`` ... ``p95``
        of the replications, ``inside80`` / ``inside90`` (observed within P10-P90 /
        P5-P95).
    """
    if "pipeline" not in models:
        raise CrmkitError("model checks: no fitted pipeline model in models")
    pipe = models["pipeline"]
    nb = models.get("new_business")
    parts = list(_won_revenue_and_stage_wins(pipe, nb, check_months(pipe), n_draws, seed))
    if nb is not None:
        parts.append(_arrival_rows(nb, n_draws, seed))
    if models.get("repeat") is not None:
        parts.append(
            _repeat_rows(
                models["repeat"], models.get("calendar"), frames.get("orders"), as_of, n_draws, seed
            )
        )
    parts = [p for p in parts if len(p)]
    out = pd.concat(parts, ignore_index=True)
    out["inside80"] = out["inside80"].astype(bool)
    out["inside90"] = out["inside90"].astype(bool)
    return out[list(PPC_COLUMNS)]


# ---------------------------------------------------------------------- traces
def _components(var: xr.DataArray) -> list[tuple[str, xr.DataArray]]:
    """A posterior variable's scalar components ``(name[label, ...], (chain, draw) array)``."""
    extra = [d for d in var.dims if d not in ("chain", "draw")]
    if not extra:
        return [(str(var.name), var)]
    stacked = var.stack(_c=extra)
    out = []
    for k in range(stacked.sizes["_c"]):
        key = stacked["_c"].to_numpy()[k]
        key = key if isinstance(key, tuple) else (key,)
        out.append((f"{var.name}[{', '.join(str(v) for v in key)}]", stacked.isel(_c=k)))
    return out


def trace_table(models: dict, *, max_params: int = 8, max_draws: int = 250) -> pd.DataFrame:
    """The main scalar parameters of each model's posterior, thinned, for rank and trace plots.

    A model's parameters are its posterior variables' scalar components, those of
    variables with at most two components first (scalars such as BG/NBD's ``r`` and the
    pipeline's group scales ``sigma_<group>[won|lost]``, the parameters NUTS finds
    hardest), in the posterior's order, up to ``max_params``.

    Parameters
    ----------
    models
        Name -> fitted model (anything with ``idata_.posterior``; others are skipped).
    max_params
        Parameters per model.
    max_draws
        Draws per chain kept (evenly spaced).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TRACE_COLUMNS`: ``model``, ``parameter``, ``chain``, ``draw`` (the
        draw's index in the chain), ``value``.
    """
    frames = []
    for name, model in models.items():
        idata = getattr(model, "idata_", None)
        if idata is None or "posterior" not in idata.groups():
            continue
        post = idata.posterior
        n_draw = post.sizes["draw"]
        keep = np.unique(np.linspace(0, n_draw - 1, min(max_draws, n_draw)).round().astype(int))
        comps = [c for v in post.data_vars.values() for c in _components(v)]
        small = [v for v in post.data_vars if len(_components(post[v])) <= 2]
        comps.sort(key=lambda c: 0 if c[0].split("[")[0] in small else 1)
        for pname, arr in comps[:max_params]:
            a = arr.isel(draw=keep).transpose("chain", "draw")
            vals = a.to_numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "model": name,
                        "parameter": pname,
                        "chain": np.repeat(np.arange(vals.shape[0]), vals.shape[1]),
                        "draw": np.tile(keep, vals.shape[0]),
                        "value": vals.ravel().astype(float),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=list(TRACE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(TRACE_COLUMNS)]


# ---------------------------------------------------------------------- LOO
def _loo_idata(ll: np.ndarray, name: str = "y"):
    """InferenceData with a ``log_likelihood`` ``(chain, draw, unit)`` of ``ll``."""
    import arviz as az

    ds = xr.Dataset({name: (("chain", "draw", "unit"), ll)})
    post = xr.Dataset({"_": (("chain", "draw"), np.zeros(ll.shape[:2]))})
    return az.InferenceData(posterior=post, log_likelihood=ds)


def _compare(family: str, variants: dict[str, Any]) -> pd.DataFrame:
    """``arviz.compare`` (PSIS-LOO) of variants' InferenceData, as the table's rows."""
    import arviz as az

    with warnings.catch_warnings():  # arviz warns of high Pareto k: counted in pareto_k_bad
        warnings.simplefilter("ignore")
        loos = {k: az.loo(v, pointwise=True) for k, v in variants.items()}
        cmp = az.compare(variants, ic="loo", method="stacking")
    rows = []
    for variant, r in cmp.iterrows():
        k = np.asarray(loos[variant].pareto_k, float)
        # a unit whose log-likelihood is the same at every draw leaves the posterior as it
        # is: its LOO term is exact (arviz gives k = inf there)
        ll = variants[variant].log_likelihood["y"].to_numpy()
        k = np.where(np.ptp(ll, axis=(0, 1)) == 0, 0.0, k)
        rows.append(
            {
                "family": family,
                "variant": str(variant),
                "elpd_loo": float(r["elpd_loo"]),
                "se": float(r["se"]),
                "d_loo": float(r["elpd_diff"]),
                "dse": float(r["dse"]),
                "weight": float(r["weight"]),
                "pareto_k_bad": int((k > 0.7).sum()),
                "rank": int(r["rank"]),
            }
        )
    return pd.DataFrame(rows)


def _pipeline_variants(frames: dict, as_of, method: str, seed: int) -> dict[str, Any]:
    """Log-likelihood InferenceData of the pipeline with and without owner effects.

    Both on the cells of the model without owners (owners' cells of the full model
    summed into them: leaving out one such cell leaves out all its owners' deal-months).
    """
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    history = frames.get("deal_history")
    fits = {}
    for label, groups in (("with owner effects", None), ("without owner effects", NO_OWNER_GROUPS)):
        model = PipelineModel(method=method, seed=seed, groups=groups)
        fits[label] = model.fit(deals, history, as_of=as_of).add_log_likelihood()
    full, red = fits["with owner effects"], fits["without owner effects"]
    keys = ["stage", "ahead", "age", "due", "miq", *NO_OWNER_GROUPS]
    unit = full.cells_[keys].merge(
        red.cells_[keys].reset_index(names="_unit"), on=keys, how="left"
    )["_unit"]
    if unit.isna().any():  # pragma: no cover - the cells are built the same way
        raise CrmkitError("model checks: the pipeline variants' cells do not match")
    ll_full = full.idata_.log_likelihood["cell_counts"].to_numpy()
    summed = np.zeros((*ll_full.shape[:2], len(red.cells_)))
    np.add.at(summed, (slice(None), slice(None), unit.to_numpy(np.int64)), ll_full)
    ll_red = red.idata_.log_likelihood["cell_counts"].to_numpy()
    return {
        "with owner effects": _loo_idata(summed),
        "without owner effects": _loo_idata(ll_red),
    }


def fit_repeat_models(
    frames: dict,
    *,
    as_of: object,
    method: str = "map",
    seed: int = 0,
    weeks: int = 52,
    purchase_model: Any = None,
) -> dict[str, Any]:
    """The repeat purchase model and its calendar effect, as the checks use them.

    BG/NBD on :func:`crmkit.forecast.sources.repeat.repeat_summary` (orders without a deal,
    weeks), and a :class:`~crmkit.models.clv.calendar.CalendarEffect` on the weekly repeat
    purchases of the last ``weeks`` weeks (fewer when the orders are younger).
    ``purchase_model``: that BG/NBD already fitted (the forecast's repeat source fits it
    with the same data, method and seed), so it is not fitted twice.

    Returns
    -------
    dict
        ``repeat`` and ``calendar``; empty when there are no orders or too few customers
        with repeat purchases (fewer than 20 customers or 10 repeat buyers).
    """
    from crmkit.models.clv.models import BetaGeo

    orders = frames.get("orders")
    if orders is None or orders.empty:
        return {}
    data = repeat_summary(orders, as_of)
    if len(data) < 20 or (data["frequency"] > 0).sum() < 10:
        return {}
    bg = (
        purchase_model
        if purchase_model is not None
        else BetaGeo(random_seed=seed).fit(data, method=method)
    )
    n = int(min(weeks, max(4, np.floor(data["T"].max()))))
    o = orders[orders["deal_id"].isna()] if "deal_id" in orders else orders
    counts = repeat_counts_by_period(
        o.rename(columns={"account_id": "customer_id"}), data["customer_id"], as_of, n
    )
    effect = CalendarEffect().fit(counts, purchase_model=bg, cutoff=as_of)
    return {"repeat": bg, "calendar": effect}


def _repeat_variants(frames: dict, as_of, method: str, seed: int) -> dict[str, Any]:
    """Log-likelihood InferenceData of weekly repeat purchases with and without the effect.

    Both are densities of each week's log ratio ``log((observed + 0.5) / (expected +
    0.5))`` (expected: the purchase model's, at its point estimates, as the calendar effect
    is fitted): with the effect, its one-step-ahead predictive; without, ``Normal(0, 1 /
    (expected + 0.5))`` (the purchase model alone: Poisson noise, no calendar movement),
    the same at every draw.
    """
    fitted = fit_repeat_models(frames, as_of=as_of, method=method, seed=seed)
    if not fitted:
        raise CrmkitError(
            "model checks: too few customers with repeat orders to compare repeat models"
        )
    effect = fitted["calendar"].add_log_likelihood()
    one = effect.one_step_predictions()
    var0 = 1.0 / (one["expected"] + 0.5)
    ll0 = -0.5 * (np.log(2 * np.pi * var0) + one["y"] ** 2 / var0)
    ll_with = effect.idata_.log_likelihood["observed"].to_numpy()
    ll_without = np.broadcast_to(ll0, ll_with.shape).copy()
    return {
        "with calendar effect": _loo_idata(ll_with),
        "without calendar effect": _loo_idata(ll_without),
    }


def compare_variants(
    frames: dict, *, as_of: object, method: str = "map", seed: int = 0
) -> pd.DataFrame:
    """PSIS-LOO comparison of model variants fitted on the same data.

    * ``"pipeline"``: the pipeline model with and without owner effects
      (``PipelineModel(groups=("team", "segment", "source"))``). The units left out are
      the cells of the model without owners (stage x months ahead x age x due status x
      month of quarter x team x segment x source, weighted deal-months); the full model's
      per-cell log-likelihoods are summed over owners into them.
    * ``"repeat purchases"``: weekly repeat purchases with and without the calendar effect
      (see :func:`fit_repeat_models`; the densities are of each week's log ratio of
      observed to expected purchases, the calendar effect's own scale).

    With ``method="map"`` the draws are the Laplace approximation's, so what is computed is
    PSIS-LOO on approximate posterior draws (their importance weights correct towards the
    leave-one-out posterior of the approximation, not of the exact posterior). The cells
    and weeks are not exchangeable observations either; read the differences against
    their ``dse`` and the count of Pareto k above 0.7.

    Parameters
    ----------
    frames
        The store's frames (:func:`crmkit.forecast.engine.load_frames`).
    as_of
        The cut-off.
    method
        Fit method of the variants (``"map"``, ``"nuts"``, ``"advi"``).
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPARE_COLUMNS`, one row per variant (two per family): ``elpd_loo``
        and its ``se``, ``d_loo`` / ``dse`` (difference to the family's best and its se),
        the stacking ``weight``, ``pareto_k_bad`` (units with Pareto k > 0.7) and ``rank``
        (0: best) within the family.
    """
    parts = [_compare("pipeline", _pipeline_variants(frames, as_of, method, seed))]
    orders = frames.get("orders")
    if orders is not None and not orders.empty:
        parts.append(_compare("repeat purchases", _repeat_variants(frames, as_of, method, seed)))
    return pd.concat(parts, ignore_index=True)[list(COMPARE_COLUMNS)]


# ---------------------------------------------------------------------- snapshot tables
def _records(df: pd.DataFrame) -> list[dict]:
    """JSON-ready records: Python scalars, NaN as None."""
    out = df.astype(object).where(df.notna(), None).to_dict("records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, np.generic):
                r[k] = v.item()
    return out


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most :data:`REASON_MAX_CHARS` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 3] + "..."


def model_check_tables(
    models: dict,
    frames: dict,
    *,
    as_of: object,
    method: str = "map",
    seed: int = 0,
    repeat: bool = True,
    purchase_model: Any = None,
) -> dict[str, list[dict]]:
    """The snapshot's ``model_checks`` and ``model_traces`` tables, as JSON records.

    With ``repeat``, fits the repeat purchase model and its calendar effect
    (:func:`fit_repeat_models`, MAP unless ``method`` is ``"advi"``; the BG/NBD taken from
    ``purchase_model`` when the forecast's repeat source already fitted it) when ``models``
    has none and there are orders. A fit that fails on the data (a
    :class:`~crmkit.errors.CrmkitError`, ``numpy.linalg.LinAlgError``, ``ValueError`` or
    an ``ArithmeticError`` such as ADVI's ``FloatingPointError``, :data:`FIT_ERRORS`)
    leaves the repeat check out and says why in ``model_checks_missing`` (as the forecast's
    repeat source does, a failed repeat fit does not sink the forecast); any other
    exception propagates.

    Returns
    -------
    dict
        ``model_checks``: :func:`posterior_predictive_checks`; ``model_traces``:
        :func:`trace_table` of the models with a posterior (values rounded to 6
        significant digits, 60 draws per chain); ``model_checks_missing``: one record per
        check left out because its model's fit failed (:data:`MISSING_COLUMNS`: ``check``,
        of :data:`PPC_CHECKS`, and ``reason``, one line such as ``"the repeat purchase
        model could not be fitted: Laplace approximation failed: ..."``); empty when none.
    """
    models = dict(models)
    missing: list[dict] = []
    if not repeat:
        models.pop("repeat", None)
        models.pop("calendar", None)
    elif "repeat" not in models:
        rep_method = "advi" if method == "advi" else "map"
        try:
            models.update(
                fit_repeat_models(
                    frames,
                    as_of=as_of,
                    method=rep_method,
                    seed=seed,
                    purchase_model=purchase_model,
                )
            )
        except FIT_ERRORS as exc:  # no repeat check rather than no forecast, and why
            missing.append(
                {
                    "check": PPC_CHECKS[3],
                    "reason": f"the repeat purchase model could not be fitted: {_one_line(exc)}",
                }
            )
    checks = posterior_predictive_checks(models, frames, as_of=as_of, seed=seed)
    traces = trace_table(
        {k: v for k, v in models.items() if k != "marketing"}, max_params=8, max_draws=60
    )
    traces["value"] = traces["value"].astype(float).map(lambda v: float(f"{v:.6g}"))
    return {
        "model_checks": _records(checks),
        "model_traces": _records(traces),
        "model_checks_missing": missing,
    }
