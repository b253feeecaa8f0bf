"""Fixtures of the widget tests: a small company in a store, and a way to fire grid edits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ipydatagrid import DataGrid

from crmkit.store import Store
from tests.factories import small_company


@pytest.fixture
def company(tmp_path) -> Iterator[Store]:
    """A SQLite store holding the small test company."""
    s = Store.open(tmp_path / "crm.db")
    s.insert_many(small_company())
    yield s
    s.close()


def fire_cell_edit(grid: DataGrid, row: int, column: str, value: object) -> None:
    """Deliver a cell edit the way ipydatagrid's front end does (a 'cell-changed' message)."""
    content = {
        "event_type": "cell-changed",
        "region": "body",
        "row": row,
        "column_index": grid._column_name_to_index(column),
        "value": value,
    }
    grid._DataGrid__handle_custom_msg(None, content, None)
