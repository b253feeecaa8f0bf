"""The segment explorer: pick a segmentation, see each segment, and move customers between them.

A thin view over :mod:`crmkit.segments` and :mod:`crmkit.plots.segments`: the customer table, the
labels of a segmentation, the per-segment summary and trend are computed by those plain
functions; moving customers calls :func:`crmkit.segments.assign_segment`. Each customer's
CLV draws (:func:`crmkit.segments.store_customer_value`) give the "CLV tiers"
segmentation and, for every segmentation, each segment's expected CLV with the 10th to
90th percentiles of its total (:func:`crmkit.segments.segment_clv`: sums of draws).

Numbers are shown per kind of column (money, counts, shares, days) at a precision that
tells them apart (:mod:`crmkit.plots.format`), under readable headers; the member grid keeps
numbers as numbers (so it sorts them) and formats them in the browser.
"""

from __future__ import annotations

import html

import ipywidgets as w
import pandas as pd
from ipydatagrid import DataGrid, TextRenderer

from crmkit import segments
from crmkit.errors import CrmkitError, ValidationError
from crmkit.plots import segments as plots
from crmkit.plots.format import format_numbers, number_decimals
from crmkit.store import Store
from crmkit.widgets.grid_values import error_message

#: Built-in segmentations: label -> customer-table column.
BUILTIN = {"Account segment": "segment", "RFM segments": "rfm_segment", "CLV tiers": "clv_tier"}
#: The segmentation offered only when the customers' CLV could be computed.
CLV_TIERS = "CLV tiers"
#: Prefix of saved rule segments in the segmentation drop-down.
RULE_PREFIX = "Rule: "
#: Customers listed at most in the member table (largest revenue first).
MAX_MEMBERS = 500
#: Columns of the member table. ``rfm_code`` ("545") only: ``rfm_score`` is the same number
#: (:func:`crmkit.segments.rfm_scores`), and one column is shown once.
MEMBER_COLUMNS = (
    "name",
    "owner",
    "segment",
    "rfm_segment",
    "rfm_code",
    "clv_tier",
    "clv",
    "revenue",
    "n_orders",
    "recency_days",
    "last_purchase",
)
#: Headers of the member grid.
MEMBER_HEADERS = {
    "account_id": "Account",
    "name": "Name",
    "owner": "Owner",
    "segment": "Segment",
    "rfm_segment": "RFM segment",
    "rfm_code": "RFM score",
    "clv_tier": "CLV tier",
    "clv": "Expected CLV",
    "revenue": "Revenue",
    "n_orders": "Orders",
    "recency_days": "Days since last order",
    "last_purchase": "Last order",
}
#: Member columns by kind: money (decimals from the spread), counts and days (whole).
MONEY_COLUMNS = ("clv", "revenue")
COUNT_COLUMNS = ("n_orders", "recency_days")
#: Headers of the per-segment summary.
SUMMARY_HEADERS = {
    "segment": "Segment",
    "customers": "Customers",
    "customer_share": "% of customers",
    "revenue": "Revenue",
    "revenue_share": "% of revenue",
    "revenue_per_customer": "Revenue per customer",
    "last_period": "Last period",
    "revenue_last": "Revenue, last period",
    "revenue_previous": "Revenue, period before",
    "revenue_change": "Change",
    "expected_clv": "Expected CLV",
    "clv_low": "CLV, 10th percentile",
    "clv_high": "CLV, 90th percentile",
    "clv_share": "% of CLV",
}


def segmentations(store: Store, *, clv: bool = False) -> list[str]:
    """List the segmentations one can explore: the built-in ones, then every saved rule segment.

    "CLV tiers" is listed only with ``clv=True`` (when the customers' CLV is known).
    """
    saved = segments.list_segments(store)
    builtin = [b for b in BUILTIN if clv or b != CLV_TIERS]
    return [*builtin, *[f"{RULE_PREFIX}{n}" for n in saved["name"]]]


