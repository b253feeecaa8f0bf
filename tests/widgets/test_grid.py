from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from crmkit.store import Store
from crmkit.widgets.grid import EntityGrid
from crmkit.widgets.grid_rows import ANY
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
    from crmkit.widgets.grid_rows import read_slice

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


# ---------------------------------------------------------------- each edit is saved once
class Frontend:
    """ipydatagrid's front end as far as cell values go, speaking its comm protocol.

    The grid's real front end answers every cell value the kernel sends
    (``set_cell_value_by_index``: a custom ``cell-changed`` message) by putting it into its
    model, which sends a ``cell-changed`` message back with the same row, column and value
    after a JSON round trip through JavaScript (``205000.0`` comes back as ``205000``, an
    integer, and dates as the text they were sent as). Here the kernel's
    messages are read from the comm and :meth:`echo` sends those answers, in order.
    """

    def __init__(self, grid: EntityGrid) -> None:
        self.datagrid = grid.grid
        self.sent: list[dict] = []
        comm = self.datagrid.comm
        publish = comm.publish_msg

        def record(msg_type, data=None, metadata=None, buffers=None, **keys):
            content = (data or {}).get("content") or {}
            if msg_type == "comm_msg" and content.get("event_type") == "cell-changed":
                self.sent.append(json.loads(json.dumps(content), parse_float=_js_number))
            return publish(msg_type, data=data, metadata=metadata, buffers=buffers, **keys)

        comm.publish_msg = record

    def type(self, row: int, column: str, text: str) -> None:
        """The user types ``text`` into a cell and presses Enter."""
        fire_cell_edit(self.datagrid, row, column, text)

    def echo(self, rounds: int = 20) -> int:
        """Send back every value the kernel sent (and what that provokes); return how many."""
        n = 0
        for _ in range(rounds):
            if not self.sent:
                break
            todo, self.sent = self.sent, []
            for content in todo:
                fire_cell_edit(self.datagrid, content["row"], content["column"], content["value"])
                n += 1
        return n


def _js_number(text: str) -> float | int:
    """A JSON number as JavaScript sends it back: ``205000.0`` is the number ``205000``."""
    x = float(text)
    return int(x) if x.is_integer() else x


def deal(store, deal_id="D1"):
    return store.read("deals", where={"deal_id": deal_id}).iloc[0]


def changes_of(store, deal_id="D1"):
    """(field, old, new) of the deal's history rows written after its insert."""
    h = store.read("deal_history", where={"deal_id": deal_id}).sort_values("history_id")
    h = h[h["old_value"].notna() | h.duplicated(["field"])]
    return list(zip(h["field"], h["old_value"], h["new_value"], strict=True))


def assert_quiet(front, store, grid, deal_id="D1"):
    """Deliver the front end's echoes: nothing more is saved and the message stays."""
    before, message, n_hist = deal(store, deal_id), grid.message_text, store.count("deal_history")
    front.echo()
    after = deal(store, deal_id)
    assert after["row_version"] == before["row_version"]
    assert after["updated_at"] == before["updated_at"]
    assert store.count("deal_history") == n_hist
    assert grid.message_text == message
    assert not front.sent  # the echoes provoked nothing


def test_whole_number_amount_is_saved_once_and_its_echo_is_no_edit(company):
    g = EntityGrid(company, "deals", user="maria")
    front = Frontend(g)
    front.type(row_of(g, "D1"), "amount", "205000")
    assert g.message_text == "Saved deal D1: amount 12000.0 → 205000.0"
    echo = front.sent[-1]["value"]
    assert echo == 205000 and isinstance(echo, int)  # 205000.0 comes back as 205000
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert d1["amount"] == 205000.0 and d1["row_version"] == 2
    assert changes_of(company) == [("amount", "12000.0", "205000.0")]
    assert len(g.history) == 1 and not g.undo_button.disabled


def test_decimal_numbers_are_saved_once(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "amount", "15000.5")
    assert_quiet(front, company, g)
    front.type(pos, "probability_override", " 0.35 ")
    assert g.message_text == "Saved deal D1: probability_override (empty) → 0.35"
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert (d1["amount"], d1["probability_override"], d1["row_version"]) == (15000.5, 0.35, 3)
    assert changes_of(company) == [("amount", "12000.0", "15000.5")]  # amount is tracked
    assert len(g.history) == 2


