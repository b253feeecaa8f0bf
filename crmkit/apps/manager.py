"""The manager page's widgets: filters that redraw every figure and table from a snapshot.

:class:`ManagerPage` wraps the view (or, without a snapshot, a message) with the "Refit
forecast" action: a refit in a background thread whose progress lines show as they arrive.
Also the deal editor page (:class:`DealEditorPage`), which asks the viewer's name first.

A thin view: each control sets a :class:`~crmkit.apps.dashboard.Filter`, the functions of
:mod:`crmkit.apps.dashboard`, :mod:`~crmkit.apps.call_views` and :mod:`~crmkit.apps.changes`
compute, and HTML widgets show tables and SVG figures. Numbers carry CSS classes and ``data-``
attributes so that tests can read them from the page.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd

from crmkit.apps import call_views as cv
from crmkit.apps import dashboard as db
from crmkit.apps.changes import waterfall_note
from crmkit.apps.dashboard import viewer_name
from crmkit.apps.section_html import headline_html, table_html
from crmkit.errors import CrmkitError
from crmkit.plots import svg as fanchart_svg
from crmkit.plots.waterfall import waterfall_svg
from crmkit.store import Snapshot, Store
from crmkit.store.engine import hide_password, masked_url, resolve_url

ALL = "All"
#: Campaigns listed at most (those with the most projected revenue).
MAX_CAMPAIGNS = 15
_CSS = """
<style>
.crmkit-page h2 {margin: 0.2em 0;}
.crmkit-headline td, .crmkit-headline th {padding: 2px 10px; text-align: right;}
.crmkit-headline td:first-child, .crmkit-headline th:first-child {text-align: left;}
.crmkit-table {border-collapse: collapse; font-size: 0.9em;}
.crmkit-table td, .crmkit-table th {padding: 2px 8px; border-bottom: 1px solid #ddd;}
.crmkit-note {color: #666; font-size: 0.9em;}
.crmkit-warn {color: #a94400;}
.crmkit-row {display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start;}
.crmkit-fig {flex: 0 1 640px; min-width: 320px;}
.crmkit-fanchart {max-width: 1100px;}
.crmkit-call-table td, .crmkit-quota-table td {text-align: right;}
.crmkit-call-table td[data-col="call_note"], .crmkit-call-table td[data-col="call_author"],
.crmkit-quota-table td[data-col="name"], .crmkit-quota-table td[data-col="scope"]
{text-align: left;}
.crmkit-waterfall {max-width: 760px;}
</style>
"""


class ManagerView:
    """The manager page for one snapshot.

    The page is few widgets: the title, the three filter dropdowns, one HTML widget with
    everything that follows the filter (headline, fan chart, the forecast call, quotas,
    pipeline by stage, deals at risk) and one with what does not (what changed since the
    previous forecast, segments, campaigns). Figures are SVG written by
    :mod:`crmkit.plots.svg` and :mod:`crmkit.plots.waterfall`, so neither matplotlib nor a
    picture cache is involved.

    Parameters
    ----------
    snap
        The forecast snapshot shown.
    top_n
        Number of deals in the at-risk table.
    changes
        What changed since the previous snapshot
        (:func:`crmkit.apps.changes.page_changes`), drawn as a waterfall; None when there
        is no previous snapshot.

    """

    def __init__(
        self, snap: Snapshot, *, top_n: int = 10, changes: pd.DataFrame | None = None
    ) -> None:
        self.snap = snap
        self.top_n = top_n
        self.changes = changes
        self._busy = False
        options = db.filter_options(snap)
        self.dropdowns = {
            d: w.Dropdown(options=[ALL, *options[d]], value=ALL, description=d.capitalize())
            for d in db.FILTER_DIMENSIONS
        }
        for d, dd in self.dropdowns.items():
            dd.add_class(f"crmkit-filter-{d}")
            dd.layout = w.Layout(width="220px")
            dd.observe(self._on_change, names="value")
        self.body = w.HTML()
        self.static = w.HTML(self._static_html())
        self.widget = w.VBox(
            [
                w.HTML(_CSS + self._header_html()),
                w.HBox(list(self.dropdowns.values())),
                self.body,
                self.static,
            ]
        )
        self.widget.add_class("crmkit-page")
        self.update(db.Filter())

    @property
    def filter(self) -> db.Filter:
        """The filter the dropdowns describe."""
        return db.Filter.from_mapping({d: dd.value for d, dd in self.dropdowns.items()})

    def _header_html(self) -> str:
        """Title line: snapshot, as-of date, diagnostics warning."""
        s = self.snap
        warn = ""
        if s.diagnostics and not s.diagnostics.get("ok", True):
            msgs = "; ".join(map(str, s.diagnostics.get("messages", []))) or "see the report"
            warn = (
                '<p class="crmkit-warn">Model diagnostics flagged problems: '
                f"{html.escape(msgs)}</p>"
            )
        per = {"M": "months", "Q": "quarters"}.get(s.period, s.period)
        created = f", made {s.created_at:%Y-%m-%d %H:%M} UTC" if s.created_at else ""
        return (
            f'<h2>Revenue forecast as of {s.as_of}</h2><p class="crmkit-note crmkit-snapshot" '
            f'data-snapshot-id="{s.snapshot_id}">Snapshot {s.snapshot_id} '
            f"({html.escape(s.label or '')}{created}), next {s.horizon} {per}. "
            "Ranges are P10–P90: in 8 of 10 outcomes the revenue lands inside.</p>"
            + warn
            + '<p class="crmkit-note">The forecast is rolled up by one of team, owner or '
            "segment at a time; choosing one resets the others.</p>"
        )

    def _on_change(self, change: dict) -> None:
        """Keep one filter active and redraw."""
        if self._busy:
            return
        self._busy = True
        try:
            if change["new"] != ALL:
                for dd in self.dropdowns.values():
                    if dd is not change["owner"]:
                        dd.value = ALL
            self.update(self.filter)
        finally:
            self._busy = False

    def update(self, flt: db.Filter) -> None:
        """Redraw everything that depends on the filter."""
        self.body.value = self.body_html(flt)

    def body_html(self, flt: db.Filter) -> str:
        """The filtered part of the page: headline, fan chart, stages, deals at risk."""
        s = self.snap
        what = "" if flt.dimension == "all" else f" — {flt.dimension} {flt.value}"
        fan = fanchart_svg.fan_chart_svg(db.fan_data(s, flt), title=f"Revenue by period{what}")
        stages = db.pipeline_by_stage(s, flt)
        stage_svg = "" if stages.empty else fanchart_svg.stage_rates_svg(stages)
        stage_table = table_html(
            stages.drop(columns=["pipeline", "stage_order"], errors="ignore"),
            css="crmkit-stages",
            money=("amount", "expected"),
            shares=("configured", "learned_mean", "learned_p10", "learned_p90"),
        )
        risk = table_html(
            db.at_risk_deals(s, flt, n=self.top_n),
            css="crmkit-risk",
            money=("amount",),
            shares=("p_win", "p_slip"),
        )
        note = ""
        if flt.dimension == "segment" and "segment" not in _columns(s, "pipeline_by_stage"):
            note = '<p class="crmkit-note">Open pipeline by stage is for the whole company.</p>'
        return (
            f'<div class="crmkit-body" data-group="{html.escape(flt.group)}">'
            f"{headline_html(db.headline(s, flt), flt, db.snapshot_currency(s))}"
            f'<div class="crmkit-fanchart">{fan}</div>'
            f"{cv.forecast_call_html(cv.forecast_call(s, flt), flt)}"
            f"{cv.attainment_html(cv.attainment(s, flt), flt)}"
            "<h3>Pipeline by stage</h3>"
            '<p class="crmkit-note">Open deals, their amount and expected revenue (amount times '
            "the learned win rate) by stage; win rates as configured against learned from "
            f"the deals' history.</p>{note}"
            f'<div class="crmkit-row"><div class="crmkit-fig">{stage_svg}</div>'
            f"<div>{stage_table}</div></div>"
            f"<h3>Deals most at risk of slipping</h3>{risk}</div>"
        )

    def _static_html(self) -> str:
        """The parts that do not depend on the filter: changes, segments and campaigns."""
        seg = db.segment_contributions(self.snap)
        seg_svg = "" if seg.empty else fanchart_svg.segment_svg(seg)
        seg_table = table_html(
            seg, css="crmkit-segments", money=("closed_to_date", "p10", "p50", "p90"),
            shares=("share",),
        )  # fmt: skip
        roi = db.campaign_roi(self.snap)
        if roi is None:
            campaigns = (
                '<p class="crmkit-note crmkit-roi">This forecast did not measure campaign '
                "returns.</p>"
            )
        else:
            money = tuple(
                c for c in roi.columns
                if c in ("cost", "won_revenue") or c.startswith("revenue_")
            )  # fmt: skip
            shares = tuple(c for c in roi.columns if c.startswith("roi_") or c == "win_rate")
            campaigns = ""
            if len(roi) > MAX_CAMPAIGNS:
                key = next((c for c in ("revenue_p50", "cost") if c in roi.columns), None)
                if key is not None:
                    roi = roi.sort_values(key, ascending=False, kind="stable")
                campaigns = (
                    f'<p class="crmkit-note">The {MAX_CAMPAIGNS} of {len(roi)} campaigns with '
                    f"the most {'projected revenue' if key == 'revenue_p50' else 'cost'}.</p>"
                )
                roi = roi.head(MAX_CAMPAIGNS)
            campaigns += table_html(roi, css="crmkit-roi", money=money, shares=shares)
        steps = self.changes
        wf = "" if steps is None else waterfall_svg(steps, title="What changed — whole company")
        return (
            "<h3>What changed since the previous forecast</h3>"
            f'{waterfall_note(steps)}<div class="crmkit-waterfall">{wf}</div>'
            "<h3>Segment contributions</h3>"
            f'<div class="crmkit-row"><div class="crmkit-fig">{seg_svg}</div>'
            f"<div>{seg_table}</div></div>"
            f"<h3>Campaign return on investment</h3>{campaigns}"
            f"{_track_record_html(self.snap)}"
        )


def _track_record_html(snap: Snapshot) -> str:
    """The backtest's verdict against the run rate, one line per lead; empty without one."""
    verdicts = db.backtest_verdicts(snap)
    if verdicts.empty:
        return ""
    items = "".join(
        f'<li data-lead="{html.escape(r.lead)}">{html.escape(r.what)}: {html.escape(r.line)}</li>'
        for r in verdicts.itertuples()
    )
    return (
        "<h3>Did past forecasts beat the run rate? (whole company)</h3>"
        '<p class="crmkit-note">Forecasts the model would have made at earlier month ends, '
        "scored against what happened (CRPS: lower is better) and compared with the run rate "
        "of the last months.</p>"
        f'<ul class="crmkit-backtest-verdict">{items}</ul>'
    )


def _columns(snap: Snapshot, table: str) -> set[str]:
    """Column names of one of the snapshot's extra tables (empty if absent)."""
    rows = snap.parameters.get("tables", {}).get(table) or []
    return set(rows[0]) if rows else set()


# ---------------------------------------------------------------------------- the refit action
#: Forecast settings of a refit when the database has no snapshot yet to take them from.
REFIT_DEFAULTS: dict[str, Any] = {"horizon": 6, "period": "M"}
#: Label of the snapshots the app's refit saves.
REFIT_LABEL = "refit in the app"
#: Seconds between updates of the running refit's elapsed time.
REFIT_TICK_SECONDS = 1.0
#: Longest error text shown (characters).
MAX_ERROR_CHARS = 300
#: Databases (resolved URLs) with a refit running in this process, and the lock guarding them.
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()
_WARN_STYLE = (
    "border:2px solid #b45309;background:#fff7ed;color:#7c2d12;padding:8px 12px;"
    "margin:6px 0;border-radius:4px"
)


def refit_parameters(
    store: Store, previous: Snapshot | None, *, method: str | None = None
) -> dict[str, Any]:
    """The ``run_forecast`` arguments of the app's refit: the newest data day, previous settings.

    Parameters
    ----------
    store
        The database refitted.
    previous
        The snapshot shown (its horizon, period, draws, target and seed are kept), or None
        (:data:`REFIT_DEFAULTS`).
    method
        Fit method; None: ``"auto"`` where the engine knows it, else the engine's default.

    Returns
    -------
    dict
        ``as_of`` (the last data day, never after today), ``horizon``, ``period``,
        ``label`` and, when known, ``draws``, ``target``, ``seed`` and ``method``. A
        ``{period: amount}`` target keeps the periods the new forecast still has.

    Raises
    ------
    CrmkitError
        The database holds no deals or orders.
    """
    from crmkit.forecast.axes import period_axis
    from crmkit.forecast.params import METHODS, data_span, default_as_of
    from crmkit.store.fiscal import fiscal_calendar

    out: dict[str, Any] = {"as_of": default_as_of(data_span(store)), **REFIT_DEFAULTS}
    if previous is not None:
        p = previous.parameters or {}
        out["horizon"] = int(p.get("horizon") or previous.horizon)
        out["period"] = str(p.get("period") or previous.period)
        for key in ("draws", "seed", "target"):
            if p.get(key) is not None:
                out[key] = p[key]
    target = out.get("target")
    if isinstance(target, dict):
        axis = period_axis(out["as_of"], out["horizon"], out["period"], fiscal_calendar(store))
        kept = {k: v for k, v in target.items() if k in set(axis.labels)}
        out["target"] = kept or None
    if method is None and "auto" in METHODS:
        method = "auto"
    if method is not None:
        out["method"] = method
    out["label"] = REFIT_LABEL
    return out


def _elapsed(seconds: float) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` past an hour)."""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class ManagerPage:
    """The manager page with its "Refit forecast" action.

    Shows a :class:`ManagerView` of the snapshot (or, without one, a message saying how to
    make the first) under a "Refit forecast" button. A click refits in a background thread
    (:func:`crmkit.forecast.engine.run_forecast` on the page's database, as of the newest
    data day, with the shown snapshot's settings: :func:`refit_parameters`), disables the
    button, and shows each progress line of the fit as it arrives with the elapsed time.
    At the end the page shows the new snapshot when it was published, or keeps the
    previous one under a warning giving the draft's reasons. An error shows as one line
    (a :class:`~crmkit.errors.CrmkitError`'s own, else ``refit failed: ...``), without a
    traceback or the database's password, and the page keeps what it showed. One refit at
    a time: a click while one runs (from this page or another of the same database in this
    kernel) starts nothing and says so.

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    snap
        The snapshot shown, or None when the database has none.
    top_n
        Number of deals in the at-risk table.
    changes
        What changed since the snapshot before ``snap`` (see :class:`ManagerView`).
    allow_refit
        Show the refit action (False: a read-only page).
    method
        Fit method of the refit (None: see :func:`refit_parameters`).

    Attributes
    ----------
    view
        The :class:`ManagerView` shown (None without a snapshot).
    button, status
        The refit button and the status area (HTML) of the refit's progress and outcome.
    thread
        The last refit's thread (None before the first).
    widget
        The page.

    """

    def __init__(
        self,
        db: str | None,
        snap: Snapshot | None,
        *,
        top_n: int = 10,
        changes: pd.DataFrame | None = None,
        allow_refit: bool = True,
        method: str | None = None,
    ) -> None:
        self.db = db
        self.top_n = top_n
        self.allow_refit = bool(allow_refit)
        self.method = method
        self.snap = snap
        self.view: ManagerView | None = None
        self.thread: threading.Thread | None = None
        self._url = resolve_url(db)
        self._lines: list[tuple[float, str]] = []
        self._outcome = ""
        self._notice = ""
        self._state = "idle"
        self._t0 = 0.0
        self._t1: float | None = None
        self._saved: int | None = None
        self._done = threading.Event()
        self._done.set()
        self.button = w.Button(
            description="Refit forecast",
            icon="refresh",
            tooltip="Fit the models on the newest data and save a new forecast snapshot",
            layout=w.Layout(width="auto"),
        )
        self.button.add_class("crmkit-refit-button")
        self.button.on_click(lambda _b: self.refit())
        self.status = w.HTML()
        self.status.add_class("crmkit-refit-status")
        self.content = w.VBox()
        self._show(snap, changes)
        bar: list[w.Widget] = []
        if self.allow_refit:
            bar = [w.HBox([self.button]), self.status]
        self.widget = w.VBox([*bar, self.content])
        self.widget.add_class("crmkit-manager-page")

    # ------------------------------------------------------------------ what is shown
    def _show(self, snap: Snapshot | None, changes: pd.DataFrame | None) -> None:
        """Show a snapshot's view, or the no-snapshot message."""
        self.snap = snap
        if snap is None:
            self.view = None
            how = (
                " Or press <b>Refit forecast</b> above to make the first one here."
                if self.allow_refit
                else ""
            )
            msg = html.escape(db.no_snapshot_message(masked_url(self._url)))
            self.content.children = (
                w.HTML(
                    '<div class="crmkit-no-snapshot" style="font-size:1.1em;padding:1em">'
                    f"{msg}{how}</div>"
                ),
            )
            return
        self.view = ManagerView(snap, top_n=self.top_n, changes=changes)
        self.content.children = (self.view.widget,)

    @property
    def running(self) -> bool:
        """Whether a refit of this page is running."""
        return not self._done.is_set()

    def _render(self) -> None:
        """Write the status area: elapsed time, the progress lines, the outcome."""
        notice = self._notice
        if self._state == "idle":
            self.status.value = notice
            return
        now = self._t1 if self._t1 is not None else time.monotonic()
        head = (
            f"Refit running for {_elapsed(now - self._t0)} …"
            if self._state == "running"
            else f"Refit finished after {_elapsed(now - self._t0)}."
        )
        items = "".join(
            f'<li class="crmkit-refit-line">[{_elapsed(t - self._t0)}] {html.escape(text)}</li>'
            for t, text in list(self._lines)
        )
        self.status.value = (
            f'<div class="crmkit-refit" data-state="{self._state}">'
            f'<p class="crmkit-note crmkit-refit-elapsed">{head}</p>'
            f'<ul class="crmkit-refit-lines" style="margin:2px 0">{items}</ul>'
            f"{self._outcome}{notice}</div>"
        )

    def _line(self, text: str) -> None:
        """Receive one progress line (the ``report`` callable of the fit)."""
        self._lines.append((time.monotonic(), str(text)))
        self._render()

    # ------------------------------------------------------------------ the refit
    def refit(self) -> bool:
        """Start a refit in a background thread (the button's action).

        Returns
        -------
        bool
            Whether a refit was started: False (saying so in the status area) when refit is
            not allowed on this page or a refit of the same database is running.
        """
        if not self.allow_refit:
            return False
        with _RUNNING_LOCK:
            busy = self.running or self._url in _RUNNING
            if not busy:
                _RUNNING.add(self._url)
                self._done.clear()
        if busy:
            where = "" if self.running else " (from another page of this database)"
            self._notice = (
                f'<p class="crmkit-warn crmkit-refit-notice">A refit is running{where}; '
                "this click started nothing. Wait for it to finish.</p>"
            )
            self._render()
            return False
        self.button.disabled = True
        self._lines, self._outcome, self._notice, self._state = [], "", "", "running"
        self._t0, self._t1 = time.monotonic(), None
        self._render()
        self.thread = threading.Thread(target=self._run, name="crmkit-refit", daemon=True)
        self.thread.start()
        threading.Thread(target=self._tick, name="crmkit-refit-clock", daemon=True).start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the running refit (if any) has ended; return whether it has."""
        return self._done.wait(timeout)

    def _tick(self) -> None:
        """Update the elapsed time while the refit runs."""
        while not self._done.wait(REFIT_TICK_SECONDS):
            self._render()

    def _one_line(self, err: BaseException) -> str:
        """An exception as one line, the database's password hidden, truncated."""
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        first = hide_password(first, self._url)
        if len(first) > MAX_ERROR_CHARS:
            first = first[: MAX_ERROR_CHARS - 1] + "…"
        return first

    def _run(self) -> None:
        """The refit thread: fit, save, then show the outcome; never raises."""
        state, outcome = "failed", ""
        self._saved = None
        try:
            state, outcome = self._refit_once(self._line)
        except CrmkitError as err:  # BusyError included: its own one line
            outcome = self._one_line(err)
        except Exception as err:  # any other failure: one line, no traceback on the page
            outcome = f"refit failed: {self._one_line(err)}"
        if state == "failed":
            saved = (
                "Nothing was saved"
                if self._saved is None
                else f"Snapshot {self._saved} was saved but could not be shown"
            )
            kept = (
                f"the page still shows snapshot {self.snap.snapshot_id}."
                if self.snap is not None
                else "the page still has no forecast to show."
            )
            outcome = (
                f'<p class="crmkit-warn crmkit-refit-error" role="alert">{html.escape(outcome)}'
                f'</p><p class="crmkit-note crmkit-refit-kept">{saved}; {kept}</p>'
            )
        self._t1 = time.monotonic()
        self._state, self._outcome, self._notice = state, outcome, ""
        self._render()
        self.button.disabled = False
        with _RUNNING_LOCK:
            _RUNNING.discard(self._url)
            self._done.set()

    def _refit_once(self, report: Callable[[str], None]) -> tuple[str, str]:
        """Fit and save one forecast; show it when published. Returns (state, outcome HTML)."""
        from crmkit.apps.changes import page_changes
        from crmkit.forecast.engine import run_forecast

        with Store.open(self.db, migrate_db=False) as store:
            kw = refit_parameters(store, self.snap, method=self.method)
            per = {"M": "months", "Q": "quarters"}.get(kw["period"], kw["period"])
            report(f"refitting as of {kw['as_of']}: next {kw['horizon']} {per}")
            snap = run_forecast(store, report=report, **kw)
            self._saved = snap.snapshot_id
            if snap.status != "published":
                reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in snap.reasons or [])
                kept = (
                    f"The page still shows snapshot {self.snap.snapshot_id}."
                    if self.snap is not None
                    else "The page still has no forecast to show."
                )
                return "draft", (
                    f'<div class="crmkit-refit-draft" role="alert" style="{_WARN_STYLE}">'
                    f"<strong>&#9888; The new forecast failed its checks: saved as draft "
                    f"{snap.snapshot_id}, not shown. {kept}</strong>"
                    f'<ul style="margin:4px 0 0 0">{reasons}</ul></div>'
                )
            shown = store.load_snapshot(snap.snapshot_id)
            changes = page_changes(store, shown)
        self._show(shown, changes)
        return "published", (
            f'<p class="crmkit-note crmkit-refit-done" data-snapshot-id="{shown.snapshot_id}">'
            f"Snapshot {shown.snapshot_id} published and shown below.</p>"
        )


class DealEditorPage:
    """The deal editor app: asks the viewer's name, then edits deals recording that name.

    Every saved edit, bulk edit, deletion and added deal is recorded in the history with
    ``changed_by`` = the name given here (typed once in "Your name", or ``user``). Nothing
    can be edited before a name is given: the editor is built only then.

    Parameters
    ----------
    db
        SQLite file or SQLAlchemy URL (default: ``$CRMKIT_DB_URL``, else ``data/crmkit.db``).
    user
        The viewer's name, when known beforehand (``crmkit app --user``): no question asked.
    page_size
        Rows per page of the grid.

    Attributes
    ----------
    user
        The name edits are recorded under (None until given).
    grid
        The :class:`crmkit.widgets.grid.EntityGrid` (None until a name is given).
    widget
        The page.

    """

    def __init__(
        self, db: str | None = None, *, user: str | None = None, page_size: int = 25
    ) -> None:
        self.db = db
        self.page_size = page_size
        self.user: str | None = None
        self.grid = None
        self.store: Store | None = None
        self.name = w.Text(
            description="Your name",
            placeholder="recorded with each change",
            continuous_update=False,
            layout=w.Layout(width="360px"),
        )
        self.name.add_class("crmkit-viewer-name")
        self.start = w.Button(description="Start editing")
        self.start.add_class("crmkit-viewer-start")
        self.message = w.HTML()
        self.message.add_class("crmkit-viewer-message")
        self.name.observe(lambda _c: self.begin(), names="value")  # Enter in the box
        self.start.on_click(lambda _b: self.begin())
        self.widget = w.VBox(
            [
                w.HTML(
                    '<p class="crmkit-note">Every change you make is recorded in the deal '
                    "history under your name.</p>"
                ),
                w.HBox([self.name, self.start]),
                self.message,
            ]
        )
        self.widget.add_class("crmkit-editor-page")
        if user is not None:
            self.begin(user)

    def begin(self, name: str | None = None) -> bool:
        """Take the viewer's name (default: the box's) and show the editor.

        Parameters
        ----------
        name
            The name; None reads the "Your name" box.

        Returns
        -------
        bool
            Whether the editor is shown (False, with a message, for an invalid name).

        """
        if self.grid is not None:
            return True  # asked once: the name stays for this page
        try:
            who = viewer_name(self.name.value if name is None else name)
        except CrmkitError as err:
            self.message.value = f'<span class="crmkit-warn">{html.escape(str(err))}</span>'
            return False
        from crmkit.widgets.forms import editor

        self.store = Store.open(self.db)  # read when the viewer starts: never stale
        self.grid, page = editor(self.store, "deals", user=who, page_size=self.page_size)
        self.user = who
        note = w.HTML(
            f'<p class="crmkit-note crmkit-editing-as">Editing as <b>{html.escape(who)}</b>: '
            "every change is recorded under this name.</p>"
        )
        self.widget.children = (note, page)
        return True