def segment_column(store: Store, customers: pd.DataFrame, segmentation: str) -> pd.Series:
    """Each customer's segment under ``segmentation``.

    Parameters
    ----------
    store
        The database (to load a saved rule segment).
    customers
        :func:`crmkit.segments.customer_table`.
    segmentation
        A label from :func:`segmentations`.

    Returns
    -------
    pandas.Series
        Aligned with ``customers``; a rule segment gives its name or ``"not <name>"``.

    """
    if segmentation in BUILTIN:
        if BUILTIN[segmentation] not in customers.columns:
            raise CrmkitError(f"{segmentation} are not known: the customers have no CLV")
        return customers[BUILTIN[segmentation]]
    if segmentation.startswith(RULE_PREFIX):
        name = segmentation[len(RULE_PREFIX) :]
        rule = segments.load_segment(store, name)
        selected = segments.evaluate_rule(rule.rule, customers)
        return pd.Series(
            [name if s else f"not {name}" for s in selected], index=customers.index, dtype=object
        )
    raise CrmkitError(
        f"unknown segmentation {segmentation!r}; choose one of {segmentations(store)}"
    )


def members(customers: pd.DataFrame, labels: pd.Series, segment: str) -> pd.DataFrame:
    """Return the customers in one segment, largest revenue first, indexed by ``account_id``."""
    from crmkit.segments.summary import NO_SEGMENT

    lab = labels.astype(object).where(labels.notna(), NO_SEGMENT).astype(str)
    cols = [c for c in MEMBER_COLUMNS if c in customers.columns]
    out = customers.loc[(lab == segment).to_numpy(), ["account_id", *cols]]
    out = out.sort_values(["revenue", "account_id"], ascending=[False, True], kind="stable")
    return out.set_index("account_id")