def test_dates_are_saved_once(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    front.type(row_of(g, "D1"), "expected_close_date", "2024-08-15")
    assert g.message_text == "Saved deal D1: expected_close_date 2024-06-30 → 2024-08-15"
    assert g.grid.data.loc["D1", "expected_close_date"] == "2024-08-15"
    assert_quiet(front, company, g)
    front.type(row_of(g, "D2"), "closed_at", "2024-04-21 10:30")
    assert g.grid.data.loc["D2", "closed_at"] == "2024-04-21 10:30:00"
    assert_quiet(front, company, g, "D2")
    assert deal(company)["expected_close_date"] == pd.Timestamp("2024-08-15")
    assert deal(company)["row_version"] == 2
    d2 = deal(company, "D2")
    assert d2["closed_at"] == pd.Timestamp("2024-04-21 10:30") and d2["row_version"] == 2
    assert changes_of(company) == [("expected_close_date", "2024-06-30", "2024-08-15")]


def test_choices_are_saved_once_in_their_stored_spelling(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "status", " Won ")
    assert g.message_text == "Saved deal D1: status open → won"
    assert g.grid.data.loc["D1", "status"] == "won"
    assert_quiet(front, company, g)
    front.type(pos, "forecast_category", "Best Case")
    assert g.grid.data.loc["D1", "forecast_category"] == "Best Case"  # shown by its label
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert (d1["status"], d1["forecast_category"], d1["row_version"]) == ("won", "best_case", 3)
    assert pd.notna(d1["closed_at"])  # stamped with the status change, in the same save
    assert changes_of(company) == [
        ("status", "open", "won"),
        ("forecast_category", "pipeline", "best_case"),
    ]


def test_text_is_saved_once_stripped(company):
    g = EntityGrid(company, "deals", user="maria")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "stage", "Negotiation")
    assert g.message_text == "Saved deal D1: stage Proposal → Negotiation"
    assert_quiet(front, company, g)
    front.type(pos, "name", "  Acme renewal 2025 ")
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert (d1["stage"], d1["name"], d1["row_version"]) == ("Negotiation", "Acme renewal 2025", 3)
    assert changes_of(company) == [("stage", "Proposal", "Negotiation")]


def test_the_stored_value_in_another_spelling_is_no_save_and_keeps_the_message(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "stage", "Negotiation")
    front.echo()
    message = g.message_text
    for column, text in [
        ("amount", "12000"),
        ("amount", " 12000.00 "),
        ("amount", "1.2e4"),
        ("expected_close_date", "2024-06-30"),
        ("expected_close_date", "2024-06-30 00:00"),
        ("status", "OPEN"),
        ("forecast_category", " Pipeline"),
        ("stage", " Negotiation "),
        ("lost_reason", ""),
    ]:
        front.type(pos, column, text)
        front.echo()
        assert g.message_text == message, (column, text)
    d1 = deal(company)
    assert d1["row_version"] == 2 and d1["amount"] == 12000.0
    assert g.grid.data.loc["D1", "status"] == "open"  # shown in the stored spelling again
    assert len(g.history) == 1


