"""Tests of crmkit.widgets.grid_rows: reading, filtering, sorting and paging the grid's rows."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.widgets.grid_rows import GridQuery, filter_rows, load_table, n_pages, page_of


def test_filter_rows_sorts_and_pages_clip_to_the_last_page():
    table = pd.DataFrame(
        {"owner": ["a", "b", "a"], "name": ["x", "y", "z"], "amount": [3.0, 1.0, 2.0]},
        index=pd.Index(["K1", "K2", "K3"]),
    )
    q = GridQuery(filters={"owner": "a"}, sort_by="amount")
    assert list(filter_rows(table, q).index) == ["K3", "K1"]
    assert list(filter_rows(table, GridQuery(text="Y")).index) == ["K2"]
    assert n_pages(0, 50) == 1 and n_pages(101, 50) == 3
    assert list(page_of(table, 9, 2).index) == ["K3"]  # clipped to the last page


def test_load_table_joins_account_segment(company):
    t = load_table(company, "contacts")
    assert t.loc["C2", "segment"] == "Enterprise"
    with pytest.raises(Exception, match="single key"):
        load_table(company, "stages")
