"""The revenue forecast: draws per period from open deals, new business and repeat customers.

Each source gives draws of revenue with dims ``(sample, period, group)``; together they are
the labelled ``revenue`` draws ``(sample, period, source, group)`` (an ``xarray.DataArray``,
sources selected by name), the total is their sum draw by draw, and every roll-up (team,
owner, segment) is a sum of the deals' draws, never a sum of quantiles. The result is a
:class:`crmkit.store.Snapshot` laid out as the contract in :mod:`crmkit.forecast.snapshot`
(``docs/architecture.md``) describes.

This module fits the models (:func:`fit_models`), draws the forecast
(:func:`forecast_draws`) and runs the whole (:func:`run_forecast`). The rest lives beside it
and is re-exported here: the period and group axes (:mod:`crmkit.forecast.axes`), the
quantile table, P(target) and the CLI's JSON (:mod:`crmkit.forecast.tables`), the
snapshot's layout (:mod:`crmkit.forecast.snapshot`) and the comparison of two snapshots
(:mod:`crmkit.forecast.compare`); the last two modules import no modelling stack.

Quantiles are of the revenue still to come after ``as_of``; ``closed_to_date`` (won before
``as_of`` in the current period, on the ``total`` rows) is kept apart and added for
``p_target = P(closed_to_date + forecast >= target)``. Repeat revenue is allocated to
segments by account, and to owners and teams by account owner (and the owner's team in
the deals) where known.

Nothing silently wrong: :func:`run_forecast` checks its parameters first
(:func:`crmkit.forecast.params.validate_forecast_parameters`: ``as_of`` a real day within the
data, horizon, draws, target, method and seed); a model without the data it needs raises a
:class:`~crmkit.errors.CrmkitError` naming the model and what is missing
(:func:`check_model_data`, and the repeat source in :func:`forecast_draws`) instead of
forecasting zeros; and a forecast whose checks fail
(:func:`crmkit.forecast.snapshot.publication_reasons`) is saved as a draft, which the apps
never show.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import poisson

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import (
    PeriodAxis,
    add_total,
    calendar_parameters,
    group_axis,
    memberships,
    period_axis,
    revenue_array,
)
from crmkit.forecast.call import call_tables, first_period_win, read_call_frames
from crmkit.forecast.params import METHODS, validate_forecast_parameters
from crmkit.forecast.snapshot import build_snapshot, publication_reasons
from crmkit.models.inference.diagnostics import DIVERGENCES_MAX, ESS_BULK_MIN, R_HAT_MAX
from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.kernels import simulate_new_business, simulate_pipeline
from crmkit.models.pipeline.model import PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel
from crmkit.store.currency import converted_deals, converted_history, rate_table
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.history import deals_as_of, end_of_day
from crmkit.store.settings import get_setting
from crmkit.store.snapshots import Snapshot

# ---------------------------------------------------------------------- data
FORECAST_TABLES = ("deals", "deal_history", "accounts", "stages", "orders")
MARKETING_TABLES = ("channel_spend", "campaigns")
#: Columns read of a table when not all (orders: millions of rows; no reader needs their id).
READ_COLUMNS = {"orders": ("account_id", "ordered_at", "amount", "deal_id")}


def load_frames(store, *, marketing: bool = False, as_of: object = None) -> dict[str, pd.DataFrame]:
    """Return the store's tables a forecast needs, amounts in the reporting currency.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    marketing
        Also read the tables of a marketing plan.
    as_of
        The forecast day: open deals convert at its rates, won and lost ones at their close
        day (:func:`crmkit.store.currency.converted_deals`); None: the last day of the deals.

    Returns
    -------
    dict
        ``{table: DataFrame}``; ``deals`` (with ``amount_original`` and
        ``currency_original``) and the ``amount`` values of ``deal_history`` are converted
        to the database's ``reporting_currency`` before anything else reads them;
        ``orders`` has the columns of :data:`READ_COLUMNS` (no ``order_id``).

    Raises
    ------
    CrmkitError
        A deal's currency lacks a rate: one line listing every missing currency and the
        first day it is needed.
    """
    names = FORECAST_TABLES + (MARKETING_TABLES if marketing else ())
    frames = {name: store.read(name, columns=READ_COLUMNS.get(name)) for name in names}
    reporting = str(get_setting(store, "reporting_currency"))
    rates = rate_table(store)
    deals = frames["deals"]
    frames["deals"] = converted_deals(deals, rates, reporting, as_of)
    frames["deal_history"] = converted_history(
        frames["deal_history"], deals, rates, reporting, as_of
    )
    return frames


def _won_in(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Deals won with ``start <= closed_at <= end``."""
    c = pd.to_datetime(frame["closed_at"])
    return frame[frame["status"].eq("won") & (c >= start) & (c <= end)]


