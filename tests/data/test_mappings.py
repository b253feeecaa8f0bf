"""Dataset mappings on tiny hand-written copies of the Maven CRM and CDNOW files (no ../shared)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crmkit.data.mappings import cdnow_frames, import_cdnow, import_maven, maven_frames
from crmkit.data.reading import FileFormatError
from crmkit.errors import ValidationError
from crmkit.store import Store

PIPELINE = (
    ("opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value\n")
    + """W1,Ann A,GTXPro,Acme,Won,2017-01-02,2017-02-01,4500
L1,Bob B,MG Special,Acme,Lost,2017-01-03,2017-02-02,0
E1,Ann A,GTX Basic,,Engaging,2017-01-04,,
P1,Bob B,GTX Basic,Betatech,Prospecting,,,
P2,Ann A,MG Special,,Prospecting,,,
"""
)
ACCOUNTS = """account,sector,year_established,revenue,employees,office_location,subsidiary_of
Acme,technolgy,1996,1100.04,2822,United States,
Betatech,medical,1986,647.18,1185,Kenya,
"""
TEAMS = """sales_agent,manager,regional_office
Ann A,Meg M,Central
Bob B,Tom T,West
"""
PRODUCTS = """product,series,sales_price
GTX Basic,GTX,550
GTX Pro,GTX,4821
MG Special,MG,55
"""


@pytest.fixture
def maven(tmp_path: Path) -> Path:
    d = tmp_path / "maven_crm"
    d.mkdir()
    for name, text in [
        ("sales_pipeline", PIPELINE),
        ("accounts", ACCOUNTS),
        ("sales_teams", TEAMS),
        ("products", PRODUCTS),
    ]:
        (d / f"{name}.csv").write_text(text)
    return d


def test_maven_mapping_sets_status_stage_team_and_reports_quirks(maven: Path) -> None:
    frames, warnings = maven_frames(maven)
    deals = frames["deals"].set_index("deal_id")
    assert list(deals["status"]) == ["won", "lost", "open", "open", "open"]
    assert list(deals["stage"]) == [
        "Engaging",
        "Engaging",
        "Engaging",
        "Prospecting",
        "Prospecting",
    ]
    assert deals.loc["W1", "name"] == "GTX Pro" and deals.loc["W1", "team"] == "Meg M"
    assert deals.loc["W1", "closed_at"] == "2017-02-01" and pd.isna(deals.loc["E1", "closed_at"])
    assert deals.loc["P1", "created_at"] == "2017-02-02"  # the data's last date
    assert pd.isna(deals.loc["L1", "amount"])  # close_value 0 of a lost deal is not its size
    text = "\n".join(warnings)
    assert "2 deals have no account (1 Engaging, 1 Prospecting)" in text
    assert "product 'GTXPro' on 1 deals" in text
    assert "sector 'technolgy' on 1 accounts" in text
    assert "3 open deals have no close_value" in text
    assert "2 open deals (Prospecting) have no engage_date" in text


def test_maven_fill_missing_amounts_uses_list_prices(maven: Path) -> None:
    frames, _ = maven_frames(maven, fill_missing_amounts=True)
    amount = frames["deals"].set_index("deal_id")["amount"]
    assert list(amount) == ["4500", "55", "550", "550", "55"]


def test_maven_import_is_validated_and_can_be_repeated_for_new_deals(maven: Path) -> None:
    with Store.open("sqlite://") as s:
        result = import_maven(s, maven)
        assert result.written == {"accounts": 2, "stages": 2, "deals": 5}
        assert s.read("accounts").set_index("account_id").loc["Acme", "industry"] == "technology"
        hist = s.read("deal_history", where={"deal_id": "W1"})
        assert set(hist["field"]) >= {"stage", "status", "amount"}
        # a second import meets the stored ids: every row is reported, nothing changes
        with pytest.raises(ValidationError) as exc:
            import_maven(s, maven)
        assert {e.row for e in exc.value.errors if "deals:" in e.reason} == {2, 3, 4, 5, 6}
        assert s.count("deals") == 5


def test_cdnow_mapping_of_the_sample_layout(tmp_path: Path) -> None:
    path = tmp_path / "CDNOW_sample.txt"
    path.write_text(
        " 00004 0001 19970101  2   29.33\n"
        " 00004 0001 19970101  1   10.00\n"
        " 00004 0001 19970802  1   14.96\n"
        " 00021 0002 19970103  3    0.00\n"
    )
    frames, warnings = cdnow_frames(path)
    orders = frames["orders"]
    assert list(orders["order_id"]) == ["00004-1", "00004-2", "00004-3", "00021-1"]
    assert list(orders.index) == [1, 2, 3, 4]  # no header: line numbers from 1
    assert list(frames["accounts"]["created_at"]) == ["1997-01-01", "1997-01-03"]
    assert any("1 purchases fall on a day" in w for w in warnings)
    assert any("1 purchases have dollar_value 0" in w for w in warnings)
    with Store.open("sqlite://") as s:
        assert import_cdnow(s, path).written == {"accounts": 2, "orders": 4}
        assert s.read("orders")["amount"].sum() == pytest.approx(54.29)


def test_cdnow_master_layout_has_a_header(tmp_path: Path) -> None:
    path = tmp_path / "CDNOW_master.txt"
    path.write_text(" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n")
    frames, _ = cdnow_frames(path)
    assert list(frames["orders"].index) == [2]
    assert frames["orders"]["amount"].iloc[0] == "11.77"


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="not found"):
        maven_frames(tmp_path / "nowhere")
    with pytest.raises(FileFormatError, match="no such file"):
        cdnow_frames(tmp_path / "none.txt")
