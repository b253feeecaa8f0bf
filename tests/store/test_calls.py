"""Quotas and managers' forecast calls: add_call's checks, calls as of a time, quota_frame."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crmkit.errors import CrmkitError, ValidationError
from crmkit.store import Store
from crmkit.store.calls import (
    CALL_COLUMNS,
    add_call,
    calls_as_of,
    group_of,
    period_label,
    quota_frame,
)

CALL = {
    "scope": "team",
    "name": "East",
    "period": "Q",
    "period_start": "2026-10-01",
    "amount": 120_000.0,
    "author": "Erin",
}


def call(store: Store, **changes: object) -> int:
    return add_call(store, **{**CALL, **changes})


def refused(store: Store, match: str, **changes: object) -> str:
    """Add a call that must be refused; check nothing was written; return the message."""
    before = store.count("forecast_calls")
    with pytest.raises(ValidationError, match=match) as info:
        call(store, **changes)
    assert store.count("forecast_calls") == before
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------- group_of, labels
def test_group_of_names_company_owner_and_team_as_snapshots_do() -> None:
    assert group_of("company", "all") == "all"
    assert group_of("owner", "ann") == "owner=ann"
    assert group_of("team", "East") == "team=East"
    with pytest.raises(CrmkitError, match="scope 'region' is not one of owner, team, company"):
        group_of("region", "x")


def test_period_label_is_the_snapshots_label_of_month_and_quarter() -> None:
    assert period_label("M", "2026-11-01") == "2026-11"
    assert period_label("Q", dt.date(2026, 10, 1)) == "2026-Q4"
    assert period_label("Q", pd.Timestamp("2027-01-01")) == "2027-Q1"
    with pytest.raises(CrmkitError, match="period 'W' is not one of M, Q"):
        period_label("W", "2026-11-01")


# ---------------------------------------------------------------------- add_call
def test_add_call_stores_the_call_and_returns_its_id(store: Store) -> None:
    first = call(store, note="two big renewals", at=dt.datetime(2026, 10, 1, 9, 0))
    second = call(store, amount=130_000, at="2026-10-15 12:30")
    assert second > first
    rows = store.read("forecast_calls").set_index("call_id")
    assert rows.loc[first, "amount"] == 120_000.0
    assert rows.loc[first, "note"] == "two big renewals"
    assert rows.loc[first, "created_at"] == pd.Timestamp("2026-10-01 09:00")
    assert rows.loc[second, "amount"] == 130_000.0
    assert pd.isna(rows.loc[second, "note"])
    assert (rows["period_start"] == pd.Timestamp("2026-10-01")).all()
    assert (rows["author"] == "Erin").all()


def test_add_call_without_a_time_is_stamped_now_in_utc(store: Store) -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    call_id = call(store)
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stamp = store.read("forecast_calls", where={"call_id": call_id})["created_at"].iloc[0]
    assert before <= stamp <= after


def test_add_call_normalises_spellings_and_spaces(store: Store) -> None:
    call_id = call(store, scope=" Team ", name=" East ", period="q", author=" Erin ", note="  ")
    row = store.read("forecast_calls", where={"call_id": call_id}).iloc[0]
    got = (row["scope"], row["name"], row["period"], row["author"])
    assert got == ("team", "East", "Q", "Erin")
    assert pd.isna(row["note"])


def test_add_call_for_the_company_is_named_all(store: Store) -> None:
    call_id = call(store, scope="company", name="")
    assert store.read("forecast_calls", where={"call_id": call_id})["name"].iloc[0] == "all"
    msg = refused(store, "the company's name is 'all'", scope="company", name="ACME Inc")
    assert "'ACME Inc'" in msg


def test_add_call_refuses_an_unknown_scope_naming_it(store: Store) -> None:
    msg = refused(store, "field 'scope': must be one of owner, team, company", scope="region")
    assert "(got 'region')" in msg


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (float("nan"), "not a finite number"),
        (float("inf"), "not a finite number"),
        (-1.0, "negative value; must be >= 0"),
        ("a lot", "not a number"),
        (None, "required value missing"),
        (5e12, "amount above the maximum"),
    ],
)
def test_add_call_refuses_an_amount_that_is_not_finite_and_at_least_zero(
    store: Store, amount: object, reason: str
) -> None:
    msg = refused(store, f"field 'amount': {reason}", amount=amount)
    assert "row 1" not in msg  # a call is one value, not a file's row


@pytest.mark.parametrize(
    ("period", "start", "reason"),
    [
        ("M", "2026-10-15", "2026-10-15 is not the first day of a month"),
        ("Q", "2026-11-01", "2026-11-01 is not the first day of a quarter"),
        ("Q", "2026-10-02", "2026-10-02 is not the first day of a quarter"),
        ("M", "2026-13-01", "impossible date '2026-13-01'"),
        ("W", "2026-10-01", "field 'period': must be one of M, Q"),
    ],
)
def test_add_call_refuses_a_period_start_that_does_not_open_its_period(
    store: Store, period: str, start: str, reason: str
) -> None:
    refused(store, reason, period=period, period_start=start)


def test_add_call_refuses_an_empty_author(store: Store) -> None:
    refused(store, "field 'author': required value missing", author="   ")
    refused(store, "field 'author': required value missing", author=None)


def test_add_call_names_every_bad_field_on_one_line(store: Store) -> None:
    msg = refused(store, "3 problem", scope="x", amount=-5, author="")
    assert "'scope'" in msg and "'amount'" in msg and "'author'" in msg


# ---------------------------------------------------------------------- calls_as_of
def _calls() -> pd.DataFrame:
    """Calls of two keys; East's first call is superseded on Oct 15, then again on Oct 20."""
    rows = [
        (1, "team", "East", "Q", "2026-10-01", 100.0, "Erin", "first", "2026-10-01 09:00"),
        (2, "team", "West", "Q", "2026-10-01", 80.0, "Wes", None, "2026-10-02 10:00"),
        (3, "team", "East", "Q", "2026-10-01", 110.0, "Erin", "up", "2026-10-15 16:00"),
        (4, "team", "East", "Q", "2026-10-01", 90.0, "Erin", "down", "2026-10-20 08:00"),
        (5, "team", "East", "M", "2026-10-01", 40.0, "Erin", None, "2026-10-01 09:00"),
    ]
    df = pd.DataFrame(rows, columns=["call_id", *CALL_COLUMNS])
    df["period_start"] = pd.to_datetime(df["period_start"])
    df["created_at"] = pd.to_datetime(df["created_at"])
    return df