# ---------------------------------------------------------------------- fitting
#: Months before ``as_of`` whose wins are the new-business model's amount templates.
TEMPLATE_MONTHS = 12
#: Seconds a whole NUTS forecast (``crmkit forecast``: pipeline and arrival models sampled,
#: 2 cores) may take for method ``"auto"`` to choose NUTS; above it, MAP + Laplace.
NUTS_BUDGET_SECONDS = 120.0
#: The cost model of :func:`resolve_method`: seconds of a whole ``crmkit forecast`` with
#: NUTS on 2 free cores (2,000 pipeline and 2,000 arrival draws per chain, 2 chains, repeat
#: revenue and the model checks included) = ``fixed + per_deal * training deals``
#: (:func:`training_deals`). Measured on a quiet machine (load below 1.1, 2026-12-05
#: 17:08-17:16 UTC) on the demo at 3,000 / 6,000 / 12,000 deals (1,769 / 3,519 / 7,057
#: training deals): 64 / 66 / 74 s (``benchmarks/results/forecast.md``, Speed).
NUTS_COST = {"fixed": 60.0, "per_deal": 0.0025}
#: Most times the draws a NUTS fit short of effective draws is sampled again with (auto).
NUTS_MORE_DRAWS = 3
#: Most training deals for which ``"auto"`` chooses NUTS: on the demo both models passed
#: their checks at 1,769 and 3,519 training deals, while at 7,057 the pipeline model had 2
#: divergences (``benchmarks/results/forecast.md``, Speed). A fit that fails anyway is
#: repaired or refitted by MAP (:func:`fit_models`).
NUTS_MAX_DEALS = 5_000


def training_deals(
    frames: dict[str, pd.DataFrame], *, as_of: object, window_months: int = 24
) -> int:
    """The number of deals the pipeline model learns from: open at some time in its window.

    Parameters
    ----------
    frames
        The store's tables (:func:`load_frames`).
    as_of
        The forecast day.
    window_months
        The models' training window.

    Returns
    -------
    int
        Deals created by ``as_of`` and not closed before the window's first day.
    """
    deals = frames["deals"]
    t = end_of_day(as_of)
    created = pd.to_datetime(deals["created_at"])
    closed = pd.to_datetime(deals["closed_at"])
    start = t - pd.DateOffset(months=window_months)
    return int(((created <= t) & ~(closed <= start)).sum())


def nuts_seconds(n_deals: int) -> float:
    """Expected seconds of a NUTS forecast on 2 free cores for ``n_deals`` training deals."""
    return NUTS_COST["fixed"] + NUTS_COST["per_deal"] * n_deals


