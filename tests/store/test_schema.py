"""The declarative schema: forecast categories and their labels, quotas and forecast calls."""

from __future__ import annotations

from crmkit.store.migrate import head_revision
from crmkit.store.schema import (
    CATEGORY_LABELS,
    DEAL_TRACKED_FIELDS,
    FORECAST_CATEGORIES,
    LOAD_ORDER,
    SCHEMA_VERSION,
    TABLES,
    entity,
)


def test_forecast_categories_are_stored_lowercase_with_a_display_label_each() -> None:
    assert FORECAST_CATEGORIES == ("pipeline", "best_case", "commit", "closed", "omitted")
    assert set(CATEGORY_LABELS) == set(FORECAST_CATEGORIES)
    assert CATEGORY_LABELS["best_case"] == "Best Case"
    assert all(c == c.lower() for c in FORECAST_CATEGORIES)
    assert entity("deals").column("forecast_category").choices == FORECAST_CATEGORIES


def test_forecast_category_is_a_tracked_deal_field() -> None:
    assert "forecast_category" in DEAL_TRACKED_FIELDS
    assert entity("deal_history").column("field").choices == DEAL_TRACKED_FIELDS


def test_quotas_entity_is_keyed_by_scope_name_period_and_start_and_versioned() -> None:
    q = entity("quotas")
    assert q.key == ("scope", "name", "period", "period_start")
    assert q.versioned and q.importable
    assert q.column("scope").choices == ("owner", "team", "company")
    assert q.column("period").choices == ("M", "Q")
    assert q.column("period_start").kind == "date"
    assert q.column("amount").min_value == 0.0 and q.column("amount").required
    assert {"row_version", "updated_at"} <= set(TABLES["quotas"].c.keys())


def test_forecast_calls_entity_is_append_only_rows_with_author_and_time() -> None:
    c = entity("forecast_calls")
    assert c.key == ("call_id",) and c.column("call_id").autoincrement
    assert c.column_names == [
        "call_id",
        "scope",
        "name",
        "period",
        "period_start",
        "amount",
        "author",
        "note",
        "created_at",
    ]
    assert set(c.required) == {
        "scope",
        "name",
        "period",
        "period_start",
        "amount",
        "author",
        "created_at",
    }
    assert not c.versioned


def test_new_tables_load_after_the_referencing_entities_and_schema_is_at_head() -> None:
    assert "quotas" not in LOAD_ORDER and "forecast_calls" not in LOAD_ORDER
    assert not any(col.references for col in entity("quotas").columns)
    assert not any(col.references for col in entity("forecast_calls").columns)
    assert SCHEMA_VERSION == head_revision() == "0005"
