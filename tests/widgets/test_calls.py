from __future__ import annotations

import datetime as dt
import sqlite3

import pandas as pd
import pytest

from crmkit.store import Store
from crmkit.store.calls import add_call, calls_as_of
from crmkit.widgets.calls import CallForm, QuotaEditor, call_history, period_starts

TODAY = dt.date(2024, 5, 10)


def calls(store):
    return store.read("forecast_calls")


# ---------------------------------------------------------------- the manager's call
def test_call_form_offers_owners_teams_and_the_periods_around_today(company):
    f = CallForm(company, user="maria", today=TODAY)
    assert f.key() == {
        "scope": "owner",
        "name": "ann",
        "period": "M",
        "period_start": dt.date(2024, 5, 1),
    }
    assert set(f.name.options) == {"ann", "bob"}
    f.scope.value = "team"
    assert set(f.name.options) == set(company.read("deals")["team"].dropna())
    f.scope.value = "company"
    assert f.key()["name"] == "all" and f.name.disabled
    f.period.value = "Q"
    assert f.key()["period_start"] == dt.date(2024, 4, 1)  # the quarter holding May
    assert f.period_start.description == "Quarter"
    assert [label for label, _d in period_starts("Q", today=TODAY, before=1, after=1)] == [
        "2024-Q1",
        "2024-Q2",
        "2024-Q3",
    ]


def test_submit_writes_one_call_with_the_user_as_author(company):
    seen = []
    f = CallForm(company, user="maria", today=TODAY, on_saved=seen.append)
    f.scope.value = "team"
    f.name.value = "north"
    f.period.value = "Q"
    f.amount.value = "1250000"
    f.note.value = " includes Globex "
    assert f.submit()
    stored = calls(company)
    assert len(stored) == 1
    row = stored.iloc[0]
    assert (row["scope"], row["name"], row["period"]) == ("team", "north", "Q")
    assert row["period_start"] == pd.Timestamp("2024-04-01")
    assert (row["amount"], row["author"], row["note"]) == (1_250_000.0, "maria", "includes Globex")
    assert seen == [int(row["call_id"])]
    assert f.message_text == "Call saved: team north 2024-Q2 = 1,250,000 by maria (team=north)."
    assert f.amount.value == "" and f.note.value == ""
    assert "1,250,000" in f.history_text and "(stands)" in f.history_text


def test_history_lists_the_calls_of_the_key_newest_first(company):
    key = {"scope": "owner", "name": "ann", "period": "M", "period_start": dt.date(2024, 5, 1)}
    add_call(company, **key, amount=100.0, author="lee", at="2024-05-02 09:00")
    add_call(company, **key, amount=90.0, author="lee", note="slipped", at="2024-05-09 09:00")
    add_call(company, **{**key, "name": "bob"}, amount=5.0, author="lee", at="2024-05-03 09:00")
    f = CallForm(company, user="maria", today=TODAY)
    assert list(f.calls()["amount"]) == [90.0, 100.0]  # ann's calls only, newest first
    text = f.history_text
    assert "Calls for owner ann 2024-05" in text
    assert text.index("2024-05-09 09:00 (stands)") < text.index("2024-05-02 09:00")
    assert "slipped" in text and "bob" not in text
    f.amount.value = "95000"
    assert f.submit()
    newest = call_history(company, **key)
    assert list(newest["amount"]) == [95000.0, 90.0, 100.0]
    assert calls_as_of(calls(company), "2024-05-05")["amount"].tolist() == [100.0, 5.0]
    f.name.value = "bob"
    assert "Calls for owner bob 2024-05" in f.history_text and "5" in f.history_text


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("-5", "amount: negative value; must be >= 0 (got '-5')"),
        ("abc", "amount: not a number (got 'abc')"),
        ("", "amount: required value missing"),
    ],
)
def test_refused_amount_shows_one_line_and_writes_nothing(company, amount, reason):
    f = CallForm(company, user="maria", today=TODAY)
    f.amount.value = amount
    assert not f.submit()
    assert f.message_text == f"Not saved: {reason}"
    assert "\n" not in f.message_text
    assert calls(company).empty
    assert f.amount.value == amount  # kept, to be corrected


def test_a_call_without_a_name_is_refused(company):
    f = CallForm(company, user="maria", today=TODAY)
    f.scope.value = "team"
    f.name.value = "  "
    f.amount.value = "10"
    assert not f.submit()
    assert f.message_text == "Not saved: name: required value missing"
    assert calls(company).empty


