"""Forms to add customers, contacts and deals; delete with confirmation; bulk edit.

Choices (stages, owners, pipelines, campaigns, teams) are read from the store by
:func:`form_choices`; every write goes through the store, which validates it by the
import rules and writes the deal history.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from typing import ClassVar

import ipywidgets as w
import pandas as pd
import sqlalchemy as sa

from crmkit.errors import BusyError, ConflictError, CrmkitError, ValidationError
from crmkit.store import Store
from crmkit.store.schema import Column
from crmkit.store.schema import entity as entity_spec
from crmkit.widgets.grid import EntityGrid
from crmkit.widgets.grid_values import error_message

#: Entities the add form supports, with their labels.
FORM_ENTITIES = {"accounts": "customer", "contacts": "contact", "deals": "deal"}
#: Fields bulk edit can change, per entity shown in the grid.
BULK_FIELDS = {"deals": ("stage", "owner", "segment"), "accounts": ("owner", "segment")}
_NONE = "(none)"
#: What a form says when the database stays locked by another writer (nothing was written).
BUSY = "the database is busy (another program is writing to it); nothing was written"


def form_choices(store: Store, *, from_deals: bool = True) -> dict[str, list[str]]:
    """Read the choices the forms offer from the store.

    Parameters
    ----------
    store
        The database.
    from_deals
        Also collect owners and teams from every deal (reads two columns of all deals;
        off: owners of accounts only, no teams).

    Returns
    -------
    dict
        ``pipeline``, ``stage`` (all stages, in pipeline order), ``owner`` (every owner of
        an account or deal), ``team``, ``campaign_id``, ``segment``, ``status``,
        ``forecast_category``, and ``stages_by_pipeline`` as ``"pipeline/stage"`` items.

    """
    stages = store.read("stages").sort_values(["pipeline", "stage_order"], kind="stable")
    deals = (
        store.read("deals", columns=["owner", "team"])
        if from_deals
        else pd.DataFrame({"owner": [], "team": []}, dtype=object)
    )
    accounts = store.read("accounts", columns=["owner", "segment"])
    campaigns = store.read("campaigns", columns=["campaign_id"])

    def distinct(*series: pd.Series) -> list[str]:
        vals: set[str] = set()
        for s in series:
            vals.update(str(v) for v in s.dropna().unique())
        return sorted(vals)

    spec = entity_spec("deals")
    return {
        "pipeline": list(dict.fromkeys(stages["pipeline"])),
        "stage": list(dict.fromkeys(stages["stage"])),
        "stages_by_pipeline": [
            f"{p}/{s}" for p, s in zip(stages["pipeline"], stages["stage"], strict=True)
        ],
        "owner": distinct(deals["owner"], accounts["owner"]),
        "team": distinct(deals["team"]),
        "campaign_id": list(campaigns["campaign_id"]),
        "segment": distinct(accounts["segment"]),
        "status": list(spec.column("status").choices or ()),
        "forecast_category": list(spec.column("forecast_category").choices or ()),
    }


def stages_for(choices: dict[str, list[str]], pipeline: str | None) -> list[str]:
    """Stages of one pipeline, in order."""
    pairs = [item.split("/", 1) for item in choices.get("stages_by_pipeline", [])]
    return [s for p, s in pairs if p == pipeline]


def next_key(store: Store, name: str, prefix: str) -> str:
    """Return a free key ``prefix<n>`` for a new row (n one past the number of rows)."""
    known = store.known_keys(name)
    n = len(known) + 1
    while f"{prefix}{n}" in known:
        n += 1
    return f"{prefix}{n}"


def _message(widget: w.HTML, text: str, *, ok: bool) -> None:
    """Show a coloured message."""
    color = "#1b5e20" if ok else "#b71c1c"
    widget.value = f'<span style="color:{color}">{html.escape(text)}</span>'


class AddForm:
    """A form that adds one customer (account), contact or deal.

    Parameters
    ----------
    store
        The database.
    name
        ``"accounts"``, ``"contacts"`` or ``"deals"``.
    user
        Recorded as ``changed_by``.
    on_saved
        Called with the new key after a successful save (e.g. a grid's ``reload``).

    Attributes
    ----------
    fields
        ``{column: widget}``; set ``.value`` to fill the form from Python.
    message
        Outcome of the last save.

    """

    _PREFIX: ClassVar[dict[str, str]] = {"accounts": "A", "contacts": "C", "deals": "D"}

    def __init__(
        self,
        store: Store,
        name: str = "deals",
        *,
        user: str = "analyst",
        on_saved: Callable[[object], None] | None = None,
    ) -> None:
        if name not in FORM_ENTITIES:
            raise CrmkitError(f"no add form for {name!r}; choose one of {sorted(FORM_ENTITIES)}")
        self.store, self.name, self.user, self.on_saved = store, name, user, on_saved
        self.spec = entity_spec(name)
        self.choices = form_choices(store)
        self.fields: dict[str, w.Widget] = {c.name: self._field(c) for c in self.spec.columns}
        key = self.spec.key[0]
        self.fields[key].value = next_key(store, name, self._PREFIX[name])
        if "pipeline" in self.fields:
            self.fields["pipeline"].observe(self._on_pipeline, "value")
            self._on_pipeline(None)
        self.save_button = w.Button(
            description=f"Add {FORM_ENTITIES[name]}", button_style="primary"
        )
        self.save_button.on_click(lambda _b: self.submit())
        self.message = w.HTML()
        self.widget = w.VBox(
            [*self.fields.values(), w.HBox([self.save_button, self.message])],
            layout=w.Layout(max_width="640px"),
        )

    def _field(self, col: Column) -> w.Widget:
        """Build the input widget of one column."""
        desc = col.name + (" *" if col.required else "")
        style = {"description_width": "150px"}
        if col.name in ("stage", "pipeline", "status", "forecast_category") or col.choices:
            opts = list(col.choices) if col.choices else self.choices.get(col.name, [])
            if not col.required:
                opts = [_NONE, *opts]
            value = col.default if col.default in opts else (opts[0] if opts else None)
            return w.Dropdown(options=opts, value=value, description=desc, style=style)
        if col.name == "campaign_id":
            return w.Dropdown(
                options=[_NONE, *self.choices["campaign_id"]], description=desc, style=style
            )
        if col.name in ("owner", "team", "segment"):
            return w.Combobox(
                options=self.choices.get(col.name, []),
                ensure_option=False,
                description=desc,
                style=style,
                placeholder="choose or type",
            )
        if col.kind in ("date", "datetime"):
            value = dt.date.today() if col.required else None
            return w.DatePicker(value=value, description=desc, style=style)
        return w.Text(
            value="" if col.default is None else str(col.default), description=desc, style=style
        )

    def _on_pipeline(self, _change: dict | None) -> None:
        """Offer the stages of the chosen pipeline."""
        stages = stages_for(self.choices, self.fields["pipeline"].value)
        self.fields["stage"].options = stages
        if stages:
            self.fields["stage"].value = stages[0]

    def values(self) -> dict[str, object]:
        """Return the form's values as a row (blank fields are None)."""
        row: dict[str, object] = {}
        for name, widget in self.fields.items():
            v = widget.value
            if v == _NONE or v == "" or (isinstance(v, str) and not v.strip()):
                v = None
            elif isinstance(v, str):
                v = v.strip()
            elif isinstance(v, dt.date):
                v = pd.Timestamp(v)
            row[name] = v
        return row

    def submit(self) -> bool:
        """Validate and save the row; show what happened.

        Returns
        -------
        bool
            Whether the row was saved.

        """
        row = self.values()
        key = row[self.spec.key[0]]
        try:
            self.store.insert(self.name, pd.DataFrame([row]), changed_by=self.user)
        except (ValidationError, ConflictError) as err:
            _message(self.message, f"Not saved: {error_message(err)}", ok=False)
            return False
        except BusyError:
            _message(self.message, f"Not saved: {BUSY}; press Add again.", ok=False)
            return False
        _message(self.message, f"Added {FORM_ENTITIES[self.name]} {key}.", ok=True)
        self.fields[self.spec.key[0]].value = next_key(
            self.store, self.name, self._PREFIX[self.name]
        )
        if self.on_saved is not None:
            self.on_saved(key)
        return True

    def _ipython_display_(self) -> None:
        """Display the form."""
        from IPython.display import display

        display(self.widget)


class DeleteRows:
    """Delete the rows selected in a grid, after an explicit confirmation.

    Parameters
    ----------
    grid
        The grid whose selected rows are deleted.

    """

    def __init__(self, grid: EntityGrid) -> None:
        self.grid = grid
        self.pending: list[object] = []
        self.delete_button = w.Button(description="Delete selected…", icon="trash")
        self.confirm_button = w.Button(description="Yes, delete", button_style="danger")
        self.cancel_button = w.Button(description="Cancel")
        self.delete_button.on_click(lambda _b: self.ask())
        self.confirm_button.on_click(lambda _b: self.confirm())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.message = w.HTML()
        self.confirm_box = w.HBox(
            [self.confirm_button, self.cancel_button], layout=w.Layout(display="none")
        )
        self.widget = w.VBox([w.HBox([self.delete_button, self.message]), self.confirm_box])

    def ask(self, keys: Sequence[object] | None = None) -> list[object]:
        """Ask to delete ``keys`` (default: the grid's selected rows); nothing is deleted yet."""
        self.pending = list(keys) if keys is not None else self.grid.selected_keys()
        if not self.pending:
            _message(self.message, "Select the rows to delete first.", ok=False)
            return []
        shown = ", ".join(map(str, self.pending[:10])) + (" …" if len(self.pending) > 10 else "")
        _message(
            self.message,
            f"Delete {len(self.pending)} {self.grid.name} ({shown})? This cannot be undone.",
            ok=False,
        )
        self.confirm_box.layout.display = "flex"
        return self.pending

    def confirm(self) -> int:
        """Delete the rows asked for; return how many were deleted."""
        keys, self.pending = self.pending, []
        self.confirm_box.layout.display = "none"
        if not keys:
            return 0
        try:
            n = self.grid.store.delete(self.grid.name, keys)
        except sa.exc.IntegrityError:
            _message(
                self.message,
                f"Not deleted: other records still refer to these {self.grid.name}; "
                "delete or move those first.",
                ok=False,
            )
            return 0
        except BusyError:
            self.pending = keys  # asked and confirmed: "Yes, delete" tries again
            self.confirm_box.layout.display = "flex"
            _message(self.message, f"Not deleted: {BUSY}; press Yes, delete again.", ok=False)
            return 0
        self.grid.forget(keys)
        self.grid.reload()
        _message(self.message, f"Deleted {n} {self.grid.name}.", ok=True)
        return n

    def cancel(self) -> None:
        """Forget the pending deletion."""
        self.pending = []
        self.confirm_box.layout.display = "none"
        _message(self.message, "Nothing deleted.", ok=True)

    def _ipython_display_(self) -> None:
        """Display the control."""
        from IPython.display import display

        display(self.widget)


class BulkEdit:
    """Change stage, owner or segment of the rows selected in a grid, in one transaction.

    A deal's segment is its account's: bulk-editing it on deals changes those accounts.

    Parameters
    ----------
    grid
        The grid whose selected rows are changed.
    choices
        Values offered (default: :func:`form_choices` without reading every deal).

    """

    def __init__(self, grid: EntityGrid, choices: dict[str, list[str]] | None = None) -> None:
        self.grid = grid
        fields = BULK_FIELDS.get(grid.name, ())
        if not fields:
            raise CrmkitError(f"bulk edit is not offered for {grid.name}")
        self.choices = (
            choices if choices is not None else form_choices(grid.store, from_deals=False)
        )
        self.field = w.Dropdown(options=list(fields), description="Set")
        self.value = w.Combobox(ensure_option=False, placeholder="new value", description="to")
        self.field.observe(lambda _c: self._offer(), "value")
        self._offer()
        self.apply_button = w.Button(description="Apply to selected", button_style="warning")
        self.apply_button.on_click(lambda _b: self.apply())
        self.message = w.HTML()
        self.widget = w.HBox([self.field, self.value, self.apply_button, self.message])

    def _offer(self) -> None:
        """Offer the known values of the chosen field."""
        self.value.options = self.choices.get(self.field.value, [])
        self.value.value = ""

    def apply(self, keys: Sequence[object] | None = None) -> int:
        """Set the chosen field to the value for ``keys`` (default: the selected rows).

        Returns
        -------
        int
            Rows changed (0 when refused; the message says why).

        """
        keys = list(keys) if keys is not None else self.grid.selected_keys()
        field, value = self.field.value, (self.value.value or "").strip() or None
        if not keys:
            _message(self.message, "Select rows first.", ok=False)
            return 0
        store, name = self.grid.store, self.grid.name
        try:
            if field == "segment" and name != "accounts":
                from crmkit.segments import assign_segment

                accounts = self.grid.table.loc[keys, "account_id"].dropna().unique()
                n = assign_segment(store, list(accounts), value, changed_by=self.grid.user)
                what = f"{n} accounts of {len(keys)} {name}"
            else:
                changes = pd.DataFrame({self.grid.key: keys, field: [value] * len(keys)})
                if "row_version" in self.grid.table.columns:
                    changes["row_version"] = self.grid.table.loc[keys, "row_version"].to_numpy()
                n = store.update_many(name, changes, changed_by=self.grid.user)
                what = f"{n} {name}"
        except ValidationError as err:
            _message(self.message, f"Not saved: {error_message(err)}", ok=False)
            return 0
        except ConflictError as err:
            _message(self.message, f"Not saved: {err}", ok=False)
            self.grid.refresh_rows(keys)
            return 0
        except BusyError:
            _message(self.message, f"Not saved: {BUSY}; press Apply again.", ok=False)
            return 0
        if field == "segment" and name != "accounts":
            table = self.grid.table
            keys = list(table.index[table["account_id"].isin(set(accounts))])
        self.grid.refresh_rows(keys)
        _message(self.message, f"Set {field} to {value!r} for {what}.", ok=True)
        return n

    def _ipython_display_(self) -> None:
        """Display the control."""
        from IPython.display import display

        display(self.widget)


def editor(
    store: Store, name: str = "deals", *, user: str = "analyst", page_size: int = 50
) -> tuple[EntityGrid, w.Widget]:
    """Build the editing page of one entity: grid, bulk edit, delete, and the add form.

    Parameters
    ----------
    store
        The database.
    name
        ``"deals"``, ``"accounts"`` or ``"contacts"``.
    user
        Recorded as ``changed_by``.
    page_size
        Rows per page of the grid.

    Returns
    -------
    tuple
        The :class:`EntityGrid` (for programmatic access) and the widget to display. The
        add form is built when its section is first opened, so the page shows quickly.

    """
    grid = EntityGrid(store, name, user=user, page_size=page_size)
    parts: list[w.Widget] = [grid.widget]
    if name in BULK_FIELDS:
        offered = {c: grid.offered(c) for c in BULK_FIELDS[name]}
        parts.append(BulkEdit(grid, choices=offered).widget)
    parts.append(DeleteRows(grid).widget)
    if name in FORM_ENTITIES:
        holder = w.VBox([w.Label("loading…")])
        section = w.Accordion([holder], titles=(f"Add a {FORM_ENTITIES[name]}",))

        def build(change: dict) -> None:
            if change["new"] is not None and isinstance(holder.children[0], w.Label):
                form = AddForm(store, name, user=user, on_saved=lambda _k: grid.reload())
                holder.children = (form.widget,)

        section.observe(build, "selected_index")
        parts.append(section)
    return grid, w.VBox(parts)
