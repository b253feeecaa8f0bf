"""Small views the notebooks (``notebooks/03_forecast.ipynb``, ``04_marketing.ipynb``) show.

The notebooks hold only their parameters and calls; the pieces that are not already a
function of :mod:`crmkit.forecast.engine`, :mod:`crmkit.apps.dashboard`,
:mod:`crmkit.forecast.backtest` or :mod:`crmkit.models.clv.models` live here.

A fit that fails its checks says so where its results are shown: :func:`fit_warning` is a
warning box naming the model, what failed (R-hat, ESS, divergences, an approximation that did
not converge, or a Gamma-Gamma ``q`` at or below 1) and what to do; :func:`checked` shows a
result table greyed out under that box (or a widget under it) when one of the fits it depends
on failed, and the table unchanged when they all passed. The table stays visible, greyed,
rather than withheld: the analyst can still see what the fit said, but not mistake it for a
result. :func:`ppc_warning` is the same box for posterior predictive checks whose observed
values fall outside the predicted P5–P95 range too often.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from crmkit.apps import dashboard as db
from crmkit.apps.dashboard import run_rate_verdict
from crmkit.errors import CrmkitError
from crmkit.models.inference.diagnostics import ESS_BULK_MIN, R_HAT_MAX
from crmkit.store import Snapshot, Store

__all__ = [
    "checked",
    "clv_by_segment",
    "compare_with_previous",
    "customer_outlook",
    "fit_clv",
    "fit_problems",
    "fit_warning",
    "ppc_problems",
    "ppc_warning",
    "repeat_purchase_summary",
    "rollup_table",
    "run_rate_verdict",
    "short_backtest",
]

#: A Gamma-Gamma q whose 5% posterior quantile is below this is pressed against q = 1.
Q_BOUND_MARGIN = 1.02


def _fits(fit: Any, name: str | None) -> list[tuple[str, dict[str, Any], Any]]:
    """(name, diagnostics, model or None) of a model, a diagnostics dict or a snapshot."""
    if isinstance(fit, Snapshot):
        models = (fit.diagnostics or {}).get("models", {}) or {}
        return [(f"{m} model", dict(d or {}), None) for m, d in models.items()]
    if isinstance(fit, dict):
        return [(name or "model", fit, None)]
    diag = getattr(fit, "diagnostics_", None)
    if diag is None:
        raise CrmkitError(f"{type(fit).__name__} is not fitted: fit it before showing its results")
    return [(name or type(fit).__name__, dict(diag), fit)]


def _gamma_gamma_problem(model: Any) -> str | None:
    """Why a Gamma-Gamma fit's mean spend of new customers is not usable, or None."""
    if type(model).__name__ != "GammaGamma":
        return None
    q = float(model.params_["q"])
    if q <= 1.0:
        return (
            f"Gamma-Gamma q = {q:.3g} <= 1: the mean spend of customers without repeat "
            "purchases, p * gamma / (q - 1), is undefined, so their CLV is not meaningful"
        )
    draws = model.idata_.posterior["q"].to_numpy().ravel()
    low = float(pd.Series(draws).quantile(0.05))
    if low < Q_BOUND_MARGIN:
        return (
            f"Gamma-Gamma q is pressed against its bound 1 (5% quantile {low:.3g}): the data "
            "want q <= 1, so the mean spend of customers without repeat purchases is not "
            "pinned down"
        )
    return None


