"""Rule segments: validation errors, evaluation on hand-made customers, JSON round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import ValidationError
from crmkit.segments import RULE_FIELDS, RuleSegment, evaluate_rule, validate_rule
from crmkit.segments.rules import rule_errors


def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5"],
            "industry": ["Retail", "Retail", "Energy", None, "Retail Banking"],
            "country": ["DE", "US", "DE", "FR", "DE"],
            "revenue": [1500.0, 800.0, 5000.0, 1200.0, np.nan],
            "n_orders": [3, 1, 7, 2, 0],
            "created_at": pd.to_datetime(
                ["2024-01-05", "2024-02-10", "2023-11-01", "2024-03-01", "2024-06-30"]
            ),
        }
    )


def selected(rule: dict) -> list[str]:
    df = customers()
    return df.loc[evaluate_rule(rule, df).to_numpy(), "account_id"].tolist()


def cond(field: str, op: str, value: object = None) -> dict:
    return {"field": field, "op": op, "value": value}


def test_brief_example_all() -> None:
    rule = {"all": [cond("industry", "==", "Retail"), cond("revenue", ">=", 1000)]}
    assert selected(rule) == ["A1"]


@pytest.mark.parametrize(
    ("rule", "ids"),
    [
        (cond("industry", "!=", "Retail"), ["A3", "A5"]),  # missing industry never matches
        ({"not": cond("industry", "==", "Retail")}, ["A3", "A4", "A5"]),
        (cond("revenue", "<", 1200), ["A2"]),
        (cond("revenue", "<=", 1200), ["A2", "A4"]),
        (cond("n_orders", ">", 2), ["A1", "A3"]),
        (cond("country", "in", ["FR", "US"]), ["A2", "A4"]),
        (cond("country", "not_in", ["DE"]), ["A2", "A4"]),
        (cond("revenue", "between", [800, 1500]), ["A1", "A2", "A4"]),
        (cond("industry", "contains", "Bank"), ["A5"]),
        (cond("industry", "starts_with", "Retail"), ["A1", "A2", "A5"]),
        (cond("industry", "is_null"), ["A4"]),
        ({"field": "revenue", "op": "not_null"}, ["A1", "A2", "A3", "A4"]),
        (cond("created_at", ">=", "2024-02-10"), ["A2", "A4", "A5"]),
        (cond("created_at", "between", ["2024-01-01", "2024-03-01"]), ["A1", "A2", "A4"]),
        (
            {
                "any": [
                    cond("country", "==", "FR"),
                    {"all": [cond("country", "==", "DE"), cond("n_orders", ">=", 7)]},
                ]
            },
            ["A3", "A4"],
        ),
    ],
)
def test_operators(rule: dict, ids: list[str]) -> None:
    validate_rule(rule)  # every example is also valid against the store's fields
    assert selected(rule) == ids


def errors_of(rule: object, fields: dict | None = None) -> list[tuple]:
    return [(e.row, e.field) for e in rule_errors(rule, fields)]


def test_unknown_field_and_op_are_named() -> None:
    rule = {"all": [cond("industri", "==", "Retail"), cond("revenue", "=~", 3)]}
    with pytest.raises(ValidationError) as err:
        validate_rule(rule)
    msg = str(err.value)
    assert "'industri'" in msg and "unknown field" in msg
    assert "'=~'" in msg and "unknown op" in msg
    assert [(e.row, e.field) for e in err.value.errors] == [(1, "industri"), (2, "revenue")]
    assert err.value.errors[1].value == "=~"


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (cond("revenue", ">=", "lots"), "needs a number"),
        (cond("revenue", ">=", True), "needs a number"),
        (cond("industry", "==", 3), "needs text"),
        (cond("created_at", ">", "last year"), "not a date"),
        (cond("country", "in", "DE"), "non-empty list"),
        (cond("country", "in", []), "non-empty list"),
        (cond("revenue", "between", [1]), "[low, high]"),
        (cond("revenue", "contains", "1"), "text field"),
        (cond("industry", "is_null", "x"), "takes no value"),
        (cond("revenue", ">=", None), "value is missing"),
        ({"field": "revenue"}, "needs 'field' and 'op'"),
        ({"field": "revenue", "op": "==", "value": 1, "values": 2}, "unknown key"),
        ({"all": []}, "non-empty list"),
        ({"all": [cond("revenue", ">", 1)], "any": []}, "exactly one key"),
        ({"not": "revenue > 1"}, "must be an object"),
    ],
)
def test_bad_rules(rule: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match="segment rule") as err:
        validate_rule(rule)
    assert any(reason in e.reason for e in err.value.errors), err.value.errors


def test_nested_conditions_are_numbered_depth_first() -> None:
    rule = {
        "any": [
            cond("revenue", ">", 1),
            {"not": {"all": [cond("country", "==", "DE"), cond("nope", "==", 1)]}},
        ]
    }
    assert errors_of(rule) == [(3, "nope")]


def test_evaluation_checks_the_frame_columns() -> None:
    # r_score is a known store field but absent from this frame
    assert "r_score" in RULE_FIELDS
    with pytest.raises(ValidationError, match="r_score"):
        evaluate_rule(cond("r_score", ">=", 4), customers())
    # types come from the frame: n_orders is numeric here
    with pytest.raises(ValidationError, match="needs a number"):
        evaluate_rule(cond("n_orders", "==", "3"), customers())
    validate_rule(cond("x", "==", "a"), fields=["x"])  # a plain list of names


def test_rule_segment_json_round_trip() -> None:
    seg = RuleSegment(
        "retail-big",
        {
            "all": [
                cond("industry", "==", "Retail"),
                cond("revenue", "between", [np.int64(1000), 2e3]),
            ]
        },
        "Retail accounts with 1-2k revenue",
    ).validate()
    text = seg.to_json()
    back = RuleSegment.from_json(seg.name, text, seg.description)
    assert back.rule == {
        "all": [cond("industry", "==", "Retail"), cond("revenue", "between", [1000, 2000.0])]
    }
    assert back.select(customers())["account_id"].tolist() == ["A1"]
    assert back.mask(customers()).tolist() == [True, False, False, False, False]


def test_rule_segment_needs_a_name() -> None:
    with pytest.raises(ValidationError, match="name"):
        RuleSegment(" ", cond("revenue", ">", 1)).validate()
