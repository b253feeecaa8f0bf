"""Widget test helpers: fire grid edits (the company store fixture is in tests/conftest.py)."""

from __future__ import annotations

from ipydatagrid import DataGrid


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
