"""What the forecast report notebook shows, one function a section.

``notebooks/reports/forecast_report.ipynb`` holds only its parameters and calls to these
functions: :func:`prepare` fits (or loads) the forecast, the ``show_*`` functions display
a section, :func:`write_outputs` leaves the fan chart and the headline figures beside the
report for :func:`crmkit.apps.report.run_report`.
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crmkit.apps import call_views as cv
from crmkit.apps import changes as chg
from crmkit.apps import dashboard as db
from crmkit.apps.notebook_views import (
    NO_CHECKS_NOTE,
    ONE_CHAIN_NOTE,
    ppc_warning,
)
from crmkit.apps.section_html import headline_html, table_html
from crmkit.errors import ConflictError, CrmkitError
from crmkit.forecast.axes import SOURCE_NAMES
from crmkit.forecast.compare import compare_with_previous, previous_snapshot
from crmkit.forecast.snapshot_tables import backtest_records
from crmkit.plots.checks import loo_table, ppc_figure, rank_figure
from crmkit.plots.fanchart import fan_chart
from crmkit.plots.format import figure_png, format_amount
from crmkit.plots.waterfall import waterfall_figure
from crmkit.store import Snapshot, Store
from crmkit.store.engine import ENV_URL, masked_url, refusal_reason, resolve_url


@dataclass
class ReportContext:
    """The snapshot a report shows, the one before it, and how it was obtained."""

    snapshot: Snapshot
    previous: Snapshot | None
    filter: db.Filter
    db_url: str
    refitted: bool
    changes: dict[str, pd.DataFrame] | None = None
    backtest: pd.DataFrame | None = None
    call_backtest: pd.DataFrame | None = None
    #: Why the forecast-call backtest was not run (too little history, no deals), if so.
    call_backtest_note: str | None = None
    #: LOO comparison of model variants (:func:`run_model_comparison`), when refitted.
    model_comparison: pd.DataFrame | None = None
    #: Why the LOO comparison was not run, if it failed.
    model_comparison_note: str | None = None
    #: Why the backtest could not be run (too little history for its origins), or why a
    #: --no-refit report's backtest was not kept beside its snapshot, if so.
    backtest_note: str | None = None


def prepare(
    *,
    as_of: str,
    horizon: int,
    period: str = "M",
    target: object = None,
    db_url: str | None = None,
    draws: int = 1000,
    filters: dict | None = None,
    refit: bool = True,
    method: str = "map",
    seed: int = 0,
    backtest: int = 0,
    label: str | None = None,
) -> ReportContext:
    """Fit the models and save a new snapshot (or take the newest), and find the previous one.

    Parameters
    ----------
    as_of, horizon, period, target, db_url, draws, filters, refit, method, seed, backtest
        See :func:`crmkit.apps.report.validate_parameters`. The backtest runs here unless the
        snapshot already holds one; a refit's backtest (with the model's verdict against the
        run rate) is saved inside the new snapshot, which is saved once it is complete; a
        ``--no-refit`` report's is kept beside the snapshot it backtested
        (:meth:`crmkit.Store.save_backtest`), so the next report and the manager app show it.
    label
        Label of the new snapshot.

    Returns
    -------
    ReportContext

    """
    from crmkit.apps.report import validate_parameters

    p = validate_parameters(
        as_of, horizon, period, target, connect_url(db_url), draws, filters, ".", refit, method,
        seed, backtest,
    )  # fmt: skip
    store = Store.open(p["db_url"])
    scores, backtest_note = None, None
    try:
        if p["refit"]:
            from crmkit.apps.report import fit_progress
            from crmkit.forecast.engine import run_forecast

            snap = run_forecast(
                store, as_of=p["as_of"], horizon=p["horizon"], period=p["period"],
                draws=p["draws"], target=p["target"], seed=p["seed"], method=p["method"],
                label=label, progress=False, save=False, report=fit_progress,
            )  # fmt: skip
            if snap.status != "published":
                store.save_snapshot(snap)  # a draft is saved to be looked at, never reported
                # a report is read by managers: a draft never replaces the previous report
                raise CrmkitError(
                    f"the forecast failed its checks and was saved as draft snapshot "
                    f"#{snap.snapshot_id} ({'; '.join(snap.reasons)}); no report was made"
                )
        else:
            snap = db.latest_snapshot(store)
            if snap is None:
                raise CrmkitError(db.no_snapshot_message(store.url))
        try:  # a refit's snapshot is saved once complete, its backtest inside
            if p["backtest"] and db.backtest_table(snap) is None:
                try:
                    scores = run_backtest(store, snap, origins=p["backtest"], method=p["method"])
                except CrmkitError as exc:  # too little history: the section says why
                    backtest_note = _backtest_note(p["backtest"], exc)
        finally:  # also when interrupted: the finished forecast is kept
            if p["refit"]:
                if scores is not None:  # the app and a --no-refit report show its verdict
                    snap.parameters.setdefault("tables", {})["backtest"] = backtest_records(scores)
                store.save_snapshot(snap)
            elif scores is not None:  # kept beside the saved snapshot, for the app and later
                backtest_note = _keep_backtest(store, snap, scores, p["backtest"])
        previous = previous_snapshot(store, snap)
        comparison, comparison_note = None, None
        if p["refit"]:
            try:
                comparison = run_model_comparison(store, snap, seed=p["seed"])
            except CrmkitError as exc:  # a variant that cannot be fitted: the section says why
                comparison_note = str(exc)
        call_scores, call_note = None, None
        if p["backtest"] and store.count("deals") == 0:
            call_note = "the database holds no deals to rebuild the past forecast calls from"
        elif p["backtest"]:
            try:
                call_scores = run_call_backtest(
                    store, snap, origins=p["backtest"], method=p["method"]
                )
            except CrmkitError as exc:  # too little history: the section says why, not the run
                call_note = str(exc)
        changes = compare_with_previous(store, snap, previous) if previous else None
        url = store.url
    finally:
        store.close()
    return ReportContext(
        snapshot=snap,
        previous=previous,
        filter=db.Filter.from_mapping(p["filters"]),
        db_url=url,
        refitted=p["refit"],
        changes=changes,
        backtest=scores,
        call_backtest=call_scores,
        call_backtest_note=call_note,
        model_comparison=comparison,
        model_comparison_note=comparison_note,
        backtest_note=backtest_note,
    )


def _keep_backtest(store: Store, snap: Snapshot, scores: pd.DataFrame, origins: int) -> str | None:
    """Keep a --no-refit report's backtest beside its snapshot; a one-line note if refused."""
    import sqlalchemy as sa

    try:
        store.save_backtest(snap.snapshot_id, backtest_records(scores), origins=int(origins))
    except ConflictError:  # another report kept one meanwhile: the first stands
        return None
    except sa.exc.DBAPIError as exc:  # e.g. a database role that may only read
        return (
            f"this backtest was not kept with snapshot #{snap.snapshot_id}, so the next "
            f"report runs it again (the database refused the write: {refusal_reason(exc)})"
        )
    return None


