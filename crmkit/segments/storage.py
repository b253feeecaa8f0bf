"""Saving rule segments in the store, assigning accounts to segments, and the customer table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crmkit.errors import NotFoundError, RowError, ValidationError
from crmkit.segments.rfm import SEGMENT_RULES, rfm_scores, rfm_segments
from crmkit.segments.rules import RuleSegment
from crmkit.store import Store
from crmkit.store.schema import TABLES

#: RFM columns :func:`customer_table` adds, in order.
RFM_COLUMNS = (
    "recency_days",
    "purchases",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "rfm_score",
    "rfm_segment",
)


def save_segment(
    store: Store,
    name: str,
    rule: Mapping[str, Any] | RuleSegment,
    description: str | None = None,
) -> RuleSegment:
    """Validate a rule and save it under ``name``, replacing a segment of that name.

    Parameters
    ----------
    store
        The database.
    name
        Segment name.
    rule
        The rule (a dict, see :mod:`crmkit.segments.rules`) or a :class:`RuleSegment`.
    description
        Free text shown to users (default: the RuleSegment's own).

    Returns
    -------
    RuleSegment
        The segment as saved.

    Raises
    ------
    ValidationError
        When the rule is invalid; nothing is saved.

    """
    if isinstance(rule, RuleSegment):
        description = description if description is not None else rule.description
        rule = rule.rule
    seg = RuleSegment(name=name, rule=dict(rule), description=description).validate()
    table = TABLES["segment_definitions"]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    with store.transaction() as conn:
        conn.execute(sa.delete(table).where(table.c.name == name))
        conn.execute(
            sa.insert(table).values(
                name=name,
                kind=seg.kind,
                definition=seg.to_json(),
                description=description,
                created_at=now,
            )
        )
    return seg


def load_segment(store: Store, name: str) -> RuleSegment:
    """Load the rule segment saved under ``name``.

    Raises
    ------
    NotFoundError
        When no segment has that name (the message lists the saved ones).

    """
    df = store.read("segment_definitions", where={"name": name})
    if df.empty:
        known = ", ".join(list_segments(store)["name"]) or "none saved"
        raise NotFoundError(f"no segment named {name!r}; saved segments: {known}")
    row = df.iloc[0]
    desc = row["description"] if isinstance(row["description"], str) else None
    seg = RuleSegment.from_json(name, row["definition"], desc)
    seg.kind = row["kind"]
    return seg


def list_segments(store: Store) -> pd.DataFrame:
    """List the saved segments: ``name``, ``kind``, ``description``, ``created_at`` (by name)."""
    return store.read("segment_definitions", columns=["name", "kind", "description", "created_at"])


def delete_segment(store: Store, name: str) -> bool:
    """Delete the saved segment ``name``; return whether it existed."""
    return store.delete("segment_definitions", [name]) > 0


def assign_segment(
    store: Store,
    account_ids: Iterable[str],
    segment: str | None,
    changed_by: str = "user",
) -> int:
    """Set ``accounts.segment`` of many accounts at once, in one transaction.

    Parameters
    ----------
    store
        The database.
    account_ids
        Accounts to move (duplicates are ignored).
    segment
        The segment name to give them, or None to clear it.
    changed_by
        Who made the change.

    Returns
    -------
    int
        Accounts changed.

    Raises
    ------
    ValidationError
        When an account does not exist (nothing is changed).

    """
    ids = pd.unique(pd.Series(list(account_ids), dtype=object))
    if segment is not None and (not isinstance(segment, str) or not segment.strip()):
        raise ValidationError("accounts", [RowError(None, "segment", "needs a name", segment)])
    if len(ids) == 0:
        return 0
    changes = pd.DataFrame({"account_id": ids, "segment": [segment] * len(ids)})
    return store.update_many("accounts", changes, changed_by=changed_by)


def customer_table(
    store: Store,
    *,
    cutoff: object = None,
    with_rfm: bool = True,
) -> pd.DataFrame:
    """Build one row per account: its fields, purchase summary, RFM scores and segment.

    The frame rule segments and the segment explorer work on. Accounts without orders
    by the cut-off have zero ``revenue``, ``n_orders`` and ``purchases`` and no RFM
    scores or segment.

    Parameters
    ----------
    store
        The database.
    cutoff
        Last day observed (default: the day of the last order).
    with_rfm
        Add the RFM columns of :func:`crmkit.segments.rfm_scores` and ``rfm_segment``.

    Returns
    -------
    pandas.DataFrame
        Accounts columns (``account_id`` first), then ``first_purchase``,
        ``last_purchase``, ``frequency``, ``recency``, ``T``, ``monetary_value``,
        ``n_orders``, ``revenue`` and, with RFM, ``recency_days``, ``purchases``,
        ``monetary``, ``r_score``, ``f_score``, ``m_score``, ``rfm_code``,
        ``rfm_score``, ``rfm_segment``.

    """
    accounts = store.read("accounts").drop(columns=["row_version", "updated_at"], errors="ignore")
    summary = store.purchase_summary(cutoff, time_unit="D")
    table = accounts.merge(
        summary.rename(columns={"customer_id": "account_id"}), on="account_id", how="left"
    )
    for c in ("frequency", "n_orders"):
        table[c] = table[c].fillna(0).astype("int64")
    table["revenue"] = table["revenue"].fillna(0.0)
    if with_rfm and len(summary):
        rfm = rfm_segments(rfm_scores(summary)).drop(columns="customer_id")
        rfm["account_id"] = summary["customer_id"].to_numpy()
        table = table.merge(rfm, on="account_id", how="left")
        table["purchases"] = table["purchases"].fillna(0).astype("int64")
        for c in ("r_score", "f_score", "m_score", "rfm_score", "recency_days"):
            table[c] = table[c].astype("Int64")
    elif with_rfm:
        for c in ("recency_days", "r_score", "f_score", "m_score", "rfm_score"):
            table[c] = pd.array([pd.NA] * len(table), dtype="Int64")
        table["purchases"] = np.zeros(len(table), dtype=np.int64)
        table["monetary"] = np.nan
        table["rfm_code"] = None
        table["rfm_segment"] = pd.Categorical(
            [None] * len(table), categories=SEGMENT_RULES["segment"]
        )
        head = [c for c in table.columns if c not in RFM_COLUMNS]
        table = table[head + list(RFM_COLUMNS)]
    table.attrs["cutoff"] = summary.attrs.get("cutoff")
    return table
