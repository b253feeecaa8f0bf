"""The forecast call in a notebook: a manager's call form and a quota editor.

:class:`CallForm` records a manager's number for an owner, a team or the company and a
month or quarter through :func:`crmkit.store.calls.add_call` (author = the user), and shows
the earlier calls of that owner or team and period below it, newest first: calls are only
ever added, the newest stands. :class:`QuotaEditor` sets the quota of one owner, team or
the company and period (a small form: quotas have a composite key, which the grid does not
edit), saved through the store with the ``row_version`` it showed. Both refuse a bad value
with a one-line message naming the field and the value, and write nothing then.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable

import ipywidgets as w
import pandas as pd

from crmkit.errors import BusyError, ConflictError, CrmkitError, ValidationError
from crmkit.plots.format import format_amount
from crmkit.store import Store
from crmkit.store.calls import add_call, group_of, period_label
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.schema import COMPANY_NAME
from crmkit.widgets.forms import BUSY, form_choices

#: Who a call or quota is for, as offered (label, stored value).
SCOPE_OPTIONS = (("Owner", "owner"), ("Team", "team"), ("Company", "company"))
#: Period kinds, as offered (label, stored value).
PERIOD_OPTIONS = (("Month", "M"), ("Quarter", "Q"))
#: Periods offered before and after the one holding today.
PERIODS_BEFORE, PERIODS_AFTER = 3, 6
_STYLE = {"description_width": "110px"}


def period_starts(
    period: str,
    *,
    today: dt.date | None = None,
    before: int = PERIODS_BEFORE,
    after: int = PERIODS_AFTER,
    calendar: FiscalCalendar | None = None,
) -> list[tuple[str, dt.date]]:
    """Return the months or quarters a form offers, around the one holding ``today``.

    Parameters
    ----------
    period
        ``"M"`` or ``"Q"``.
    today
        The day whose period is in the middle (default: today).
    before, after
        Periods offered before and after it.
    calendar
        The company's fiscal calendar (default: calendar months and quarters); the
        periods, their first days and labels are its own (``"FY27 Q1"``).

    Returns
    -------
    list of (str, datetime.date)
        ``(label, first day)`` pairs, oldest first: ``("2026-Q4", date(2026, 10, 1))``.

    """
    cal = calendar or FiscalCalendar()
    first, last = cal.bounds(period, pd.Timestamp(today or dt.date.today()))
    spans = [(first, last)]
    for _ in range(before):
        spans.insert(0, cal.bounds(period, spans[0][0] - pd.Timedelta(days=1)))
    for _ in range(after):
        spans.append(cal.bounds(period, spans[-1][1] + pd.Timedelta(days=1)))
    return [(period_label(period, s.date(), cal), s.date()) for s, _e in spans]


def call_history(
    store: Store, *, scope: str, name: str, period: str, period_start: dt.date
) -> pd.DataFrame:
    """Return the calls made for one owner, team or the company and period, newest first.

    Parameters
    ----------
    store
        The database.
    scope, name, period, period_start
        The call's key (the company's name is ``"all"``).

    Returns
    -------
    pandas.DataFrame
        ``forecast_calls`` rows; the first one stands (the latest made).

    """
    rows = store.read(
        "forecast_calls",
        where={"scope": scope, "name": name, "period": period, "period_start": period_start},
    )
    return rows.sort_values(["created_at", "call_id"], ascending=False, kind="stable").reset_index(
        drop=True
    )


def refusal(err: ValidationError) -> str:
    """One line naming each refused field, the reason and the value (cut to 40 characters)."""
    parts = []
    for e in err.errors:
        text = f"{e.field or 'row'}: {e.reason}"
        value = None if e.value is None else str(e.value)
        if value is not None and value not in e.reason:
            text += f" (value {value[:40] + '...' if len(value) > 40 else value!r})"
        parts.append(text)
    return "; ".join(parts)


def _message(widget: w.HTML, text: str, *, ok: bool) -> None:
    """Show a coloured one-line message."""
    color = "#1b5e20" if ok else "#b71c1c"
    line = " ".join(text.split())
    widget.value = f'<span style="color:{color}">{html.escape(line)}</span>'


def _plain(widget: w.HTML) -> str:
    """The text of an HTML widget."""
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", widget.value))


def _text_value(v: object) -> object:
    """A text field's value for the store: stripped, empty is None."""
    if isinstance(v, str):
        return v.strip() or None
    return v