def _backtest_note(origins: int, exc: CrmkitError) -> str:
    """Why the backtest from ``origins`` month ends could not be run, in one line."""
    return (
        f"the backtest from the last {int(origins)} month ends could not be run: {exc} "
        "(fewer origins, --backtest N, need less history)"
    )


def connect_url(db_url: str | None) -> str | None:
    """Return the database to open: ``$CRMKIT_DB_URL`` when ``db_url`` is its masked form.

    :func:`crmkit.apps.report.run_report` injects the URL with its password masked
    (``postgresql+psycopg://user:***@host/db``) and puts the real one in the kernel's
    environment, so the executed notebook never holds the password.

    Parameters
    ----------
    db_url
        The notebook's ``db_url`` parameter.

    Returns
    -------
    str or None
        ``$CRMKIT_DB_URL`` if its masked form is ``db_url``, else ``db_url``.

    """
    real = os.environ.get(ENV_URL)
    if db_url and real and "***" in str(db_url):
        if masked_url(resolve_url(real)) == masked_url(resolve_url(db_url)):
            return real
    return db_url


def run_backtest(
    store: Store, snap: Snapshot, *, origins: int, method: str = "map"
) -> pd.DataFrame:
    """Backtest the forecast from the last ``origins`` month ends whose outcomes are known.

    Parameters
    ----------
    store
        The database.
    snap
        The snapshot reported (its as-of day, period and horizon, at most 3 periods).
    origins
        Number of origins.
    method
        Fit method.

    Returns
    -------
    pandas.DataFrame
        :func:`crmkit.forecast.backtest.recent_backtest` (as the forecast notebook shows it),
        for the sum over the horizon.
    """
    from crmkit.forecast.backtest import recent_backtest

    h = min(int(snap.horizon), 3)
    summary = recent_backtest(
        store, as_of=snap.as_of, origins=origins, horizon=h, period=snap.period,
        draws=min(int(snap.parameters.get("draws", 500) or 500), 500), method=method,
        seed=int(snap.parameters.get("seed", 0) or 0),
    )  # fmt: skip
    return summary[summary["lead"] == f"1-{h}"].reset_index(drop=True)


