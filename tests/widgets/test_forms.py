from __future__ import annotations

import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.widgets.forms import AddForm, BulkEdit, DeleteRows, editor, form_choices, next_key
from crmkit.widgets.grid import EntityGrid


def test_choices_come_from_the_store(company):
    company.insert(
        "stages",
        pd.DataFrame(
            {"pipeline": ["renewals"], "stage": ["Quote"], "stage_order": [1], "probability": [0.5]}
        ),
    )
    ch = form_choices(company)
    assert ch["pipeline"] == ["default", "renewals"]
    assert ch["stage"][:4] == ["Qualification", "Discovery", "Proposal", "Negotiation"]
    assert ch["owner"] == ["ann", "bob"]
    assert ch["campaign_id"] == ["K1"]
    form = AddForm(company, "deals")
    assert list(form.fields["stage"].options) == [
        "Qualification",
        "Discovery",
        "Proposal",
        "Negotiation",
    ]
    form.fields["pipeline"].value = "renewals"
    assert list(form.fields["stage"].options) == ["Quote"]
    assert "K1" in form.fields["campaign_id"].options


def test_add_deal_saves_row_and_history(company):
    saved = []
    form = AddForm(company, "deals", user="maria", on_saved=saved.append)
    assert form.fields["deal_id"].value == "D4"
    form.fields["account_id"].value = "A2"
    form.fields["owner"].value = "cat"
    form.fields["stage"].value = "Proposal"
    form.fields["amount"].value = "2500"
    form.fields["campaign_id"].value = "K1"
    assert form.submit()
    d4 = company.read("deals", where={"deal_id": "D4"}).iloc[0]
    assert (d4["owner"], d4["stage"], d4["amount"], d4["campaign_id"]) == (
        "cat",
        "Proposal",
        2500.0,
        "K1",
    )
    h = company.read("deal_history", where={"deal_id": "D4", "field": "stage"})
    assert list(h["changed_by"]) == ["maria"]
    assert saved == ["D4"]
    assert "Added deal D4" in form.message.value
    assert form.fields["deal_id"].value == "D5"


def test_add_form_reports_bad_values_and_saves_nothing(company):
    form = AddForm(company, "deals")
    form.fields["owner"].value = "cat"
    form.fields["account_id"].value = "NOPE"
    form.fields["amount"].value = "-1"
    assert not form.submit()
    assert "account_id" in form.message.value and "not found in accounts" in form.message.value
    assert "amount" in form.message.value
    assert company.count("deals") == 3


def test_add_customer_and_contact(company):
    acc = AddForm(company, "accounts")
    acc.fields["name"].value = "Umbrella"
    acc.fields["segment"].value = "SMB"
    assert acc.submit(), acc.message.value
    con = AddForm(company, "contacts")
    con.fields["account_id"].value = acc.fields["account_id"].value = "A4"
    con.fields["name"].value = "Alice"
    assert con.submit(), con.message.value
    assert company.read("contacts", where={"contact_id": "C3"}).iloc[0]["account_id"] == "A4"
    with pytest.raises(CrmkitError):
        AddForm(company, "orders")


def test_next_key_skips_taken_keys(company):
    assert next_key(company, "accounts", "A") == "A4"
    assert next_key(company, "accounts", "X") == "X4"


def test_delete_needs_confirmation(company):
    grid = EntityGrid(company, "deals")
    deleter = DeleteRows(grid)
    grid.grid.selections = [{"r1": 2, "c1": 0, "r2": 2, "c2": 0}]
    assert deleter.ask() == ["D3"]
    assert "Delete 1 deals (D3)?" in deleter.message.value
    assert company.count("deals") == 3  # nothing deleted before confirming
    deleter.cancel()
    assert deleter.confirm() == 0 and company.count("deals") == 3
    deleter.ask(["D3"])
    assert deleter.confirm() == 1
    assert company.count("deals") == 2 and "D3" not in grid.table.index
    assert company.read("deal_history", where={"deal_id": "D3"}).empty


def test_delete_refused_when_referenced(company):
    grid = EntityGrid(company, "accounts")
    deleter = DeleteRows(grid)
    deleter.ask(["A1"])
    assert deleter.confirm() == 0
    assert "refer to" in deleter.message.value
    assert company.count("accounts") == 3