def _amount_text(v: object) -> str:
    """A stored amount as an editable text: ``1250000``, ``1250.5`` (no exponent)."""
    return f"{float(v):.2f}".rstrip("0").rstrip(".")  # type: ignore[arg-type]


class _PeriodKeyForm:
    """The fields of a call's or quota's key: scope, name, period kind and period."""

    def __init__(self, store: Store, *, user: str, today: dt.date | None) -> None:
        self.store, self.user, self.today = store, user, today
        self.calendar = fiscal_calendar(store)
        choices = form_choices(store)
        self.names = {"owner": choices["owner"], "team": choices["team"]}
        self.scope = w.Dropdown(
            options=SCOPE_OPTIONS, value="owner", description="For", style=_STYLE
        )
        self.name = w.Combobox(
            options=self.names["owner"],
            value=self.names["owner"][0] if self.names["owner"] else "",
            ensure_option=False,
            placeholder="choose or type",
            description="Name",
            continuous_update=False,
            style=_STYLE,
        )
        self.period = w.ToggleButtons(
            options=PERIOD_OPTIONS, value="M", description="Period", style=_STYLE
        )
        self.period_start = w.Dropdown(
            options=self._starts("M", today), description="Month", style=_STYLE
        )
        self.period_start.value = self._starts("M", today, before=0, after=0)[0][1]
        self.message = w.HTML(layout=w.Layout(min_height="24px"))
        self.scope.observe(self._on_scope, "value")
        self.period.observe(self._on_period, "value")
        for field in (self.scope, self.name, self.period_start):
            field.observe(lambda _c: self._on_key(), "value")

    def _starts(self, period: str, today: dt.date | None, **kw: int) -> list[tuple[str, dt.date]]:
        """The periods offered, in the store's fiscal calendar."""
        return period_starts(period, today=today, calendar=self.calendar, **kw)

    @property
    def key_fields(self) -> list[w.Widget]:
        """The key's widgets, in order."""
        return [self.scope, self.name, self.period, self.period_start]

    def _on_scope(self, change: dict) -> None:
        """Offer the owners or the teams; the company's name is fixed."""
        scope = change["new"]
        if scope == "company":
            self.name.options = [COMPANY_NAME]
            self.name.value = COMPANY_NAME
            self.name.disabled = True
            return
        self.name.disabled = False
        names = self.names.get(scope, [])
        self.name.options = names
        self.name.value = names[0] if names else ""

    def _on_period(self, change: dict) -> None:
        """Offer months or quarters, keeping the one holding the chosen day."""
        period = change["new"]
        day = self.period_start.value or self.today or dt.date.today()
        options = self._starts(period, self.today)
        holding = self.calendar.bounds(period, pd.Timestamp(day))[0].date()
        if holding not in [d for _label, d in options]:
            options = self._starts(period, holding)
        self.period_start.description = "Month" if period == "M" else "Quarter"
        self.period_start.options = options
        self.period_start.value = holding

    def _on_key(self) -> None:
        """Called when the key changes (subclasses show what is stored for it)."""

    def key(self) -> dict[str, object]:
        """The key as chosen: scope, name (``"all"`` for the company), period, period_start."""
        scope = self.scope.value
        name = COMPANY_NAME if scope == "company" else _text_value(self.name.value)
        return {
            "scope": scope,
            "name": name,
            "period": self.period.value,
            "period_start": self.period_start.value,
        }

    def describe(self, key: dict[str, object]) -> str:
        """``team North 2026-Q4``: how messages name a key."""
        who = "the company" if key["scope"] == "company" else f"{key['scope']} {key['name']}"
        return f"{who} {period_label(str(key['period']), key['period_start'])}"

    @property
    def message_text(self) -> str:
        """The message shown, as plain text."""
        return _plain(self.message)

    def _ipython_display_(self) -> None:
        """Display the form."""
        from IPython.display import display

        display(self.widget)  # type: ignore[attr-defined]


