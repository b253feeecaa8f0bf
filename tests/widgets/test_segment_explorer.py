from __future__ import annotations

import numpy as np
import pytest

from crmkit import segments
from crmkit.errors import CrmkitError
from crmkit.widgets.segment_explorer import (
    RULE_PREFIX,
    SegmentExplorer,
    members,
    segment_column,
    segmentations,
    summary_html,
)


@pytest.fixture
def explorer(company):
    return SegmentExplorer(company, user="maria", plots_enabled=False)


def sizes(explorer):
    return dict(zip(explorer.summary["segment"], explorer.summary["customers"], strict=True))


def test_account_segments_sizes_and_revenue_share(explorer, company):
    assert explorer.segmentation.value == "Account segment"
    assert sizes(explorer) == {"Enterprise": 1, "SMB": 1, "(none)": 1}
    share = dict(zip(explorer.summary["segment"], explorer.summary["revenue_share"], strict=True))
    # orders: A1 (SMB) 230, A2 (Enterprise) 50700
    assert share["SMB"] == pytest.approx(230 / 50930)
    assert "revenue_change" in explorer.summary.columns  # trend columns
    assert "Enterprise" in explorer.summary_table.value and "%" in explorer.summary_table.value
    assert list(explorer.segment.options) == list(explorer.summary["segment"])


def test_members_of_chosen_segment(explorer):
    explorer.segment.value = "SMB"
    assert list(explorer.member_frame.index) == ["A1"]
    assert explorer.members_label.value.startswith("1 customers")
    assert list(explorer.member_grid.data.index) == ["A1"]


def test_move_selected_customers_saves_to_store(explorer, company):
    explorer.segment.value = "(none)"
    explorer.member_grid.selections = [{"r1": 0, "c1": 0, "r2": 0, "c2": 0}]
    explorer.target.value = "SMB"
    assert explorer.move_selected() == 1
    assert company.read("accounts", where={"account_id": "A3"}).iloc[0]["segment"] == "SMB"
    assert sizes(explorer) == {"Enterprise": 1, "SMB": 2}
    assert "Moved 1 customers to SMB" in explorer.message.value


def test_move_all_in_segment_and_clear(explorer, company):
    explorer.segment.value = "SMB"
    explorer.target.value = "Gold"
    explorer.move_all_button.click()
    assert company.read("accounts", where={"account_id": "A1"}).iloc[0]["segment"] == "Gold"
    assert "Gold" in explorer.target.options
    explorer.target.value = "  "
    assert explorer.move(["A1"]) == 1  # a blank target clears the segment
    assert company.read("accounts", where={"account_id": "A1"}).iloc[0]["segment"] is None
    assert explorer.move(["A1"], segment="Gold") == 1
    assert company.read("accounts", where={"account_id": "A1"}).iloc[0]["segment"] == "Gold"


def test_move_refused_for_unknown_account(explorer, company):
    assert explorer.move(["A1", "NOPE"], segment="Gold") == 0
    assert "NOPE" in explorer.message.value and "Not saved" in explorer.message.value
    assert company.read("accounts", where={"account_id": "A1"}).iloc[0]["segment"] == "SMB"


def test_move_selected_without_selection(explorer):
    assert explorer.move_selected() == 0
    assert "Select customers" in explorer.message.value


def test_rfm_and_rule_segmentations(company):
    segments.save_segment(company, "big", {"field": "revenue", "op": ">", "value": 1000})
    ex = SegmentExplorer(company, plots_enabled=False)
    assert f"{RULE_PREFIX}big" in ex.segmentation.options
    ex.segmentation.value = f"{RULE_PREFIX}big"
    assert sizes(ex) == {"big": 1, "not big": 2}
    ex.segment.value = "big"
    assert list(ex.member_frame.index) == ["A2"]
    ex.segmentation.value = "RFM segments"
    rfm = segments.rfm_segments(segments.rfm_scores(company.purchase_summary(time_unit="D")))
    expected = rfm["rfm_segment"].astype(str).value_counts().to_dict()
    got = {k: v for k, v in sizes(ex).items() if v and k != "(none)"}
    assert got == expected
    assert sizes(ex)["(none)"] == 1  # A3 has no orders


def test_plain_helpers(company):
    customers = segments.customer_table(company)
    assert segmentations(company)[:2] == ["Account segment", "RFM segments"]
    labels = segment_column(company, customers, "Account segment")
    assert list(members(customers, labels, "(none)").index) == ["A3"]
    with pytest.raises(CrmkitError):
        segment_column(company, customers, "Nope")
    html = summary_html(
        segments.segment_summary(
            customers[["account_id", "segment"]],
            customers.rename(columns={"account_id": "customer_id"}),
        )
    )
    assert "<table" in html and "33.3%" in html


def test_plots_are_drawn_from_the_summary_and_trend(company, monkeypatch):
    from crmkit.plots import segments as plots

    calls = []
    for name in ("segment_bars", "segment_trend_chart"):
        real = getattr(plots, name)
        monkeypatch.setattr(
            plots, name, lambda *a, _real=real, _n=name, **k: calls.append(_n) or _real(*a, **k)
        )
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    SegmentExplorer(company, plots_enabled=True)
    assert calls == ["segment_bars", "segment_trend_chart"]


def test_small_company_has_no_clv_and_says_why(explorer):
    assert "CLV tiers" not in explorer.segmentation.options
    assert explorer.clv_draws is None
    assert "No CLV" in explorer.clv_label.value and "too few" in explorer.clv_label.value
    assert "expected_clv" not in explorer.summary.columns
    with pytest.raises(CrmkitError, match="no CLV"):
        segment_column(explorer.store, explorer.customers, "CLV tiers")