def test_refused_negative_amount_keeps_its_message_after_the_echo(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    before = company.read("deals")
    front.type(row_of(g, "D1"), "amount", "-316230")
    text = g.message_text
    assert text.startswith("Not saved (deal D1): amount: ") and "must be >= 0" in text
    assert g.grid.data.loc["D1", "amount"] == 12000.0  # the stored value is shown again
    assert_quiet(front, company, g)
    pd.testing.assert_frame_equal(company.read("deals"), before)
    assert changes_of(company) == [] and g.history == []


def test_an_echo_arriving_after_a_newer_edit_is_no_edit(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "amount", "abc")  # refused: the grid sends 12000.0 back to the cell
    assert "not a number" in g.message_text
    front.type(pos, "amount", "13000")  # typed before the front end answered
    assert g.message_text == "Saved deal D1: amount 12000.0 → 13000.0"
    assert_quiet(front, company, g)  # the late echo of 12000.0 does not undo 13000
    d1 = deal(company)
    assert (d1["amount"], d1["row_version"]) == (13000.0, 2)
    assert changes_of(company) == [("amount", "12000.0", "13000.0")]


def test_undo_says_undone_and_its_echo_changes_nothing(company):
    g = EntityGrid(company, "deals", user="ann")
    front = Frontend(g)
    front.type(row_of(g, "D1"), "amount", "15000.5")
    front.echo()
    assert g.redo_button.disabled
    assert g.undo()
    assert g.message_text == "Undone deal D1: amount 15000.5 → 12000.0"
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert (d1["amount"], d1["row_version"]) == (12000.0, 3)
    assert changes_of(company) == [
        ("amount", "12000.0", "15000.5"),
        ("amount", "15000.5", "12000.0"),
    ]
    assert g.history == [] and g.undo_button.disabled and not g.redo_button.disabled


def test_redo_reapplies_the_undone_edit(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "expected_close_date", "2024-09-01")
    front.type(pos, "stage", "Negotiation")
    front.echo()
    assert g.undo() and g.undo()
    front.echo()
    assert g.redo()
    assert g.message_text == "Redone deal D1: expected_close_date 2024-06-30 → 2024-09-01"
    assert_quiet(front, company, g)
    assert g.redo_button.click() is None and "Redone deal D1: stage" in g.message_text
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert (d1["stage"], d1["expected_close_date"]) == ("Negotiation", pd.Timestamp("2024-09-01"))
    assert d1["row_version"] == 7  # two edits, two undos, two redos
    edc, stage = "expected_close_date", "stage"
    assert [c[0] for c in changes_of(company)] == [edc, stage, stage, edc, edc, stage]
    assert g.redo_button.disabled and not g.redo()
    assert g.message_text == "Nothing to redo."
    assert len(g.history) == 2


def test_a_new_edit_clears_redo(company):
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    front.type(pos, "amount", "1000")
    front.echo()
    g.undo_button.click()
    front.echo()
    assert not g.redo_button.disabled
    front.type(pos, "stage", "Discovery")
    front.echo()
    assert g.redo_button.disabled and g.redo_stack == []
    assert not g.redo() and g.message_text == "Nothing to redo."
    d1 = deal(company)
    assert (d1["amount"], d1["stage"], d1["row_version"]) == (12000.0, "Discovery", 4)


@pytest.fixture
def locked(company):
    """The company's database file, a grid store that waits 0.2 s for a lock, and a locker."""
    path = company.engine.url.database
    grid_store = Store.open(path, busy_timeout=0.2)
    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    yield grid_store, locker
    if locker.in_transaction:
        locker.execute("ROLLBACK")
    locker.close()
    grid_store.close()


def test_busy_database_keeps_the_edit_until_retry(company, locked):
    grid_store, locker = locked
    g = EntityGrid(grid_store, "deals", user="maria")
    front = Frontend(g)
    assert g.retry_button.layout.display == "none"
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    front.type(row_of(g, "D1"), "amount", "205000")
    assert g.message_text == (
        "Not saved: the database is busy (another program is writing to it); "
        "your edit of deal D1 amount is kept — press Retry."
    )
    assert g.retry_button.layout.display != "none" and len(g.pending) == 1
    assert g.grid.data.loc["D1", "amount"] == "205000"  # the cell keeps the typed value
    assert not front.sent  # nothing was sent to the cell
    assert not g.undo() and "press Retry" in g.message_text
    assert g.grid.data.loc["D1", "amount"] == "205000"
    assert deal(company)["row_version"] == 1 and changes_of(company) == []
    assert not g.retry()  # still busy: still kept
    assert len(g.pending) == 1 and "database is busy" in g.message_text
    locker.execute("ROLLBACK")
    g.retry_button.click()
    assert g.message_text == "Saved deal D1: amount 12000.0 → 205000.0"
    assert g.pending == [] and g.retry_button.layout.display == "none"
    assert_quiet(front, company, g)
    d1 = deal(company)
    assert (d1["amount"], d1["row_version"]) == (205000.0, 2)
    assert changes_of(company) == [("amount", "12000.0", "205000.0")]
    assert len(g.history) == 1


def test_busy_edits_are_retried_in_order_after_later_saves_of_the_row(company, locked):
    grid_store, locker = locked
    g = EntityGrid(grid_store, "deals")
    front = Frontend(g)
    pos = row_of(g, "D1")
    locker.execute("BEGIN IMMEDIATE")
    front.type(pos, "amount", "1000")
    locker.execute("ROLLBACK")
    front.type(pos, "stage", "Discovery")  # saved: the row moved on by our own save
    assert g.message_text == "Saved deal D1: stage Proposal → Discovery"
    assert len(g.pending) == 1
    assert g.retry()
    d1 = deal(company)
    assert (d1["amount"], d1["stage"], d1["row_version"]) == (1000.0, "Discovery", 3)
    assert_quiet(front, company, g)


def test_retyping_the_stored_value_drops_a_busy_edit(company, locked):
    grid_store, locker = locked
    g = EntityGrid(grid_store, "deals")
    front = Frontend(g)
    locker.execute("BEGIN IMMEDIATE")
    front.type(row_of(g, "D1"), "amount", "1000")
    front.type(row_of(g, "D1"), "amount", "12000")
    assert g.pending == [] and g.retry_button.layout.display == "none"
    assert "Dropped the unsaved edit of deal D1 amount" in g.message_text
    locker.execute("ROLLBACK")
    assert deal(company)["row_version"] == 1


def test_busy_edit_refused_on_retry_shows_the_conflict_and_the_stored_value(company, locked):
    grid_store, locker = locked
    g = EntityGrid(grid_store, "deals", user="ann")
    locker.execute("BEGIN IMMEDIATE")
    Frontend(g).type(row_of(g, "D1"), "amount", "500")
    locker.execute("ROLLBACK")
    company.update("deals", "D1", {"amount": 99.0}, changed_by="bob")  # someone else
    assert not g.retry()
    assert "Not saved (deal D1)" in g.message_text
    assert "changed by someone else" in g.message_text
    assert g.grid.data.loc["D1", "amount"] == 99.0 and g.pending == []
    d1 = deal(company)
    assert (d1["amount"], d1["row_version"]) == (99.0, 2)


# ---------------------------------------------------------------- the forecast beside each deal
def save_forecast(store, open_deals, *, status="published", as_of="2024-05-01"):
    """Save a snapshot whose only content that matters is its ``open_deals`` table."""
    from crmkit.store import Snapshot

    snap = Snapshot(
        as_of=pd.Timestamp(as_of).date(),
        horizon=1,
        period="M",
        quantiles=pd.DataFrame({"period": ["2024-05"], "source": ["total"], "p50": [1.0]}),
        draws={},
        parameters={"tables": {"open_deals": open_deals}},
        status=status,
        reasons=[] if status == "published" else ["a check failed"],
    )
    return store.save_snapshot(snap)


FORECAST = [
    {"deal_id": "D1", "p_win": 0.423, "p_slip": 0.25, "expected_revenue": 5076.4},
    {"deal_id": "D3", "p_win": 0.9996, "p_slip": 0.0001, "expected_revenue": 2998.8},
]


def test_forecast_columns_come_from_the_newest_published_snapshot(company):
    save_forecast(company, [{"deal_id": "D1", "p_win": 0.1, "p_slip": 0.9, "expected_revenue": 1}])
    newest = save_forecast(company, FORECAST)
    save_forecast(company, [{"deal_id": "D1", "p_win": 0.7}], status="draft")  # never shown
    g = EntityGrid(company, "deals")
    assert g.page.loc["D1", "p_win"] == 0.423 and g.page.loc["D3", "p_slip"] == 0.0001
    assert pd.isna(g.page.loc["D2", "p_win"])  # not in the snapshot: blank
    shown = g.grid.data
    assert (shown.loc["D1", "p_win"], shown.loc["D1", "p_slip"]) == ("42.3%", "25%")
    assert shown.loc["D1", "expected_revenue"] == "5,076"
    assert (shown.loc["D3", "p_win"], shown.loc["D3", "p_slip"]) == (">99.9%", "<0.1%")
    assert shown.loc["D2", "p_win"] is None and shown.loc["D2", "expected_revenue"] is None
    assert f"snapshot {newest} as of 2024-05-01" in g.forecast_label.value


def test_forecast_columns_are_blank_without_a_published_snapshot(company):
    save_forecast(company, FORECAST, status="draft")
    g = EntityGrid(company, "deals")
    assert g.page[["p_win", "p_slip", "expected_revenue"]].isna().all().all()
    assert "No published forecast yet" in g.forecast_label.value
    save_forecast(company, FORECAST)
    g.reload()  # a newly published snapshot shows on reload
    assert g.page.loc["D1", "p_win"] == 0.423 and g.grid.data.loc["D1", "p_win"] == "42.3%"
    assert "expected_revenue" not in EntityGrid(company, "accounts").page.columns


def test_editing_a_forecast_column_is_refused_and_saves_nothing(company):
    save_forecast(company, FORECAST)
    g = EntityGrid(company, "deals")
    front = Frontend(g)
    before, n_hist = company.read("deals"), company.count("deal_history")
    for column, typed in [("p_win", "0.9"), ("p_slip", "1%"), ("expected_revenue", "99999")]:
        front.type(row_of(g, "D1"), column, typed)
        assert g.message_text == (
            f"Not saved: {column} is read only; it comes from the forecast snapshot."
        )
        assert_quiet(front, company, g)
    assert g.grid.data.loc["D1", "p_win"] == "42.3%"  # the cells show the forecast again
    assert g.grid.data.loc["D1", "expected_revenue"] == "5,076"
    assert g.page.loc["D1", "p_win"] == 0.423
    pd.testing.assert_frame_equal(company.read("deals"), before)
    assert company.count("deal_history") == n_hist and g.history == []


def test_sort_by_forecast_columns_puts_blank_deals_last(company):
    save_forecast(company, FORECAST)
    g = EntityGrid(company, "deals")
    assert {"p_win", "p_slip", "expected_revenue"} <= {v for _label, v in g.sort_by.options}
    g.sort_by.value = "p_win"
    assert list(g.rows.index) == ["D1", "D3", "D2"]
    g.descending.value = True
    assert list(g.rows.index) == ["D3", "D1", "D2"]
    assert list(g.grid.data["p_win"]) == [">99.9%", "42.3%", None]
    g.sort_by.value = "expected_revenue"
    assert list(g.rows.index) == ["D1", "D3", "D2"]
    fire_cell_edit(g.grid, row_of(g, "D1"), "amount", 13000)  # edits of sorted rows still land
    assert deal(company)["amount"] == 13000.0 and g.page.loc["D1", "p_win"] == 0.423


def test_forecast_category_is_shown_by_label_and_saved_once_as_the_stored_value(company):
    g = EntityGrid(company, "deals", user="maria")
    front = Frontend(g)
    pos = row_of(g, "D1")
    assert g.grid.data.loc["D1", "forecast_category"] == "Pipeline"
    assert g.grid.data.loc["D3", "forecast_category"] == "Omitted"
    n_hist = company.count("deal_history")
    front.type(pos, "forecast_category", "Commit")
    assert g.message_text == "Saved deal D1: forecast_category Pipeline → Commit"
    assert_quiet(front, company, g)  # the label sent back is no second edit
    d1 = deal(company)
    assert (d1["forecast_category"], d1["row_version"]) == ("commit", 2)
    assert company.count("deal_history") == n_hist + 1
    h = history(company, "D1", "forecast_category").iloc[-1]
    assert (h["old_value"], h["new_value"], h["changed_by"]) == ("pipeline", "commit", "maria")
    front.type(pos, "forecast_category", "best case")  # any spelling of a label
    assert_quiet(front, company, g)
    assert g.grid.data.loc["D1", "forecast_category"] == "Best Case"
    assert (deal(company)["forecast_category"], deal(company)["row_version"]) == ("best_case", 3)
    front.type(pos, "forecast_category", "Maybe")
    assert "forecast_category" in g.message_text and "'Maybe'" in g.message_text
    assert_quiet(front, company, g)
    assert g.grid.data.loc["D1", "forecast_category"] == "Best Case"
    assert g.undo() and deal(company)["forecast_category"] == "commit"
    assert g.message_text == "Undone deal D1: forecast_category Best Case → Commit"
    assert_quiet(front, company, g)
    assert list(history(company, "D1", "forecast_category")["new_value"]) == [
        "pipeline",
        "commit",
        "best_case",
        "commit",
    ]