def fit_problems(*fits: Any, name: str | None = None) -> list[str]:
    """What failed in each fit, one sentence each (empty when every fit passed).

    Parameters
    ----------
    *fits
        Fitted models (anything with ``diagnostics_``), diagnostics dicts in the one schema
        of :mod:`crmkit.models.inference.diagnostics`, or forecast snapshots (each of their
        models).
    name
        Name of a single fit in the sentences (default: the model's class).

    Returns
    -------
    list of str
        ``"<model>: <what failed>; <what to do>"`` per failed fit.
    """
    out = []
    for fit in fits:
        for label, d, model in _fits(fit, name):
            failed = []
            r_hat, ess = d.get("r_hat_max"), d.get("ess_bulk_min")
            tail, div = d.get("ess_tail_min"), d.get("divergences")
            if r_hat is not None and r_hat > R_HAT_MAX:
                failed.append(f"R-hat {r_hat:.3g} > {R_HAT_MAX}")
            if ess is not None and ess < ESS_BULK_MIN:
                failed.append(f"bulk ESS {ess:.0f} < {ESS_BULK_MIN}")
            if tail is not None and tail < ESS_BULK_MIN:
                failed.append(f"tail ESS {tail:.0f} < {ESS_BULK_MIN}")
            if div:
                failed.append(f"{div} divergences")
            advice = []
            if failed:
                advice.append("run more draws and tuning steps (e.g. draws=2000, tune=2000)")
                if div:
                    advice.append("raise target_accept (e.g. 0.95) or use tighter priors")
            elif d.get("ok") is False:
                failed.append(str(d.get("message") or "the fit failed its checks"))
                advice.append("fit with method='nuts', or check the data")
            problem = _gamma_gamma_problem(model) if model is not None else None
            if problem:
                failed.append(problem)
                advice.append(
                    "fit on repeat orders only (orders without a deal) and on customers of "
                    "similar spend (e.g. per segment)"
                )
            if failed:
                method = d.get("method")
                how = f" ({method})" if method else ""
                out.append(f"{label}{how}: {'; '.join(failed)}. What to do: {'; '.join(advice)}.")
    return out


#: Heading of the fit warning box.
FIT_HEADING = "This fit failed its checks: its results below are not reliable."


def _warning_html(
    problems: list[str], *, heading: str = FIT_HEADING, css: str = "crmkit-fit-warning"
) -> str:
    """The warning box's HTML for the given problem sentences."""
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return (
        f'<div class="{css}" role="alert" style="border:2px solid #b45309;'
        'background:#fff7ed;color:#7c2d12;padding:8px 12px;margin:6px 0;border-radius:4px">'
        f"<strong>&#9888; {html.escape(heading)}"
        f'</strong><ul style="margin:4px 0 0 0">{items}</ul></div>'
    )


def fit_warning(*fits: Any, name: str | None = None):
    """A visible warning box for fits that failed their checks, or None when all passed.

    Parameters
    ----------
    *fits
        Fitted models, diagnostics dicts or snapshots (see :func:`fit_problems`).
    name
        Name of a single fit in the box.

    Returns
    -------
    IPython.display.HTML or None
        The box, naming each failed model, what failed and what to do; None (a notebook
        shows nothing) when every fit passed.
    """
    from IPython.display import HTML

    problems = fit_problems(*fits, name=name)
    return HTML(_warning_html(problems)) if problems else None


#: A check whose observed values fall outside the predicted P5–P95 range in more than this
#: share of its rows gets a warning (about 10% would by chance).
PPC_MISS_SHARE = 0.2
#: Heading of the posterior predictive check warning box.
PPC_HEADING = (
    "A model does not reproduce the data it was fitted on: read the forecasts that depend "
    "on it with care."
)
#: Shown instead of the model checks of a snapshot saved without them.
NO_CHECKS_NOTE = (
    "This snapshot holds no model checks (it was saved by an older crmkit): refit the "
    "forecast to see them."
)

#: Shown instead of rank and trace plots of draws from one chain (MAP + Laplace, ADVI).
ONE_CHAIN_NOTE = (
    "Rank and trace plots compare the chains of a sampler (method nuts); this forecast's "
    "draws come from one approximation (MAP + Laplace or ADVI), so there are no chains to "
    "compare."
)


