"""Segment size, revenue share and trend, against hand-computed totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import ValidationError
from crmkit.segments import segment_labels, segment_summary, segment_trend


def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d", "e"], "revenue": [100.0, 50.0, 250.0, 100.0, 1000.0]}
    )


def labels() -> pd.Series:
    # e is not assigned (left out); f is assigned but never bought (zero revenue)
    return pd.Series({"a": "X", "b": "X", "c": "Y", "d": None, "f": "Y"})


def orders(extra: list[tuple] | None = None) -> pd.DataFrame:
    rows = [
        ("a", "2024-01-10", 100.0),
        ("c", "2024-02-03", 50.0),
        ("c", "2024-03-05", 200.0),
        ("b", "2024-03-31", 50.0),
        ("e", "2024-03-15", 1000.0),
    ] + (extra or [])
    df = pd.DataFrame(rows, columns=["account_id", "ordered_at", "amount"])
    df["ordered_at"] = pd.to_datetime(df["ordered_at"])
    return df


def test_sizes_and_shares() -> None:
    out = segment_summary(labels(), summary()).set_index("segment")
    # assigned revenue: X 150, Y 250 (+0 for f), (none) 100 -> total 500
    assert out.index.tolist() == ["Y", "X", "(none)"]  # by revenue
    assert out["customers"].to_dict() == {"Y": 2, "X": 2, "(none)": 1}
    assert out["revenue"].to_dict() == {"Y": 250.0, "X": 150.0, "(none)": 100.0}
    assert out["revenue_share"].to_dict() == pytest.approx({"Y": 0.5, "X": 0.3, "(none)": 0.2})
    assert out["customer_share"].to_dict() == pytest.approx({"Y": 0.4, "X": 0.4, "(none)": 0.2})
    assert out["revenue_per_customer"].to_dict() == {"Y": 125.0, "X": 75.0, "(none)": 100.0}


def test_categorical_labels_keep_rule_order_and_empty_segments() -> None:
    lab = pd.Series(
        pd.Categorical(["X", "X", "Y"], categories=["Y", "Empty", "X"]), index=["a", "b", "c"]
    )
    out = segment_summary(lab, summary())
    assert out["segment"].tolist() == ["Y", "Empty", "X"]
    assert out["customers"].tolist() == [1, 0, 2]
    assert np.isnan(out["revenue_per_customer"].iloc[1])


def test_frames_are_accepted() -> None:
    frame = pd.DataFrame(
        {"customer_id": ["a", "c"], "segment": ["S", "T"], "rfm_segment": ["R", "R"]}
    )
    assert segment_summary(frame, summary())["segment"].tolist() == ["T", "S"]
    by_rfm = segment_summary(frame, summary(), column="rfm_segment")
    assert by_rfm[["segment", "customers", "revenue"]].values.tolist() == [["R", 2, 350.0]]
    with pytest.raises(ValidationError, match="customer_id"):
        segment_labels(frame.drop(columns="customer_id"))
    with pytest.raises(ValidationError, match="tier"):
        segment_labels(frame, column="tier")
    with pytest.raises(ValidationError, match="revenue"):
        segment_summary(frame, summary().drop(columns="revenue"))


def test_trend_table() -> None:
    trend = segment_trend(labels(), orders())
    assert [str(p) for p in trend.index] == ["2024-01", "2024-02", "2024-03"]
    # every assigned segment gets a column, "(none)" (d) too though d never ordered
    assert trend.to_dict("list") == {
        "(none)": [0.0, 0.0, 0.0],
        "X": [100.0, 0.0, 50.0],
        "Y": [0.0, 50.0, 200.0],
    }
    buyers = segment_trend(labels(), orders([("c", "2024-03-06", 1.0)]), value="customers")
    assert buyers["X"].tolist() == [1.0, 0.0, 1.0]
    assert buyers["Y"].tolist() == [0.0, 1.0, 1.0]  # c twice in March counts once


def test_summary_trend_compares_last_two_complete_periods() -> None:
    out = segment_summary(labels(), summary(), orders=orders()).set_index("segment")
    # orders end on 31 March: March is complete; X 0 -> 50, Y 50 -> 200
    assert out["last_period"].unique().tolist() == ["2024-03"]
    assert out.loc["X", ["revenue_last", "revenue_previous"]].tolist() == [50.0, 0.0]
    assert np.isnan(out.loc["X", "revenue_change"])
    assert out.loc["Y", "revenue_change"] == pytest.approx(3.0)
    # an order on 2 April makes April a partial period, left out of the comparison
    late = segment_summary(labels(), summary(), orders=orders([("a", "2024-04-02", 9.0)]))
    assert late["last_period"].unique().tolist() == ["2024-03"]
    # with an explicit end at the end of April, April counts
    april = segment_summary(
        labels(), summary(), orders=orders([("a", "2024-04-02", 9.0)]), end="2024-04-30"
    ).set_index("segment")
    assert april.loc["X", ["revenue_last", "revenue_previous"]].tolist() == [9.0, 50.0]


def test_a_customer_assigned_twice_is_an_error() -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b", "a"], "segment": ["S", "T", "T"]})
    with pytest.raises(ValidationError) as err:
        segment_summary(frame, summary())
    assert [(e.row, e.field, e.value) for e in err.value.errors] == [(3, "customer_id", "a")]
    with pytest.raises(ValidationError, match="assigned twice"):
        segment_trend(frame, orders())
