"""Frames to database rows and back: missing values, date text, dtypes, history text."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crmkit.store.frames import (
    to_copy_text,
    to_records,
    to_sqlite_rows,
    typed_frame,
    value_to_text,
)
from crmkit.store.schema import entity

DEALS = entity("deals")


def _deals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal_id": ["D1", "D2"],
            "amount": [1200.5, np.nan],
            "created_at": [pd.Timestamp("2024-01-05 09:30"), pd.Timestamp("2024-02-01")],
            "expected_close_date": pd.to_datetime(["2024-03-31", None]),
            "stage": ["Qualify", None],
        }
    )


def test_records_are_plain_python_with_none_for_missing() -> None:
    rows = to_records(DEALS, _deals())
    assert rows[0] == {
        "deal_id": "D1",
        "stage": "Qualify",
        "amount": 1200.5,
        "created_at": dt.datetime(2024, 1, 5, 9, 30),
        "expected_close_date": dt.date(2024, 3, 31),
    }
    assert rows[1]["amount"] is None and rows[1]["stage"] is None
    assert rows[1]["expected_close_date"] is None
    order = pd.DataFrame({"stage_order": [1.0, None]})
    stages = to_records(entity("stages"), order, as_columns=True)
    assert stages == {"stage_order": [1, None]}


def test_sqlite_rows_write_dates_as_sqlalchemy_text() -> None:
    names, rows = to_sqlite_rows(DEALS, _deals())
    assert names == ["deal_id", "stage", "amount", "created_at", "expected_close_date"]
    assert rows[0] == ("D1", "Qualify", 1200.5, "2024-01-05 09:30:00.000000", "2024-03-31")
    assert rows[1] == ("D2", None, None, "2024-02-01 00:00:00.000000", None)


def test_typed_frame_gives_schema_dtypes_and_order() -> None:
    raw = pd.DataFrame(
        {
            "extra": [1, 2],
            "amount": ["10.5", None],
            "deal_id": ["D1", np.nan],
            "created_at": ["2024-01-05 09:30:00.000000", "2024-02-01 00:00:00.000000"],
            "row_version": ["1", "2"],
        }
    )
    df = typed_frame(DEALS, raw)
    assert list(df.columns) == ["deal_id", "amount", "created_at", "extra", "row_version"]
    assert df["amount"].dtype == "float64" and np.isnan(df["amount"].iloc[1])
    assert df["created_at"].iloc[0] == pd.Timestamp("2024-01-05 09:30")
    assert df["deal_id"].tolist() == ["D1", None]
    assert df["row_version"].dtype == "int64"


def test_value_to_text_for_the_deal_history() -> None:
    assert value_to_text(None) is None and value_to_text(float("nan")) is None
    assert value_to_text(pd.NaT) is None
    assert value_to_text(pd.Timestamp("2024-03-01")) == "2024-03-01"
    assert value_to_text(pd.Timestamp("2024-03-01 12:30")) == "2024-03-01T12:30:00"
    assert value_to_text(dt.date(2024, 3, 1)) == "2024-03-01"
    assert value_to_text(np.float64(0.1)) == "0.1"
    assert value_to_text(3) == "3" and value_to_text("Won") == "Won"


def test_copy_text_escapes_text_and_writes_missing_as_backslash_n() -> None:
    df = _deals()
    df.loc[0, "stage"] = "a\\b\tc\nd\re"
    df["amount"] = [0.1 + 0.2, np.nan]
    names, text = to_copy_text(DEALS, df)
    assert names == ["deal_id", "stage", "amount", "created_at", "expected_close_date"]
    assert text == (
        "D1\ta\\\\b\\tc\\nd\\re\t0.30000000000000004\t2024-01-05T09:30:00.000000\t2024-03-31\n"
        "D2\t\\N\t\\N\t2024-02-01T00:00:00.000000\t\\N\n"
    )
    ints = to_copy_text(entity("stages"), pd.DataFrame({"stage_order": [1.0, None, 2**40]}))
    assert ints == (["stage_order"], "1\n\\N\n1099511627776\n")


def test_copy_text_refuses_a_blob_column() -> None:
    from crmkit.store.schema import Column, Entity

    spec = Entity("files", (Column("data", "blob"),), key=("data",))
    with pytest.raises(ValueError, match="kind 'blob' cannot be written as text"):
        to_copy_text(spec, pd.DataFrame({"data": [b"x"]}))