def ppc_problems(
    table: pd.DataFrame,
    *,
    max_share: float = PPC_MISS_SHARE,
    missing: pd.DataFrame | None = None,
) -> list[str]:
    """Each posterior predictive check that misses too often or could not run, one sentence each.

    Parameters
    ----------
    table
        :func:`crmkit.forecast.checks.posterior_predictive_checks` (or the snapshot's
        ``model_checks`` records as a DataFrame): ``check``, ``label``, ``inside90``, ...
    max_share
        Largest share of a check's rows outside the predicted P5–P95 range that passes.
    missing
        The snapshot's ``model_checks_missing`` (``check``, ``reason``): checks whose model
        could not be fitted, so they are absent from ``table``.

    Returns
    -------
    list of str
        ``"<check>: not checked: <reason>"`` per missing check, then ``"<check>: <k> of <n>
        observed values (<share>) fall outside the predicted P5–P95 range (about 10% would
        by chance)"`` per check above ``max_share``, in table order; empty when every check
        ran and is fine.
    """
    out = []
    if missing is not None and not missing.empty:
        out += [f"{row.check}: not checked: {row.reason}" for row in missing.itertuples()]
    if table is None or table.empty:
        return out
    for check, rows in table.groupby("check", sort=False):
        n = len(rows)
        k = int((~rows["inside90"].astype(bool)).sum())
        if n and k / n > max_share:
            out.append(
                f"{check}: {k} of {n} observed values ({k / n:.0%}) fall outside the predicted "
                "P5–P95 range (about 10% would by chance)"
            )
    return out


def ppc_warning(
    table: pd.DataFrame,
    *,
    max_share: float = PPC_MISS_SHARE,
    missing: pd.DataFrame | None = None,
):
    """A visible warning box for posterior predictive checks that miss, or None when fine.

    Parameters
    ----------
    table
        The posterior predictive checks (see :func:`ppc_problems`).
    max_share
        Largest share of a check's rows outside P5–P95 that passes (default 20%).
    missing
        The snapshot's ``model_checks_missing``: checks that could not run, and why.

    Returns
    -------
    IPython.display.HTML or None
        The box (class ``crmkit-ppc-warning``, the style of :func:`fit_warning`) naming each
        check that misses too often and how many of its values; None (a notebook shows
        nothing) when every check is fine.
    """
    from IPython.display import HTML

    problems = ppc_problems(table, max_share=max_share, missing=missing)
    if not problems:
        return None
    return HTML(_warning_html(problems, heading=PPC_HEADING, css="crmkit-ppc-warning"))


def checked(result: Any, *fits: Any, name: str | None = None) -> Any:
    """A fit's result as is when its fits passed; greyed under a warning box when not.

    Parameters
    ----------
    result
        A DataFrame or Series (shown greyed out, under the box) or an ipywidgets widget
        (shown under the box) computed from ``fits``.
    *fits
        The fits the result depends on (see :func:`fit_problems`).
    name
        Name of a single fit in the box.

    Returns
    -------
    object
        ``result`` unchanged when every fit passed; else an ``IPython.display.HTML`` (a
        table) or an ``ipywidgets.VBox`` (a widget).
    """
    problems = fit_problems(*fits, name=name)
    if not problems:
        return result
    box = _warning_html(problems)
    if isinstance(result, (pd.DataFrame, pd.Series)):
        from IPython.display import HTML

        frame = result.to_frame() if isinstance(result, pd.Series) else result
        table = frame.to_html(max_rows=60)
        return HTML(
            f'{box}<div class="crmkit-unreliable" style="opacity:0.4;filter:grayscale(1)" '
            f'title="not reliable: the fit failed its checks">{table}</div>'
        )
    import ipywidgets as widgets

    if isinstance(result, widgets.Widget):
        return widgets.VBox([widgets.HTML(box), result])
    raise TypeError(f"checked() shows a table or a widget, not {type(result).__name__}")


