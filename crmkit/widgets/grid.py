"""The editable grid over one store entity: filters, sorting, paging, undo, redo and retry.

The grid shows one page of rows at a time (its rows: :mod:`crmkit.widgets.grid_rows`). Every
cell edit goes through :meth:`crmkit.Store.update` with the ``row_version`` the grid showed,
so the store validates it by the import rules, writes the deal history, and refuses it with a
:class:`~crmkit.errors.ConflictError` when someone else changed the row meanwhile. Values are
compared as the store types them, never as text, and the front end's echo of a value the
grid shows is never taken for an edit (:mod:`crmkit.widgets.grid_values`).

The deal grid also shows, read only, each open deal's forecast from the newest published
snapshot, and forecast categories by their display names (``Best Case``), stored as
``best_case``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import ipywidgets as w
import numpy as np
import pandas as pd
from ipydatagrid import DataGrid

from crmkit.errors import BusyError, ConflictError, ValidationError
from crmkit.store import Store
from crmkit.store.frames import value_to_text
from crmkit.store.schema import entity as entity_spec
from crmkit.widgets.grid_rows import (
    ANY,
    FORECAST_COLUMNS,
    JOINED_SEGMENT,
    SEARCH_COLUMN,
    GridQuery,
    filter_rows,
    join_forecast,
    load_table,
    n_pages,
    page_of,
    prepare_rows,
    read_open_deal_forecast,
    read_slice,
    search_text,
)
from crmkit.widgets.grid_values import (
    LABELLED,
    clean_value,
    date_text,
    display_frame,
    edit_changes,
    error_message,
    is_missing,
    same_value,
    shown_value,
    wire_value,
)

#: Columns the grid can filter on with a drop-down, when the entity has them.
FILTER_COLUMNS = ("owner", "team", "stage", "status", "segment")
#: Store bookkeeping columns, kept beside the page but not shown.
HIDDEN = ("row_version", "updated_at")
#: Filter columns with many values: a combobox (type or pick) rather than a drop-down.
OPEN_CHOICES = ("owner", "team")
#: Seconds the grid waits for the front end to echo a value it was sent (see ``_set_cell``).
ECHO_SECONDS = 60.0


@dataclass(frozen=True)
class Edit:
    """One saved cell edit, kept so that it can be undone (and redone)."""

    key: object
    column: str
    old: object
    new: object


@dataclass
class PendingSave:
    """A save the store could not make because the database was busy; Retry makes it.

    Attributes
    ----------
    action
        ``"edit"``, ``"undo"`` or ``"redo"``.
    key, column
        The cell.
    changes
        ``{column: value}`` to write (with any tied field).
    version
        The ``row_version`` the edit was made on.
    edit
        The undone or redone edit (None for a new edit).

    """

    action: str
    key: object
    column: str
    changes: dict[str, object]
    version: int | None
    edit: Edit | None = None


class EntityGrid:
    """An editable ipydatagrid over one entity, with filters, sorting, paging, undo and redo.

    Each edit is saved once: a value equal to the stored one as the store types it is no
    edit, and the front end's echo of a value the grid put into a cell is never an edit, so
    one edit raises ``row_version`` by exactly one.

    Parameters
    ----------
    store
        The database.
    name
        Entity to edit: ``"deals"``, ``"accounts"`` or ``"contacts"``.
    user
        Recorded as ``changed_by`` in the deal history.
    page_size
        Rows per page.
    grid_options
        Extra keyword arguments for :class:`ipydatagrid.DataGrid`.

    Attributes
    ----------
    table
        Every row of the entity as last read (index = key). Read on first use: the grid
        shows its first pages by key, and reads the table on the first filter, sort or search.
    rows
        The rows the current filters select, sorted.
    page
        The rows shown, with their ``row_version``.
    history
        The saved edits, oldest first; "Undo last edit" undoes the newest.
    redo_stack
        The undone edits; "Redo" redoes the newest. A new edit clears it.
    pending
        Saves refused because the database was busy (:class:`~crmkit.errors.BusyError`);
        their cells keep the typed values, and "Retry" (:meth:`retry`) saves them.
    message
        The HTML widget next to the grid that reports saves and rejections.
    forecast
        The deal grid's read-only forecast columns by deal
        (:func:`read_open_deal_forecast`, read again by :meth:`reload`); None for other
        entities.
    widget
        The whole view, ready to ``display``.

    """

    def __init__(
        self,
        store: Store,
        name: str = "deals",
        *,
        user: str = "analyst",
        page_size: int = 50,
        grid_options: dict | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.spec = entity_spec(name)
        self.key = self.spec.key[0]
        self.user = user
        self.query = GridQuery(page_size=page_size)
        self.history: list[Edit] = []
        self.redo_stack: list[Edit] = []
        self.pending: list[PendingSave] = []
        # values sent to the front end per (row, column), until it echoes them back
        self._echoes: dict[tuple[int, str], list[tuple[float, object]]] = {}
        self._quiet = False
        self._listeners: list[Callable[[], None]] = []
        # The whole table is read on the first filter, sort or search; until then pages are
        # read by key, so a large entity shows its first page at once.
        self._table: pd.DataFrame | None = None
        self._rows: pd.DataFrame | None = None
        self._n_stored = store.count(name)  # rows in the store, while the table is not read
        self._accounts: pd.DataFrame | None = None  # owners and segments, for the filters
        self.forecast = read_open_deal_forecast(store) if name == "deals" else None
        self.page = self._read_page(0)

        options = {
            "base_column_size": 120,
            "base_row_size": 26,
            "base_column_header_size": 28,
            "base_row_header_size": 110,
            "layout": w.Layout(height="480px", width="100%"),
            "selection_mode": "cell",
        }
        options.update(grid_options or {})
        self.grid = DataGrid(display_frame(self.page, name), editable=True, **options)
        self.grid.add_class("crmkit-grid")
        self.grid.on_cell_change(self._on_cell_change)
        self.message = w.HTML(value="", layout=w.Layout(min_height="24px"))
        self.message.add_class("crmkit-grid-message")
        self._build_controls()
        self.widget = w.VBox(
            [
                self.controls,
                self.pager,
                self.grid,
                w.HBox([self.undo_button, self.redo_button, self.retry_button, self.message]),
            ]
        )
        self._update_pager()

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        """Create the search box, filter drop-downs, sort and page controls."""
        self.search = w.Text(placeholder="search…", description="Search", continuous_update=False)
        self.search.observe(lambda _c: self.set_query(text=self.search.value, page=0), "value")
        self.filter_widgets: dict[str, w.Dropdown] = {}
        for col in FILTER_COLUMNS:
            if col in self.page.columns:
                if col in OPEN_CHOICES:  # many values: type or pick one
                    dd = w.Combobox(
                        options=self._choices(col)[1:],
                        value="",
                        placeholder=ANY,
                        ensure_option=False,
                        description=col.capitalize(),
                        continuous_update=False,
                        layout=w.Layout(width="220px"),
                    )
                else:
                    dd = w.Dropdown(
                        options=self._choices(col),
                        value=ANY,
                        description=col.capitalize(),
                        layout=w.Layout(width="220px"),
                    )
                dd.observe(self._on_filter, "value")
                self.filter_widgets[col] = dd
        sortable = [c for c in display_frame(self.page.iloc[:0], self.name).columns]
        self.sort_by = w.Dropdown(
            options=[("(key)", ""), *[(c, c) for c in sortable]],
            value="",  # not None: ipywidgets shows a None value as a blank choice
            description="Sort by",
            layout=w.Layout(width="240px"),
        )
        self.descending = w.Checkbox(value=False, description="descending", indent=False)
        self.sort_by.observe(self._on_sort, "value")
        self.descending.observe(self._on_sort, "value")
        self.forecast_label = w.HTML(layout=w.Layout(display="none"))
        self.forecast_label.add_class("crmkit-grid-forecast")
        self._show_forecast_source()
        self.controls = w.VBox(
            [
                w.HBox([self.search, self.sort_by, self.descending]),
                w.HBox(list(self.filter_widgets.values()), layout=w.Layout(flex_flow="row wrap")),
                self.forecast_label,
            ]
        )
        # Font Awesome icons (served locally, see voila_share), not ⏮ ⏭: fonts lack those glyphs
        self.first_button = w.Button(icon="step-backward", tooltip="first page", layout=_narrow())
        self.prev_button = w.Button(icon="chevron-left", tooltip="previous page", layout=_narrow())
        self.next_button = w.Button(icon="chevron-right", tooltip="next page", layout=_narrow())
        self.last_button = w.Button(icon="step-forward", tooltip="last page", layout=_narrow())
        self.first_button.on_click(lambda _b: self.go_to_page(0))
        self.prev_button.on_click(lambda _b: self.go_to_page(self.query.page - 1))
        self.next_button.on_click(lambda _b: self.go_to_page(self.query.page + 1))
        self.last_button.on_click(lambda _b: self.go_to_page(self.n_pages - 1))
        self.page_size = w.Dropdown(
            options=sorted({25, 50, 100, 250, self.query.page_size}),
            value=self.query.page_size,
            layout=w.Layout(width="80px"),
        )
        self.page_size.observe(
            lambda _c: self.set_query(page_size=self.page_size.value, page=0), "value"
        )
        self.page_label = w.Label()
        self.reload_button = w.Button(description="Reload", icon="refresh", layout=_narrow("90px"))
        self.reload_button.on_click(lambda _b: self.reload())
        self.pager = w.HBox(
            [
                self.first_button,
                self.prev_button,
                self.page_label,
                self.next_button,
                self.last_button,
                w.Label("rows per page"),
                self.page_size,
                self.reload_button,
            ]
        )
        self.undo_button = w.Button(
            description="Undo last edit", icon="undo", disabled=True, layout=_narrow("150px")
        )
        self.undo_button.on_click(lambda _b: self.undo())
        self.undo_button.add_class("crmkit-grid-undo")
        self.redo_button = w.Button(
            description="Redo", icon="repeat", disabled=True, layout=_narrow("90px")
        )
        self.redo_button.on_click(lambda _b: self.redo())
        self.redo_button.add_class("crmkit-grid-redo")
        self.retry_button = w.Button(
            description="Retry",
            icon="refresh",
            button_style="warning",
            tooltip="save the edits the busy database refused",
            layout=w.Layout(width="90px", display="none"),
        )
        self.retry_button.on_click(lambda _b: self.retry())
        self.retry_button.add_class("crmkit-grid-retry")

    def _show_forecast_source(self) -> None:
        """Say which snapshot the forecast columns come from (deal grid only)."""
        if self.forecast is None:
            return
        self.forecast_label.layout.display = ""
        sid, as_of = self.forecast.attrs.get("snapshot_id"), self.forecast.attrs.get("as_of")
        if sid is None:
            text = "No published forecast yet: p_win, p_slip and expected_revenue are blank."
        else:
            text = (
                f"p_win, p_slip and expected_revenue (read only) from forecast snapshot {sid} "
                f"as of {as_of}; blank for deals it did not forecast."
            )
        self.forecast_label.value = f'<span style="color:#555">{html.escape(text)}</span>'

    def _choices(self, col: str) -> list[str]:
        """Filter choices: the values present (cheap ones while the table is not read)."""
        if self._table is not None:
            source = self._table[col]
        elif col == "stage":
            source = self.store.read("stages", columns=["stage"])["stage"]
        elif col == "status":
            source = pd.Series(self.spec.column("status").choices)
        elif col in ("segment", "owner"):
            if self._accounts is None:
                self._accounts = self.store.read("accounts", columns=["owner", "segment"])
            source = self._accounts[col]
            source = pd.concat([source, self.page[col]]) if col == "owner" else source
        else:
            source = self.page[col]
        vals = sorted({str(v) for v in source.dropna().unique()})
        return [ANY, *vals]

    def offered(self, col: str) -> list[str]:
        """Return the values the ``col`` filter offers (without the "any" choice)."""
        dd = self.filter_widgets.get(col)
        if dd is None:
            return []
        return [str(v) for v in dd.options if v != ANY]

    @property
    def loaded(self) -> bool:
        """Whether the whole entity has been read (it is on the first filter, sort or search)."""
        return self._table is not None

    @property
    def table(self) -> pd.DataFrame:
        """Every row of the entity (index = key), read on first use."""
        if self._table is None:
            self._table = join_forecast(load_table(self.store, self.name), self.forecast)
            self._rows = filter_rows(self._table, self.query)
            for col, dd in self.filter_widgets.items():
                if isinstance(dd, w.Combobox):
                    dd.options = self._choices(col)[1:]
        return self._table

    @property
    def rows(self) -> pd.DataFrame:
        """The rows the current query selects, sorted (reads the table if needed)."""
        table = self.table
        if self._rows is None:
            self._rows = filter_rows(table, self.query)
        return self._rows

    @property
    def n_rows(self) -> int:
        """Number of rows the current query selects."""
        return self._n_stored if self._table is None else len(self.rows)

    def _read_page(self, page: int) -> pd.DataFrame:
        """The rows of page ``page`` (a copy), read with LIMIT while the table is not loaded."""
        size = self.query.page_size
        if self._table is not None:
            return page_of(self.rows, page, size).copy()
        rows = prepare_rows(
            self.store, self.name, read_slice(self.store, self.name, page * size, size)
        )
        return join_forecast(rows, self.forecast)

    def _on_filter(self, _change: dict) -> None:
        """Read the filter drop-downs into the query."""
        filters = {
            c: dd.value for c, dd in self.filter_widgets.items() if dd.value not in (ANY, "")
        }
        self.set_query(filters=filters, page=0)

    def _on_sort(self, _change: dict) -> None:
        """Read the sort controls into the query."""
        self.set_query(
            sort_by=self.sort_by.value or None, ascending=not self.descending.value, page=0
        )

    # ------------------------------------------------------------------ view
    @property
    def n_pages(self) -> int:
        """Number of pages the current filters give."""
        return n_pages(self.n_rows, self.query.page_size)

    def set_query(self, **changes: object) -> None:
        """Change the query (``text``, ``filters``, ``sort_by``, ``ascending``, ``page``...)."""
        old = self.query
        self.query = replace(self.query, **changes)  # type: ignore[arg-type]
        q = self.query
        if (old.text, old.filters, old.sort_by, old.ascending) != (
            q.text,
            q.filters,
            q.sort_by,
            q.ascending,
        ):
            filtered = bool(
                q.text.strip() or any(v not in (None, ANY, "") for v in q.filters.values())
            )
            if filtered or q.sort_by or self._table is not None:
                self._rows = filter_rows(self.table, q)
        self._show_page()

    def go_to_page(self, page: int) -> None:
        """Show page ``page`` (from 0; clipped to the pages there are)."""
        self.set_query(page=min(max(0, page), self.n_pages - 1))

    def _show_page(self) -> None:
        """Put the current page into the DataGrid."""
        page = min(max(0, self.query.page), self.n_pages - 1)
        if page != self.query.page:
            self.query = replace(self.query, page=page)
        # a copy, so that writing an edit into the table never copies the table (copy-on-write)
        self.page = self._read_page(page)
        self.grid.data = display_frame(self.page, self.name)
        self._update_pager()

    def _update_pager(self) -> None:
        """Refresh the page label and the buttons' enabled state."""
        n = self.n_rows
        p, size = self.query.page, self.query.page_size
        first, last = (p * size + 1, min(n, (p + 1) * size)) if n else (0, 0)
        self.page_label.value = f"page {p + 1} of {self.n_pages} · rows {first:,}–{last:,} of {n:,}"
        self.first_button.disabled = self.prev_button.disabled = p == 0
        self.next_button.disabled = self.last_button.disabled = p >= self.n_pages - 1

    def reload(self) -> None:
        """Read the entity (and the newest forecast) again from the store.

        Filters, sort and page are kept.
        """
        if self.forecast is not None:
            self.forecast = read_open_deal_forecast(self.store)
            self._show_forecast_source()
        if self._table is not None:
            self._table = join_forecast(load_table(self.store, self.name), self.forecast)
            self._rows = filter_rows(self._table, self.query)
        else:
            self._n_stored = self.store.count(self.name)
        self._accounts = None
        for col, dd in self.filter_widgets.items():
            current = dd.value
            if isinstance(dd, w.Combobox):
                dd.options = self._choices(col)[1:]
            else:
                dd.options = self._choices(col)
                dd.value = current if current in dd.options else ANY
        self._show_page()
        self._notify()

    def refresh_rows(self, keys: Iterable[object]) -> None:
        """Read some rows again from the store and show their stored values."""
        keys = list(keys)
        fresh = self.store.read(self.name, where={self.key: keys})
        gone = set(keys) - set(fresh[self.key])
        if gone:
            self.reload()
            return
        self._replace_rows(prepare_rows(self.store, self.name, fresh))
        self._show_page()
        self._notify()

    def _replace_rows(self, fresh: pd.DataFrame) -> None:
        """Write fresh values of some rows into the table and the filtered rows, if read."""
        if self._table is None:
            return
        cols = [c for c in fresh.columns if c in self._table.columns and c != SEARCH_COLUMN]
        if SEARCH_COLUMN in self._table.columns:
            fresh = fresh.copy()
            text_cols = [c.name for c in self.spec.columns if c.kind in ("str", "text")]
            fresh[SEARCH_COLUMN] = search_text(fresh, text_cols)
            cols.append(SEARCH_COLUMN)
        rows = self._rows if self._rows is not None else self._table
        for frame in (self._table,) if rows is self._table else (self._table, rows):
            idx = fresh.index.intersection(frame.index)
            for c in [c for c in cols if c in frame.columns] if len(idx) else ():
                if frame[c].dtype != fresh[c].dtype and not _fits(frame[c], fresh[c]):
                    frame[c] = frame[c].astype(object)
                frame.loc[idx, c] = fresh.loc[idx, c].to_numpy()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after the grid's data changed (edits, reloads)."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        """Tell listeners the data changed."""
        for cb in self._listeners:
            cb()

    def selected_keys(self) -> list[object]:
        """Keys of the rows that have a selected cell, in page order."""
        rows: set[int] = set()
        for rect in self.grid.selections:
            lo, hi = sorted((int(rect["r1"]), int(rect["r2"])))
            rows.update(range(lo, hi + 1))
        return [self.page.index[r] for r in sorted(rows) if 0 <= r < len(self.page)]

    # ------------------------------------------------------------------ editing
    def _on_cell_change(self, cell: dict) -> None:
        """Save an edit through the store (the DataGrid's cell-change callback).

        The front end sends back every value the grid puts into a cell (see ``_set_cell``);
        that echo is recognised and dropped, so it never becomes an edit.
        """
        if self._quiet:
            return
        row, column, value = int(cell["row"]), str(cell["column"]), cell["value"]
        if self._take_echo(row, column, value):
            return
        self.apply_edit(row, column, value)

    def apply_edit(self, row: int, column: str, value: object) -> bool:
        """Save one cell edit: validated by the store, history written, or refused.

        A value equal to the stored one, as the store types it (``"205000"`` and
        ``205000.0``), is not an edit: nothing is written and the message stays.

        Parameters
        ----------
        row
            Position of the row in the page shown.
        column
            Column name.
        value
            The value typed.

        Returns
        -------
        bool
            Whether the edit was saved.

        """
        if not 0 <= row < len(self.page):
            self._say(f"Not saved: row {row} is not on this page.", ok=False)
            return False
        shown = self.page.iloc[row]
        key = self.page.index[row]
        if column in FORECAST_COLUMNS:
            self._say(
                f"Not saved: {column} is read only; it comes from the forecast snapshot.",
                ok=False,
            )
            self._set_cell(row, column, shown.get(column))
            return False
        if column not in self.spec.column_names or column == self.key:
            self._say(f"Not saved: {column} cannot be edited here.", ok=False)
            self._set_cell(row, column, shown.get(column))
            return False
        value = clean_value(value)
        dropped = self._drop_pending(key, column)
        if same_value(self.name, column, value, shown[column]):
            if dropped:
                self._say(
                    f"Dropped the unsaved edit of {self._label(key)} {column}: "
                    "it shows the stored value again.",
                    ok=True,
                )
            if wire_value(value) != wire_value(self._cell_value(column, shown[column])):
                self._set_cell(row, column, shown[column])  # the stored spelling
            return False
        changes = edit_changes(self.name, shown, column, value)
        version = int(shown["row_version"]) if "row_version" in shown.index else None
        return self._run(PendingSave("edit", key, column, changes, version))

    def _label(self, key: object) -> str:
        """``deal D1``: how messages name a row."""
        return f"{self.name.removesuffix('s')} {key}"

    def _run(self, save: PendingSave) -> bool:
        """Send one save to the store and show the outcome; keep it pending when busy."""
        key, column = save.key, save.column
        label = self._label(key)
        try:
            stored = self.store.update(
                self.name, key, save.changes, expected_version=save.version, changed_by=self.user
            )
        except BusyError:
            self.pending.append(save)
            what = "edit" if save.action == "edit" else save.action
            self._say(
                "Not saved: the database is busy (another program is writing to it); "
                f"your {what} of {label} {column} is kept — press Retry.",
                ok=False,
            )
            self._update_buttons()
            return False
        except ValidationError as err:
            self._say(f"Not saved ({label}): {error_message(err)}", ok=False)
            if save.action == "edit" and key in self.page.index:
                pos = self.page.index.get_loc(key)
                self._set_cell(pos, column, self.page.iloc[pos][column])
            return False
        except ConflictError as err:
            self._say(f"Not saved ({label}): {err}", ok=False)
            self.refresh_rows([key])
            return False
        old = self._row(key)[column]
        self._show_saved(key, stored, save.changes)
        new = stored[column]
        if save.action == "edit":
            self.history.append(Edit(key, column, old, new))
            self.redo_stack.clear()
        elif save.action == "undo":
            _remove(self.history, save.edit)
            self.redo_stack.append(save.edit)
        else:
            _remove(self.redo_stack, save.edit)
            self.history.append(save.edit)
        if save.version is not None:  # our own save moved the row on: pending edits follow
            for p in self.pending:
                if p.key == key and p.version == save.version:
                    p.version = int(stored["row_version"])
        self._update_buttons()
        verb = {"edit": "Saved", "undo": "Undone", "redo": "Redone"}[save.action]
        self._say(
            f"{verb} {label}: {column} {_text(column, old) or '(empty)'} → "
            f"{_text(column, new) or '(empty)'}",
            ok=True,
        )
        self._notify()
        return True

    def _show_saved(self, key: object, stored: dict, changes: dict[str, object]) -> None:
        """Write a saved row into the table and the page, and show its changed cells."""
        fresh = pd.DataFrame([stored]).set_index(self.key, drop=False)
        if JOINED_SEGMENT in self.page.columns:
            fresh[JOINED_SEGMENT] = [self._row(key)[JOINED_SEGMENT]]
        self._replace_rows(fresh)
        self.page = self.page.copy()
        for c in fresh.columns:
            if c in self.page.columns and key in self.page.index:
                if self.page[c].dtype != fresh[c].dtype:
                    self.page[c] = self.page[c].astype(object)
                self.page.loc[key, c] = fresh.loc[key, c]
        if key in self.page.index:
            pos = self.page.index.get_loc(key)
            for c in changes:
                self._set_cell(pos, c, self.page.iloc[pos][c])

    def undo(self) -> bool:
        """Undo the last saved edit by writing the previous value back through the store.

        Returns
        -------
        bool
            Whether it was undone (False when there is nothing to undo or it was refused).

        """
        return self._step("undo")

    def redo(self) -> bool:
        """Redo the last undone edit by writing its value again through the store.

        A new edit clears what can be redone.

        Returns
        -------
        bool
            Whether it was redone (False when there is nothing to redo or it was refused).

        """
        return self._step("redo")

    def _step(self, action: str) -> bool:
        """Undo or redo the newest edit of the history or redo stack."""
        stack = self.history if action == "undo" else self.redo_stack
        if self.pending:
            self._say(f"Not {action}ne: an edit is waiting to be saved — press Retry.", ok=False)
            return False
        if not stack:
            self._say(f"Nothing to {action}.", ok=False)
            return False
        edit = stack[-1]
        try:
            row = self._row(edit.key)
        except KeyError:
            stack.pop()
            self._update_buttons()
            self._say(f"Cannot {action}: {edit.key} no longer exists.", ok=False)
            return False
        value = edit.old if action == "undo" else edit.new
        version = int(row["row_version"]) if "row_version" in row.index else None
        changes = edit_changes(self.name, row, edit.column, value)
        return self._run(PendingSave(action, edit.key, edit.column, changes, version, edit))

    def retry(self) -> bool:
        """Save again the edits the busy database refused, in the order they were made.

        Returns
        -------
        bool
            Whether every pending edit was saved (False when one is still pending or refused).

        """
        if not self.pending:
            self._say("Nothing to retry.", ok=True)
            return False
        todo, self.pending = self.pending, []
        ok = True
        for i, save in enumerate(todo):
            if not self._run(save):
                ok = False
                if self.pending:  # still busy: keep the rest, in order
                    self.pending.extend(todo[i + 1 :])
                    break
        self._update_buttons()
        return ok

    def _drop_pending(self, key: object, column: str) -> bool:
        """Forget a pending edit of one cell (a new edit of the cell replaces it)."""
        before = len(self.pending)
        self.pending = [p for p in self.pending if (p.key, p.column) != (key, column)]
        self._update_buttons()
        return len(self.pending) < before

    def forget(self, keys: Iterable[object]) -> None:
        """Forget the edits of rows that no longer exist (undo, redo and pending edits)."""
        gone = set(keys)
        self.history = [e for e in self.history if e.key not in gone]
        self.redo_stack = [e for e in self.redo_stack if e.key not in gone]
        self.pending = [p for p in self.pending if p.key not in gone]
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Enable Undo and Redo when there is something to do; show Retry when it is needed."""
        self.undo_button.disabled = not self.history
        self.redo_button.disabled = not self.redo_stack
        self.retry_button.layout.display = "" if self.pending else "none"

    def _row(self, key: object) -> pd.Series:
        """The row ``key`` as the grid knows it (the page, the table, else the store)."""
        if key in self.page.index:
            return self.page.loc[key]
        if self._table is not None:
            return self._table.loc[key]
        df = self.store.read(self.name, where={self.key: [key]})
        if df.empty:
            raise KeyError(key)
        return prepare_rows(self.store, self.name, df).iloc[0]

    def _cell_value(self, column: str, value: object) -> object:
        """The value a cell shows: dates as ISO text, missing as None, plain Python numbers."""
        kind = self.spec.column(column).kind if column in self.spec.column_names else "str"
        if kind in ("date", "datetime"):
            return date_text(value, kind)
        if is_missing(value):
            return None
        return shown_value(column, value.item() if isinstance(value, np.generic) else value)

    def _set_cell(self, row: int, column: str, value: object) -> None:
        """Show ``value`` in a cell without treating it as an edit.

        The front end answers every value it is sent with a cell-changed message carrying
        that value back (ipydatagrid's model emits an edit event for it); the value is noted
        here so that this echo is recognised (``_take_echo``) and never saved as an edit.
        """
        if column not in self.grid.data.columns:
            return
        value = self._cell_value(column, value)
        waiting = self._echoes.setdefault((row, column), [])
        waiting.append((time.monotonic(), wire_value(value)))
        del waiting[:-16]
        self._quiet = True
        try:
            self.grid.set_cell_value_by_index(column, row, value)
        finally:
            self._quiet = False

    def _take_echo(self, row: int, column: str, value: object) -> bool:
        """Tell whether a cell change is the front end's echo of a value the grid sent."""
        waiting = self._echoes.get((row, column))
        if not waiting:
            return False
        now = time.monotonic()
        waiting[:] = [(t, v) for t, v in waiting if now - t < ECHO_SECONDS]
        got = wire_value(value)
        for i, (_t, sent) in enumerate(waiting):
            if type(sent) is type(got) and sent == got:
                del waiting[i]
                return True
        return False

    def _say(self, text: str, *, ok: bool) -> None:
        """Show a message next to the grid."""
        color = "#1b5e20" if ok else "#b71c1c"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    @property
    def message_text(self) -> str:
        """The message shown, as plain text."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.message.value))

    def _ipython_display_(self) -> None:
        """Display the whole view in a notebook."""
        from IPython.display import display

        display(self.widget)


def _fits(target: pd.Series, values: pd.Series) -> bool:
    """Tell whether ``values`` can be written into ``target`` without changing its dtype."""
    if target.dtype == object:
        return True
    return (pd.api.types.is_numeric_dtype(target) and pd.api.types.is_numeric_dtype(values)) or (
        pd.api.types.is_datetime64_any_dtype(target)
        and pd.api.types.is_datetime64_any_dtype(values)
    )


def _text(column: str, value: object) -> str | None:
    """A stored value as messages write it (a forecast category by its display name)."""
    shown = shown_value(column, value) if column in LABELLED else value
    return value_to_text(shown)


def _narrow(width: str = "44px") -> w.Layout:
    """Return a small button layout."""
    return w.Layout(width=width)


def _remove(stack: list[Edit], edit: Edit | None) -> None:
    """Remove ``edit`` (the same object) from an undo or redo stack, newest first."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is edit:
            del stack[i]
            return