def _show(markup: str) -> None:
    """Display HTML in the notebook."""
    from IPython.display import HTML, display

    display(HTML(markup))


def show_headline(ctx: ReportContext) -> None:
    """Show the title, where the figures come from, and the headline numbers with ranges."""
    s = ctx.snapshot
    how = "fitted for this report" if ctx.refitted else "the newest saved forecast (not refitted)"
    per = {"M": "months", "Q": "quarters"}.get(s.period, s.period)
    _show(
        f'<h1>Revenue forecast as of {s.as_of}</h1><p class="crmkit-snapshot" '
        f'data-snapshot-id="{s.snapshot_id}">Snapshot {s.snapshot_id}: {how}; next {s.horizon} '
        f"{per}; {html.escape(str(s.parameters.get('draws', '?')))} draws; database "
        f"{html.escape(ctx.db_url)}. Ranges are P10–P90: in 8 of 10 outcomes revenue lands "
        "inside; P50 is as likely to be beaten as missed.</p>"
        + headline_html(db.headline(s, ctx.filter), ctx.filter, db.snapshot_currency(s))
    )


def show_fan_chart(ctx: ReportContext, out_dir: str | Path | None = None) -> None:
    """Show the fan chart by period and source, and save it as ``fanchart.png`` in ``out_dir``."""
    from IPython.display import Image, display

    flt = ctx.filter
    what = "" if flt.dimension == "all" else f" — {flt.dimension} {flt.value}"
    fig = fan_chart(db.fan_data(ctx.snapshot, flt), title=f"Revenue by period{what}")
    png = figure_png(fig, dpi=110)
    if out_dir is not None:
        (Path(out_dir) / "fanchart.png").write_bytes(png)
    display(Image(data=png, format="png"))


def show_changes(ctx: ReportContext) -> None:
    """Show how the forecast moved since the previous snapshot, and why where known."""
    if ctx.previous is None:
        _show('<p class="crmkit-changes">This is the first saved forecast: nothing to compare.</p>')
        return
    ch = chg.changes_since(ctx.previous, ctx.snapshot, ctx.filter).reset_index()
    ch["source"] = ch["source"].map(SOURCE_NAMES)
    p = ctx.previous
    parts = [
        f'<p class="crmkit-changes">Compared with snapshot {p.snapshot_id} (as of {p.as_of}, '
        "horizon totals):</p>",
        table_html(
            ch, css="crmkit-changes-table",
            money=("p50_before", "p50_now", "change", "p10_now", "p90_now"),
            shares=("p_target_before", "p_target_now"),
        ),
    ]  # fmt: skip
    _show("".join(parts))
    show_waterfall(ctx)


def change_steps(ctx: ReportContext) -> pd.DataFrame | None:
    """Return the steps of the "what changed" waterfall of the report.

    Parameters
    ----------
    ctx
        The report's context (its ``changes`` from :func:`prepare`).

    Returns
    -------
    pandas.DataFrame or None
        :func:`crmkit.apps.changes.change_steps` of the previous and the reported
        snapshot; None when there is no previous snapshot.

    """
    if ctx.previous is None:
        return None
    reasons = ctx.changes["reasons"] if ctx.changes is not None else None
    return chg.change_steps(ctx.previous, ctx.snapshot, reasons)