def repeat_purchase_summary(store: Store, as_of: object) -> pd.DataFrame:
    """Purchase summary (weeks) of the repeat orders up to ``as_of``, as the forecast fits it.

    Orders linked to a deal are the deal's revenue (the pipeline's); mixing them into the
    spend per purchase makes the Gamma-Gamma fit see two populations (the demo's pooled
    ``q`` drops below 1 with them). Same data as
    :func:`crmkit.forecast.sources.repeat.repeat_summary`.

    Parameters
    ----------
    store
        The database.
    as_of
        Last day observed.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``frequency``, ``recency``, ``T``, ``monetary_value``.
    """
    from crmkit.forecast.sources.repeat import repeat_summary

    return repeat_summary(store.read("orders"), as_of)


def rollup_table(snap: Snapshot, dimension: str) -> pd.DataFrame:
    """Total revenue over the horizon of each team, owner or segment.

    Parameters
    ----------
    snap
        The forecast snapshot.
    dimension
        ``"team"``, ``"owner"`` or ``"segment"``.

    Returns
    -------
    pandas.DataFrame
        One row per value of ``dimension``: ``closed_to_date``, ``mean``, ``p10``, ``p50``,
        ``p90`` (closed plus forecast, all sources), largest P50 first.
    """
    options = db.filter_options(snap)
    if dimension not in options:
        raise CrmkitError(f"roll up by one of {sorted(options)}, not {dimension!r}")
    cols = ["closed_to_date", "mean", "p10", "p50", "p90"]
    rows = []
    for value in options[dimension]:
        head = db.headline(snap, db.Filter(**{dimension: value})).loc["total"]
        rows.append({dimension: value, **head[cols].to_dict()})
    out = pd.DataFrame(rows, columns=[dimension, *cols])
    return out.sort_values("p50", ascending=False, kind="stable").reset_index(drop=True)


def compare_with_previous(store: Store, snap: Snapshot) -> dict[str, pd.DataFrame]:
    """Compare a snapshot with the one saved before it (as the report does).

    Parameters
    ----------
    store
        The database holding both snapshots (and the current deals).
    snap
        The newer snapshot.

    Returns
    -------
    dict of DataFrame
        :func:`crmkit.forecast.compare.compare_with_previous` output: ``compare_snapshots``'
        frames plus ``"previous"`` (one row with the previous snapshot's id and as-of day);
        empty frames when there is no earlier snapshot.
    """
    from crmkit.forecast.compare import compare_with_previous as compare

    return compare(store, snap)


def short_backtest(
    store: Store,
    *,
    as_of: object,
    origins: int | None = None,
    horizon: int = 3,
    draws: int = 200,
    method: str = "map",
    seed: int = 0,
) -> pd.DataFrame:
    """Backtest from the last few month ends whose outcomes are known by ``as_of``.

    Parameters
    ----------
    store
        The database.
    as_of
        The forecast day; origins end ``horizon`` months before it.
    origins
        Number of month-end origins (each refits the models); None: the report's default,
        :data:`crmkit.apps.report.DEFAULT_BACKTEST_ORIGINS` (4, the fewest that give a
        verdict; 7 or more tell more).
    horizon
        Months ahead scored.
    draws
        Forecast draws per origin.
    method
        Fit method.
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        :func:`crmkit.forecast.backtest.recent_backtest` (as the report runs it): the
        summarised scores per lead and forecaster, with the model's line
        ``vs_run_rate`` (:func:`run_rate_verdict`) instead of the comparison's numbers.
    """
    from crmkit.apps.report import DEFAULT_BACKTEST_ORIGINS
    from crmkit.forecast.backtest import recent_backtest
    from crmkit.forecast.skill import VERDICT_COLUMNS

    if origins is None:
        origins = DEFAULT_BACKTEST_ORIGINS
    out = recent_backtest(
        store, as_of=as_of, origins=origins, horizon=horizon, draws=draws, method=method,
        seed=seed,
    )  # fmt: skip
    lines = [
        (run_rate_verdict(r) or "") if r["forecaster"] == "model" else ""
        for r in out.to_dict("records")
    ]
    return out.drop(columns=[c for c in VERDICT_COLUMNS if c in out]).assign(vs_run_rate=lines)


