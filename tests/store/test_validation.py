"""The declarative validator: one test per bad-input class, each checking row, field and reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import NotFoundError
from crmkit.store.validation import MAX_AMOUNT, MAX_DAYS_AHEAD, MONEY_COLUMNS, validate
from tests.factories import small_company

STORED = {
    "accounts": {"A1", "A2", "A3"},
    "deals": {"D0"},
    "campaigns": {"K1"},
    "stages": {("default", "Qualification"), ("default", "Proposal"), ("default", "Won")},
    "orders": {"O0"},
}


def known(name: str) -> set:
    return STORED.get(name, set())


def deals_as_text() -> pd.DataFrame:
    """Three valid deals as a CSV reader would give them: every value a string or missing."""
    return pd.DataFrame(
        {
            "deal_id": ["D1", "D2", "D3"],
            "account_id": ["A1", "A2", None],
            "owner": ["ann", "bob", "ann"],
            "pipeline": ["default", "default", "default"],
            "stage": ["Proposal", "Qualification", "Proposal"],
            "status": ["open", "won", "lost"],
            "amount": ["1200.50", "300", None],
            "created_at": ["2024-01-05", "2024-02-01 09:30", "2024-02-03T10:00:00"],
            "closed_at": [None, "2024-03-01", "2024-03-02"],
            "campaign_id": ["K1", None, None],
        },
        dtype="str",
    )


def one_error(result, field: str) -> object:
    """The only error of a result, checked to be on ``field``."""
    assert not result.ok
    assert [e.field for e in result.errors] == [field], result.errors
    return result.errors[0]


def test_valid_text_rows_are_coerced_to_schema_types_and_defaults() -> None:
    df = deals_as_text().drop(columns=["pipeline"])
    res = validate("deals", df, known_keys=known)
    assert res.ok and res.bad_rows == set()
    clean = res.clean
    assert list(clean.columns)[:3] == ["deal_id", "account_id", "name"]
    assert clean["amount"].dtype == "float64"
    assert clean["amount"].iloc[0] == pytest.approx(1200.5)
    assert clean["created_at"].iloc[1] == pd.Timestamp("2024-02-01 09:30")
    assert (clean["pipeline"] == "default").all()  # column absent: default filled
    assert clean["currency"].eq("USD").all()
    assert pd.isna(clean["closed_at"].iloc[0])


def test_the_factory_company_is_valid() -> None:
    frames = small_company()
    seen: dict[str, set] = {}
    for name in ["accounts", "contacts", "stages", "campaigns", "channel_spend", "deals"]:
        res = validate(name, frames[name], known_keys=lambda e: seen.get(e, set()))
        assert res.ok, res.errors
        key = {"stages": ["pipeline", "stage"]}.get(name)
        col = res.clean.columns[0]
        seen[name] = set(map(tuple, res.clean[key].values)) if key else set(res.clean[col])


def test_missing_required_column_is_reported_once_and_rejects_every_row() -> None:
    df = deals_as_text().drop(columns=["owner", "created_at"])
    res = validate("deals", df, known_keys=known)
    assert [(e.row, e.field) for e in res.errors] == [(None, "owner"), (None, "created_at")]
    assert all("required column missing" in e.reason for e in res.errors)
    assert res.bad_rows == {1, 2, 3} and res.clean.empty


def test_unknown_column_is_reported() -> None:
    df = deals_as_text().assign(colour="red")
    e = one_error(validate("deals", df), "colour")
    assert e.row is None and "unknown column" in e.reason


def test_required_value_missing() -> None:
    df = deals_as_text()
    df.loc[1, "owner"] = None
    e = one_error(validate("deals", df), "owner")
    assert (e.row, e.reason) == (2, "required value missing")


def test_wrong_type_not_a_number() -> None:
    df = deals_as_text()
    df.loc[0, "amount"] = "12k"
    res = validate("deals", df)
    e = one_error(res, "amount")
    assert (e.row, e.reason, e.value) == (1, "not a number", "12k")
    assert res.bad_rows == {1} and list(res.clean["deal_id"]) == ["D2", "D3"]


def test_whole_number_column_rejects_fractions_and_text() -> None:
    df = pd.DataFrame(
        {
            "pipeline": ["p", "p", "p"],
            "stage": ["a", "b", "c"],
            "stage_order": ["1", "1.5", "two"],
            "probability": ["0.1", "0.2", "0.3"],
        }
    )
    res = validate("stages", df)
    assert [(e.row, e.field, e.reason) for e in res.errors] == [
        (2, "stage_order", "not a whole number"),
        (3, "stage_order", "not a whole number"),
    ]
    assert res.clean["stage_order"].dtype == "Int64"


def test_unparseable_date() -> None:
    df = deals_as_text()
    df.loc[2, "created_at"] = "last tuesday"
    e = one_error(validate("deals", df), "created_at")
    assert e.row == 3 and e.reason.startswith("unparseable date 'last tuesday'")


def test_impossible_date() -> None:
    df = deals_as_text()
    df.loc[0, "created_at"] = "2023-02-30"
    e = one_error(validate("deals", df), "created_at")
    assert e.row == 1 and "impossible date '2023-02-30'" in e.reason


def test_dates_before_1900_and_far_in_the_future() -> None:
    df = deals_as_text()
    df.loc[0, "created_at"] = "1899-12-31"
    df.loc[1, "closed_at"] = "2999-01-01"
    res = validate("deals", df)
    assert [(e.row, e.field) for e in res.errors] == [(1, "created_at"), (2, "closed_at")]
    assert "before 1900" in res.errors[0].reason
    assert "too far in the future" in res.errors[1].reason


def test_negative_amount() -> None:
    df = deals_as_text()
    df.loc[1, "amount"] = "-5"
    e = one_error(validate("deals", df), "amount")
    assert (e.row, e.value) == (2, "-5") and "negative" in e.reason


def test_value_above_maximum() -> None:
    df = deals_as_text().assign(probability_override=["0.5", "1.5", None])
    e = one_error(validate("deals", df), "probability_override")
    assert e.row == 2 and "<= 1" in e.reason


@pytest.mark.parametrize("field", ["status", "forecast_category"])
def test_value_not_among_choices(field: str) -> None:
    df = deals_as_text().assign(forecast_category=["pipeline", "commit", "closed"])
    df.loc[0, field] = "maybe"
    if field == "status":  # keep closed_at consistent so only the choice is wrong
        df.loc[0, "closed_at"] = None
    e = one_error(validate("deals", df), field)
    assert e.row == 1 and e.value == "maybe" and e.reason.startswith("must be one of")


def test_unknown_stage_and_unknown_pipeline() -> None:
    df = deals_as_text()
    df.loc[0, "stage"] = "Dreaming"
    df.loc[2, "pipeline"] = "other"
    res = validate("deals", df, known_keys=known)
    assert [(e.row, e.field) for e in res.errors] == [(1, "stage"), (3, "stage")]
    assert "unknown stage 'Dreaming' in pipeline 'default'" in res.errors[0].reason
    assert "Proposal" in res.errors[0].reason  # the known stages are listed
    assert "unknown pipeline 'other'" in res.errors[1].reason


def test_duplicate_ids_inside_the_batch() -> None:
    df = deals_as_text()
    df.loc[2, "deal_id"] = "D1"
    e = one_error(validate("deals", df), "deal_id")
    assert e.row == 3 and e.reason == "duplicate deal_id 'D1' (first on row 1)"


def test_duplicate_composite_key_inside_the_batch() -> None:
    df = pd.DataFrame(
        {"pipeline": ["p", "p"], "stage": ["a", "a"], "stage_order": [1, 2], "probability": [0, 1]}
    )
    e = one_error(validate("stages", df), "pipeline")
    assert e.row == 2 and "duplicate pipeline/stage ('p', 'a')" in e.reason


def test_duplicate_ids_against_the_store() -> None:
    df = deals_as_text()
    df.loc[1, "deal_id"] = "D0"
    e = one_error(validate("deals", df, known_keys=known), "deal_id")
    assert e.row == 2 and e.reason == "deal_id 'D0' already exists in deals"


@pytest.mark.parametrize(
    ("field", "value", "entity"),
    [("account_id", "A9", "accounts"), ("campaign_id", "K9", "campaigns")],
)
def test_reference_to_a_missing_row(field: str, value: str, entity: str) -> None:
    df = deals_as_text()
    df.loc[1, field] = value
    e = one_error(validate("deals", df, known_keys=known), field)
    assert (e.row, e.value) == (2, value)
    assert e.reason == f"{field} {value!r} not found in {entity}"


def test_order_referencing_a_missing_deal_and_account() -> None:
    df = pd.DataFrame(
        {
            "order_id": ["O1", "O2"],
            "account_id": ["A1", "A7"],
            "ordered_at": ["2024-01-01", "2024-01-02"],
            "amount": ["10", "20"],
            "deal_id": ["D404", None],
        }
    )
    res = validate("orders", df, known_keys=known)
    assert [(e.row, e.field) for e in res.errors] == [(1, "deal_id"), (2, "account_id")]
    assert res.errors[0].reason == "deal_id 'D404' not found in deals"


def test_references_are_not_checked_without_known_keys() -> None:
    df = deals_as_text()
    df.loc[0, "account_id"] = "A9"
    assert validate("deals", df).ok


def test_closed_at_required_for_won_and_lost_and_absent_for_open() -> None:
    df = deals_as_text()
    df.loc[0, "closed_at"] = "2024-05-01"  # open deal with a close date
    df.loc[1, "closed_at"] = None  # won deal without one
    res = validate("deals", df)
    assert [(e.row, e.field) for e in res.errors] == [(1, "closed_at"), (2, "closed_at")]
    assert "must be empty for open deals" in res.errors[0].reason
    assert "required for won and lost deals" in res.errors[1].reason


def test_invalid_json() -> None:
    df = pd.DataFrame({"name": ["a", "b"], "definition": ['{"x": 1}', "{oops"]})
    e = one_error(validate("segment_definitions", df), "definition")
    assert e.row == 2 and e.reason == "not valid JSON"


def test_row_numbers_are_reported_as_given() -> None:
    df = deals_as_text()
    df.loc[1, "amount"] = "x"
    res = validate("deals", df, row_numbers=[10, 11, 12])
    assert res.errors[0].row == 11 and res.bad_rows == {11}


def test_several_errors_in_one_row_are_all_reported() -> None:
    df = deals_as_text()
    df.loc[0, "amount"] = "-1"
    df.loc[0, "created_at"] = "soon"
    res = validate("deals", df)
    assert [(e.row, e.field) for e in res.errors] == [(1, "amount"), (1, "created_at")]
    assert res.bad_rows == {1}


def test_partial_validates_only_present_columns() -> None:
    edit = pd.DataFrame({"deal_id": ["D1"], "amount": ["-3"]})
    res = validate("deals", edit, partial=True)
    e = one_error(res, "amount")
    assert e.row == 1
    ok = validate("deals", pd.DataFrame({"deal_id": ["D1"], "amount": ["7"]}), partial=True)
    assert ok.ok and list(ok.clean.columns) == ["deal_id", "amount"]


def test_whitespace_counts_as_missing_in_typed_columns() -> None:
    df = deals_as_text()
    df.loc[0, "created_at"] = "   "
    df.loc[1, "amount"] = " "
    res = validate("deals", df)
    assert [(e.row, e.field, e.reason) for e in res.errors] == [
        (1, "created_at", "required value missing")
    ]
    assert np.isnan(res.clean["amount"].iloc[0])  # D2's blank amount is simply missing


def test_whole_float_ids_lose_their_decimal_point() -> None:
    df = pd.DataFrame(
        {"account_id": [1001.0, 1002.0], "name": ["a", "b"], "created_at": ["2024-01-01"] * 2}
    )
    res = validate("accounts", df)
    assert res.ok and list(res.clean["account_id"]) == ["1001", "1002"]


def test_bookkeeping_columns_are_ignored() -> None:
    df = deals_as_text().assign(row_version=1, updated_at="2024-01-01")
    assert validate("deals", df).ok


def test_unknown_entity() -> None:
    with pytest.raises(NotFoundError, match="unknown entity 'dealz'"):
        validate("dealz", deals_as_text())


def test_a_million_rows_take_seconds_not_minutes() -> None:
    """Vectorised checks: 200k orders validate with one bad row found (no time limit asserted)."""
    n = 200_000
    df = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(1, n + 1)],
            "account_id": np.where(np.arange(n) % 2 == 0, "A1", "A2"),
            "ordered_at": "2024-01-01",
            "amount": "10.0",
        }
    ).astype("str")
    df.loc[n - 1, "amount"] = "-1"
    res = validate("orders", df, known_keys=known)
    assert [(e.row, e.field) for e in res.errors] == [(n, "amount")]
    assert len(res.clean) == n - 1


def test_choices_ignore_case_and_spaces() -> None:
    df = deals_as_text().assign(forecast_category=["Best Case", "closed", "CLOSED"])
    df.loc[1, "status"] = " Won"
    res = validate("deals", df)
    assert res.ok, res.errors
    assert list(res.clean["forecast_category"]) == ["best_case", "closed", "closed"]
    assert res.clean["status"].iloc[1] == "won"


def test_deal_closed_before_it_was_created_is_impossible() -> None:
    deals = small_company()["deals"]
    deals.loc[1, "closed_at"] = pd.Timestamp("2023-12-31")
    result = validate("deals", deals)
    assert [(e.row, e.field) for e in result.errors] == [(2, "closed_at")]
    assert "before created_at" in result.errors[0].reason


def test_campaign_ending_before_it_starts_is_impossible() -> None:
    campaigns = small_company()["campaigns"]
    campaigns.loc[0, "end_date"] = pd.Timestamp("2024-02-01")
    result = validate("campaigns", campaigns)
    assert [(e.row, e.field) for e in result.errors] == [(1, "end_date")]


# ---------------------------------------------------------------------- nothing silently wrong
def test_money_amount_above_max_amount_is_refused() -> None:
    df = deals_as_text()
    df.loc[1, "amount"] = "1e308"
    e = one_error(validate("deals", df), "amount")
    assert (e.row, e.value) == (2, "1e308")
    assert f"above the maximum {MAX_AMOUNT:,.0f}" in e.reason


def test_max_amount_is_configurable_and_bounds_every_money_column() -> None:
    df = deals_as_text()
    assert validate("deals", df, max_amount=None).ok
    e = one_error(validate("deals", df, max_amount=1000), "amount")
    assert (e.row, e.value) == (1, "1200.50")
    spend = pd.DataFrame({"channel": ["x"], "week_start": ["2024-01-01"], "spend": ["2e12"]})
    assert one_error(validate("channel_spend", spend), "spend").row == 1
    assert set(MONEY_COLUMNS) == {
        "deals",
        "orders",
        "campaigns",
        "channel_spend",
        "quotas",
        "forecast_calls",
    }


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "Infinity", "1e400"])
@pytest.mark.parametrize(("entity", "field"), [("deals", "amount"), ("stages", "probability")])
def test_non_finite_numbers_are_refused_in_every_number_column(
    value: str, entity: str, field: str
) -> None:
    if entity == "deals":
        df = deals_as_text()
        df.loc[0, field] = value
    else:
        df = pd.DataFrame(
            {"pipeline": ["p"], "stage": ["a"], "stage_order": ["1"], "probability": [value]}
        )
    e = one_error(validate(entity, df), field)
    assert (e.row, e.reason, e.value) == (1, "not a finite number", value)


def test_whole_number_beyond_64_bits_is_out_of_range_not_negative() -> None:
    df = pd.DataFrame(
        {"pipeline": ["p"], "stage": ["a"], "stage_order": ["1e20"], "probability": ["0.1"]}
    )
    e = one_error(validate("stages", df), "stage_order")
    assert e.reason == "whole number out of range (beyond 64 bits)"


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f", "\x9b"])
def test_control_characters_in_text_are_refused(char: str) -> None:
    df = deals_as_text()
    df.loc[2, "owner"] = f"an{char}n"
    e = one_error(validate("deals", df), "owner")
    assert (e.row, e.value) == (3, f"an{char}n")
    assert f"({char!r} at position 3)" in e.reason


def test_tabs_and_line_breaks_in_text_are_allowed() -> None:
    df = deals_as_text().assign(name=["a\tb", "c\r\nd", "e\nf"])
    assert validate("deals", df).ok


@pytest.mark.parametrize("value", ["1234,56", "1.234,56", "-0,5"])
def test_decimal_comma_is_named_with_the_options_to_read_it(value: str) -> None:
    df = deals_as_text()
    df.loc[0, "amount"] = value
    e = one_error(validate("deals", df), "amount")
    assert "looks like a decimal comma; use --decimal , --thousands ." in e.reason


def test_comma_thousands_are_named_as_ambiguous() -> None:
    df = deals_as_text()
    df.loc[0, "amount"] = "1,234"
    e = one_error(validate("deals", df), "amount")
    assert "thousands separator" in e.reason and "decimal comma" in e.reason


def test_decimal_and_thousands_settings_read_strictly() -> None:
    df = deals_as_text()
    df["amount"] = ["1.234,5", "12", "1234.5"]
    res = validate("deals", df, decimal=",", thousands=".")
    assert [(e.row, e.field, e.value) for e in res.errors] == [(3, "amount", "1234.5")]
    assert list(res.clean["amount"]) == [1234.5, 12.0]
    df["amount"] = ["1,234.5", "1,23", None]
    res = validate("deals", df, thousands=",")
    assert [(e.row, e.value) for e in res.errors] == [(2, "1,23")]
    assert res.clean["amount"].iloc[0] == 1234.5
    with pytest.raises(ValueError, match="decimal and thousands are both"):
        validate("deals", df, decimal=",", thousands=",")


def test_ids_differing_only_by_case_warn_or_are_refused() -> None:
    df = deals_as_text()
    df.loc[1, "deal_id"] = "d0"  # stored as D0
    df.loc[2, "deal_id"] = "d1"  # D1 on row 1
    assert validate("deals", df, known_keys=known).warnings == []  # ignored by default
    res = validate("deals", df, known_keys=known, case_ids="warn")
    assert res.ok and len(res.clean) == 3
    assert [(w.row, w.field, w.value) for w in res.warnings] == [
        (2, "deal_id", "d0"),
        (3, "deal_id", "d1"),
    ]
    assert "differs only by case from 'D0' already in deals" in res.warnings[0].reason
    assert "differs only by case from 'D1' on row 1" in res.warnings[1].reason
    refused = validate("deals", df, known_keys=known, case_ids="refuse")
    assert [(e.row, e.field) for e in refused.errors] == [(2, "deal_id"), (3, "deal_id")]
    assert all("likely duplicate" in e.reason for e in refused.errors)


def test_dates_more_than_max_days_ahead_are_refused() -> None:
    today = pd.Timestamp.now().normalize()
    df = deals_as_text()
    df.loc[0, "created_at"] = (today + pd.Timedelta(days=366)).strftime("%Y-%m-%d")
    df.loc[1, "created_at"] = (today + pd.Timedelta(days=367)).strftime("%Y-%m-%d")
    df.loc[1, "closed_at"] = df.loc[1, "created_at"]
    assert validate("deals", df).ok  # other writes keep the 50-year typo bound only
    res = validate("deals", df, max_days_ahead=MAX_DAYS_AHEAD)
    assert [(e.row, e.field) for e in res.errors] == [(2, "created_at"), (2, "closed_at")]
    assert "more than 366 days after today" in res.errors[0].reason


def _orders_known(stored_orders: set, accounts: set):
    """known_keys for orders: the stored order ids and account ids given."""
    sets = {"orders": stored_orders, "accounts": accounts, "deals": set()}
    return lambda name: sets.get(name, set())


def _orders(ids: list[str], account: str = "A1") -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "order_id": pd.Series(ids, dtype="str"),
            "account_id": pd.Series([account] * n, dtype="str"),
            "ordered_at": ["2024-01-02 10:00:00"] * n,
            "amount": ["10.5"] * n,
        }
    )


@pytest.mark.parametrize("extra", [None, 12345], ids=["text-ids", "a-non-text-stored-id"])
def test_case_ids_against_many_stored_ids_name_the_first_stored_spelling(extra) -> None:
    stored = {f"O{i}" for i in range(200_000)} | {"Ab1"}
    if extra is not None:
        stored.add(extra)
    known_fn = _orders_known(stored, {"A1"})
    df = _orders(["ab1", "O5", "o7", "new1", "NEW1"])
    res = validate("orders", df, known_keys=known_fn, case_ids="warn")
    assert [(e.row, e.field) for e in res.errors] == [(2, "order_id")]  # O5 is stored
    assert "already exists in orders" in res.errors[0].reason
    assert [(w.row, w.value) for w in res.warnings] == [(1, "ab1"), (3, "o7"), (5, "NEW1")]
    assert "from 'Ab1' already in orders" in res.warnings[0].reason
    assert "from 'O7' already in orders" in res.warnings[1].reason
    assert "from 'new1' on row 4" in res.warnings[2].reason
    refused = validate("orders", df, known_keys=known_fn, case_ids="refuse")
    assert [e.row for e in refused.errors] == [1, 2, 3, 5]
    assert list(refused.clean["order_id"]) == ["new1"]


def test_references_to_stored_ids_of_mixed_types_match_exactly() -> None:
    df = _orders(["X1", "X2", "X3"])
    df["account_id"] = pd.Series(["A1", "7", "a1"], dtype="str")
    for accounts in ({"A1", "B2"}, {"A1", 7, "B2"}):  # text ids; an int among them
        res = validate("orders", df, known_keys=_orders_known(set(), accounts))
        assert [(e.row, e.field) for e in res.errors] == [(2, "account_id"), (3, "account_id")]
        assert "account_id '7' not found in accounts" in res.errors[0].reason
