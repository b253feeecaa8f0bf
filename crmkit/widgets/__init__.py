"""Thin ipywidgets views over crmkit's functions: grids, forms, forecast calls, segment explorer.

Names are imported on first use, so an app that only edits deals does not load the
plotting stack the segment explorer needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmkit.widgets.calls import CallForm, QuotaEditor
    from crmkit.widgets.forms import AddForm, BulkEdit, DeleteRows, editor, form_choices
    from crmkit.widgets.grid import EntityGrid
    from crmkit.widgets.grid_rows import GridQuery, filter_rows, load_table, page_of
    from crmkit.widgets.segment_explorer import SegmentExplorer

_WHERE = {
    "AddForm": "forms",
    "BulkEdit": "forms",
    "CallForm": "calls",
    "QuotaEditor": "calls",
    "DeleteRows": "forms",
    "editor": "forms",
    "form_choices": "forms",
    "EntityGrid": "grid",
    "GridQuery": "grid_rows",
    "filter_rows": "grid_rows",
    "load_table": "grid_rows",
    "page_of": "grid_rows",
    "SegmentExplorer": "segment_explorer",
}

__all__ = [
    "AddForm",
    "BulkEdit",
    "CallForm",
    "DeleteRows",
    "EntityGrid",
    "GridQuery",
    "QuotaEditor",
    "SegmentExplorer",
    "editor",
    "filter_rows",
    "form_choices",
    "load_table",
    "page_of",
]


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"crmkit.widgets.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'crmkit.widgets' has no attribute {name!r}")