def steps_html(steps: pd.DataFrame) -> str:
    """Render the waterfall's numbers as a table: one ``<tr data-step=..>`` per bar.

    Parameters
    ----------
    steps
        :func:`crmkit.apps.changes.change_steps`.

    Returns
    -------
    str
        HTML table with cells ``data-col`` = ``deals`` and ``amount``.

    """
    rows = []
    for _, r in steps.iterrows():
        total = r["kind"] == "total"
        amount = format_amount(r["amount"])
        if not total and r["amount"] > 0:
            amount = "+" + amount
        counted = not pd.isna(r["deals"]) and r["step"] not in ("new_business", "repeat")
        deals = f"{r['deals']:.0f}" if counted else ""
        b = ("<b>", "</b>") if total else ("", "")
        rows.append(
            f'<tr data-step="{html.escape(str(r["step"]))}"><td>{b[0]}'
            f"{html.escape(str(r['label']))}{b[1]}</td>"
            f'<td data-col="deals">{deals}</td><td data-col="amount">{b[0]}{amount}{b[1]}</td></tr>'
        )
    return (
        '<table class="crmkit-table crmkit-waterfall-table"><tr><th>step</th><th>deals</th>'
        f"<th>expected revenue</th></tr>{''.join(rows)}</table>"
    )


def show_waterfall(ctx: ReportContext) -> None:
    """Show what changed since the previous forecast as a waterfall, with its numbers."""
    from IPython.display import Image, display

    steps = change_steps(ctx)
    _show(chg.waterfall_note(steps))
    if steps is None:
        return
    fig = waterfall_figure(steps, title="What changed — whole company")
    display(Image(data=figure_png(fig, dpi=110), format="png"))
    _show(steps_html(steps))


def show_forecast_call(ctx: ReportContext) -> None:
    """Show the forecast call: categories' roll-ups beside the model, and the manager's call."""
    flt = ctx.filter
    _show(cv.forecast_call_html(cv.forecast_call(ctx.snapshot, flt), flt))


def show_attainment(ctx: ReportContext) -> None:
    """Show quota attainment: to date, expected with P10–P90, and P(attain)."""
    flt = ctx.filter
    _show(cv.attainment_html(cv.attainment(ctx.snapshot, flt), flt))


def show_call_backtest(ctx: ReportContext) -> None:
    """Show whose forecast to trust: :func:`call_backtest_html` of the report's context."""
    _show(call_backtest_html(ctx))


def show_backtest(ctx: ReportContext) -> None:
    """Show how often past forecasts' ranges held, against two baselines, or say why not."""
    bt = ctx.backtest if ctx.backtest is not None else db.backtest_table(ctx.snapshot)
    if (bt is None or bt.empty) and ctx.backtest_note:
        _show(
            '<p class="crmkit-backtest">How often past forecasts\' ranges held is not shown: '
            f"{html.escape(ctx.backtest_note)}.</p>"
        )
        return
    if bt is None or bt.empty:
        _show(
            '<p class="crmkit-backtest">No backtest was run for this report (backtest = 0), '
            "so how often the forecast's ranges held in the past is not shown.</p>"
        )
        return
    intro = ""
    if ctx.backtest is not None:
        intro = (
            '<p class="crmkit-backtest">Won deal revenue over the next periods, forecast from '
            f"{int(bt['origins'].max())} past month ends by the model and by two baselines "
            "(weighted pipeline, run rate): cover80 is how often the actual fell inside the "
            "P10–P90 range (0.8 is ideal); lower CRPS and median error are better.</p>"
        )
    kept = ""
    if ctx.backtest is not None and ctx.backtest_note:
        kept = f'<p class="crmkit-backtest">Note: {html.escape(ctx.backtest_note)}.</p>'
    _show(intro + backtest_html(bt) + kept)