def test_bulk_edit_stage_of_selected_deals(company):
    grid = EntityGrid(company, "deals", user="lead")
    bulk = BulkEdit(grid)
    assert list(bulk.field.options) == ["stage", "owner", "segment"]
    bulk.field.value = "stage"
    assert "Negotiation" in bulk.value.options
    bulk.value.value = "Negotiation"
    grid.grid.selections = [{"r1": 0, "c1": 0, "r2": 2, "c2": 0}]
    assert bulk.apply() == 3
    assert set(company.read("deals")["stage"]) == {"Negotiation"}
    h = company.read("deal_history", where={"field": "stage", "changed_by": "lead"})
    assert sorted(h["deal_id"]) == ["D1", "D3"]  # D2 was already in Negotiation
    assert set(grid.table["stage"]) == {"Negotiation"}


def test_bulk_edit_refuses_bad_value_and_conflicts(company):
    grid = EntityGrid(company, "deals")
    bulk = BulkEdit(grid)
    bulk.field.value = "stage"
    bulk.value.value = "Nowhere"
    assert bulk.apply(["D1", "D2"]) == 0
    assert "stage" in bulk.message.value and "unknown stage" in bulk.message.value
    company.update("deals", "D2", {"owner": "zed"})
    bulk.field.value = "owner"
    bulk.value.value = "ann"
    assert bulk.apply(["D1", "D2"]) == 0
    assert "changed by someone else" in bulk.message.value
    assert company.read("deals", where={"deal_id": "D1"}).iloc[0]["owner"] == "ann"
    assert grid.table.loc["D2", "owner"] == "zed"  # refreshed
    assert bulk.apply(["D1", "D2"]) == 2


def test_bulk_segment_on_deals_changes_their_accounts(company):
    grid = EntityGrid(company, "deals")
    bulk = BulkEdit(grid)
    bulk.field.value = "segment"
    bulk.value.value = "Strategic"
    assert bulk.apply(["D1", "D3"]) == 2
    acc = company.read("accounts").set_index("account_id")["segment"]
    assert acc["A1"] == "Strategic" and acc["A3"] == "Strategic" and acc["A2"] == "Enterprise"
    assert grid.table.loc["D1", "segment"] == "Strategic"


def test_editor_builds_the_page_and_the_add_form_on_opening(company):
    grid, page = editor(company, "deals")
    assert grid.name == "deals"
    assert grid.widget in page.children
    section = page.children[-1]
    holder = section.children[0]
    assert not any(isinstance(c, type(grid.widget)) for c in holder.children)
    section.selected_index = 0
    form_box = holder.children[0]
    assert "deal_id *" in [getattr(c, "description", None) for c in form_box.children]


def test_bulk_edit_light_choices_do_not_need_deals(company):
    grid = EntityGrid(company, "deals")
    bulk = BulkEdit(grid)
    bulk.field.value = "owner"
    assert list(bulk.value.options) == ["ann", "bob"]  # the accounts' owners
    assert form_choices(company, from_deals=False)["team"] == []


def test_busy_database_is_one_line_in_add_bulk_edit_and_delete(company):
    import sqlite3

    from crmkit.store import Store

    path = company.engine.url.database
    store = Store.open(path, busy_timeout=0.2)
    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        grid = EntityGrid(store, "deals")
        form = AddForm(store, "deals")
        form.fields["account_id"].value = "A2"
        form.fields["owner"].value = "cat"
        form.fields["stage"].value = "Proposal"
        bulk, delete = BulkEdit(grid), DeleteRows(grid)
        bulk.field.value, bulk.value.value = "owner", "zoe"
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        assert not form.submit()
        assert "Not saved: the database is busy" in form.message.value
        assert bulk.apply(["D1"]) == 0 and "the database is busy" in bulk.message.value
        delete.ask(["D3"])
        assert delete.confirm() == 0 and "Not deleted: the database is busy" in delete.message.value
        assert delete.pending == ["D3"] and delete.confirm_box.layout.display == "flex"
        locker.execute("ROLLBACK")
        assert delete.confirm() == 1
        assert company.count("deals") == 2
        assert company.read("deals", where={"deal_id": "D1"}).iloc[0]["owner"] == "ann"
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        store.close()