def fit_clv(summary: pd.DataFrame, *, method: str = "map", seed: int = 0) -> tuple:
    """Fit BG/NBD and Gamma-Gamma on a purchase summary.

    Parameters
    ----------
    summary
        ``store.purchase_summary(...)``.
    method
        ``"map"``, ``"mle"``, ``"advi"`` or ``"nuts"``.
    seed
        Random seed.

    Returns
    -------
    tuple
        The fitted ``(BetaGeo, GammaGamma)``.
    """
    from crmkit.models.clv.models import BetaGeo, GammaGamma

    unit = "W"
    bgf = BetaGeo(time_unit=unit, random_seed=seed).fit(summary, method=method)
    ggf = GammaGamma(time_unit=unit, random_seed=seed).fit(summary, method=method)
    return bgf, ggf


def customer_outlook(
    purchase_model, summary: pd.DataFrame, *, n: int = 10, t: float = 52.0
) -> pd.DataFrame:
    """P(alive) and expected purchases in the next ``t`` time units for the first ``n`` customers.

    Parameters
    ----------
    purchase_model
        A fitted :class:`crmkit.models.clv.models.BetaGeo` (or ``ParetoNBD``).
    summary
        Purchase summary.
    n
        Number of customers shown (the most frequent buyers first).
    t
        Window length in the model's time unit.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``frequency``, ``recency``, ``T``, ``p_alive``, ``expected_purchases``
        (posterior means).
    """
    top = summary.sort_values(["frequency", "customer_id"], ascending=[False, True]).head(n)
    top = top.reset_index(drop=True)
    alive = purchase_model.probability_alive(top).mean("sample").to_numpy()
    expected = purchase_model.expected_purchases(t, top).mean("sample").to_numpy()
    out = top[["customer_id", "frequency", "recency", "T"]].copy()
    out["p_alive"] = alive
    out["expected_purchases"] = expected
    return out


def clv_by_segment(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    periods: int = 12,
    discount_rate: float = 0.01,
) -> pd.DataFrame:
    """Expected customer lifetime value per account segment.

    Parameters
    ----------
    purchase_model, spend_model
        Fitted BG/NBD (or Pareto/NBD) and Gamma-Gamma models.
    summary
        Purchase summary (``customer_id`` is the ``account_id``).
    accounts
        ``store.read("accounts")`` with ``account_id`` and ``segment``.
    periods
        Horizon in months.
    discount_rate
        Discount rate per month.

    Returns
    -------
    pandas.DataFrame
        One row per segment: ``customers``, ``clv_mean`` (mean expected CLV of a customer),
        ``clv_total`` and its P10 / P90 over the posterior draws, largest total first.
        Show it with :func:`checked` (``checked(table, purchase_model, spend_model)``): when
        the Gamma-Gamma ``q`` is at most 1 the population mean spend ``p gamma / (q - 1)``
        given to customers without repeat purchases is undefined.
    """
    from crmkit.models.clv.models import customer_lifetime_value

    clv = customer_lifetime_value(
        purchase_model, spend_model, summary, periods=periods, discount_rate=discount_rate
    )
    seg = accounts.set_index("account_id")["segment"].astype(object)
    labels = seg.reindex(summary["customer_id"].astype(str)).fillna("unknown").to_numpy()
    draws = clv.to_numpy()  # (sample, customer)
    rows = []
    for s in sorted(set(labels)):
        keep = labels == s
        totals = draws[:, keep].sum(axis=1)
        rows.append(
            {
                "segment": s,
                "customers": int(keep.sum()),
                "clv_mean": float(draws[:, keep].mean()),
                "clv_total": float(totals.mean()),
                "clv_total_p10": float(pd.Series(totals).quantile(0.1)),
                "clv_total_p90": float(pd.Series(totals).quantile(0.9)),
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("clv_total", ascending=False, kind="stable").reset_index(drop=True)