class CallForm(_PeriodKeyForm):
    """A manager's forecast call: who, which period, the number and a note.

    Submit records the call with :func:`crmkit.store.calls.add_call` (author = ``user``,
    made now); a later call of the same owner, team or company and period supersedes the
    earlier ones, which stay as its history, listed below the form newest first.

    Parameters
    ----------
    store
        The database.
    user
        The call's author.
    today
        The day whose month or quarter is offered first (default: today).
    on_saved
        Called with the new ``call_id`` after a call is saved.

    Attributes
    ----------
    scope, name, period, period_start, amount, note
        The fields; set ``.value`` to fill the form from Python (``period_start`` takes
        the first day of a month or quarter offered).
    message
        The outcome of the last submit.
    history
        The HTML list of the calls made for the chosen key, newest first.
    widget
        The whole form, ready to ``display``.

    """

    def __init__(
        self,
        store: Store,
        *,
        user: str = "analyst",
        today: dt.date | None = None,
        on_saved: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(store, user=user, today=today)
        self.on_saved = on_saved
        self.amount = w.Text(description="Amount", placeholder="e.g. 1250000", style=_STYLE)
        self.note = w.Textarea(description="Note", placeholder="optional", style=_STYLE)
        self.submit_button = w.Button(description="Submit call", button_style="primary")
        self.submit_button.on_click(lambda _b: self.submit())
        self.history = w.HTML()
        self.history.add_class("crmkit-call-history")
        self.widget = w.VBox(
            [
                *self.key_fields,
                self.amount,
                self.note,
                w.HBox([self.submit_button, self.message]),
                self.history,
            ],
            layout=w.Layout(max_width="640px"),
        )
        self.show_history()

    def _on_key(self) -> None:
        """Show the calls of the newly chosen key."""
        self.show_history()

    def submit(self) -> bool:
        """Record the call; show what happened.

        Returns
        -------
        bool
            Whether the call was saved (nothing is written when it is refused).

        """
        key = self.key()
        try:
            call_id = add_call(
                self.store,
                **key,
                amount=_text_value(self.amount.value),  # type: ignore[arg-type]
                author=self.user,
                note=_text_value(self.note.value),  # type: ignore[arg-type]
            )
        except ValidationError as err:
            _message(self.message, f"Not saved: {refusal(err)}", ok=False)
            return False
        except BusyError:
            _message(self.message, f"Not saved: {BUSY}; press Submit again.", ok=False)
            return False
        except CrmkitError as err:
            _message(self.message, f"Not saved: {err}", ok=False)
            return False
        saved = self.store.read("forecast_calls", where={"call_id": [call_id]}).iloc[0]
        _message(
            self.message,
            f"Call saved: {self.describe(key)} = {format_amount(saved['amount'])} "
            f"by {saved['author']} ({group_of(str(key['scope']), str(key['name']))}).",
            ok=True,
        )
        self.amount.value = ""
        self.note.value = ""
        self.show_history()
        if self.on_saved is not None:
            self.on_saved(call_id)
        return True

    def calls(self) -> pd.DataFrame:
        """The calls made for the chosen key, newest first (empty without a name)."""
        key = self.key()
        if not key["name"] or key["period_start"] is None:
            return self.store.read("forecast_calls").iloc[:0]
        return call_history(self.store, **key)  # type: ignore[arg-type]

    def show_history(self) -> None:
        """List the calls made for the chosen key below the form, newest first."""
        calls = self.calls()
        title = f"Calls for {self.describe(self.key())}"
        if calls.empty:
            self.history.value = f"<p><b>{html.escape(title)}</b>: none yet.</p>"
            return
        rows = []
        for i, c in enumerate(calls.itertuples(index=False)):
            made = pd.Timestamp(c.created_at).strftime("%Y-%m-%d %H:%M")
            note = "" if c.note is None or pd.isna(c.note) else str(c.note)
            stands = " (stands)" if i == 0 else ""
            rows.append(
                "<tr>"
                f"<td>{html.escape(made)}{stands}</td>"
                f'<td style="text-align:right">{html.escape(format_amount(c.amount))}</td>'
                f"<td>{html.escape(str(c.author))}</td>"
                f"<td>{html.escape(note)}</td>"
                "</tr>"
            )
        self.history.value = (
            f"<p><b>{html.escape(title)}</b>, newest first</p>"
            "<table><tr><th>made at (UTC)</th><th>amount</th><th>by</th><th>note</th></tr>"
            + "".join(rows)
            + "</table>"
        )

    @property
    def history_text(self) -> str:
        """The history shown, as plain text."""
        return _plain(self.history)


class QuotaEditor(_PeriodKeyForm):
    """Set the quota of an owner, a team or the company for a month or quarter.

    Choosing who and which period shows the stored quota; Save changes it (with the
    ``row_version`` shown, so a quota changed meanwhile by someone else is refused) or
    adds it. The quotas are listed below the form.

    Parameters
    ----------
    store
        The database.
    user
        Who edits (recorded as ``changed_by``).
    today
        The day whose month or quarter is offered first (default: today).

    Attributes
    ----------
    scope, name, period, period_start, amount
        The fields.
    current
        The stored quota of the chosen key (a row as a dict), None when there is none.
    message
        The outcome of the last save.
    listing
        The HTML table of all quotas.
    widget
        The whole editor, ready to ``display``.

    """

    def __init__(
        self, store: Store, *, user: str = "analyst", today: dt.date | None = None
    ) -> None:
        super().__init__(store, user=user, today=today)
        self.current: dict[str, object] | None = None
        self.amount = w.Text(description="Quota", placeholder="e.g. 900000", style=_STYLE)
        self.save_button = w.Button(description="Save quota", button_style="primary")
        self.save_button.on_click(lambda _b: self.save())
        self.listing = w.HTML()
        self.listing.add_class("crmkit-quota-listing")
        self.widget = w.VBox(
            [*self.key_fields, self.amount, w.HBox([self.save_button, self.message]), self.listing],
            layout=w.Layout(max_width="640px"),
        )
        self.show_quotas()
        self._on_key()

    def _stored(self, key: dict[str, object]) -> dict[str, object] | None:
        """The stored quota of a key, None when there is none."""
        if not key["name"] or key["period_start"] is None:
            return None
        rows = self.store.read("quotas", where=key)
        return None if rows.empty else rows.iloc[0].to_dict()

    def _on_key(self) -> None:
        """Show the stored quota of the chosen key in the amount field."""
        self.current = self._stored(self.key())
        if self.current is None:
            self.amount.value = ""
        else:
            self.amount.value = _amount_text(self.current["amount"])

    def save(self) -> bool:
        """Save the amount as the chosen key's quota; show what happened.

        Returns
        -------
        bool
            Whether it was saved (nothing is written when it is refused).

        """
        key = self.key()
        amount = _text_value(self.amount.value)
        what = self.describe(key)
        try:
            if self.current is not None and self._same_key(key):
                old = self.current["amount"]
                stored = self.store.update(
                    "quotas",
                    tuple(key.values()),
                    {"amount": amount},
                    expected_version=int(self.current["row_version"]),  # type: ignore[arg-type]
                    changed_by=self.user,
                )
                verb = f"from {format_amount(old)} to {format_amount(stored['amount'])}"  # type: ignore[arg-type]
            else:
                self.store.insert(
                    "quotas", pd.DataFrame([{**key, "amount": amount}]), changed_by=self.user
                )
                stored = self._stored(key) or {}
                verb = f"set to {format_amount(stored.get('amount'))}"  # type: ignore[arg-type]
        except ValidationError as err:
            _message(self.message, f"Not saved ({what}): {refusal(err)}", ok=False)
            return False
        except ConflictError as err:
            _message(self.message, f"Not saved ({what}): {err}", ok=False)
            self._on_key()
            return False
        except BusyError:
            _message(self.message, f"Not saved: {BUSY}; press Save again.", ok=False)
            return False
        except CrmkitError as err:
            _message(self.message, f"Not saved ({what}): {err}", ok=False)
            return False
        self.current = stored
        _message(self.message, f"Quota saved: {what} {verb}.", ok=True)
        self.show_quotas()
        return True

    def _same_key(self, key: dict[str, object]) -> bool:
        """Whether ``current`` is the stored quota of ``key``."""
        cur = self.current or {}
        return all(
            pd.Timestamp(cur.get(k)) == pd.Timestamp(v) if k == "period_start" else cur.get(k) == v
            for k, v in key.items()
        )

    def quotas(self) -> pd.DataFrame:
        """Every stored quota, by period and then scope and name."""
        q = self.store.read("quotas")
        return q.sort_values(["period", "period_start", "scope", "name"], kind="stable")

    def show_quotas(self) -> None:
        """List the stored quotas below the form."""
        q = self.quotas()
        if q.empty:
            self.listing.value = "<p>No quotas yet.</p>"
            return
        rows = "".join(
            "<tr>"
            f"<td>{html.escape(period_label(r.period, r.period_start))}</td>"
            f"<td>{html.escape(r.scope)}</td><td>{html.escape(str(r.name))}</td>"
            f'<td style="text-align:right">{html.escape(format_amount(r.amount))}</td>'
            "</tr>"
            for r in q.itertuples(index=False)
        )
        self.listing.value = (
            "<table><tr><th>period</th><th>for</th><th>name</th><th>quota</th></tr>"
            + rows
            + "</table>"
        )
