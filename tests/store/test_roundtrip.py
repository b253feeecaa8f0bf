"""Property-based round trips: any valid rows of any entity come back from the store unchanged."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.store import Store
from crmkit.store.schema import ENTITIES, LOAD_ORDER, TABLES, Column
from tests.factories import small_company

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
ROUNDTRIP = [
    "accounts",
    "contacts",
    "stages",
    "campaigns",
    "channel_spend",
    "deals",
    "activities",
    "orders",
    "segment_definitions",
]


def value_strategy(col: Column, parents: dict[str, list]) -> st.SearchStrategy:
    if col.references:
        choices = parents[col.references.split(".")[0]]
        s = st.sampled_from(choices)
        return s if col.required else st.one_of(st.none(), s)
    if col.choices:
        s = st.sampled_from(col.choices)
    elif col.name == "currency":
        # ISO codes; a deal's must be the reporting currency (USD) or have an exchange rate
        s = st.from_regex(r"[A-Z]{3}", fullmatch=True) if col.required else st.just("USD")
    elif col.kind == "float":
        lo = col.min_value if col.min_value is not None else -1e9
        hi = col.max_value if col.max_value is not None else 1e9
        s = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    elif col.kind == "int":
        s = st.integers(int(col.min_value or 0), 10_000)
    elif col.kind == "datetime":
        s = st.datetimes(dt.datetime(1995, 1, 1), dt.datetime(2030, 12, 31)).map(
            lambda d: d.replace(microsecond=0)
        )
    elif col.kind == "date":
        s = st.dates(dt.date(1995, 1, 1), dt.date(2030, 12, 31))
    elif col.kind == "json":
        s = st.dictionaries(st.sampled_from(["field", "op", "value"]), TEXT, max_size=3).map(
            lambda d: __import__("json").dumps(d)
        )
    else:
        s = TEXT
    return s if col.required or col.primary_key else st.one_of(st.none(), s)


@st.composite
def rows_of(draw, name: str, parents: dict[str, list]) -> pd.DataFrame:
    spec = ENTITIES[name]
    n = draw(st.integers(1, 5))
    keys = draw(
        st.lists(
            st.tuples(*[value_strategy(spec.column(k), {}) for k in spec.key]),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    rows = []
    for key in keys:
        row = dict(zip(spec.key, key, strict=True))
        for col in spec.columns:
            if col.name not in row:
                row[col.name] = draw(value_strategy(col, parents))
        if name == "deals":
            row["pipeline"], row["stage"] = draw(st.sampled_from(parents["stages"]))
            if row["status"] == "open":
                row["closed_at"] = None
            elif row["closed_at"] is None or row["closed_at"] < row["created_at"]:
                row["closed_at"] = row["created_at"]
        if name == "campaigns" and row["end_date"] is not None:
            row["end_date"] = max(row["end_date"], row["start_date"])
        rows.append(row)
    return pd.DataFrame(rows, columns=spec.column_names)


def normalise(df: pd.DataFrame, name: str) -> list[tuple]:
    spec = ENTITIES[name]
    out = df[spec.column_names].copy()
    for col in spec.columns:
        if col.kind in ("date", "datetime"):
            out[col.name] = pd.to_datetime(out[col.name])
    out = out.sort_values(list(spec.key)).reset_index(drop=True)
    return [tuple(None if pd.isna(v) else v for v in row) for row in out.itertuples(index=False)]


@pytest.mark.parametrize("name", ROUNDTRIP)
def test_any_valid_rows_round_trip(store: Store, name: str) -> None:
    base = small_company()
    store.insert_many(base)
    parents = {
        "accounts": base["accounts"]["account_id"].tolist(),
        "deals": base["deals"]["deal_id"].tolist(),
        "campaigns": base["campaigns"]["campaign_id"].tolist(),
        "stages": list(zip(base["stages"]["pipeline"], base["stages"]["stage"], strict=True)),
    }

    dependants = {name}
    while True:
        more = {c for c in ENTITIES if any(_depends(c, p) for p in dependants)} - dependants
        if not more:
            break
        dependants |= more

    @settings(
        max_examples=15 if store.dialect == "sqlite" else 8,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(rows_of(name, parents))
    def check(df: pd.DataFrame) -> None:
        with store.transaction() as conn:  # remove this entity and all that refers to it
            for dep in reversed(LOAD_ORDER):
                if dep in dependants:
                    conn.execute(sa.delete(TABLES[dep]))
        store.insert(name, df)
        expected = df.copy()
        for col in ENTITIES[name].columns:  # a missing required value takes its default
            if col.default is not None and col.required:
                expected[col.name] = (
                    expected[col.name].astype(object).where(expected[col.name].notna(), col.default)
                )
        assert normalise(store.read(name), name) == normalise(expected, name)

    check()


def _depends(child: str, parent: str) -> bool:
    return any(
        c.references and c.references.startswith(parent + ".") for c in ENTITIES[child].columns
    )