def _duration(seconds: float) -> str:
    """``"45 s"`` or ``"6 min"``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def resolve_method(
    frames: dict[str, pd.DataFrame],
    *,
    as_of: object,
    method: str,
    nuts_budget_s: float | None = None,
    window_months: int = 24,
) -> tuple[str, str]:
    """The fit method to use for ``method``, and why: ``"auto"`` is NUTS when it fits the budget.

    ``"auto"`` (the default of :func:`run_forecast`, ``crmkit forecast`` and ``crmkit
    report``) samples with NUTS when the expected time of the NUTS forecast
    (:func:`nuts_seconds` of :func:`training_deals`, the cost model :data:`NUTS_COST`) is
    within ``nuts_budget_s`` (2 minutes) and the training deals are at most
    :data:`NUTS_MAX_DEALS`, the size up to which NUTS passed its checks on the demo; else
    it takes MAP + Laplace (seconds). Measured on 2 cores (``benchmarks/results/forecast.md``,
    Speed): the 3,000- and 6,000-deal demos (1,769 and 3,519 training deals) take 64 and
    66 s with NUTS and pass its checks; the 12,000-deal demo (7,057) would take 74 s but its
    pipeline fit diverges, so it gets MAP. Other methods are returned as asked.

    Parameters
    ----------
    frames
        The store's tables (:func:`load_frames`); only ``deals`` is read.
    as_of
        The forecast day.
    method
        ``"auto"`` or one of ``"map"``, ``"nuts"``, ``"advi"``.
    nuts_budget_s
        Seconds of a NUTS forecast ``"auto"`` accepts (None: :data:`NUTS_BUDGET_SECONDS`).
    window_months
        The models' training window.

    Returns
    -------
    tuple of str
        The method used (``"nuts"`` or ``"map"`` for ``"auto"``) and one short sentence
        saying why, e.g. ``"1,769 deals: NUTS takes about 64 s"`` or ``"500,000 deals: NUTS
        would take about 22 min; MAP + Laplace used; --method nuts to sample anyway"``.
    """
    if method != "auto":
        return method, f"{method} as asked"
    n = training_deals(frames, as_of=as_of, window_months=window_months)
    seconds = nuts_seconds(n)
    if seconds > (NUTS_BUDGET_SECONDS if nuts_budget_s is None else nuts_budget_s):
        why = f"NUTS would take about {_duration(seconds)}"
    elif n > NUTS_MAX_DEALS:
        why = f"above the {NUTS_MAX_DEALS:,} up to which NUTS passed its checks on the demo"
    else:
        return "nuts", f"{n:,} deals: NUTS takes about {_duration(seconds)}"
    return "map", f"{n:,} deals: {why}; MAP + Laplace used; --method nuts to sample anyway"


def check_model_data(
    frames: dict[str, pd.DataFrame], *, as_of: object, window_months: int = 24
) -> None:
    """Refuse to fit the pipeline and new-business models on too little data.

    Parameters
    ----------
    frames
        The store's tables (:func:`load_frames`).
    as_of
        The forecast day.
    window_months
        The models' training window.

    Raises
    ------
    CrmkitError
        Naming the model and what is missing: no deal created by ``as_of``, no deal won or
        lost in the window before it (nothing to learn stage win rates from), or no deal won
        in the :data:`TEMPLATE_MONTHS` before it (nothing to draw new deals' amounts from).
    """
    deals = frames["deals"]
    day = pd.Timestamp(as_of).date()
    t = end_of_day(as_of)
    created = pd.to_datetime(deals["created_at"])
    if not (created <= t).any():
        first = created.min().date() if len(deals) else None
        raise CrmkitError(
            f"pipeline model: no deals created by {day} (the first was created on {first}); "
            "nothing to forecast from"
        )
    closed = pd.to_datetime(deals["closed_at"])
    status = deals["status"]
    window = (closed <= t) & (closed > t - pd.DateOffset(months=window_months))
    won, lost = int((window & status.eq("won")).sum()), int((window & status.eq("lost")).sum())
    if won + lost == 0:
        raise CrmkitError(
            f"pipeline model: no closed deals in the {window_months} months before {day}; "
            "nothing to learn stage win rates from"
        )
    if won == 0:
        raise CrmkitError(
            f"pipeline model: no won deals in the {window_months} months before {day} "
            f"({lost} lost); nothing to learn stage win rates from"
        )
    recent = (closed <= t) & (closed > t - pd.DateOffset(months=TEMPLATE_MONTHS))
    if not (recent & status.eq("won") & deals["amount"].gt(0)).any():
        raise CrmkitError(
            f"new business model: no deals won with an amount in the {TEMPLATE_MONTHS} months "
            f"before {day}; nothing to draw new deals' amounts from"
        )


def fit_models(
    frames: dict[str, pd.DataFrame],
    *,
    as_of: object,
    method: str = "map",
    seed: int = 0,
    progress: bool = False,
    window_months: int = 24,
    draws: int = 500,
    tune: int = 500,
    report: Callable[[str], None] | None = None,
    fallback: bool | None = None,
) -> dict[str, Any]:
    """Fit the pipeline and new-business models on what was known on ``as_of``.

    ``fallback`` (default: when ``method`` is ``"auto"``): a model whose NUTS fit fails its
    checks (R-hat, ESS, divergences) is fitted again by MAP + Laplace, with a line saying
    so, and its ``diagnostics_`` keep the failed NUTS checks under ``"nuts"``: ``"auto"``
    means the best method that passes, not a draft. An explicit ``"nuts"`` keeps the failed
    fit (the snapshot becomes a draft, as asked).

    Too little data for a model raises a CrmkitError saying what is missing
    (:func:`check_model_data`; and for new business, fewer than 2 complete months of deal
    arrivals). ``report``, when given, receives a line as each model starts and ends (with
    its time and diagnostics), for the CLI to show while a long fit runs. ``method``
    ``"auto"`` is resolved by :func:`resolve_method` (its choice is reported); the default
    stays ``"map"`` for the callers that refit many times (backtests).
    """
    check_model_data(frames, as_of=as_of, window_months=window_months)
    if fallback is None:
        fallback = method == "auto"
    if method == "auto":
        method, why = resolve_method(
            frames, as_of=as_of, method=method, window_months=window_months
        )
        if report is not None:
            report(f"method auto -> {method} ({why})")
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    history = frames.get("deal_history")
    settings = {
        "method": method,
        "seed": seed,
        "progress": progress,
        "window_months": window_months,
        "draws": draws,
        "tune": tune,
    }
    # NUTS: the pipeline's owner scale mixes slowly (bulk ESS ~0.2 a draw) and the arrival
    # model's level scale ~0.35: 2,000 draws per chain give bulk and tail ESS >= 400
    # (benchmarks/results/forecast.md)
    nuts = method == "nuts"
    pipe_settings = {**settings, "draws": max(draws, 2000)} if nuts else settings
    nb_settings = {**settings, "draws": max(draws, 2000)} if nuts else settings

    def fit_pipeline(how: dict[str, Any]) -> PipelineModel:
        return PipelineModel(**how).fit(deals, history, as_of=as_of, stages=frames.get("stages"))

    def fit_new_business(how: dict[str, Any]) -> NewBusinessModel:
        return NewBusinessModel(**how).fit(deals, history, as_of=as_of)

    deadline = time.monotonic() + NUTS_BUDGET_SECONDS
    pipe = _fit_checked(
        "pipeline", fit_pipeline, pipe_settings, settings, fallback, report, deadline
    )
    nb = _fit_checked(
        "new business", fit_new_business, nb_settings, settings, fallback, report, deadline
    )
    if nb.posterior_ is None:
        raise CrmkitError(
            f"new business model: {nb.data_['months']} complete month(s) of deal arrivals "
            f"before {pd.Timestamp(as_of).date()}, at least 2 needed; nothing to learn "
            "arrival rates from"
        )
    return {"pipeline": pipe, "new_business": nb}


def _fit_checked(
    name: str,
    fit: Callable[[dict[str, Any]], Any],
    settings: dict[str, Any],
    map_settings: dict[str, Any],
    fallback: bool,
    report: Callable[[str], None] | None,
    deadline: float | None = None,
) -> Any:
    """Fit one model (reported); with ``fallback``, a NUTS fit failing its checks is repaired.

    Short of effective draws only (R-hat and divergences fine): sampled once more with
    enough draws for the ESS bar (at most :data:`NUTS_MORE_DRAWS` times as many) when that
    is expected to end before ``deadline`` (``time.monotonic()``); otherwise, or still
    failing, or failing R-hat or divergences: refitted by MAP + Laplace.
    """
    t0 = time.monotonic()
    with fit_report(report, name, settings) as done:
        model = fit(settings)
        done(model)
    took = time.monotonic() - t0
    diag = getattr(model, "diagnostics_", None) or {}
    if not fallback or settings["method"] != "nuts" or diag.get("ok", True):
        return model
    ess = min(float(diag.get("ess_bulk_min") or 0.0), float(diag.get("ess_tail_min") or 0.0))
    factor = min(NUTS_MORE_DRAWS, int(np.ceil(1.25 * ESS_BULK_MIN / max(ess, 1.0))))
    draws, tune = int(settings["draws"]), int(settings.get("tune") or 0)
    expected = took * (factor * draws + tune) / max(draws + tune, 1)
    if (
        int(diag.get("divergences") or 0) <= DIVERGENCES_MAX
        and float(diag.get("r_hat_max") or np.inf) <= R_HAT_MAX
        and ess > 0
        and (deadline is None or time.monotonic() + expected <= deadline)
    ):
        more = {**settings, "draws": draws * factor}
        if report is not None:
            report(f"{name} model: effective draws {ess:.0f} < {ESS_BULK_MIN}; sampling longer")
        with fit_report(report, name, more) as done:
            model = fit(more)
            done(model)
        diag = getattr(model, "diagnostics_", None) or {}
        if diag.get("ok", True):
            return model
    failed = {k: diag.get(k) for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences")}
    if report is not None:
        report(f"{name} model: NUTS failed its checks; fitting it by MAP + Laplace instead")
    how = {**map_settings, "method": "map"}
    with fit_report(report, name, how) as done:
        model = fit(how)
        done(model)
    model.diagnostics_ = {
        **model.diagnostics_,
        "nuts": {**failed, "ok": False},
        "message": (
            f"{model.diagnostics_.get('message') or ''} NUTS failed its checks "
            f"({_failed_checks(failed)}); MAP + Laplace used"
        ).strip(),
    }
    return model


def _failed_checks(d: dict[str, Any]) -> str:
    """``"R-hat 1.03, bulk ESS 207, 3 divergences"`` from a diagnostics dict."""
    parts = []
    if d.get("r_hat_max") is not None:
        parts.append(f"R-hat {float(d['r_hat_max']):.3f}")
    if d.get("ess_bulk_min") is not None:
        parts.append(f"bulk ESS {float(d['ess_bulk_min']):.0f}")
    if d.get("ess_tail_min") is not None:
        parts.append(f"tail ESS {float(d['ess_tail_min']):.0f}")
    if d.get("divergences") is not None:
        parts.append(f"{int(d['divergences'])} divergences")
    return ", ".join(parts)


@contextlib.contextmanager
def fit_report(
    report: Callable[[str], None] | None, name: str, settings: dict[str, Any]
) -> Iterator[Callable[[Any], None]]:
    """Report a model fit's start, then (through the callable yielded) its time and checks."""
    t0 = time.monotonic()
    if report is not None:
        how = settings["method"]
        if how == "nuts":
            how += f": {settings['draws']} draws after {settings['tune']} tuning steps per chain"
        report(f"fitting the {name} model ({how}) ...")

    def done(model: Any) -> None:
        if report is None:
            return
        d = getattr(model, "diagnostics_", None) or {}
        checks = []
        if d.get("r_hat_max") is not None:
            checks.append(f"R-hat {float(d['r_hat_max']):.3f}")
        if d.get("ess_bulk_min") is not None:
            checks.append(f"bulk ESS {float(d['ess_bulk_min']):.0f}")
        if d.get("ess_tail_min") is not None:
            checks.append(f"tail ESS {float(d['ess_tail_min']):.0f}")
        if d.get("divergences") is not None:
            checks.append(f"{int(d['divergences'])} divergences")
        verdict = "checks passed" if d.get("ok") else "CHECKS FAILED"
        if not checks and not d.get("ok") and d.get("message"):
            checks.append(str(d["message"]))
        detail = f" ({', '.join(checks)})" if checks else ""
        report(f"{name} model fitted in {time.monotonic() - t0:.0f} s: {verdict}{detail}")

    yield done


def new_business_draws(
    nb: NewBusinessModel,
    accounts: pd.DataFrame | None,
    axis: PeriodAxis,
    gindex: dict[str, int],
    *,
    draws: int,
    n_p: int,
    seed: int,
    extra: np.ndarray | None = None,
) -> tuple[np.ndarray | None, dict]:
    """New-business revenue draws ``(sample, period, group)`` and the model's diagnostics.

    ``extra`` ``(n_p, months)`` is added to the arrival means (a marketing plan's extra
    deals against the baseline; the mean is floored at 0). None when there is nothing to
    draw from.
    """
    if nb.posterior_ is None or not len(nb.templates_):
        # zeros here would look like a forecast: not ok, so the snapshot is a draft
        return None, {
            **getattr(nb, "diagnostics_", {}),
            "ok": False,
            "message": "no arrivals model or no won deals to draw amounts from",
        }
    mu_nb, alpha = nb.arrival_means(axis.first_month, axis.months, n_p, seed)
    mu_nb[:, 0] *= axis.frac_first
    if extra is not None:
        mu_nb = np.maximum(mu_nb + extra, 0.0)
    rng = np.random.default_rng(seed + 1)
    pick = np.arange(draws) % n_p
    shape = 1.0 / np.maximum(alpha[pick], 1e-6)
    # Common random numbers: the same uniforms whatever the means, and counts by inversion,
    # so a plan with more arrivals has at least the baseline's deals in every draw.
    gam = rng.standard_gamma(np.broadcast_to(shape[:, None], mu_nb[pick].shape))
    lam = gam * mu_nb[pick] / shape[:, None]
    counts = np.maximum(poisson.ppf(rng.random(lam.shape), lam), 0).astype(np.int64)
    cdf = nb.win_cdf(axis.first_month, axis.months, n_p, seed)
    t = deal_frame(nb.templates_, accounts)
    rev = simulate_new_business(
        counts,
        cdf,
        axis.period_of_k,
        t["amount"].to_numpy(float),
        memberships(t, gindex),
        n_periods=len(axis.labels),
        n_groups=len(gindex),
        seed=seed + 2,
        lag_bounds=nb.template_lag_bounds(),
    )
    return rev, dict(nb.diagnostics_)


# ---------------------------------------------------------------------- forecasting
def forecast_draws(
    models: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    *,
    as_of: object,
    horizon: int,
    period: str = "M",
    draws: int = 1000,
    seed: int = 0,
    param_draws: int = 100,
    include_repeat: bool = True,
    repeat_method: str = "map",
    plan: pd.DataFrame | str | None = None,
    calendar: FiscalCalendar | None = None,
) -> dict[str, Any]:
    """Revenue draws per source, period and group from fitted models.

    ``calendar`` is the company's fiscal calendar (None: calendar months and quarters); the
    periods are its months or fiscal quarters (:func:`crmkit.forecast.axes.period_axis`).

    ``plan`` (weekly spend per channel, see :func:`crmkit.forecast.sources.marketing.plan_arrivals`)
    needs ``models["marketing"]``, a :class:`~crmkit.models.mmm.model.MarketingMixModel`
    fitted on weekly new deals: the plan's extra arrivals against the baseline plan are
    added to the new-business arrival means, and nothing else changes.

    Returns
    -------
    dict
        ``revenue``: an ``xarray.DataArray`` of currency amounts per period with dims
        ``(sample, period, source, group)`` and coordinates ``period`` (labels), ``source``
        (:data:`~crmkit.forecast.axes.SOURCES`, ``total`` the sum of the others draw by
        draw) and ``group`` (``all``, ``team=..``, ...); ``closed_to_date``: a DataArray
        ``(period, group)`` of revenue won before ``as_of`` in the current period;
        ``axis`` (PeriodAxis), ``deals`` (open deals with ``p_win``, ``p_slip``,
        ``expected_revenue``), ``diagnostics`` per source, ``marketing`` (None without a
        plan) and ``settings``.
    """
    axis = period_axis(as_of, horizon, period, calendar)
    pipe: PipelineModel = models["pipeline"]
    nb: NewBusinessModel = models["new_business"]
    accounts = frames.get("accounts")
    frame = pipe.frame_
    groups = group_axis(frame, accounts)
    gindex = {g: i for i, g in enumerate(groups)}
    n_groups, n_per = len(groups), len(axis.labels)
    revenue = revenue_array(draws, axis.labels, groups)
    n_p = min(param_draws, draws)

    # open pipeline
    open_deals = pipe.open_deals()
    post = pipe.posterior_subset(n_p, seed)
    mu, sig = pipe.amount_.draws(n_p, seed)
    codes = pipe.deal_codes(open_deals)
    pipe_rev, p_win, p_slip = simulate_pipeline(
        post,
        codes,
        open_deals["amount"].fillna(0.0).to_numpy(float),
        memberships(open_deals, gindex),
        first_month=axis.first_month,
        period_of_k=axis.period_of_k,
        frac_first=axis.frac_first,
        ratio_mu=mu,
        ratio_sigma=sig,
        n_draws=draws,
        n_periods=n_per,
        n_groups=n_groups,
        seed=seed,
    )
    revenue.loc[{"source": "pipeline"}] = pipe_rev
    mean_ratio = float(np.mean(np.exp(mu + sig**2 / 2)))
    deals_out = open_deals.reindex(
        columns=[
            "deal_id",
            "name",
            "owner",
            "team",
            "segment",
            "stage",
            "amount",
            "expected_close_date",
        ]
    ).copy()
    deals_out["p_win"] = p_win
    deals_out["p_slip"] = p_slip
    deals_out["expected_revenue"] = p_win * deals_out["amount"].fillna(0.0) * mean_ratio

    # new business (the one place a marketing plan enters: extra arrivals)
    marketing = None
    extra = None
    if plan is not None:
        from crmkit.forecast.sources.marketing import plan_arrivals

        extra, marketing = plan_arrivals(models, frames, plan, as_of=as_of, axis=axis, n_draws=n_p)
    nb_rev, nb_diag = new_business_draws(
        nb, accounts, axis, gindex, draws=draws, n_p=n_p, seed=seed, extra=extra
    )
    if nb_rev is not None:
        revenue.loc[{"source": "new_business"}] = nb_rev
    if marketing is not None and not marketing["diagnostics"].get("ok", True):
        nb_diag = {
            **nb_diag,
            "ok": False,
            "message": "the marketing-mix model behind the spend plan did not converge",
        }

    # repeat customers
    rep_diag: dict = {"ok": True, "method": "none", "message": "not requested"}
    if include_repeat:
        from crmkit.forecast.sources.repeat import repeat_draws

        owner_team = (
            frame[frame["team"] != "(none)"]
            .groupby("owner")["team"]
            .agg(lambda s: s.mode().iloc[0])
            .to_dict()
        )
        t0 = pd.Timestamp(as_of).normalize()
        ends = [
            pd.Timestamp(year=m // 12, month=m % 12 + 1, day=1) + pd.offsets.MonthEnd(0)
            for m in axis.first_month + np.arange(axis.months)
        ]
        weeks = np.array([(e - t0).days / 7.0 for e in ends])
        try:
            rep, rep_diag = repeat_draws(
                frames.get("orders"),
                accounts,
                gindex,
                owner_team,
                as_of=as_of,
                month_edges_weeks=weeks,
                period_of_k=axis.period_of_k,
                n_periods=n_per,
                n_draws=draws,
                method=repeat_method,
                seed=seed,
            )
            revenue.loc[{"source": "repeat"}] = rep
        except Exception as exc:  # a failed repeat fit must not sink the whole forecast
            rep_diag = {"ok": False, "method": repeat_method, "message": f"repeat failed: {exc}"}
        orders = frames.get("orders")
        if rep_diag.get("method") == "none" and orders is not None and not orders.empty:
            # orders exist but too few by as_of: zeros would look like a forecast
            raise CrmkitError(
                f"repeat model: too few customers with orders by {pd.Timestamp(as_of).date()} "
                f"({rep_diag.get('message')}); forecast without repeat revenue "
                "(include_repeat=False, or crmkit forecast --no-repeat)"
            )
    add_total(revenue)

    # closed to date in the current period
    closed = np.zeros((n_per, n_groups))
    if axis.frac_first < 1.0 or period == "Q":
        state = deals_as_of(frame, pipe.history_, as_of)
        start = axis.bounds[0][0]  # the first period's first day
        won = _won_in(state, start, end_of_day(as_of))
        if len(won):
            gid = memberships(won, gindex)
            for col in range(gid.shape[1]):
                np.add.at(
                    closed[0],
                    gid[:, col][gid[:, col] >= 0],
                    won["amount"].fillna(0).to_numpy(float)[gid[:, col] >= 0],
                )
    diagnostics = {"pipeline": pipe.diagnostics_, "new_business": nb_diag, "repeat": rep_diag}
    return {
        "revenue": revenue,
        "axis": axis,
        "deals": deals_out,
        "diagnostics": diagnostics,
        "closed_to_date": xr.DataArray(
            closed,
            dims=("period", "group"),
            coords={"period": axis.labels, "group": groups},
            name="closed_to_date",
            attrs={"units": revenue.attrs["units"]},
        ),
        "marketing": marketing,
        "settings": {"draws": draws, "n_p": n_p, "seed": seed, "gindex": gindex},
    }


def run_forecast(
    store,
    *,
    as_of: object,
    horizon: int,
    period: str = "M",
    draws: int = 1000,
    target: object = None,
    seed: int = 0,
    method: str = "auto",
    progress: bool = False,
    label: str | None = None,
    save: bool = True,
    include_repeat: bool = True,
    plan: pd.DataFrame | str | None = None,
    mmm: Any = None,
    report: Callable[[str], None] | None = None,
) -> Snapshot:
    """Fit the models on the store's data as of a day, forecast, and save the snapshot.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    as_of
        The day of the forecast (data after it are ignored).
    horizon
        Number of periods.
    period
        ``"M"`` or ``"Q"``.
    draws
        Number of forecast draws.
    target
        Revenue target per period (number or ``{period_label: amount}``), or None.
    seed
        Random seed.
    method
        ``"auto"`` (default: NUTS when it samples the data in about 2 minutes on 2 cores
        and the data are within the size where NUTS was checked, else MAP;
        :func:`resolve_method`), ``"nuts"`` (nutpie; about 1 minute on the 3,000-deal
        demo), ``"map"`` (seconds; Laplace approximation) or ``"advi"``. The
        repeat-purchase models use MAP when the forecast uses NUTS.
    progress
        Show sampling progress.
    label
        Snapshot label.
    save
        Save the snapshot in the store.
    include_repeat
        Forecast repeat revenue from orders (BG/NBD + Gamma-Gamma).
    plan
        Planned marketing spend: a DataFrame (long ``channel, week_start, spend`` like the
        ``channel_spend`` table, or wide ``date`` plus a column per channel), a CSV path,
        or ``"campaigns"`` for the campaigns in the store. Weeks and channels it does not
        name follow the baseline (the last 13 weeks' average spend), so the baseline plan
        gives the forecast without a plan. Its extra new deals against the baseline enter
        the new-business arrivals only (``docs/marketing.md``). None: no marketing input.
    mmm
        A fitted :class:`~crmkit.models.mmm.model.MarketingMixModel` on weekly new deals
        for the plan; by default one is fitted on the store's ``channel_spend`` and deals
        up to ``as_of`` (``method`` ``"nuts"`` samples it, otherwise MAP + Laplace).
    report
        Receives a line as each model's fit starts and ends (:func:`fit_report`), and
        first, for ``"auto"``, the method chosen and why (``"method auto -> nuts (1,769
        deals: NUTS takes about 64 s)"``); the CLI prints them while a fit of more than a
        few seconds runs.

    Returns
    -------
    Snapshot
        The saved snapshot (with ``snapshot_id`` when saved); its ``parameters`` record
        ``method`` (as asked), ``method_used`` and ``method_reason``. Its ``status`` is
        ``"published"``, or ``"draft"`` with ``reasons`` when a check of
        :func:`crmkit.forecast.snapshot.publication_reasons` fails (a model's diagnostics not
        ok, an all-zero forecast where the past had revenue, ...); a draft is saved but the
        apps never show it.

    Raises
    ------
    ValidationError
        A parameter is wrong (:func:`crmkit.forecast.params.validate_forecast_parameters`;
        ``as_of`` must be within the store's data); nothing was fitted or saved.
    CrmkitError
        The store has no deals, or a model lacks the data it needs (the message names the
        model and what is missing); nothing was saved.
    """
    if store.count("deals") == 0:
        raise CrmkitError("the store has no deals to forecast from")
    p = validate_forecast_parameters(
        store, as_of=as_of, horizon=horizon, period=period, draws=draws, target=target,
        method=method, seed=seed,
    )  # fmt: skip
    as_of, horizon, period, draws = p["as_of"], p["horizon"], p["period"], p["draws"]
    target, method, seed = p["target"], p["method"], p["seed"]
    calendar = fiscal_calendar(store)
    period_axis(as_of, horizon, period, calendar)  # a calendar it cannot follow fails here
    frames = load_frames(store, marketing=plan is not None, as_of=as_of)
    check_model_data(frames, as_of=as_of)  # a user's mistake is the only line, before progress
    asked = method
    method, method_reason = resolve_method(frames, as_of=as_of, method=asked)
    if report is not None and asked == "auto":
        report(f"method auto -> {method} ({method_reason})")
    models = fit_models(
        frames, as_of=as_of, method=method, seed=seed, progress=progress, report=report,
        fallback=asked == "auto",
    )  # fmt: skip
    fell_back = [
        name for name, m in models.items() if "nuts" in (getattr(m, "diagnostics_", {}) or {})
    ]
    if fell_back:
        method_reason += (
            f"; {' and '.join(n.replace('_', ' ') for n in fell_back)} failed NUTS's checks, "
            "fitted by MAP + Laplace"
        )
    if plan is not None:
        from crmkit.forecast.sources.marketing import FORECAST_MMM_DRAWS, fit_marketing

        if mmm is None:
            kind = "nuts" if method == "nuts" else "map"  # fit_marketing's two ways
            how = {"method": kind, "draws": FORECAST_MMM_DRAWS, "tune": FORECAST_MMM_DRAWS}

            def fit_mmm(h: dict[str, Any]) -> Any:
                return fit_marketing(
                    frames, as_of=as_of, method=h["method"], seed=seed, progress=progress
                )

            mmm = _fit_checked(
                "marketing-mix", fit_mmm, how, {**how, "method": "map"}, asked == "auto", report
            )
            if "nuts" in (getattr(mmm, "diagnostics_", {}) or {}):
                method_reason += "; marketing-mix failed NUTS's checks, fitted by MAP + Laplace"
        models["marketing"] = mmm
    result = forecast_draws(
        models,
        frames,
        as_of=as_of,
        horizon=horizon,
        period=period,
        draws=draws,
        seed=seed,
        include_repeat=include_repeat,
        repeat_method="map" if method == "nuts" else method,
        plan=plan,
        calendar=calendar,
    )
    snap = build_snapshot(
        result,
        models,
        as_of=as_of,
        horizon=horizon,
        period=period,
        draws=draws,
        seed=seed,
        method=method,
        target=target,
        label=label,
    )
    snap.parameters.update(method=asked, method_used=method, method_reason=method_reason)
    snap.parameters["calendar"] = calendar_parameters(calendar)
    snap.parameters["currency"] = str(get_setting(store, "reporting_currency"))
    from crmkit.forecast.snapshot_tables import extra_tables

    snap.parameters.setdefault("tables", {}).update(
        extra_tables(snap, frames, open_deals=result["deals"], campaigns=store.read("campaigns"))
    )
    # the forecast call: category roll-ups, quotas, manager calls, open deals' chances
    deals = result["deals"].assign(
        p_win_period=first_period_win(
            models["pipeline"], result["deals"], result["axis"],
            n_p=result["settings"]["n_p"], seed=seed,
        )
    )  # fmt: skip
    calls, quotas = read_call_frames(store)
    snap.parameters["tables"].update(call_tables(snap, frames, calls, quotas, open_deals=deals))
    from crmkit.forecast.checks import model_check_tables  # model_checks, model_traces

    snap.parameters["tables"].update(
        model_check_tables(
            models, frames, as_of=as_of, method=method, seed=seed, repeat=include_repeat
        )
    )
    snap.reasons = publication_reasons(snap)
    snap.status = "draft" if snap.reasons else "published"
    if save:
        store.save_snapshot(snap)
    return snap


__all__ = [
    "METHODS",
    "check_model_data",
    "fit_models",
    "forecast_draws",
    "load_frames",
    "new_business_draws",
    "nuts_seconds",
    "resolve_method",
    "run_forecast",
    "training_deals",
]
