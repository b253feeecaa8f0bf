"""The CRM store: schema, the :class:`Store` front object, validation and migrations."""

from __future__ import annotations

from crmkit.store.core import Store
from crmkit.store.snapshots import Snapshot

__all__ = ["Snapshot", "Store"]