class SegmentExplorer:
    """Explore a segmentation and move customers between account segments.

    Parameters
    ----------
    store
        The database.
    user
        Recorded as ``changed_by``.
    period
        Period of the revenue trend: ``"M"``, ``"Q"`` or ``"W"``.
    plots_enabled
        Draw the bar and trend figures (turn off for speed in tests).
    clv
        Compute each customer's CLV (:func:`crmkit.segments.store_customer_value`): adds
        the "CLV tiers" segmentation and each segment's expected CLV with its interval.
    clv_options
        Keyword arguments for :func:`crmkit.segments.store_customer_value` (``method``,
        ``periods``, ``discount_rate``, ``n_draws``, ...).

    Attributes
    ----------
    customers
        :func:`crmkit.segments.customer_table` as last read.
    summary
        :func:`crmkit.segments.segment_summary` of the chosen segmentation.
    member_frame
        The customers listed for the chosen segment.
    clv_draws
        CLV draws ``(sample, customer_id)`` of the customers with purchases, or None when
        CLV is off or could not be computed (``clv_note`` says why).

    """

    def __init__(
        self,
        store: Store,
        *,
        user: str = "analyst",
        period: str = "M",
        plots_enabled: bool = True,
        clv: bool = True,
        clv_options: dict | None = None,
    ) -> None:
        self.store, self.user, self.period, self.plots_enabled = store, user, period, plots_enabled
        self.clv_enabled, self.clv_options = clv, dict(clv_options or {})
        self.clv_draws = None
        self.clv_note = ""
        self.segmentation = w.Dropdown(options=segmentations(store), description="Segmentation")
        self.segment = w.Dropdown(options=[], description="Segment")
        self.target = w.Combobox(
            placeholder="segment name", description="Move to", ensure_option=False
        )
        self.move_button = w.Button(description="Move selected", button_style="warning")
        self.move_all_button = w.Button(description="Move all in segment")
        self.refresh_button = w.Button(description="Reload", icon="refresh", tooltip="read again")
        self.message = w.HTML()
        self.summary_table = w.HTML()
        self.clv_label = w.HTML()
        self.clv_label.add_class("crmkit-clv-note")
        self.plot_out = w.Output()
        self.members_label = w.Label()
        self.member_grid = DataGrid(
            pd.DataFrame({"Name": []}, index=pd.Index([], name=MEMBER_HEADERS["account_id"])),
            selection_mode="row",
            base_column_size=110,
            base_row_header_size=90,
            header_renderer=TextRenderer(font="bold 12px sans-serif"),
            layout=w.Layout(height="300px"),
        )
        self.segmentation.observe(lambda _c: self.show_segmentation(), "value")
        self.segment.observe(lambda _c: self.show_members(), "value")
        self.move_button.on_click(lambda _b: self.move_selected())
        self.move_all_button.on_click(lambda _b: self.move(list(self.member_frame.index)))
        self.refresh_button.on_click(lambda _b: self.reload())
        self.widget = w.VBox(
            [
                w.HBox([self.segmentation, self.refresh_button]),
                self.summary_table,
                self.clv_label,
                self.plot_out,
                w.HBox([self.segment, self.members_label]),
                self.member_grid,
                w.HBox([self.target, self.move_button, self.move_all_button]),
                self.message,
            ]
        )
        self.member_frame = pd.DataFrame()
        self.reload()

    def reload(self) -> None:
        """Read the customers and orders again and redraw."""
        self.customers = segments.customer_table(self.store)
        self.orders = self.store.read("orders", columns=["account_id", "ordered_at", "amount"])
        self._add_clv()
        self.target.options = sorted({str(v) for v in self.customers["segment"].dropna()})
        current = self.segmentation.value
        self.segmentation.options = segmentations(self.store, clv=self.clv_draws is not None)
        if current in self.segmentation.options:
            self.segmentation.value = current
        self.show_segmentation()

    def _add_clv(self) -> None:
        """Compute the customers' CLV draws and add ``clv`` and ``clv_tier`` to the table."""
        self.clv_draws = None
        if not self.clv_enabled:
            self.clv_note = ""
            return
        try:
            self.clv_draws = segments.store_customer_value(self.store, **self.clv_options)
        except CrmkitError as err:
            self.clv_note = f"No CLV: {err}"
            return
        ids = self.customers["account_id"]
        clv = segments.expected_clv(self.clv_draws)
        tiers = segments.customer_clv_tiers(self.clv_draws)
        self.customers = self.customers.copy()
        self.customers["clv"] = ids.map(clv).to_numpy()
        self.customers["clv_tier"] = pd.Categorical(
            ids.map(tiers.astype(object)).to_numpy(), categories=tiers.cat.categories
        )
        a = self.clv_draws.attrs
        flag = "" if a.get("diagnostics_ok", 1) else " The fit FAILS its diagnostics: "
        self.clv_note = (
            f"Expected CLV: repeat revenue over the next {a.get('periods')} months "
            f"(BG/NBD × Gamma-Gamma, {a.get('method')}, discount {a.get('discount_rate', 0):g} "
            f"a month), with the 10th–90th percentiles of each segment's total from "
            f"{self.clv_draws.sizes['sample']} parameter draws; customers without purchases "
            f"add none.{flag}{a.get('diagnostics', '') if flag else ''}"
        )

    def show_segmentation(self) -> None:
        """Compute and show the chosen segmentation's summary, figures and segments."""
        try:
            self.labels = segment_column(self.store, self.customers, self.segmentation.value)
        except (ValidationError, CrmkitError) as err:
            self._say(f"Cannot show {self.segmentation.value}: {error_message(err)}", ok=False)
            return
        frame = pd.DataFrame({"account_id": self.customers["account_id"], "label": self.labels})
        summary_input = self.customers[["account_id", "revenue"]].rename(
            columns={"account_id": "customer_id"}
        )
        self.summary = segments.segment_summary(
            frame, summary_input, orders=self.orders, period=self.period, column="label"
        )
        if self.clv_draws is not None:
            by_id = pd.Series(self.labels.to_numpy(), index=self.customers["account_id"].to_numpy())
            value = segments.segment_clv(self.clv_draws, by_id).drop(columns="clv_customers")
            value["segment"] = value["segment"].astype(str)
            self.summary = self.summary.assign(segment_key=self.summary["segment"].astype(str))
            self.summary = self.summary.merge(
                value.rename(columns={"segment": "segment_key"}), on="segment_key", how="left"
            ).drop(columns="segment_key")
        self.summary_table.value = summary_html(self.summary)
        self.clv_label.value = html.escape(self.clv_note)
        self.plot_out.clear_output(wait=True)
        if self.plots_enabled and len(self.summary):
            trend = segments.segment_trend(frame, self.orders, period=self.period, column="label")
            with self.plot_out:
                from IPython.display import display

                display(plots.segment_bars(self.summary, title=self.segmentation.value))
                if len(trend):
                    display(plots.segment_trend_chart(trend))
        current = self.segment.value
        names = list(self.summary["segment"])
        self.segment.options = names
        if current in names:
            self.segment.value = current
        elif names:
            self.segment.value = names[0]
        self.show_members()

    def show_members(self) -> None:
        """List the customers of the chosen segment."""
        if self.segment.value is None:
            self.member_frame = members(self.customers, self.labels, "\x00")
        else:
            self.member_frame = members(self.customers, self.labels, self.segment.value)
        shown, renderers, widths = member_view(self.member_frame.iloc[:MAX_MEMBERS])
        self.member_grid.renderers = renderers
        self.member_grid.column_widths = widths
        self.member_grid.data = shown
        if self.member_grid.selections:
            self.member_grid.clear_selection()
        n = len(self.member_frame)
        more = f" (showing the {MAX_MEMBERS:,} with most revenue)" if n > MAX_MEMBERS else ""
        self.members_label.value = f"{n:,} customers{more}"

    def selected_ids(self) -> list[str]:
        """Account ids of the member rows selected."""
        rows: set[int] = set()
        for rect in self.member_grid.selections:
            lo, hi = sorted((int(rect["r1"]), int(rect["r2"])))
            rows.update(range(lo, hi + 1))
        n = min(len(self.member_frame), MAX_MEMBERS)
        return [str(self.member_frame.index[r]) for r in sorted(rows) if 0 <= r < n]

    def move_selected(self) -> int:
        """Move the selected customers to the segment typed in "Move to"."""
        ids = self.selected_ids()
        if not ids:
            self._say("Select customers in the list first.", ok=False)
            return 0
        return self.move(ids)

    def move(self, account_ids: list[str], segment: str | None = None) -> int:
        """Set the account segment of ``account_ids`` in the store and redraw.

        Parameters
        ----------
        account_ids
            Customers to move.
        segment
            Target segment (default: the "Move to" box; empty clears the segment).

        Returns
        -------
        int
            Accounts changed (0 when refused; the message says why).

        """
        target = (self.target.value if segment is None else segment or "").strip() or None
        try:
            n = segments.assign_segment(self.store, account_ids, target, changed_by=self.user)
        except ValidationError as err:
            self._say(f"Not saved: {error_message(err)}", ok=False)
            return 0
        ids = set(account_ids)
        mask = self.customers["account_id"].isin(ids).to_numpy()
        self.customers = self.customers.copy()
        self.customers.loc[mask, "segment"] = target
        if target and target not in self.target.options:
            self.target.options = sorted([*self.target.options, target])
        self.show_segmentation()
        self._say(f"Moved {n} customers to {target or '(no segment)'}.", ok=True)
        return n

    def _say(self, text: str, *, ok: bool) -> None:
        """Show a message under the explorer."""
        color = "#1b5e20" if ok else "#b71c1c"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _ipython_display_(self) -> None:
        """Display the explorer."""
        from IPython.display import display

        display(self.widget)


