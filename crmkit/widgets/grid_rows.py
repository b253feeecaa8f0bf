"""The grid's rows: reading an entity, the deal forecast columns, filtering, sorting, paging.

An entity is read once into a DataFrame (:func:`load_table`), or one page at a time in key
order before that (:func:`read_slice`), indexed by its key with the account's segment joined
(:func:`prepare_rows`); filtering, sorting and paging are plain functions over it
(:func:`filter_rows`, :func:`page_of`), so 100k deals stay responsive.

Deal rows also get, read only, each open deal's chance of winning in the forecast's first
period, chance of slipping and expected revenue from the newest published forecast snapshot
(its ``open_deals`` table, :func:`read_open_deal_forecast`, :func:`join_forecast`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.store import Store
from crmkit.store.frames import typed_frame
from crmkit.store.schema import TABLES
from crmkit.store.schema import entity as entity_spec

#: Label of the "no filter" choice.
ANY = "(any)"
#: Column joined from the account (read only) for entities that refer to an account.
JOINED_SEGMENT = "segment"
#: Read-only deal columns from the newest published snapshot's ``open_deals`` table.
FORECAST_COLUMNS = ("p_win", "p_slip", "expected_revenue")
#: Hidden lower-case search text column, added to a table by its first text search.
SEARCH_COLUMN = "__search__"


@dataclass(frozen=True)
class GridQuery:
    """What the grid shows: filters, sort order and page.

    Attributes
    ----------
    text
        Case-insensitive text searched in every text column ("" for none).
    filters
        ``{column: value}`` equality filters (owner, team, stage, status, segment).
    sort_by
        Column to sort by (None: the entity's key order).
    ascending
        Sort direction.
    page
        Page number, from 0.
    page_size
        Rows per page.

    """

    text: str = ""
    filters: dict[str, object] = field(default_factory=dict)
    sort_by: str | None = None
    ascending: bool = True
    page: int = 0
    page_size: int = 50


def load_table(store: Store, name: str) -> pd.DataFrame:
    """Read an entity for the grid: indexed by its key, with the account's segment joined.

    Parameters
    ----------
    store
        The database.
    name
        ``"accounts"``, ``"contacts"``, ``"deals"`` or another entity with a single key.

    Returns
    -------
    pandas.DataFrame
        The entity's columns (and ``row_version``), index = key; deals and contacts get a
        read-only ``segment`` column from their account. The lower-case search text is
        added by the first text search.

    """
    spec = entity_spec(name)
    if len(spec.key) != 1:
        raise CrmkitError(
            f"the grid edits entities with a single key column; {name} has {spec.key}"
        )
    return prepare_rows(store, name, store.read(name), all_accounts=True)


def read_slice(store: Store, name: str, offset: int, limit: int) -> pd.DataFrame:
    """Read rows ``offset`` to ``offset + limit`` of an entity in key order, in one query.

    The grid shows its first pages this way (``ORDER BY key LIMIT ... OFFSET ...``), so a
    page of 100k deals is read without reading every deal or every key.

    Parameters
    ----------
    store
        The database.
    name
        Entity name.
    offset, limit
        First row (from 0) and number of rows.

    Returns
    -------
    pandas.DataFrame
        Typed like :meth:`crmkit.Store.read`.

    """
    import sqlalchemy as sa

    spec = entity_spec(name)
    table = TABLES[name]
    stmt = (
        sa.select(*table.c)
        .order_by(*[table.c[k] for k in spec.key])
        .limit(max(0, int(limit)))
        .offset(max(0, int(offset)))
    )
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        df = pd.DataFrame.from_records([tuple(r) for r in result], columns=list(result.keys()))
    return typed_frame(spec, df)


def prepare_rows(
    store: Store, name: str, df: pd.DataFrame, *, all_accounts: bool = False
) -> pd.DataFrame:
    """Index rows read from the store by their key and join their account's segment.

    Parameters
    ----------
    store
        The database.
    name
        Entity name.
    df
        Rows as read by :meth:`crmkit.Store.read`.
    all_accounts
        Read every account's segment at once (for many rows) instead of only theirs.

    Returns
    -------
    pandas.DataFrame
        See :func:`load_table`.

    """
    spec = entity_spec(name)
    if name != "accounts" and "account_id" in df.columns:
        where = None if all_accounts else {"account_id": list(df["account_id"].dropna().unique())}
        seg = store.read("accounts", where=where, columns=["account_id", "segment"])
        df[JOINED_SEGMENT] = df["account_id"].map(seg.set_index("account_id")["segment"])
        df[JOINED_SEGMENT] = (
            df[JOINED_SEGMENT].astype(object).where(df[JOINED_SEGMENT].notna(), None)
        )
    df = df.set_index(spec.key[0], drop=False)
    df.index.name = spec.key[0]
    df.attrs["text_columns"] = [c.name for c in spec.columns if c.kind in ("str", "text")]
    return df


def read_open_deal_forecast(store: Store) -> pd.DataFrame:
    """Read the open deals' forecast from the newest published snapshot.

    Only the snapshot's parameters are read (not its draws), so the grid opens quickly.

    Parameters
    ----------
    store
        The database.

    Returns
    -------
    pandas.DataFrame
        Index ``deal_id``, float columns :data:`FORECAST_COLUMNS` (``p_win``: chance of
        winning within the first forecast period, ``p_slip``: chance of not closing by the
        expected close date, ``expected_revenue``), from the snapshot's ``open_deals``
        table; empty when no snapshot is published or it has no such table. ``attrs``
        holds ``snapshot_id`` and ``as_of`` (None without a snapshot).

    """
    empty = pd.DataFrame(
        {c: pd.Series(dtype="float64") for c in FORECAST_COLUMNS},
        index=pd.Index([], dtype=object, name="deal_id"),
    )
    empty.attrs.update(snapshot_id=None, as_of=None)
    listing = store.list_snapshots()
    if listing.empty:
        return empty
    newest = int(listing["snapshot_id"].iloc[0])
    stored = store.read(
        "forecast_snapshots", where={"snapshot_id": [newest]}, columns=["parameters"]
    )
    text = stored["parameters"].iloc[0] if len(stored) else None
    params = json.loads(text) if isinstance(text, str) and text else {}
    records = (params.get("tables") or {}).get("open_deals") or []
    frame = pd.DataFrame.from_records(records)
    if frame.empty or "deal_id" not in frame.columns:
        out = empty
    else:
        frame = frame.drop_duplicates("deal_id", keep="last")
        out = pd.DataFrame(
            {
                c: pd.to_numeric(frame[c], errors="coerce").astype("float64")
                if c in frame.columns
                else np.nan
                for c in FORECAST_COLUMNS
            }
        )
        out.index = pd.Index(frame["deal_id"].astype(object), name="deal_id")
    out.attrs.update(snapshot_id=newest, as_of=pd.Timestamp(listing["as_of"].iloc[0]).date())
    return out


def join_forecast(df: pd.DataFrame, forecast: pd.DataFrame | None) -> pd.DataFrame:
    """Add the :data:`FORECAST_COLUMNS` of ``forecast`` to deal rows (NaN for deals not in it).

    Parameters
    ----------
    df
        Deal rows (with a ``deal_id`` column), as :func:`prepare_rows` returns them.
    forecast
        Output of :func:`read_open_deal_forecast` (None: nothing is added).

    Returns
    -------
    pandas.DataFrame
        ``df`` with the columns added (in place).

    """
    if forecast is None or "deal_id" not in df.columns:
        return df
    for c in FORECAST_COLUMNS:
        df[c] = df["deal_id"].map(forecast[c]).astype("float64")
    return df


def search_text(df: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Lower-case text of the given columns joined by a separator, for fast searching."""
    parts = [df[c].astype(object).where(df[c].notna(), "").astype(str) for c in columns if c in df]
    if not parts:
        return pd.Series("", index=df.index)
    out = parts[0]
    for p in parts[1:]:
        out = out + "\x1f" + p
    return out.str.lower()


def filter_rows(table: pd.DataFrame, query: GridQuery) -> pd.DataFrame:
    """Apply a query's text search, filters and sort order (not its page).

    The first text search adds a hidden lower-case search column to ``table`` (kept, so
    later searches are fast).

    Parameters
    ----------
    table
        Output of :func:`load_table`.
    query
        What to show.

    Returns
    -------
    pandas.DataFrame
        The matching rows, sorted.

    """
    mask = pd.Series(True, index=table.index)
    text = query.text.strip().lower()
    if text:
        if SEARCH_COLUMN not in table.columns:  # built once, on the first search, and kept
            cols = table.attrs.get("text_columns") or [
                c for c in table.columns if pd.api.types.is_string_dtype(table[c])
            ]
            table[SEARCH_COLUMN] = search_text(table, cols)
        mask &= table[SEARCH_COLUMN].str.contains(text, regex=False).to_numpy()
    for col, val in query.filters.items():
        if val is None or val in (ANY, "") or col not in table.columns:
            continue
        mask &= (table[col] == val).fillna(False).to_numpy(dtype=bool)
    out = table[mask.to_numpy()] if not mask.all() else table
    if query.sort_by and query.sort_by in out.columns:
        out = out.sort_values(
            query.sort_by, ascending=query.ascending, kind="stable", na_position="last"
        )
    return out


def n_pages(n_rows: int, page_size: int) -> int:
    """Return the number of pages for ``n_rows`` rows (at least 1)."""
    return max(1, math.ceil(n_rows / max(1, page_size)))


def page_of(rows: pd.DataFrame, page: int, page_size: int) -> pd.DataFrame:
    """Return page ``page`` (from 0, clipped to the last page) of ``rows``."""
    page = min(max(0, page), n_pages(len(rows), page_size) - 1)
    return rows.iloc[page * page_size : (page + 1) * page_size]
