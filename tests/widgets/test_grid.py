from __future__ import annotations

import pandas as pd
import pytest

from crmkit.widgets.grid import (
    ANY,
    EntityGrid,
    GridQuery,
    clean_value,
    edit_changes,
    filter_rows,
    load_table,
    n_pages,
    page_of,
)
from tests.widgets.conftest import fire_cell_edit


def history(store, deal_id, field):
    h = store.read("deal_history", where={"deal_id": deal_id, "field": field})
    return h.sort_values("history_id")


def row_of(grid, key):
    return list(grid.page.index).index(key)


def test_good_edit_is_saved_with_history_and_message(company):
    g = EntityGrid(company, "deals", user="maria")
    fire_cell_edit(g.grid, row_of(g, "D1"), "stage", "Negotiation")
    stored = company.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert stored["stage"] == "Negotiation"
    assert stored["row_version"] == 2
    h = history(company, "D1", "stage").iloc[-1]
    assert (h["old_value"], h["new_value"], h["changed_by"]) == ("Proposal", "Negotiation", "maria")
    assert "Saved" in g.message_text and "stage" in g.message_text
    assert g.page.loc["D1", "row_version"] == 2
    assert g.grid.data.loc["D1", "stage"] == "Negotiation"


def test_bad_value_shows_field_and_reason_and_saves_nothing(company):
    g = EntityGrid(company, "deals")
    before = company.read("deals")
    n_hist = company.count("deal_history")
    pos = row_of(g, "D1")
    fire_cell_edit(g.grid, pos, "stage", "Bogus")
    assert "Not saved" in g.message_text
    assert "stage" in g.message_text and "unknown stage 'Bogus'" in g.message_text
    assert g.grid.data.loc["D1", "stage"] == "Proposal"  # the cell reverted
    fire_cell_edit(g.grid, pos, "amount", -10)
    assert "amount" in g.message_text and "must be >= 0" in g.message_text
    fire_cell_edit(g.grid, pos, "expected_close_date", "2024-02-30")
    assert "expected_close_date" in g.message_text
    pd.testing.assert_frame_equal(company.read("deals"), before)
    assert company.count("deal_history") == n_hist
    assert g.history == []


def test_numbers_and_dates_typed_as_text_are_coerced(company):
    g = EntityGrid(company, "deals")
    pos = row_of(g, "D1")
    fire_cell_edit(g.grid, pos, "amount", "15000.5")
    fire_cell_edit(g.grid, pos, "expected_close_date", "2024-08-15")
    stored = company.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert stored["amount"] == 15000.5
    assert stored["expected_close_date"] == pd.Timestamp("2024-08-15")
    assert g.grid.data.loc["D1", "expected_close_date"] == "2024-08-15"
    assert list(history(company, "D1", "amount")["new_value"]) == ["12000.0", "15000.5"]


def test_conflict_refuses_edit_and_refreshes_the_row(company):
    g = EntityGrid(company, "deals", user="ann")
    company.update("deals", "D1", {"amount": 99.0}, changed_by="bob")  # another user
    fire_cell_edit(g.grid, row_of(g, "D1"), "amount", 500)
    stored = company.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert stored["amount"] == 99.0
    assert "changed by someone else" in g.message_text
    assert g.page.loc["D1", "amount"] == 99.0  # the row shows what is stored now
    assert g.page.loc["D1", "row_version"] == stored["row_version"]
    fire_cell_edit(g.grid, row_of(g, "D1"), "amount", 500)  # now it applies
    assert company.read("deals", where={"deal_id": "D1"}).iloc[0]["amount"] == 500.0


def test_undo_reapplies_previous_value_through_the_store(company):
    g = EntityGrid(company, "deals", user="ann")
    pos = row_of(g, "D1")
    assert g.undo_button.disabled
    fire_cell_edit(g.grid, pos, "stage", "Discovery")
    fire_cell_edit(g.grid, pos, "amount", 1.0)
    assert not g.undo_button.disabled
    assert g.undo()
    assert company.read("deals", where={"deal_id": "D1"}).iloc[0]["amount"] == 12000.0
    assert g.undo()
    assert company.read("deals", where={"deal_id": "D1"}).iloc[0]["stage"] == "Proposal"
    assert list(history(company, "D1", "stage")["new_value"]) == [
        "Proposal",
        "Discovery",
        "Proposal",
    ]
    assert "Undone" in g.message_text
    assert not g.undo()
    assert "Nothing to undo" in g.message_text


def test_status_change_stamps_and_clears_closed_at(company):
    g = EntityGrid(company, "deals")
    fire_cell_edit(g.grid, row_of(g, "D1"), "status", "won")
    d1 = company.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert d1["status"] == "won" and pd.notna(d1["closed_at"])
    fire_cell_edit(g.grid, row_of(g, "D1"), "status", "open")
    d1 = company.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert d1["status"] == "open" and pd.isna(d1["closed_at"])


def test_read_only_columns_are_refused(company):
    g = EntityGrid(company, "deals")
    fire_cell_edit(g.grid, row_of(g, "D1"), "segment", "VIP")
    assert "cannot be edited" in g.message_text
    assert company.read("accounts", where={"account_id": "A1"}).iloc[0]["segment"] == "SMB"
    assert g.grid.data.loc["D1", "segment"] == "SMB"


def test_unchanged_value_writes_nothing(company):
    g = EntityGrid(company, "deals")
    fire_cell_edit(g.grid, row_of(g, "D1"), "stage", " Proposal ")
    assert company.read("deals", where={"deal_id": "D1"}).iloc[0]["row_version"] == 1