def member_view(
    frame: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, TextRenderer], dict[str, int]]:
    """The member grid's frame, renderers and column widths for :func:`members` rows.

    Numbers stay numbers (the grid sorts them); each money column gets a d3 format with the
    decimals its values need (:func:`crmkit.plots.format.number_decimals`: ``263,353``, not
    ``263352.942841``), counts and days are whole numbers with thousands separators, dates
    are days, headers are words, and every column is wide enough for its header.

    Parameters
    ----------
    frame
        :func:`members` output (indexed by ``account_id``).

    Returns
    -------
    (pandas.DataFrame, dict, dict)
        The frame to show, ``renderers`` and ``column_widths`` for the DataGrid, keyed by
        header.
    """
    shown = frame.copy()
    if "last_purchase" in shown:
        shown["last_purchase"] = pd.to_datetime(shown["last_purchase"]).dt.strftime("%Y-%m-%d")
    if "rfm_code" in shown:
        shown["rfm_code"] = shown["rfm_code"].astype(object).where(shown["rfm_code"].notna(), "")
    for c in COUNT_COLUMNS:
        if c in shown:
            shown[c] = pd.to_numeric(shown[c], errors="coerce").astype("Float64")
    renderers: dict[str, TextRenderer] = {}
    for c in MONEY_COLUMNS:
        if c in shown:
            d = number_decimals(pd.to_numeric(shown[c], errors="coerce"))
            renderers[MEMBER_HEADERS[c]] = TextRenderer(
                format=f",.{d}f", horizontal_alignment="right"
            )
    for c in COUNT_COLUMNS:
        if c in shown:
            renderers[MEMBER_HEADERS[c]] = TextRenderer(format=",.0f", horizontal_alignment="right")
    shown = shown.rename(columns=MEMBER_HEADERS).rename_axis(MEMBER_HEADERS["account_id"])
    widths = {h: max(90, 7 * len(h) + 24) for h in shown.columns}
    if "Name" in widths:
        widths["Name"] = max(widths["Name"], 180)
    return shown, renderers, widths