@pytest.fixture(scope="module")
def demo_explorer(demo_db_file, copy_db, tmp_path_factory):
    """The explorer on a copy of the session's demo company: the tests move customers."""
    from crmkit.store import Store

    store = Store.open(copy_db(demo_db_file, tmp_path_factory.mktemp("explorer")))
    ex = SegmentExplorer(store, plots_enabled=False, clv_options={"n_draws": 40})
    yield ex
    store.close()


def test_clv_tiers_segmentation_and_expected_clv_per_segment(demo_explorer):
    ex = demo_explorer
    assert "CLV tiers" in ex.segmentation.options
    clv = ex.clv_draws.to_numpy()  # (sample, customer_id)
    ids = list(ex.clv_draws["customer_id"].to_numpy())
    grand = clv.sum(axis=1)  # the base's total, draw by draw
    for segmentation in ("Account segment", "RFM segments", "CLV tiers"):
        ex.segmentation.value = segmentation
        s = ex.summary
        assert {"expected_clv", "clv_low", "clv_high"} <= set(s.columns)
        assert (s["clv_low"] <= s["expected_clv"]).all()
        assert (s["expected_clv"] <= s["clv_high"]).all()
        # every customer is in one segment: the segments' expected CLVs add up to the base's
        assert s["expected_clv"].sum() == pytest.approx(grand.mean())
        assert "expected_clv" in s.columns and "Expected CLV" in ex.clv_label.value
    tiers = ex.summary.set_index("segment")
    assert list(tiers.index[:4]) == ["Tier 1", "Tier 2", "Tier 3", "Tier 4"]
    assert tiers["expected_clv"].iloc[:4].is_monotonic_decreasing
    # a segment's interval is that of the sum of its customers' draws
    ex.segment.value = "Tier 1"
    members = [ids.index(a) for a in ex.member_frame.index]
    total = clv[:, members].sum(axis=1)
    assert tiers.loc["Tier 1", "clv_high"] == pytest.approx(np.quantile(total, 0.9))
    assert tiers.loc["Tier 1", "clv_low"] == pytest.approx(np.quantile(total, 0.1))
    assert "clv" in ex.member_frame.columns
    assert ex.member_frame["clv_tier"].astype(str).eq("Tier 1").all()


def test_moving_customers_keeps_their_clv(demo_explorer):
    ex = demo_explorer
    ex.segmentation.value = "Account segment"
    before = ex.summary["expected_clv"].sum()
    first = ex.summary["segment"].iloc[0]
    ex.segment.value = first
    moved = list(ex.member_frame.index[:2])
    assert ex.move(moved, segment="Watch list") == 2
    s = ex.summary.set_index("segment")
    assert s.loc["Watch list", "customers"] == 2
    assert s["expected_clv"].sum() == pytest.approx(before)
    assert s.loc["Watch list", "expected_clv"] == pytest.approx(
        ex.customers.set_index("account_id").loc[moved, "clv"].fillna(0).sum()
    )


def test_segment_explorer_money_columns_formatted(demo_explorer):
    import re

    ex = demo_explorer
    ex.segmentation.value = "CLV tiers"
    ex.segment.value = "Tier 1"
    grid = ex.member_grid
    # numbers stay numbers (the grid sorts them); the browser writes them with a d3 format
    assert grid.data["Expected CLV"].dtype.kind == "f"
    assert grid.renderers["Expected CLV"].format == ",.0f"  # 263,353, not 263352.942841
    assert grid.renderers["Revenue"].format == ",.0f"
    assert grid.renderers["Orders"].format == ",.0f"
    assert grid.renderers["Days since last order"].format == ",.0f"
    # the summary table: no raw float anywhere, shares in %, CLV interval in whole units
    table = ex.summary_table.value
    assert not re.search(r"\d\.\d{4,}", table), table
    assert re.search(r"<td>\d{1,3}(,\d{3})+</td>", table) and "%</td>" in table


def test_segment_explorer_headers_are_words_and_wide_enough(demo_explorer):
    ex = demo_explorer
    ex.segmentation.value = "Account segment"
    cols = list(ex.member_grid.data.columns)
    assert "Expected CLV" in cols and "Last order" in cols and "clv" not in cols
    assert ex.member_grid.data.index.name == "Account"
    widths = ex.member_grid.column_widths
    assert all(widths[c] >= 7 * len(c) for c in cols)  # no header cut to "last_pur…"
    assert "<th>% of revenue</th>" in ex.summary_table.value
    assert "revenue_share" not in ex.summary_table.value


def test_no_rfm_duplicate_column(demo_explorer):
    ex = demo_explorer
    customers = ex.customers.dropna(subset=["rfm_score"])
    # rfm_code is rfm_score written as text: one column holds both
    assert (customers["rfm_code"] == customers["rfm_score"].astype(int).astype(str)).all()
    ex.segmentation.value = "RFM segments"
    ex.segment.value = ex.segment.options[0]
    cols = list(ex.member_grid.data.columns)
    assert cols.count("RFM score") == 1 and "rfm_score" not in cols and "rfm_code" not in cols
    assert set(ex.member_grid.data["RFM score"]) <= set(customers["rfm_code"]) | {""}


def test_reload_button_has_text_and_an_icon(explorer):
    assert explorer.refresh_button.description == "Reload"
    assert explorer.refresh_button.icon == "refresh"  # Font Awesome, served by the app itself
