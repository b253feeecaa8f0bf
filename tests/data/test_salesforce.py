"""Tests of crmkit.data.salesforce: a Salesforce export folder imported into the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmkit import Store
from crmkit.data.reading import FileFormatError
from crmkit.data.salesforce import id18, import_salesforce, load_salesforce_mapping
from crmkit.errors import ValidationError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "salesforce"
JUNE = FIXTURES / "export_2026-06"
JULY = FIXTURES / "export_2026-07"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "crm.db")
    yield s
    s.close()


def _deal(store: Store, deal_id: str) -> pd.Series:
    return store.read("deals", where={"deal_id": deal_id}).iloc[0]


def test_id18_turns_a_15_character_id_into_its_18_character_form() -> None:
    assert id18("001Dn00000Acme1") == "001Dn00000Acme1IAB"
    assert id18("001Dn00000Acme1IAB") == "001Dn00000Acme1IAB"
    with pytest.raises(ValueError, match="not a Salesforce Id"):
        id18("12345")


def test_accounts_contacts_and_owners_come_from_account_contact_and_user(store: Store) -> None:
    import_salesforce(store, JUNE)
    acc = store.read("accounts").set_index("account_id")
    assert acc.loc["001Dn00000Glbx2IAB", "name"] == "Globex GmbH"
    assert acc.loc["001Dn00000Glbx2IAB", "owner"] == "Ben Okafor"
    assert acc.loc["001Dn00000Glbx2IAB", "country"] == "Germany"
    assert acc.loc["001Dn00000Acme1IAB", "created_at"] == pd.Timestamp("2025-11-03 14:02:11")
    con = store.read("contacts").set_index("contact_id")
    # Contact.csv refers to accounts by 15-character Ids: the same records
    assert con.loc["003Dn00000Con01IAB", "account_id"] == "001Dn00000Acme1IAB"
    assert con.loc["003Dn00000Con01IAB", "name"] == "Maria Gomez"


def test_opportunities_become_deals_with_status_dates_currency_and_category(store: Store) -> None:
    import_salesforce(store, JUNE)
    won = _deal(store, "006Dn00000Opp02IAB")
    assert (won["status"], won["stage"], won["amount"]) == ("won", "Closed Won", 120000.0)
    assert won["closed_at"] == pd.Timestamp("2026-05-15")
    assert won["created_at"] == pd.Timestamp("2026-02-10 10:00")
    lost = _deal(store, "006Dn00000Opp04IAB")
    assert (lost["status"], lost["currency"], lost["forecast_category"]) == (
        "lost",
        "EUR",
        "omitted",
    )
    open_ = _deal(store, "006Dn00000Opp01IAB")
    assert open_["status"] == "open" and pd.isna(open_["closed_at"])
    assert open_["expected_close_date"] == pd.Timestamp("2026-08-31")
    assert open_["source"] == "Web"
    # Salesforce's "Commit" and "Best Case" are crmkit's commit and best_case
    assert _deal(store, "006Dn00000Opp05IAB")["forecast_category"] == "commit"
    assert _deal(store, "006Dn00000Opp03IAB")["forecast_category"] == "best_case"


def test_deal_without_amount_is_imported_without_amount_and_reported(store: Store) -> None:
    result = import_salesforce(store, JUNE)
    assert pd.isna(_deal(store, "006Dn00000Opp03IAB")["amount"])
    assert any("1 deal(s) without Amount" in w for w in result.warnings)


def test_inactive_owner_is_kept_by_name_and_reported(store: Store) -> None:
    result = import_salesforce(store, JUNE)
    assert _deal(store, "006Dn00000Opp03IAB")["owner"] == "Carla Stein"
    assert any("inactive user(s) kept as owners by name: Carla Stein" in w for w in result.warnings)


def test_second_currency_code_is_stored_unconverted(store: Store) -> None:
    import_salesforce(store, JUNE)
    deals = store.read("deals").set_index("deal_id")
    assert deals.loc["006Dn00000Opp05IAB", ["amount", "currency"]].tolist() == [80000.0, "EUR"]
    assert deals.loc["006Dn00000Opp01IAB", "currency"] == "USD"


def test_stages_come_from_stage_names_with_their_probability_per_record_type(store: Store) -> None:
    import_salesforce(store, JUNE)
    st = store.read("stages").set_index(["pipeline", "stage"])["probability"]
    assert st[("New Business", "Discovery")] == pytest.approx(0.2)
    assert st[("New Business", "Proposal")] == pytest.approx(0.6)
    assert st[("Renewal", "Proposal")] == pytest.approx(0.6)
    assert _deal(store, "006Dn00000Opp05IAB")["pipeline"] == "Renewal"


def test_opportunity_history_becomes_deal_history_at_its_dates(store: Store) -> None:
    import_salesforce(store, JUNE)
    h = store.read("deal_history", where={"deal_id": "006Dn00000Opp02IAB"})
    stage = h[h["field"] == "stage"].sort_values("changed_at")
    assert stage["new_value"].tolist() == ["Qualification", "Proposal", "Closed Won"]
    assert stage["changed_at"].tolist()[1] == pd.Timestamp("2026-03-15 11:30")
    amount = h[h["field"] == "amount"].sort_values("changed_at")
    assert amount["new_value"].astype(float).tolist() == [100000.0, 120000.0]
    cat = h[h["field"] == "forecast_category"].sort_values("changed_at")
    assert cat["new_value"].tolist() == ["pipeline", "best_case", "closed"]


def test_renamed_stage_is_reported_and_renamed_by_the_mapping(store: Store, tmp_path: Path) -> None:
    result = import_salesforce(store, JUNE)
    assert any("'Qualification'" in w and "renamed" in w for w in result.warnings)
    other = Store.open(tmp_path / "renamed.db")
    m = tmp_path / "m.json"
    m.write_text('{"stages": {"Qualification": "Discovery"}}')
    import_salesforce(other, JUNE, mapping=load_salesforce_mapping(m))
    h = other.read("deal_history", where={"deal_id": "006Dn00000Opp02IAB", "field": "stage"})
    assert "Qualification" not in set(h["new_value"]) and "Discovery" in set(h["new_value"])
    other.close()


def test_custom_and_unused_fields_are_reported_as_not_imported(store: Store) -> None:
    result = import_salesforce(store, JUNE)
    text = result.summary()
    assert "Tier__c" in text and "Discount_Percent__c" in text
    assert "Opportunity.csv: field(s) Type not imported" in text
    assert "not imported by the Salesforce importer" not in text  # CurrencyType is read now


def test_summary_gives_per_file_counts(store: Store) -> None:
    result = import_salesforce(store, JUNE)
    assert result.files["Opportunity.csv"]["imported"] == 5
    assert result.files["Account.csv"]["imported"] == 3
    assert "Opportunity.csv: 5 imported, 0 updated" in result.summary()


def test_reimport_of_a_later_export_updates_by_id_without_duplicates(store: Store) -> None:
    import_salesforce(store, JUNE)
    result = import_salesforce(store, JULY)
    deals = store.read("deals").set_index("deal_id")
    assert len(deals) == 6 and store.count("accounts") == 3
    assert deals.loc["006Dn00000Opp01IAB", ["stage", "amount"]].tolist() == ["Proposal", 55000.0]
    c = result.files["Opportunity.csv"]
    # updated: Opp01 (amount), Opp05 (pipeline), Opp02 and Opp03 (their campaign, new in July)
    assert (c["imported"], c["updated"], c["unchanged"]) == (1, 4, 1)
    assert result.files["Account.csv"]["unchanged"] == 3


def test_reimport_records_changes_as_history_once(store: Store) -> None:
    import_salesforce(store, JUNE)
    before = store.count("deal_history")
    import_salesforce(store, JULY)
    h = store.read("deal_history", where={"deal_id": "006Dn00000Opp01IAB"})
    amount = h[h["field"] == "amount"].sort_values("changed_at")
    assert amount["new_value"].astype(float).tolist() == [50000.0, 55000.0]
    assert amount["changed_at"].iloc[-1] == pd.Timestamp("2026-06-20 10:05")
    after = store.count("deal_history")
    import_salesforce(store, JULY)  # the same export again: nothing new
    assert store.count("deal_history") == after > before


def test_deal_moved_between_pipelines_is_updated(store: Store) -> None:
    import_salesforce(store, JUNE)
    import_salesforce(store, JULY)
    d = _deal(store, "006Dn00000Opp05IAB")
    assert (d["pipeline"], d["stage"], d["row_version"]) == ("New Business", "Proposal", 2)


def _broken(tmp_path: Path) -> Path:
    d = tmp_path / "broken"
    shutil.copytree(JUNE, d)
    opp = d / "Opportunity.csv"
    lines = opp.read_text().splitlines()
    lines[2] = lines[2].replace(",true,true,", ",yes,true,")  # line 3: IsClosed
    lines[3] = lines[3].replace("2026-07-31", "2026-13-45")  # line 4: CloseDate
    opp.write_text("\n".join(lines) + "\n")
    return d


def test_any_bad_row_writes_nothing_and_names_file_line_and_field(
    store: Store, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as err:
        import_salesforce(store, _broken(tmp_path))
    text = str(err.value)
    assert "row 3, field 'IsClosed': Opportunity.csv: not true or false" in text
    assert "row 4, field 'CloseDate': Opportunity.csv" in text
    assert store.count("accounts") == 0 and store.count("deals") == 0


def test_skip_bad_writes_good_rows_and_rejects_with_reasons(store: Store, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = import_salesforce(store, _broken(tmp_path), on_error="skip", rejects_path=rejects)
    assert store.count("deals") == 3
    assert result.files["Opportunity.csv"]["rejected"] == 2
    table = pd.read_csv(rejects)
    opp = table[table["file"] == "Opportunity.csv"]
    assert opp[["row", "field"]].values.tolist() == [[3, "IsClosed"], [4, "CloseDate"]]
    # the history of the two rejected opportunities is rejected with them, once per line
    hist = table[table["file"] == "OpportunityHistory.csv"]
    assert hist["row"].tolist() == [3, 4, 5, 6]
    assert set(hist["reason"].str.contains("not found in deals")) == {True}
    assert store.count("stages") == 5  # the stages themselves are not rejected


def test_mapping_file_maps_a_custom_field_and_refuses_unknown_targets(
    store: Store, tmp_path: Path
) -> None:
    m = tmp_path / "m.json"
    m.write_text('{"Account": {"Tier__c": "segment", "Type": null}}')
    import_salesforce(store, JUNE, mapping=load_salesforce_mapping(m))
    acc = store.read("accounts").set_index("account_id")
    assert acc.loc["001Dn00000Acme1IAB", "segment"] == "Gold"
    m.write_text('{"Account": {"Tier__c": "tier"}}')
    with pytest.raises(FileFormatError, match="not a field of accounts"):
        load_salesforce_mapping(m)


def test_folder_without_opportunity_csv_is_a_one_line_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"no Opportunity\.csv"):
        import_salesforce(store, tmp_path)


def test_cli_import_salesforce_imports_a_folder_and_prints_per_file_counts(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    cmd = [sys.executable, "-m", "crmkit", "import", "salesforce", str(JUNE), "--db", str(db)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "Opportunity.csv: 5 imported" in out.stdout
    bad = subprocess.run(
        [*cmd[:5], str(_broken(tmp_path)), "--db", str(tmp_path / "b.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "nothing was imported" in bad.stderr and "IsClosed" in bad.stderr


def test_currency_type_rates_are_imported_with_the_export_in_one_transaction(
    store: Store,
) -> None:
    result = import_salesforce(store, JUNE)
    rates = store.read("exchange_rates").set_index("currency")["rate"]
    assert rates.to_dict() == {"EUR": 0.92, "USD": 1.0}
    assert "CurrencyType.csv" in result.summary()
    assert not any("corporate currency" in w for w in result.warnings)  # USD = reporting


def test_a_corporate_currency_other_than_the_reporting_one_is_reported(
    store: Store, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "eur_org"
    shutil.copytree(JUNE, folder)
    (folder / "CurrencyType.csv").write_text(
        "IsoCode,ConversionRate,IsCorporate\nEUR,1.0,true\nUSD,1.087,false\n"
    )
    result = import_salesforce(store, folder)
    assert any(
        "corporate currency is EUR" in w and "reporting_currency=EUR" in w for w in result.warnings
    )


def test_campaigns_come_from_campaign_csv_and_deals_keep_their_primary_campaign(
    store: Store,
) -> None:
    import_salesforce(store, JUNE)
    result = import_salesforce(store, JULY)
    camps = store.read("campaigns").set_index("campaign_id")
    assert camps.loc["701Dn00000Cmp02IAB", "channel"] == "Trade Show"
    assert camps.loc["701Dn00000Cmp02IAB", "cost"] == 48200.0
    assert camps.loc["701Dn00000Cmp01IAB", "budget"] == 12000.0
    # no Type: channel "(none)"; no StartDate: the day it was created
    assert camps.loc["701Dn00000Cmp03IAB", "channel"] == "(none)"
    assert str(camps.loc["701Dn00000Cmp03IAB", "start_date"])[:10] == "2026-05-02"
    assert _deal(store, "006Dn00000Opp02IAB")["campaign_id"] == "701Dn00000Cmp01IAB"
    assert _deal(store, "006Dn00000Opp03IAB")["campaign_id"] == "701Dn00000Cmp02IAB"  # 15 -> 18
    text = result.summary()
    assert "Campaign.csv: 3 imported" in text
    assert "CampaignMember.csv: 3 member(s) not imported" in text


def test_campaign_ids_without_campaign_csv_are_dropped_and_reported(
    store: Store, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "no_campaigns"
    shutil.copytree(JULY, folder)
    (folder / "Campaign.csv").unlink()
    result = import_salesforce(store, folder)
    assert store.read("deals")["campaign_id"].isna().all()
    assert any("CampaignId of 2 deal(s) not imported" in w for w in result.warnings)