def summary_html(summary: pd.DataFrame) -> str:
    """Render the per-segment summary as an HTML table with readable headers.

    Each column is written by its kind (:func:`crmkit.plots.format.format_numbers`): counts
    whole, money at a precision that tells the segments apart, shares as percentages with
    one decimal at least, the change against the period before signed; the expected CLV and
    its 10th and 90th percentiles at one precision.

    Parameters
    ----------
    summary
        :func:`crmkit.segments.segment_summary` output (with the CLV columns when known).

    Returns
    -------
    str
        An HTML table (class ``crmkit-segment-summary``).
    """
    shown = summary.copy()

    def put(cols: tuple[str, ...], **how: object) -> None:
        """Write the columns present together, blank where missing."""
        cols = tuple(c for c in cols if c in shown)
        if not cols:
            return
        values = pd.concat([pd.to_numeric(shown[c], errors="coerce") for c in cols])
        text = format_numbers(values.to_numpy(float), **how)
        n = len(shown)
        for i, c in enumerate(cols):
            shown[c] = ["" if t == "–" else t for t in text[i * n : (i + 1) * n]]

    put(("customers",), kind="count")
    for c in ("customer_share", "revenue_share", "clv_share"):
        put((c,), kind="percent", min_significant=1, min_decimals=1)
    for c in ("revenue", "revenue_per_customer"):
        put((c,))
    put(("revenue_last", "revenue_previous"))
    put(("revenue_change",), kind="percent", signed=True, min_significant=1)
    put(("expected_clv", "clv_low", "clv_high"))
    shown = shown.rename(columns=SUMMARY_HEADERS)
    return shown.to_html(index=False, classes="crmkit-segment-summary", border=0)
