"""The grid's cell values: typed as the store types them, compared, shown, and echoed.

Values are compared as the store types them (:func:`typed_value`, :func:`same_value`), never
as text; :func:`wire_value` is a value as it travels to the front end and back, so the front
end's echo of a value the grid shows is recognised and never taken for an edit. The frame
handed to the DataGrid shows dates as ISO text, forecast chances as percentages and forecast
categories by their display names (``Best Case``), stored as ``best_case``
(:func:`display_frame`, :func:`shown_value`).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from crmkit.errors import ValidationError
from crmkit.plots.format import format_amount
from crmkit.store.frames import value_to_text
from crmkit.store.schema import CATEGORY_LABELS
from crmkit.store.schema import entity as entity_spec
from crmkit.store.validation import validate
from crmkit.widgets.grid_rows import FORECAST_COLUMNS, JOINED_SEGMENT

#: Columns shown by a display name instead of the stored value (``best_case`` reads Best Case).
LABELLED = {"forecast_category": CATEGORY_LABELS}


def forecast_text(column: str, value: object) -> str | None:
    """Show a forecast column's value: chances as percentages, revenue as money (None: blank).

    ``0.423`` reads ``42.3%``; a chance that is not zero never reads ``0%`` (``<0.1%``) and
    one below 1 never reads ``100%`` (``>99.9%``); revenue reads ``12,345``.
    """
    if is_missing(value):
        return None
    x = float(value)  # type: ignore[arg-type]
    if column == "expected_revenue":
        return format_amount(x)
    if 0 < x < 0.0005:
        return "<0.1%"
    if 0.9995 <= x < 1:
        return ">99.9%"
    return f"{x:.1%}".replace(".0%", "%")


def shown_value(column: str, value: object) -> object:
    """The text a labelled or forecast column shows for a stored value (others unchanged)."""
    if column in FORECAST_COLUMNS:
        return forecast_text(column, value)
    labels = LABELLED.get(column)
    if labels is not None and isinstance(value, str):
        return labels.get(value, value)
    return value


def display_frame(page: pd.DataFrame, name: str) -> pd.DataFrame:
    """Build the frame handed to the DataGrid: shown columns as objects, dates as ISO text."""
    spec = entity_spec(name)
    key = spec.key[0]
    cols = [c.name for c in spec.columns if c.name != key]
    if JOINED_SEGMENT in page.columns and JOINED_SEGMENT not in cols:
        cols.append(JOINED_SEGMENT)
    cols += [c for c in FORECAST_COLUMNS if c in page.columns and c not in cols]
    out = page[cols].copy()
    for c in spec.columns:
        if c.name in out.columns and c.kind in ("date", "datetime"):
            out[c.name] = [date_text(v, c.kind) for v in out[c.name]]
    for c in [*FORECAST_COLUMNS, *LABELLED]:
        if c in out.columns:
            out[c] = pd.Series([shown_value(c, v) for v in out[c]], index=out.index, dtype=object)
    out.index = pd.Index(page.index.astype(object), name=key)
    # object columns: the grid edits every cell as text, and ipydatagrid can store any typed
    # value in its copy before the store validates it (pandas refuses "abc" in a float column)
    return out.astype(object).where(out.notna(), None)


def date_text(v: object, kind: str) -> object:
    """Show a date as ``YYYY-MM-DD`` and a datetime without a zero time."""
    if v is None or pd.isna(v):
        return None
    ts = pd.Timestamp(v)
    if kind == "date" or ts == ts.normalize():
        return ts.date().isoformat()
    return ts.isoformat(sep=" ")


def clean_value(value: object) -> object:
    """Turn what the grid's editor sends into a value for the store ('' becomes None)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def edit_changes(name: str, row: pd.Series, column: str, value: object) -> dict[str, object]:
    """Return the changes one cell edit makes, with the fields a rule ties to it.

    Marking a deal ``won`` or ``lost`` stamps ``closed_at`` with today when it is empty, and
    reopening a deal clears ``closed_at``, so a status can be changed with one edit.

    Parameters
    ----------
    name
        Entity name.
    row
        The row as shown.
    column
        Edited column.
    value
        New value (already cleaned).

    Returns
    -------
    dict
        ``{column: value}`` plus any tied field.

    """
    changes: dict[str, object] = {column: value}
    if name == "deals" and column == "status" and "closed_at" in row.index:
        try:
            status = typed_value(name, column, value)  # " Won " is "won"
        except ValidationError:
            status = value  # the store refuses it, naming the value
        if status in ("won", "lost") and pd.isna(row["closed_at"]):
            changes["closed_at"] = pd.Timestamp(dt.date.today())
        elif status == "open" and not pd.isna(row["closed_at"]):
            changes["closed_at"] = None
    return changes


def error_message(err: Exception) -> str:
    """Return a short text naming each rejected field and the reason."""
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors:
            val = "" if e.value is None else f" (value {e.value!r})"
            parts.append(f"{e.field or 'row'}: {e.reason}{val}")
        return "; ".join(parts)
    return str(err)


def typed_value(name: str, column: str, value: object) -> object:
    """Return a cell value as the store types it, by the store's own coercion of the column.

    Numbers become floats, dates and times ``pandas.Timestamp`` (dates at midnight), choices
    their canonical spelling (``" Won"`` is ``"won"``) and text is stripped; missing values
    (``None``, ``""``, NaN, NaT) become None.

    Parameters
    ----------
    name
        Entity name.
    column
        Column name.
    value
        The value, typed or as text (what the grid's editor sends).

    Returns
    -------
    object
        The typed value, or None when missing.

    Raises
    ------
    ValidationError
        When the value does not convert or breaks the column's rules (a negative amount).

    """
    frame = pd.DataFrame({column: pd.Series([value], dtype=object)})
    result = validate(name, frame, partial=True)
    if not result.ok:
        raise ValidationError(name, result.errors)
    out = result.clean[column].iloc[0]
    if is_missing(out):
        return None
    if isinstance(out, str):
        return out.strip() or None
    if isinstance(out, np.generic):
        return out.item() if not isinstance(out, np.datetime64) else pd.Timestamp(out)
    return out


def same_value(name: str, column: str, a: object, b: object) -> bool:
    """Tell whether two values of a column are equal as the store types them (never as text).

    ``"205000"`` equals ``205000.0``, ``"2024-08-15"`` equals ``Timestamp("2024-08-15")``,
    ``" Won "`` equals ``"won"``. A value the store's rules refuse (a negative amount, an
    impossible date) is compared by its plain value, so it equals only itself.

    Parameters
    ----------
    name
        Entity name.
    column
        Column name.
    a, b
        The values (typed, or text as the grid's editor sends it).

    Returns
    -------
    bool

    """
    try:
        ta, tb = typed_value(name, column, a), typed_value(name, column, b)
    except ValidationError:
        return _plain(a) == _plain(b)
    if ta is None or tb is None:
        return ta is None and tb is None
    return bool(ta == tb)


def is_missing(v: object) -> bool:
    """Tell whether ``v`` is None, NaN, NaT or pd.NA."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _plain(v: object) -> object:
    """A value the store refuses, for comparison: a number as a float, else stripped text."""
    if is_missing(v):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, (pd.Timestamp, dt.date)):
        return value_to_text(v)
    text = str(v).strip()
    try:
        return float(text)
    except ValueError:
        return text or None


def wire_value(v: object) -> object:
    """A value as it travels to the front end and back (JSON): plain numbers, text or None."""
    if is_missing(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    return float(v)