def backtest_html(bt: pd.DataFrame) -> str:
    """HTML of the backtest's scores, and one line per lead: does the model beat the run rate.

    Parameters
    ----------
    bt
        :func:`run_backtest`'s rows (or a snapshot's stored backtest table).

    Returns
    -------
    str
        The table (class ``crmkit-backtest``) without the comparison's numbers, then for
        each lead of the model a ``<p class="crmkit-backtest-verdict">`` line from
        :func:`crmkit.apps.dashboard.run_rate_verdict` (none for a table without them, such as
        one stored by a snapshot saved before the comparison was stored).
    """
    from crmkit.forecast.skill import VERDICT_COLUMNS

    lines = [
        f'<p class="crmkit-backtest-verdict" data-lead="{html.escape(v["lead"])}">'
        f"Model ({html.escape(v['what'])}): {html.escape(v['line'])}</p>"
        for v in db.backtest_verdicts(bt).to_dict("records")
    ]
    table = bt.drop(columns=[c for c in VERDICT_COLUMNS if c in bt])
    shares = tuple(c for c in table if "cover" in c)
    money = tuple(c for c in table if c in ("crps", "mae_median"))
    return table_html(table, css="crmkit-backtest", shares=shares, money=money) + "".join(lines)


def show_diagnostics(ctx: ReportContext) -> None:
    """Show the models' convergence diagnostics and any warnings."""
    d = ctx.snapshot.diagnostics or {}
    ok = bool(d.get("ok", False))
    verdict = (
        "All models passed their checks."
        if ok
        else "Some models did not pass their checks: read the ranges with care."
    )
    msgs = "".join(f"<li>{html.escape(str(m))}</li>" for m in d.get("messages", []))
    _show(
        f'<p class="crmkit-diagnostics" data-ok="{str(ok).lower()}">{verdict}</p>'
        + table_html(db.diagnostics_table(ctx.snapshot), css="crmkit-diagnostics-table")
        + (f"<ul>{msgs}</ul>" if msgs else "")
    )


def run_model_comparison(store: Store, snap: Snapshot, *, seed: int = 0) -> pd.DataFrame:
    """Compare model variants by LOO on the data of a snapshot's forecast (MAP fits).

    Parameters
    ----------
    store
        The database.
    snap
        The snapshot reported (its as-of day).
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        :func:`crmkit.forecast.checks.compare_variants` with ``method="map"``: the pipeline
        model with and without owner effects, repeat purchases with and without the
        calendar effect.
    """
    from crmkit.forecast.checks import compare_variants
    from crmkit.forecast.engine import load_frames

    frames = load_frames(store, as_of=snap.as_of)
    return compare_variants(frames, as_of=snap.as_of, method="map", seed=seed)


def _png_img(fig: object, css: str) -> str:
    """A figure as an inline PNG ``<img>`` (the HTML and the PDF both carry it)."""
    data = base64.b64encode(figure_png(fig, dpi=100)).decode("ascii")
    return f'<img class="{css}" alt="{css}" src="data:image/png;base64,{data}"/>'


#: How the report explains the LOO comparison's columns.
LOO_EXPLANATION = (
    "Higher elpd_loo (expected log predictive density of left-out data) is better; d_loo is "
    "each variant's distance from the best of its family, with its standard error dse (a "
    "d_loo within about two dse is no real difference); weight is the stacking weight of "
    "each variant; pareto_k_bad counts data points whose LOO estimate is unreliable "
    "(Pareto k > 0.7)."
)