def test_filters_sort_and_paging(company):
    g = EntityGrid(company, "deals", page_size=2)
    assert g.n_pages == 2 and list(g.page.index) == ["D1", "D2"]
    g.go_to_page(1)
    assert list(g.page.index) == ["D3"] and g.next_button.disabled
    assert "page 2 of 2" in g.page_label.value
    g.search.value = "GLOBEX"
    assert list(g.rows.index) == ["D2"] and g.query.page == 0
    g.search.value = ""
    g.filter_widgets["owner"].value = "ann"
    assert list(g.rows.index) == ["D1", "D3"]
    g.filter_widgets["segment"].value = "SMB"
    assert list(g.rows.index) == ["D1"]
    g.filter_widgets["owner"].value = ANY
    g.filter_widgets["segment"].value = ANY
    g.filter_widgets["status"].value = "won"
    assert list(g.rows.index) == ["D2"]
    g.filter_widgets["status"].value = ANY
    g.sort_by.value = "amount"
    g.descending.value = True
    assert list(g.rows.index) == ["D2", "D1", "D3"]
    assert list(g.grid.data.index) == ["D2", "D1"]


def test_edit_on_a_later_sorted_page_hits_the_right_row(company):
    g = EntityGrid(company, "deals", page_size=2)
    g.sort_by.value = "amount"
    g.go_to_page(1)  # ascending amount: D3, D1 | D2
    fire_cell_edit(g.grid, 0, "amount", 60000)
    assert company.read("deals", where={"deal_id": "D2"}).iloc[0]["amount"] == 60000.0
    assert company.read("deals", where={"deal_id": "D3"}).iloc[0]["amount"] == 3000.0


def test_accounts_grid_edits_segment(company):
    g = EntityGrid(company, "accounts", user="ann")
    assert "segment" in g.filter_widgets and "stage" not in g.filter_widgets
    fire_cell_edit(g.grid, row_of(g, "A3"), "segment", "Gold")
    assert company.read("accounts", where={"account_id": "A3"}).iloc[0]["segment"] == "Gold"
    assert "Gold" not in g.filter_widgets["segment"].options
    g.reload()
    assert "Gold" in g.filter_widgets["segment"].options


def test_selected_keys_follow_selection_rectangles(company):
    g = EntityGrid(company, "deals")
    g.grid.selections = [{"r1": 2, "c1": 0, "r2": 1, "c2": 3}]
    assert g.selected_keys() == ["D2", "D3"]


def test_pure_helpers():
    table = pd.DataFrame(
        {"owner": ["a", "b", "a"], "name": ["x", "y", "z"], "amount": [3.0, 1.0, 2.0]},
        index=pd.Index(["K1", "K2", "K3"]),
    )
    q = GridQuery(filters={"owner": "a"}, sort_by="amount")
    assert list(filter_rows(table, q).index) == ["K3", "K1"]
    assert list(filter_rows(table, GridQuery(text="Y")).index) == ["K2"]
    assert n_pages(0, 50) == 1 and n_pages(101, 50) == 3
    assert list(page_of(table, 9, 2).index) == ["K3"]  # clipped to the last page
    assert clean_value("  ") is None and clean_value(" x ") == "x"
    row = pd.Series({"status": "open", "closed_at": pd.NaT})
    assert set(edit_changes("deals", row, "status", "lost")) == {"status", "closed_at"}
    assert edit_changes("accounts", row, "status", "lost") == {"status": "lost"}


def test_load_table_joins_account_segment(company):
    t = load_table(company, "contacts")
    assert t.loc["C2", "segment"] == "Enterprise"
    with pytest.raises(Exception, match="single key"):
        load_table(company, "stages")


def test_table_is_read_only_when_a_query_needs_it(company):
    g = EntityGrid(company, "deals", page_size=2)
    assert not g.loaded
    g.go_to_page(1)
    assert not g.loaded and list(g.page.index) == ["D3"]
    fire_cell_edit(g.grid, 0, "amount", 10)  # edits work on pages read by key
    assert company.read("deals", where={"deal_id": "D3"}).iloc[0]["amount"] == 10.0
    g.filter_widgets["status"].value = "lost"
    assert g.loaded and list(g.rows.index) == ["D3"]
    assert g.table.loc["D3", "amount"] == 10.0


def test_edits_update_the_loaded_table(company):
    g = EntityGrid(company, "deals")
    g.sort_by.value = "amount"  # reads the table
    assert g.loaded
    fire_cell_edit(g.grid, row_of(g, "D1"), "owner", "zoe")
    assert g.table.loc["D1", "owner"] == "zoe"
    assert g.table.loc["D1", "row_version"] == 2
    g.filter_widgets["owner"].value = "zoe"
    assert list(g.rows.index) == ["D1"]


def test_pages_before_the_table_is_read_come_in_key_order(company):
    from crmkit.widgets.grid import read_slice

    keys = sorted(company.read("deals")["deal_id"])
    assert list(read_slice(company, "deals", 1, 2)["deal_id"]) == keys[1:3]
    assert read_slice(company, "deals", len(keys), 5).empty
    g = EntityGrid(company, "deals", page_size=2)
    assert list(g.page.index) == keys[:2] and g.n_rows == len(keys)
    assert "of 3" in g.page_label.value and not g.loaded
    new = company.read("deals", where={"deal_id": "D1"}).drop(columns=["row_version", "updated_at"])
    new["deal_id"] = "D0"
    company.insert("deals", new)
    g.reload()  # counts again without reading the table
    assert not g.loaded and g.n_rows == len(keys) + 1
    assert list(g.page.index) == ["D0", keys[0]]
    g.last_button.click()
    assert list(g.page.index) == keys[-2:]  # D0, D1 | D2, D3