def _amounts(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(n, p): a for n, p, a in zip(df["name"], df["period"], df["amount"], strict=True)}


def test_calls_as_of_takes_the_latest_call_per_key_and_drops_superseded_ones() -> None:
    got = calls_as_of(_calls(), pd.Timestamp("2026-10-16 00:00:01"))
    assert list(got.columns) == list(CALL_COLUMNS)
    assert _amounts(got) == {("East", "M"): 40.0, ("East", "Q"): 110.0, ("West", "Q"): 80.0}
    assert got.set_index(["name", "period"]).loc[("East", "Q"), "note"] == "up"
    later = calls_as_of(_calls(), dt.datetime(2026, 12, 31, 23, 0))
    assert _amounts(later)[("East", "Q")] == 90.0


def test_calls_as_of_a_day_counts_the_calls_made_during_it() -> None:
    assert _amounts(calls_as_of(_calls(), "2026-10-15"))[("East", "Q")] == 110.0
    assert _amounts(calls_as_of(_calls(), dt.date(2026, 10, 15)))[("East", "Q")] == 110.0
    assert _amounts(calls_as_of(_calls(), "2026-10-14"))[("East", "Q")] == 100.0
    assert _amounts(calls_as_of(_calls(), "2026-10-15 15:59"))[("East", "Q")] == 100.0


def test_calls_as_of_before_any_call_is_empty_with_the_call_columns() -> None:
    got = calls_as_of(_calls(), "2026-09-30")
    assert got.empty and list(got.columns) == list(CALL_COLUMNS)
    empty = calls_as_of(_calls().iloc[0:0], "2026-12-01")
    assert empty.empty and list(empty.columns) == list(CALL_COLUMNS)


def test_calls_as_of_breaks_a_tie_in_time_by_the_call_added_last() -> None:
    df = _calls()
    df.loc[df["call_id"] == 4, "created_at"] = pd.Timestamp("2026-10-15 16:00")
    assert _amounts(calls_as_of(df, "2026-10-15"))[("East", "Q")] == 90.0
    shuffled = df.sample(frac=1.0, random_state=3)
    assert _amounts(calls_as_of(shuffled, "2026-10-15"))[("East", "Q")] == 90.0


def test_calls_as_of_refuses_a_value_that_is_not_a_time() -> None:
    with pytest.raises(CrmkitError, match="not a time: 'someday'"):
        calls_as_of(_calls(), "someday")


def test_calls_as_of_reads_the_stored_history(store: Store) -> None:
    call(store, amount=100, at="2026-10-01 09:00")
    call(store, amount=110, at="2026-10-15 16:00")
    call(store, scope="owner", name="ann", period="M", amount=30, at="2026-10-02 09:00")
    stored = store.read("forecast_calls")
    got = calls_as_of(stored, "2026-10-10").set_index(["scope", "name"])
    assert got.loc[("team", "East"), "amount"] == 100.0
    assert got.loc[("owner", "ann"), "amount"] == 30.0
    assert calls_as_of(stored, "2026-10-31").set_index("scope").loc["team", "amount"] == 110.0


# ---------------------------------------------------------------------- quotas
def test_quota_frame_gives_each_quota_its_group_and_period_label(store: Store) -> None:
    store.insert(
        "quotas",
        pd.DataFrame(
            {
                "scope": ["owner", "Team", "company"],
                "name": ["ann", "East", "all"],
                "period": ["M", "Q", "q"],
                "period_start": ["2026-11-01", "2026-10-01", "2027-01-01"],
                "amount": [50_000, 150_000.0, 400_000],
            }
        ),
    )
    q = quota_frame(store).set_index("group")
    assert list(q.index) == ["all", "owner=ann", "team=East"]
    assert q.loc["all", "label"] == "2027-Q1"
    assert q.loc["owner=ann", "label"] == "2026-11"
    assert q.loc["team=East", "label"] == "2026-Q4"
    assert q.loc["team=East", "amount"] == 150_000.0
    assert q.loc["owner=ann", "period_start"] == pd.Timestamp("2026-11-01")


def test_quota_rows_break_the_call_rules_are_refused_and_nothing_is_written(store: Store) -> None:
    bad = pd.DataFrame(
        {
            "scope": ["owner", "company", "team"],
            "name": ["ann", "ACME", "East"],
            "period": ["M", "M", "Q"],
            "period_start": ["2026-11-15", "2026-11-01", "2026-10-01"],
            "amount": [1.0, 2.0, float("inf")],
        }
    )
    with pytest.raises(ValidationError) as info:
        store.insert("quotas", bad)
    msg = str(info.value)
    assert "row 1, field 'period_start': period_start 2026-11-15 is not the first day" in msg
    assert "row 2, field 'name': name 'ACME' for scope company" in msg
    assert "row 3, field 'amount': not a finite number" in msg
    assert store.count("quotas") == 0
