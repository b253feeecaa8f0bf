"""Saved rule segments, bulk segment assignment and the customer table, against a real store."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.errors import NotFoundError, ValidationError
from crmkit.segments import (
    RuleSegment,
    assign_segment,
    customer_table,
    delete_segment,
    evaluate_rule,
    list_segments,
    load_segment,
    save_segment,
)
from crmkit.store import Store
from tests.factories import small_company

RETAIL_BIG = {
    "all": [
        {"field": "industry", "op": "==", "value": "Retail"},
        {"field": "revenue", "op": ">=", "value": 100},
    ]
}


def test_save_load_list_round_trip(store: Store) -> None:
    saved = save_segment(store, "retail-big", RETAIL_BIG, "Retail with revenue >= 100")
    assert isinstance(saved, RuleSegment)
    save_segment(store, "energy", {"field": "industry", "op": "==", "value": "Energy"})
    back = load_segment(store, "retail-big")
    assert back.rule == RETAIL_BIG
    assert back.description == "Retail with revenue >= 100"
    assert back.kind == "rule"
    listing = list_segments(store)
    assert listing["name"].tolist() == ["energy", "retail-big"]
    assert listing["created_at"].notna().all()
    # saving again under the same name replaces the definition
    save_segment(store, "energy", {"field": "industry", "op": "in", "value": ["Energy", "Oil"]})
    assert load_segment(store, "energy").rule["op"] == "in"
    assert len(list_segments(store)) == 2
    assert delete_segment(store, "energy") is True
    assert delete_segment(store, "energy") is False
    assert list_segments(store)["name"].tolist() == ["retail-big"]


def test_invalid_rule_is_not_saved(mem_store: Store) -> None:
    with pytest.raises(ValidationError, match="industri"):
        save_segment(mem_store, "typo", {"field": "industri", "op": "==", "value": "Retail"})
    assert mem_store.count("segment_definitions") == 0


def test_load_missing_segment_names_the_saved_ones(mem_store: Store) -> None:
    save_segment(mem_store, "energy", {"field": "industry", "op": "==", "value": "Energy"})
    with pytest.raises(NotFoundError, match=r"'nope'.*energy"):
        load_segment(mem_store, "nope")


def test_save_accepts_a_rule_segment(mem_store: Store) -> None:
    seg = RuleSegment("de", {"field": "country", "op": "==", "value": "DE"}, "German accounts")
    save_segment(mem_store, seg.name, seg)
    assert load_segment(mem_store, "de").description == "German accounts"


def test_assign_segment_in_bulk(store: Store) -> None:
    store.insert_many(small_company())
    before = store.read("accounts").set_index("account_id")
    n = assign_segment(store, ["A1", "A3", "A1"], "VIP", changed_by="ann")
    assert n == 2
    after = store.read("accounts").set_index("account_id")
    assert after["segment"].to_dict() == {"A1": "VIP", "A2": "Enterprise", "A3": "VIP"}
    assert (
        after.loc[["A1", "A3"], "row_version"] == before.loc[["A1", "A3"], "row_version"] + 1
    ).all()
    assert after.loc["A2", "row_version"] == before.loc["A2", "row_version"]
    assert assign_segment(store, ["A1"], None) == 1
    assert store.read("accounts", where={"account_id": "A1"})["segment"].iloc[0] is None
    assert assign_segment(store, [], "VIP") == 0


def test_assign_to_unknown_account_changes_nothing(company: Store) -> None:
    with pytest.raises(ValidationError, match="A9"):
        assign_segment(company, ["A1", "A9"], "VIP")
    assert company.read("accounts")["segment"].tolist() == ["SMB", "Enterprise", None]
    with pytest.raises(ValidationError, match="segment"):
        assign_segment(company, ["A1"], "  ")


def test_customer_table(company: Store) -> None:
    table = customer_table(company).set_index("account_id")
    assert table.index.tolist() == ["A1", "A2", "A3"]
    # A1: two orders on 10 Jan (150) and one on 7 Feb (80); A2: 20 Apr and 4 May; A3: none
    assert table["revenue"].to_dict() == {"A1": 230.0, "A2": 50700.0, "A3": 0.0}
    assert table["purchases"].to_dict() == {"A1": 2, "A2": 2, "A3": 0}
    assert table["n_orders"].to_dict() == {"A1": 3, "A2": 2, "A3": 0}
    # cut-off = last order day 2024-05-04; 7 Feb -> 4 May is 87 days (leap year)
    assert table.loc["A1", "recency_days"] == 87 and table.loc["A2", "recency_days"] == 0
    assert pd.isna(table.loc["A3", "r_score"]) and pd.isna(table.loc["A3", "rfm_segment"])
    assert table.loc["A2", "r_score"] > table.loc["A1", "r_score"]
    assert table.loc["A1", "industry"] == "Retail"
    # the frame saved rules are evaluated on
    picked = evaluate_rule(RETAIL_BIG, table.reset_index())
    assert picked.tolist() == [True, False, False]


def test_customer_table_without_orders(mem_store: Store) -> None:
    mem_store.insert("accounts", small_company()["accounts"])
    table = customer_table(mem_store)
    assert table["revenue"].tolist() == [0.0, 0.0, 0.0]
    assert table["rfm_segment"].isna().all()
    with Store.open("sqlite://") as other:  # same columns as with orders
        other.insert_many(small_company())
        assert table.columns.tolist() == customer_table(other).columns.tolist()
    assert customer_table(mem_store, with_rfm=False).columns[-1] == "revenue"