def model_checks_html(ctx: ReportContext) -> str:
    """HTML of the "Model checks" section: PPC figure and warning, rank plots, LOO table.

    Parameters
    ----------
    ctx
        The report's context: its snapshot's ``model_checks`` and ``model_traces`` tables,
        and ``model_comparison`` when the report refitted.

    Returns
    -------
    str
        An explanation, the posterior predictive check warning box (when a check misses
        too often, :func:`crmkit.apps.notebook_views.ppc_warning`) and figure (class
        ``crmkit-ppc-figure``), the rank plots (``crmkit-rank-figure``) and the LOO table
        (``crmkit-loo-table``, only when refitted) or a sentence saying why it is not
        shown; a note (class ``crmkit-model-checks``) when the snapshot holds no checks.
    """
    checks = db.snapshot_table(ctx.snapshot, "model_checks")
    traces = db.snapshot_table(ctx.snapshot, "model_traces")
    missing = db.snapshot_table(ctx.snapshot, "model_checks_missing")
    parts = []
    if checks.empty and traces.empty:
        parts.append(f'<p class="crmkit-model-checks">{html.escape(NO_CHECKS_NOTE)}</p>')
    if checks.empty and not missing.empty:
        parts.append(ppc_warning(checks, missing=missing).data)
    if not checks.empty:
        parts.append(
            '<p class="crmkit-model-checks">Posterior predictive checks: what the fitted models '
            "predict for the past they were fitted on (P50 with P10–P90 and P5–P95 ranges) "
            "against what happened (dots). About 1 observed value in 10 falls outside P5–P95 "
            "by chance; red dots mark them, and a check missing more than 1 in 5 is named "
            "above the figure.</p>"
        )
        warning = ppc_warning(checks, missing=missing)
        if warning is not None:
            parts.append(warning.data)
        parts.append(_png_img(ppc_figure(checks), "crmkit-ppc-figure"))
    if not traces.empty and traces["chain"].nunique() < 2:
        parts.append(f'<p class="crmkit-rank-note">{html.escape(ONE_CHAIN_NOTE)}</p>')
    elif not traces.empty:
        parts.append(
            "<p>Rank plots: for each main parameter, how each chain's draws rank among all "
            "draws. Flat histograms near the dashed line mean the chains agree; a chain "
            "piled at one end explored a different region (see R-hat in the diagnostics).</p>"
        )
        parts.append(_png_img(rank_figure(traces), "crmkit-rank-figure"))
    if ctx.model_comparison is not None and not ctx.model_comparison.empty:
        parts.append(
            '<p class="crmkit-loo">Model variants compared by leave-one-out cross-validation '
            "(PSIS-LOO), each refitted for this report with MAP + Laplace on the same data: "
            "the pipeline model with and without owner effects, and repeat purchases with "
            f"and without the calendar effect. {LOO_EXPLANATION}</p>"
        )
        parts.append(table_html(loo_table(ctx.model_comparison), css="crmkit-loo-table"))
    elif ctx.refitted and ctx.model_comparison_note:
        parts.append(
            '<p class="crmkit-loo">The LOO comparison of model variants was not run '
            f"({html.escape(ctx.model_comparison_note)}).</p>"
        )
    elif not ctx.refitted:
        parts.append(
            '<p class="crmkit-loo">The LOO comparison of model variants (with and without '
            "owner effects; with and without the calendar effect) runs only when the report "
            "refits the models (refit = True).</p>"
        )
    return "".join(parts)


def show_model_checks(ctx: ReportContext) -> None:
    """Show the "Model checks" section: :func:`model_checks_html` of the report's context."""
    _show(model_checks_html(ctx))


