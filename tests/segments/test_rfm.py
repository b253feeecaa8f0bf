"""RFM scores, the named RFM segments and CLV tiers, checked on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.errors import ValidationError
from crmkit.segments import (
    SEGMENT_RULES,
    check_segment_rules,
    clv_tiers,
    rfm_scores,
    rfm_segments,
    rules_markdown,
)
from crmkit.segments.rfm import sort_order

CUTOFF = pd.Timestamp("2024-01-31")


def hand_summary() -> pd.DataFrame:
    """Five customers whose scores are worked out by hand in the tests below."""
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E"],
            "first_purchase": pd.to_datetime(["2023-01-01"] * 5),
            "last_purchase": pd.to_datetime(
                ["2024-01-30", "2024-01-01", "2023-12-01", "2023-06-01", "2024-01-21"]
            ),
            "frequency": [4, 0, 2, 1, 2],
            "revenue": [500.0, 300.0, 60.0, 100.0, 150.0],
        }
    )


def test_scores_match_hand_computation() -> None:
    # recency days: A 1, B 30, C 61, D 244, E 10 -> R: A5 E4 B3 C2 D1
    # purchases: A5 B1 C3 D2 E3; C/E tie at 3 broken by revenue (E 150 > C 60) -> F: A5 E4 C3 D2 B1
    # mean spend: A100 B300 C20 D50 E50; D/E tie broken by id (D < E) -> M: B5 A4 E3 D2 C1
    rfm = rfm_scores(hand_summary(), cutoff=CUTOFF).set_index("customer_id")
    assert rfm["recency_days"].to_dict() == {"A": 1, "B": 30, "C": 61, "D": 244, "E": 10}
    assert rfm["purchases"].to_dict() == {"A": 5, "B": 1, "C": 3, "D": 2, "E": 3}
    assert rfm["monetary"].to_dict() == {"A": 100.0, "B": 300.0, "C": 20.0, "D": 50.0, "E": 50.0}
    assert rfm["rfm_code"].to_dict() == {"A": "554", "B": "315", "C": "231", "D": "122", "E": "443"}
    assert rfm["rfm_score"].to_dict() == {"A": 554, "B": 315, "C": 231, "D": 122, "E": 443}


def test_total_monetary_uses_revenue() -> None:
    rfm = rfm_scores(hand_summary(), cutoff=CUTOFF, monetary="total").set_index("customer_id")
    # revenue A500 B300 E150 D100 C60
    assert rfm["m_score"].to_dict() == {"A": 5, "B": 4, "C": 1, "D": 2, "E": 3}


def test_scores_do_not_depend_on_row_order() -> None:
    base = rfm_scores(hand_summary(), cutoff=CUTOFF).set_index("customer_id")
    shuffled = hand_summary().iloc[[3, 0, 4, 2, 1]]
    again = rfm_scores(shuffled, cutoff=CUTOFF).set_index("customer_id").loc[base.index]
    pd.testing.assert_frame_equal(base, again)


def test_default_cutoff_comes_from_summary_attrs_then_last_purchase() -> None:
    s = hand_summary()
    assert rfm_scores(s)["recency_days"].min() == 0  # latest last purchase is the cut-off
    s.attrs["cutoff"] = "2024-02-10"
    assert rfm_scores(s).set_index("customer_id").loc["A", "recency_days"] == 11


def test_hand_example_segments() -> None:
    seg = rfm_segments(rfm_scores(hand_summary(), cutoff=CUTOFF)).set_index("customer_id")
    assert seg["rfm_segment"].astype(str).to_dict() == {
        "A": "Champions",  # R5 F5
        "B": "About to Sleep",  # R3 F1
        "C": "At Risk",  # R2 F3
        "D": "Lost",  # R1 F2
        "E": "Loyal",  # R4 F4
    }


# Every segment rule, with cells at its boundaries, written out from the rule table's docs.
RULE_CASES = [
    ((5, 5, 1), "Champions"),
    ((5, 4, 3), "Champions"),
    ((4, 5, 2), "Loyal"),
    ((3, 4, 1), "Loyal"),
    ((5, 2, 5), "Potential Loyalist"),
    ((4, 3, 1), "Potential Loyalist"),
    ((5, 1, 5), "New"),
    ((4, 1, 3), "Promising"),
    ((3, 3, 3), "Need Attention"),
    ((3, 1, 5), "About to Sleep"),
    ((3, 2, 1), "About to Sleep"),
    ((2, 5, 1), "Can't Lose Them"),
    ((1, 5, 5), "Can't Lose Them"),
    ((2, 3, 2), "At Risk"),
    ((1, 4, 4), "At Risk"),
    ((2, 2, 5), "Hibernating"),
    ((2, 1, 1), "Hibernating"),
    ((1, 1, 1), "Lost"),
    ((1, 2, 3), "Lost"),
]


def scores_frame(triples: list[tuple[int, int, int]]) -> pd.DataFrame:
    arr = np.array(triples)
    return pd.DataFrame(
        {
            "customer_id": range(len(arr)),
            "r_score": arr[:, 0],
            "f_score": arr[:, 1],
            "m_score": arr[:, 2],
        }
    )


@pytest.mark.parametrize(("scores", "expected"), RULE_CASES)
def test_each_segment_rule(scores: tuple[int, int, int], expected: str) -> None:
    assert rfm_segments(scores_frame([scores]))["rfm_segment"].iloc[0] == expected


def test_every_named_segment_is_reachable_and_in_rule_order() -> None:
    assert {name for _, name in RULE_CASES} == set(SEGMENT_RULES["segment"])
    assert len(SEGMENT_RULES) == 11
    seg = rfm_segments(scores_frame([c for c, _ in RULE_CASES]))
    assert list(seg["rfm_segment"].cat.categories) == list(SEGMENT_RULES["segment"])


def test_default_rules_cover_all_125_score_combinations() -> None:
    assert check_segment_rules(SEGMENT_RULES) == []
    grid = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    seg = rfm_segments(scores_frame(grid))
    assert seg["rfm_segment"].notna().all()


def test_first_matching_rule_wins() -> None:
    rules = pd.DataFrame(
        [("Recent", 5, 5, 1, 5, 1, 5, ""), ("Everyone", 1, 5, 1, 5, 1, 5, "")],
        columns=SEGMENT_RULES.columns,
    )
    seg = rfm_segments(scores_frame([(5, 1, 1), (4, 5, 5)]), rules)
    assert list(seg["rfm_segment"]) == ["Recent", "Everyone"]


def test_incomplete_rules_name_the_uncovered_customer() -> None:
    rules = SEGMENT_RULES[SEGMENT_RULES["segment"] != "Lost"]
    assert (1, 1, 1) in check_segment_rules(rules)
    with pytest.raises(ValidationError) as err:
        rfm_segments(scores_frame([(5, 5, 5), (1, 2, 4)]), rules)
    (e,) = err.value.errors
    assert (e.row, e.field, e.value) == (2, "rfm_code", "124")
    assert "no segment rule" in e.reason


def test_malformed_rules_are_rejected() -> None:
    rules = SEGMENT_RULES.copy()
    rules.loc[0, "r_min"] = 0
    rules.loc[1, "f_min"] = 5  # f_max is 5: fine
    rules.loc[2, "m_min"] = 4
    rules.loc[2, "m_max"] = 2
    rules.loc[3, "segment"] = "Champions"
    with pytest.raises(ValidationError) as err:
        check_segment_rules(rules)
    found = {(e.row, e.field) for e in err.value.errors}
    assert found == {(1, "r_min"), (3, "m_min"), (4, "segment")}


def test_missing_columns_duplicates_and_future_purchases_are_errors() -> None:
    with pytest.raises(ValidationError, match="revenue"):
        rfm_scores(hand_summary().drop(columns="revenue"))
    dup = pd.concat([hand_summary(), hand_summary().iloc[[1]]], ignore_index=True)
    with pytest.raises(ValidationError) as err:
        rfm_scores(dup, cutoff=CUTOFF)
    assert [(e.row, e.field, e.value) for e in err.value.errors] == [(6, "customer_id", "B")]
    with pytest.raises(ValidationError, match="after the cut-off"):
        rfm_scores(hand_summary(), cutoff="2024-01-15")
    no_date = hand_summary()
    no_date.loc[2, "last_purchase"] = pd.NaT
    with pytest.raises(ValidationError) as err:
        rfm_scores(no_date, cutoff=CUTOFF)
    assert [(e.row, e.field) for e in err.value.errors] == [(3, "last_purchase")]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sort_order_matches_lexsort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    ints = rng.integers(-3, 4, n)
    floats = rng.choice([0.5, 1.25, 1e9, -2.0], n)
    big = rng.integers(0, 2**40, n)  # too wide to shift: ranked instead
    ids = rng.permutation(n)
    for keys in [(ints, ids), (floats, ints, ids), (big, floats, ids), (ints, floats, big, ids)]:
        expected = np.lexsort(tuple(reversed(keys)))
        assert (sort_order(*keys) == expected).all()


def test_sort_order_falls_back_to_lexsort_when_keys_are_too_wide() -> None:
    n = 4
    a = np.array([2**40, 0, 2**40, 5])
    b = np.array([3 * 2**40, 2**41, 7, 0])  # ranks fold fine; raw spans do not matter
    ids = np.arange(n)
    assert sort_order(a, b, ids).tolist() == np.lexsort((ids, b, a)).tolist()
    wide = [np.random.default_rng(0).permutation(70_000) for _ in range(4)]
    assert (sort_order(*wide) == np.lexsort(tuple(reversed(wide)))).all()  # 70k**4 > 2**62


def test_empty_summary_gives_empty_scores() -> None:
    rfm = rfm_scores(hand_summary().iloc[:0], cutoff=CUTOFF)
    assert len(rfm) == 0
    assert len(rfm_segments(rfm)) == 0


@st.composite
def summaries(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 60))
    days = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    freq = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    rev = draw(st.lists(st.sampled_from([0.0, 10.0, 25.5, 100.0, 1e4]), min_size=n, max_size=n))
    ids = draw(st.permutations([f"c{i:03d}" for i in range(n)]))
    return pd.DataFrame(
        {
            "customer_id": ids,
            "last_purchase": CUTOFF - pd.to_timedelta(days, unit="D"),
            "frequency": freq,
            "revenue": rev,
        }
    )


def first_match(r: int, f: int, m: int) -> str:
    """Independent first-match lookup, row by row over the rule table."""
    for row in SEGMENT_RULES.itertuples():
        if (
            row.r_min <= r <= row.r_max
            and row.f_min <= f <= row.f_max
            and row.m_min <= m <= row.m_max
        ):
            return row.segment
    raise AssertionError("uncovered")


@settings(max_examples=30, deadline=None)
@given(summaries())
def test_properties_of_scores_and_segments(summary: pd.DataFrame) -> None:
    n = len(summary)
    seg = rfm_segments(rfm_scores(summary, cutoff=CUTOFF))
    assert len(seg) == n and list(seg["customer_id"]) == list(summary["customer_id"])
    for col in ("r_score", "f_score", "m_score"):
        counts = seg[col].value_counts().reindex(range(1, 6), fill_value=0)
        assert seg[col].between(1, 5).all()
        assert counts.max() - counts.min() <= 1  # quintiles as balanced as possible
    # a strictly better raw value never scores lower
    for raw, score, sign in (
        ("recency_days", "r_score", -1),
        ("purchases", "f_score", 1),
        ("monetary", "m_score", 1),
    ):
        g = seg.groupby(sign * seg[raw])[score]
        assert (g.min().to_numpy()[1:] >= g.max().to_numpy()[:-1]).all()
    assert seg["rfm_segment"].notna().all()  # exactly one segment each
    expected = [
        first_match(*t) for t in seg[["r_score", "f_score", "m_score"]].itertuples(index=False)
    ]
    assert list(seg["rfm_segment"].astype(str)) == expected


def test_quintiles_are_exact_fifths_for_ten_customers() -> None:
    s = pd.DataFrame(
        {
            "customer_id": list("abcdefghij"),
            "last_purchase": CUTOFF - pd.to_timedelta(range(10), unit="D"),
            "frequency": [0] * 10,  # all tied: split by revenue, then id
            "revenue": [5.0] * 10,
        }
    )
    rfm = rfm_scores(s, cutoff=CUTOFF).set_index("customer_id")
    # recency 0 (a) .. 9 (j): two customers per score, a most recent
    assert rfm["r_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # frequency and spend all tied: ranked by id
    assert rfm["f_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm["m_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_clv_tiers_hand_example() -> None:
    clv = pd.Series([5.0, 1.0, 3.0, np.nan, 10.0, 2.0], index=list("abcdef"))
    tiers = clv_tiers(clv, 4)
    # five values, four tiers: positions (best first) e a | c | f | b
    assert tiers.astype(object).where(tiers.notna(), None).to_dict() == {
        "a": "Tier 1",
        "b": "Tier 4",
        "c": "Tier 2",
        "d": None,
        "e": "Tier 1",
        "f": "Tier 3",
    }
    named = clv_tiers(clv.dropna().iloc[:4], 2, labels=["High", "Low"])
    assert named.to_dict() == {"a": "High", "b": "Low", "c": "Low", "e": "High"}
    assert list(named.cat.categories) == ["High", "Low"]


def test_clv_tiers_balanced_and_checked() -> None:
    clv = pd.Series(np.random.default_rng(1).gamma(2.0, 100.0, 1001))
    counts = clv_tiers(clv, 4).value_counts()
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1001
    with pytest.raises(ValueError, match="labels"):
        clv_tiers(clv, 3, labels=["a", "b"])
    with pytest.raises(ValueError, match="n_tiers"):
        clv_tiers(clv, 0)


def test_rules_markdown_lists_the_rules_in_order() -> None:
    lines = rules_markdown().splitlines()
    assert lines[0] == "| # | segment | R | F | M | description |"
    assert len(lines) == 2 + 11
    assert lines[2].startswith("| 1 | Champions | 5 | 4-5 | any | ")
    assert lines[-1].startswith("| 11 | Lost | 1 | 1-2 | any | ")