def test_busy_database_refuses_the_call_in_one_line_and_keeps_it_to_submit_again(company):
    path = company.engine.url.database
    store = Store.open(path, busy_timeout=0.2)
    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        f = CallForm(store, user="maria", today=TODAY)
        f.amount.value = "700"
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        assert not f.submit()
        assert f.message_text == (
            "Not saved: the database is busy (another program is writing to it); "
            "nothing was written; press Submit again."
        )
        locker.execute("ROLLBACK")
        assert calls(company).empty and f.amount.value == "700"
        assert f.submit() and len(calls(company)) == 1
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        store.close()


# ---------------------------------------------------------------- quotas
def test_quota_editor_adds_and_edits_a_quota_with_its_version(company):
    q = QuotaEditor(company, user="maria", today=TODAY)
    assert q.current is None and q.amount.value == ""
    q.amount.value = "900000"
    assert q.save()
    assert q.message_text == "Quota saved: owner ann 2024-05 set to 900,000."
    stored = company.read("quotas").iloc[0]
    assert (stored["scope"], stored["name"], stored["period"]) == ("owner", "ann", "M")
    assert (stored["period_start"], stored["amount"]) == (pd.Timestamp("2024-05-01"), 900000.0)
    assert stored["row_version"] == 1
    q.period_start.value = dt.date(2024, 6, 1)
    assert q.current is None and q.amount.value == ""
    q.period_start.value = dt.date(2024, 5, 1)
    assert q.amount.value == "900000"  # the stored quota is shown for editing
    q.amount.value = "950000.5"
    assert q.save()
    assert q.message_text == "Quota saved: owner ann 2024-05 from 900,000 to 950,000."
    stored = company.read("quotas").iloc[0]
    assert (stored["amount"], stored["row_version"]) == (950000.5, 2)
    assert len(company.read("quotas")) == 1
    assert "950,000" in q.listing.value


def test_quota_editor_refuses_a_negative_amount_and_writes_nothing(company):
    q = QuotaEditor(company, user="maria", today=TODAY)
    q.amount.value = "100"
    assert q.save()
    before = company.read("quotas")
    q.amount.value = "-100"
    assert not q.save()
    assert q.message_text.startswith("Not saved (owner ann 2024-05): amount:")
    assert "must be >= 0" in q.message_text and "'-100'" in q.message_text
    pd.testing.assert_frame_equal(company.read("quotas"), before)
    q.scope.value = "company"
    q.amount.value = "-1"
    assert not q.save()
    assert "amount" in q.message_text and len(company.read("quotas")) == 1


def test_quota_changed_meanwhile_is_refused_and_shown_again(company):
    q = QuotaEditor(company, user="maria", today=TODAY)
    q.amount.value = "100"
    assert q.save()
    key = ("owner", "ann", "M", dt.date(2024, 5, 1))
    company.update("quotas", key, {"amount": 300.0}, changed_by="bob")
    q.amount.value = "200"
    assert not q.save()
    assert "changed by someone else" in q.message_text
    assert company.read("quotas").iloc[0]["amount"] == 300.0
    assert q.amount.value == "300"  # the stored quota, to edit again
    q.amount.value = "200"
    assert q.save() and company.read("quotas").iloc[0]["amount"] == 200.0


def test_forms_offer_the_fiscal_quarters_of_the_store(company):
    from crmkit.store.fiscal import FiscalCalendar
    from crmkit.store.settings import set_setting

    cal = FiscalCalendar(start_month=2)
    offered = period_starts("Q", today=TODAY, before=1, after=1, calendar=cal)
    # TODAY is in May 2024: the fiscal quarter May-Jul of FY2025 (Feb 2024 - Jan 2025)
    assert offered == [
        ("FY25 Q1", dt.date(2024, 2, 1)),
        ("FY25 Q2", dt.date(2024, 5, 1)),
        ("FY25 Q3", dt.date(2024, 8, 1)),
    ]
    set_setting(company, "fiscal_year_start_month", 2)
    f = CallForm(company, user="maria", today=TODAY)
    f.period.value = "Q"
    assert f.key()["period_start"] == dt.date(2024, 5, 1)
    assert ("FY25 Q2", dt.date(2024, 5, 1)) in list(f.period_start.options)