def summary(ctx: ReportContext) -> dict:
    """Return the report's headline figures as JSON-ready data."""
    s = ctx.snapshot
    head = db.headline(s, ctx.filter)
    return {
        "snapshot_id": s.snapshot_id,
        "as_of": str(s.as_of),
        "horizon": s.horizon,
        "period": s.period,
        "group": ctx.filter.group,
        "currency": db.snapshot_currency(s),
        "refitted": ctx.refitted,
        "diagnostics_ok": bool((s.diagnostics or {}).get("ok", False)),
        "headline": {
            src: {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
            for src, row in head.to_dict("index").items()
        },
    }


def write_outputs(ctx: ReportContext, out_dir: str | Path) -> Path:
    """Write ``summary.json`` (headline figures) into ``out_dir`` and return its path."""
    path = Path(out_dir) / "summary.json"
    path.write_text(json.dumps(summary(ctx), indent=2))
    return path


# ---------------------------------------------------------------------- whose forecast to trust
#: How the call backtest's forecasters are named in the report.
CALL_FORECASTER_NAMES = {
    "model": "Model (P50)",
    "commit": "Commit roll-up",
    "best_case": "Best Case roll-up",
    "manager_call": "Manager's call",
    "run_rate": "Run rate",
}


#: Day of the month the report's call backtest forecasts from: inside the period, after
#: managers have called it (mid-month updates), as at a weekly forecast call.
CALL_BACKTEST_DAY = 20


def run_call_backtest(
    store: Store, snap: Snapshot, *, origins: int, method: str = "map"
) -> pd.DataFrame:
    """Score the model, the category roll-ups and the manager calls of past periods.

    Parameters
    ----------
    store
        The database.
    snap
        The snapshot reported (its as-of day, period, draws and seed are used).
    origins
        Number of past months, forecast from their :data:`CALL_BACKTEST_DAY` (each refits
        the models).
    method
        Fit method.

    Returns
    -------
    pandas.DataFrame
        :func:`crmkit.forecast.backtest.recent_call_backtest` rows, for
        :func:`call_backtest_html`.
    """
    from crmkit.forecast.backtest import recent_call_backtest

    return recent_call_backtest(
        store, as_of=snap.as_of, origins=origins, period=snap.period, day=CALL_BACKTEST_DAY,
        draws=min(int(snap.parameters.get("draws", 500) or 500), 500), method=method,
        seed=int(snap.parameters.get("seed", 0) or 0),
    )  # fmt: skip


def call_backtest_html(scores: pd.DataFrame | ReportContext | None) -> str:
    """HTML of the "whose forecast to trust" section from a call backtest's rows.

    Parameters
    ----------
    scores
        :func:`crmkit.forecast.backtest.call_backtest` rows (or
        :func:`run_call_backtest`'s), a :class:`ReportContext` (its ``call_backtest``),
        or None when no backtest was run.

    Returns
    -------
    str
        An explanation, a table per forecaster (mean absolute error, bias, hit rate; CRPS
        and coverage of the model) and, when managers made calls, a table per group on the
        periods they called (class ``crmkit-call-backtest``); a note when there is nothing
        to score.
    """
    note = None
    if isinstance(scores, ReportContext):
        scores, note = scores.call_backtest, scores.call_backtest_note
    if scores is None or scores.empty:
        why = f" ({html.escape(note)})" if note else ""
        return (
            '<p class="crmkit-call-backtest">No forecast-call backtest was run for this '
            f"report{why}, so the model is not compared with the categories' roll-ups and the "
            "managers' calls.</p>"
        )
    from crmkit.forecast.backtest import summarise_calls

    money, shares = ("mae", "bias", "crps"), ("hit_rate", "cover80", "cover50")

    def named(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out["forecaster"] = out["forecaster"].map(CALL_FORECASTER_NAMES).fillna(out["forecaster"])
        return out

    n_origins = scores["origin"].nunique()
    parts = [
        '<p class="crmkit-call-backtest">Whose forecast to trust: from '
        f"{n_origins} past day(s), the won deal revenue of the company, each team and each "
        "owner in the period then under way (or the next, from a period's last day) as the "
        "model forecast it (its P50), as the forecast categories "
        "rolled up then (Commit = Closed + Commit, Best Case = Commit + Best Case), as the "
        "managers called it and as the recent run rate. Lower mean absolute error is better; "
        "bias above zero means the number was too high; hit rate is how often the number was "
        "reached (a P50 about half the time, a commit should be most of the time); cover80 is "
        "how often the outcome fell in the model's P10–P90 range (0.8 is ideal).</p>",
        table_html(
            named(summarise_calls(scores)), css="crmkit-call-backtest-table",
            money=money, shares=shares,
        ),
    ]  # fmt: skip
    if scores["forecaster"].eq("manager_call").any():
        parts.append(
            "<p>On the periods each manager called, everyone scored on the same outcomes:</p>"
        )
        parts.append(
            table_html(
                named(summarise_calls(scores, by_group=True)),
                css="crmkit-call-backtest-groups", money=money, shares=shares,
            )
        )  # fmt: skip
    return "".join(parts)
