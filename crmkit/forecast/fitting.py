"""Fitting the forecast's models: the method ``"auto"`` chooses, the fits, their progress lines.

:func:`resolve_method` turns ``"auto"`` into NUTS or MAP from the company's size and a
measured cost model; :func:`check_model_data` refuses too little data with one line;
:func:`fit_models` fits the pipeline and new-business models (under ``"auto"``, a NUTS fit
failing its checks is sampled longer or refitted by MAP, and says so); :func:`fit_report`
gives the start and end line of each fit that the CLI, the report, the notebooks and the
app's refit show. :mod:`crmkit.forecast.engine` draws the forecast from the fitted models.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.models.inference.diagnostics import DIVERGENCES_MAX, ESS_BULK_MIN, R_HAT_MAX
from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.model import PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel
from crmkit.store.history import end_of_day

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
        The store's tables (:func:`~crmkit.forecast.engine.load_frames`).
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
        The store's tables (:func:`~crmkit.forecast.engine.load_frames`); only ``deals`` is read.
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
        The store's tables (:func:`~crmkit.forecast.engine.load_frames`).
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
    pipe = fit_checked(
        "pipeline", fit_pipeline, pipe_settings, settings, fallback, report, deadline
    )
    nb = fit_checked(
        "new business", fit_new_business, nb_settings, settings, fallback, report, deadline
    )
    if nb.posterior_ is None:
        raise CrmkitError(
            f"new business model: {nb.data_['months']} complete month(s) of deal arrivals "
            f"before {pd.Timestamp(as_of).date()}, at least 2 needed; nothing to learn "
            "arrival rates from"
        )
    return {"pipeline": pipe, "new_business": nb}


def fit_checked(
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

    Parameters
    ----------
    name
        The model's name in the progress lines ("pipeline").
    fit
        Fits the model with the settings it is given (``method``, ``draws``, ``tune``, ...)
        and returns it with ``diagnostics_``.
    settings, map_settings
        The settings of the first fit, and those of the MAP refit.
    fallback
        Repair a failed NUTS fit (``"auto"``); False returns the first fit as it is.
    report
        Receives the progress lines (:func:`fit_report`), or None.
    deadline
        ``time.monotonic()`` by which a longer sampling must end, or None.

    Returns
    -------
    object
        The fitted model; after a MAP refit its ``diagnostics_`` ``message`` names the
        failed NUTS checks.
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


__all__ = [
    "NUTS_BUDGET_SECONDS",
    "NUTS_COST",
    "NUTS_MAX_DEALS",
    "NUTS_MORE_DRAWS",
    "TEMPLATE_MONTHS",
    "check_model_data",
    "fit_checked",
    "fit_models",
    "fit_report",
    "nuts_seconds",
    "resolve_method",
    "training_deals",
]
