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

from collections.abc import Callable
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
from crmkit.forecast.fitting import (  # fit_models ... are re-exported: engine is the API
    check_model_data,
    fit_checked,
    fit_models,
    fit_report,
    nuts_seconds,
    resolve_method,
    training_deals,
)
from crmkit.forecast.params import METHODS, parameter_draws, validate_forecast_parameters
from crmkit.forecast.snapshot import build_snapshot, publication_reasons
from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.kernels import simulate_new_business, simulate_pipeline
from crmkit.models.pipeline.model import PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel
from crmkit.store.currency import converted_deals, converted_history, rate_table
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.history import deals_as_of, end_of_day, month_end
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
    param_draws: int | None = None,
    include_repeat: bool = True,
    repeat_method: str = "map",
    plan: pd.DataFrame | str | None = None,
    calendar: FiscalCalendar | None = None,
) -> dict[str, Any]:
    """Revenue draws per source, period and group from fitted models.

    ``calendar`` is the company's fiscal calendar (None: calendar months and quarters); the
    periods are its months or fiscal quarters (:func:`crmkit.forecast.axes.period_axis`).

    ``param_draws`` is the number of posterior draws the forecast draws cycle through
    (None: :func:`crmkit.forecast.params.parameter_draws`, one per draw unless the open
    deals are many); the repeat source chooses its own by the number of customers.

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
    # open pipeline
    open_deals = pipe.open_deals()
    n_p = min(param_draws, draws) if param_draws else parameter_draws(draws, len(open_deals))
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
    repeat_models: dict[str, Any] = {}  # the repeat source's fitted purchase model
    if include_repeat:
        from crmkit.forecast.sources.repeat import repeat_draws

        owner_team = (
            frame[frame["team"] != "(none)"]
            .groupby("owner")["team"]
            .agg(lambda s: s.mode().iloc[0])
            .to_dict()
        )
        t0 = pd.Timestamp(as_of).normalize()
        ends = [month_end(int(m)) for m in axis.first_month + np.arange(axis.months)]
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
                fitted=repeat_models,
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
        state = deals_as_of(frame, pipe.history_index, as_of)
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
        "repeat_models": repeat_models,
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

            mmm = fit_checked(
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
            models,
            frames,
            as_of=as_of,
            method=method,
            seed=seed,
            repeat=include_repeat,
            purchase_model=result["repeat_models"].get("repeat"),
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
    "fit_report",
    "forecast_draws",
    "load_frames",
    "new_business_draws",
    "nuts_seconds",
    "resolve_method",
    "run_forecast",
    "training_deals",
]
