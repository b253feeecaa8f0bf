"""The manager page's widgets: filters that redraw every figure and table from a snapshot.

A thin view: each control sets a :class:`~crmkit.dashboard.Filter`, the functions of
:mod:`crmkit.dashboard` compute, and HTML and PNG image widgets show the result. Numbers
carry CSS classes and ``data-`` attributes so that tests can read them from the page.
"""

from __future__ import annotations

import hashlib
import html
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from crmkit import dashboard as db
from crmkit.dashboard import headline_html, table_html
from crmkit.store import Snapshot

ALL = "All"
_CSS = """
<style>
.crmkit-page h2 {margin: 0.2em 0;}
.crmkit-headline td, .crmkit-headline th {padding: 2px 10px; text-align: right;}
.crmkit-headline td:first-child, .crmkit-headline th:first-child {text-align: left;}
.crmkit-table {border-collapse: collapse; font-size: 0.9em;}
.crmkit-table td, .crmkit-table th {padding: 2px 8px; border-bottom: 1px solid #ddd;}
.crmkit-note {color: #666; font-size: 0.9em;}
.crmkit-warn {color: #a94400;}
</style>
"""


#: Folder of the cached figure PNGs (``$CRMKIT_APP_CACHE`` overrides it).
CACHE_ENV = "CRMKIT_APP_CACHE"


def figure_cache_path(snap: Snapshot, name: str) -> Path:
    """Return the cache file of one figure of one snapshot.

    The key holds the snapshot's id and creation time and a hash of its quantiles, so a
    rebuilt database never serves another snapshot's picture.
    """
    root = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "crmkit-app-cache")
    h = hashlib.sha1(
        f"{snap.snapshot_id}|{snap.created_at}|{snap.as_of}|{name}".encode()
        + snap.quantiles.to_csv(index=False).encode()
    ).hexdigest()[:20]
    return root / f"{h}.png"


class ManagerView:
    """The manager page for one snapshot.

    Parameters
    ----------
    snap
        The forecast snapshot shown.
    top_n
        Number of deals in the at-risk table.
    cache
        Keep the figures' PNGs in :func:`figure_cache_path` files: a snapshot never changes,
        so every later viewer reads them instead of drawing them again.

    """

    def __init__(self, snap: Snapshot, *, top_n: int = 10, cache: bool = True) -> None:
        self.snap = snap
        self.top_n = top_n
        self.cache = cache
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
        self.headline = w.HTML()
        self.fan = w.Image(format="png", layout=w.Layout(max_width="1100px"))
        self.fan.add_class("crmkit-fanchart")
        self.stage_img = w.Image(format="png", layout=w.Layout(max_width="700px"))
        self.stage_table = w.HTML()
        self.risk = w.HTML()
        self.segments = w.HTML()
        self.segment_img = w.Image(format="png", layout=w.Layout(max_width="700px"))
        self.campaigns = w.HTML()
        self.widget = w.VBox(
            [
                w.HTML(_CSS + self._header_html()),
                w.HBox(list(self.dropdowns.values())),
                w.HTML(
                    '<p class="crmkit-note">The forecast is rolled up by one of team, owner or '
                    "segment at a time; choosing one resets the others.</p>"
                ),
                self.headline,
                self.fan,
                w.HTML("<h3>Pipeline by stage</h3>"),
                w.HBox([self.stage_img, self.stage_table]),
                w.HTML("<h3>Deals most at risk of slipping</h3>"),
                self.risk,
                w.HTML("<h3>Segment contributions</h3>"),
                w.HBox([self.segment_img, self.segments]),
                w.HTML("<h3>Campaign return on investment</h3>"),
                self.campaigns,
            ]
        )
        self.widget.add_class("crmkit-page")
        self.update(db.Filter())
        self._static()

    def _png(self, name: str, draw: Callable) -> bytes:
        """Return a figure's PNG, drawn once per snapshot and then read from the cache."""
        path = figure_cache_path(self.snap, name) if self.cache else None
        if path is not None and path.exists():
            return path.read_bytes()
        from crmkit import fanchart  # matplotlib is imported only when a figure is drawn

        png = fanchart.figure_png(draw(fanchart))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(png)
            os.replace(tmp, path)
        return png

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
            "Ranges are P10–P90: in 8 of 10 outcomes the revenue lands inside.</p>" + warn
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
        s = self.snap
        self.headline.value = headline_html(db.headline(s, flt), flt)
        what = "" if flt.dimension == "all" else f" — {flt.dimension} {flt.value}"
        self.fan.value = self._png(
            f"fan-{flt.group}",
            lambda f: f.fan_chart(db.fan_data(s, flt), title=f"Revenue by period{what}"),
        )
        stages = db.pipeline_by_stage(s, flt)
        if stages.empty:
            self.stage_img.layout.display = "none"
        else:
            self.stage_img.layout.display = None
            self.stage_img.value = self._png("stages", lambda f: f.stage_rates_figure(stages))
        self.stage_table.value = table_html(
            stages.drop(columns=["pipeline"], errors="ignore"),
            css="crmkit-stages",
            money=("amount", "expected"),
            shares=("configured", "learned_mean", "learned_p10", "learned_p90"),
        )
        risk = db.at_risk_deals(s, flt, n=self.top_n)
        self.risk.value = table_html(
            risk, css="crmkit-risk", money=("amount",), shares=("p_win", "p_slip")
        )

    def _static(self) -> None:
        """Draw the parts that do not depend on the filter."""
        seg = db.segment_contributions(self.snap)
        if seg.empty:
            self.segment_img.layout.display = "none"
        else:
            self.segment_img.value = self._png("segments", lambda f: f.segment_figure(seg))
        self.segments.value = table_html(
            seg, css="crmkit-segments", money=("closed_to_date", "p10", "p50", "p90"),
            shares=("share",),
        )  # fmt: skip
        roi = db.campaign_roi(self.snap)
        if roi is None:
            self.campaigns.value = (
                '<p class="crmkit-note">This forecast did not measure campaign returns.</p>'
            )
        else:
            money = tuple(c for c in roi.columns if c == "cost" or c.startswith("revenue_"))
            shares = tuple(c for c in roi.columns if c.startswith("roi_"))
            self.campaigns.value = table_html(roi, css="crmkit-roi", money=money, shares=shares)
