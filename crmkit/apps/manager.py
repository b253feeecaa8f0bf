"""The manager page's widgets: filters that redraw every figure and table from a snapshot.

Also the deal editor page (:class:`DealEditorPage`), which asks the viewer's name first.

A thin view: each control sets a :class:`~crmkit.apps.dashboard.Filter`, the functions of
:mod:`crmkit.apps.dashboard`, :mod:`~crmkit.apps.call_views` and :mod:`~crmkit.apps.changes`
compute, and HTML widgets show tables and SVG figures. Numbers carry CSS classes and ``data-``
attributes so that tests can read them from the page.
"""

from __future__ import annotations

import html

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
        )


def _columns(snap: Snapshot, table: str) -> set[str]:
    """Column names of one of the snapshot's extra tables (empty if absent)."""
    rows = snap.parameters.get("tables", {}).get(table) or []
    return set(rows[0]) if rows else set()


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
