"""Tests of crmkit.data.hubspot: a HubSpot CRM export folder imported into the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmkit import Store
from crmkit.data.hubspot import find_exports, import_hubspot, load_hubspot_mapping
from crmkit.data.reading import FileFormatError
from crmkit.errors import ValidationError
from tests.data.rates import import_rates_cli, rated_store

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hubspot"
OCT = FIXTURES / "2026-10"
NOV = FIXTURES / "2026-11"
OCT_DEALS = "hubspot-crm-exports-all-deals-2026-10-31.csv"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = rated_store(tmp_path / "crm.db", "hubspot")
    yield s
    s.close()


def _deal(store: Store, deal_id: str) -> pd.Series:
    return store.read("deals", where={"deal_id": deal_id}).iloc[0]


def _stage_history(store: Store, deal_id: str) -> pd.DataFrame:
    h = store.read("deal_history", where={"deal_id": deal_id, "field": "stage"})
    return h.sort_values("changed_at")


def test_files_are_found_by_hubspot_default_names_and_case_insensitive_plain_names() -> None:
    oct_files, _ = find_exports(OCT)
    assert oct_files["deals"].name == OCT_DEALS
    assert oct_files["companies"].name == "hubspot-crm-exports-all-companies-2026-10-31.csv"
    nov_files, _ = find_exports(NOV)
    assert {k: p.name for k, p in nov_files.items()} == {
        "deals": "Deals.csv",
        "companies": "companies.csv",
        "contacts": "CONTACTS.csv",
    }


def test_companies_and_contacts_become_accounts_and_contacts(store: Store) -> None:
    result = import_hubspot(store, OCT)
    acc = store.read("accounts").set_index("account_id")
    assert acc.loc["9002", ["name", "owner", "country", "segment"]].tolist() == [
        "Globex GmbH",
        "Ben Okafor",
        "Germany",
        "Prospect",
    ]
    assert acc.loc["9001", "created_at"] == pd.Timestamp("2025-06-01 09:00")
    con = store.read("contacts").set_index("contact_id")
    assert con.loc["501", ["name", "account_id", "email"]].tolist() == [
        "Maria Gomez",
        "9001",
        "maria@acme.example",
    ]
    # a contact without a company has no account in crmkit: left out and said so
    assert "503" not in con.index
    assert any("1 contact(s) without an associated company" in w for w in result.warnings)


def test_deals_get_status_from_stage_close_dates_owner_company_and_category(store: Store) -> None:
    import_hubspot(store, OCT)
    won = _deal(store, "102")
    assert (won["status"], won["stage"], won["pipeline"]) == ("won", "Closed Won", "Sales Pipeline")
    assert won["closed_at"] == pd.Timestamp("2026-10-10")
    assert won["expected_close_date"] == pd.Timestamp("2026-10-10")
    assert won["created_at"] == pd.Timestamp("2026-08-05 09:00")
    assert (won["owner"], won["account_id"], won["forecast_category"]) == (
        "Ben Okafor",
        "9002",
        "closed",
    )
    lost = _deal(store, "105")
    assert (lost["status"], lost["forecast_category"]) == ("lost", "omitted")
    open_ = _deal(store, "101")
    assert open_["status"] == "open" and pd.isna(open_["closed_at"])
    assert open_["expected_close_date"] == pd.Timestamp("2026-12-15")
    assert open_["forecast_category"] == "pipeline"
    assert _deal(store, "104")["forecast_category"] == "best_case"
    assert _deal(store, "103")["forecast_category"] == "commit"


def test_stages_come_from_deal_stages_with_their_deal_probability(store: Store) -> None:
    import_hubspot(store, OCT)
    st = store.read("stages").set_index(["pipeline", "stage"])["probability"]
    assert st[("Sales Pipeline", "Demo Scheduled")] == pytest.approx(0.4)
    assert st[("Sales Pipeline", "Closed Won")] == pytest.approx(1.0)
    assert st[("Sales Pipeline", "Appointment Scheduled")] == pytest.approx(0.2)


def test_stage_history_has_one_row_per_stage_entered_in_date_order(store: Store) -> None:
    import_hubspot(store, OCT)
    h = _stage_history(store, "102")
    assert h["new_value"].tolist() == [
        "Appointment Scheduled",
        "Demo Scheduled",
        "Contract Sent",
        "Closed Won",
    ]
    assert h["old_value"].tolist()[1:] == h["new_value"].tolist()[:-1]
    assert h["changed_at"].tolist()[2] == pd.Timestamp("2026-09-15 10:00")
    # a stage skipped (103 went straight to Contract Sent) has no row
    assert _stage_history(store, "103")["new_value"].tolist() == [
        "Appointment Scheduled",
        "Contract Sent",
    ]


def test_deal_without_amount_is_imported_without_amount_and_reported(store: Store) -> None:
    result = import_hubspot(store, OCT)
    assert pd.isna(_deal(store, "104")["amount"])
    assert any("1 deal(s) without Amount" in w for w in result.warnings)


def test_deactivated_deal_owner_is_kept_by_name_and_reported(store: Store) -> None:
    result = import_hubspot(store, OCT)
    assert _deal(store, "103")["owner"] == "Carla Stein"
    assert store.read("accounts").set_index("account_id").loc["9003", "owner"] == "Carla Stein"
    assert any(
        "deactivated user(s) kept as owners by name: Carla Stein" in w for w in result.warnings
    )


def test_second_currency_code_is_stored_unconverted(store: Store) -> None:
    import_hubspot(store, OCT)
    deals = store.read("deals").set_index("deal_id")
    assert deals.loc["103", ["amount", "currency"]].tolist() == [30000.0, "EUR"]
    assert deals.loc["101", "currency"] == "USD"


def test_summary_gives_per_file_counts(store: Store) -> None:
    result = import_hubspot(store, OCT)
    assert result.files[OCT_DEALS] == {"imported": 5, "updated": 0, "unchanged": 0, "rejected": 0}
    text = result.summary()
    assert f"{OCT_DEALS}: 5 imported, 0 updated" in text
    assert "hubspot-crm-exports-all-companies-2026-10-31.csv: 3 imported" in text
    assert "Phone Number not imported" in text and "Deal Type not imported" in text


def test_reimport_of_a_later_export_updates_by_record_id_without_duplicates(store: Store) -> None:
    import_hubspot(store, OCT)
    result = import_hubspot(store, NOV)
    assert store.count("deals") == 6 and store.count("accounts") == 4
    assert _deal(store, "101")["amount"] == 55000.0
    c = result.files["Deals.csv"]
    assert (c["imported"], c["updated"], c["unchanged"]) == (1, 3, 2)
    assert result.files["companies.csv"]["unchanged"] == 3


def test_reimport_records_changes_as_history_once(store: Store) -> None:
    import_hubspot(store, OCT)
    import_hubspot(store, NOV)
    h = store.read("deal_history", where={"deal_id": "101", "field": "amount"})
    assert h.sort_values("changed_at")["new_value"].astype(float).tolist() == [50000.0, 55000.0]
    # a stage entered since the first export is history at its Date entered
    h104 = _stage_history(store, "104")
    assert h104["new_value"].tolist() == ["Appointment Scheduled", "Demo Booked"]
    assert h104["changed_at"].iloc[-1] == pd.Timestamp("2026-11-10 10:00")
    after = store.count("deal_history")
    import_hubspot(store, NOV)  # the same export again: nothing new
    assert store.count("deal_history") == after


def test_deal_moved_between_pipelines_is_updated_with_stages_of_both(store: Store) -> None:
    import_hubspot(store, OCT)
    import_hubspot(store, NOV)
    d = _deal(store, "103")
    assert (d["pipeline"], d["stage"], d["row_version"]) == ("Renewals", "Negotiation", 2)
    assert _stage_history(store, "103")["new_value"].tolist() == [
        "Appointment Scheduled",
        "Contract Sent",
        "Renewal Review",
        "Negotiation",
    ]


def test_renamed_stage_is_reported_and_kept_by_the_mapping(store: Store, tmp_path: Path) -> None:
    import_hubspot(store, OCT)
    result = import_hubspot(store, NOV)
    assert any("'Demo Scheduled' (Sales Pipeline)" in w and "renamed" in w for w in result.warnings)
    assert _deal(store, "101")["stage"] == "Demo Booked"
    other = rated_store(tmp_path / "renamed.db", "hubspot")
    m = tmp_path / "m.json"
    m.write_text('{"stages": {"Demo Booked": "Demo Scheduled"}}')
    import_hubspot(other, OCT)
    result = import_hubspot(other, NOV, mapping=load_hubspot_mapping(m))
    assert not any("renamed" in w for w in result.warnings)
    assert other.read("deals", where={"deal_id": "101"})["stage"].iloc[0] == "Demo Scheduled"
    h = _stage_history(other, "101")  # no stage move recorded for a rename
    assert h["new_value"].tolist() == ["Appointment Scheduled", "Demo Scheduled"]
    other.close()


def test_mapping_file_maps_a_column_sets_a_closed_stage_and_refuses_unknown_targets(
    store: Store, tmp_path: Path
) -> None:
    m = tmp_path / "m.json"
    m.write_text('{"deals": {"Deal Type": "source"}, "status": {"Contract Sent": "won"}}')
    result = import_hubspot(store, OCT, mapping=load_hubspot_mapping(m))
    assert _deal(store, "101")["source"] == "newbusiness"
    assert _deal(store, "103")["status"] == "won"
    assert not any("Deal Type not imported" in w for w in result.warnings)
    m.write_text('{"deals": {"Deal Type": "kind"}}')
    with pytest.raises(FileFormatError, match="not a field of deals"):
        load_hubspot_mapping(m)
    m.write_text('{"status": {"Contract Sent": "signed"}}')
    with pytest.raises(FileFormatError, match="not one of open, won, lost"):
        load_hubspot_mapping(m)


def _broken(tmp_path: Path) -> Path:
    d = tmp_path / "broken"
    shutil.copytree(OCT, d)
    deals = d / OCT_DEALS
    lines = deals.read_text().splitlines()
    lines[1] = lines[1].replace(",Pipeline,0.4,", ",Maybe,0.4,")  # line 2: Forecast category
    lines[2] = lines[2].replace(",120000,", ",-5,")  # line 3: Amount
    deals.write_text("\n".join(lines) + "\n")
    return d


def test_any_bad_row_writes_nothing_and_names_file_line_and_column(
    store: Store, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as err:
        import_hubspot(store, _broken(tmp_path))
    text = str(err.value)
    assert f"row 2, field 'Forecast category': {OCT_DEALS}: not a forecast category" in text
    assert f"row 3, field 'Amount': {OCT_DEALS}" in text
    assert "(HubSpot export)" in text
    assert store.count("accounts") == 0 and store.count("deals") == 0


def test_skip_bad_writes_good_rows_and_rejects_with_reasons(store: Store, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = import_hubspot(store, _broken(tmp_path), on_error="skip", rejects_path=rejects)
    assert set(store.read("deals")["deal_id"]) == {"103", "104", "105"}
    assert result.files[OCT_DEALS]["rejected"] == 2
    table = pd.read_csv(rejects)
    # one line per bad deal: the stage history read from its line is refused with it silently
    assert table[["row", "field"]].values.tolist() == [[2, "Forecast category"], [3, "Amount"]]
    assert store.read("deal_history", where={"deal_id": ["101", "102"]}).empty


def test_folder_without_deals_export_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "contacts.csv").write_text("Record ID\n1\n")
    with pytest.raises(FileFormatError, match="no deals export"):
        find_exports(tmp_path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "crmkit", "import", "hubspot", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_cli_import_hubspot_imports_a_folder_and_prints_per_file_counts(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    import_rates_cli(db, "hubspot")
    out = _cli(str(OCT), "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert f"{OCT_DEALS}: 5 imported, 0 updated" in out.stdout
    assert "warning: 1 deactivated user(s)" in out.stdout
    again = _cli(str(NOV), "--db", str(db))
    assert again.returncode == 0 and "Deals.csv: 1 imported, 3 updated" in again.stdout


def test_cli_import_hubspot_of_a_file_is_a_one_line_error_and_creates_no_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cli.db"
    out = _cli(str(OCT / OCT_DEALS), "--db", str(db))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert "not a folder" in out.stderr
    assert not db.exists()


def test_cli_import_hubspot_with_bad_rows_exits_1_naming_them(tmp_path: Path) -> None:
    out = _cli(str(_broken(tmp_path)), "--db", str(tmp_path / "b.db"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "nothing was imported" in out.stderr and "Forecast category" in out.stderr
    assert not (tmp_path / "b.db").exists()


def test_deal_in_a_currency_without_rate_is_refused_naming_the_row(tmp_path: Path) -> None:
    bare = Store.open(tmp_path / "norates.db")
    with pytest.raises(ValidationError, match="Deal currency code") as info:
        import_hubspot(bare, OCT)
    assert "'EUR' is not the reporting currency USD" in str(info.value)
    assert bare.count("deals") == 0 and bare.count("accounts") == 0
    bare.close()
