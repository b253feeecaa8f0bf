"""Tests of crmkit.data.pipedrive: a Pipedrive export folder imported into the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmkit import Store
from crmkit.data.pipedrive import import_pipedrive, load_pipedrive_mapping, pipedrive_frames
from crmkit.data.reading import FileFormatError
from crmkit.errors import ValidationError
from tests.data.rates import import_rates_cli, rated_store

FIXTURES = Path(__file__).parent.parent / "fixtures" / "pipedrive"
OCT = FIXTURES / "2026-10"
NOV = FIXTURES / "2026-11"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = rated_store(tmp_path / "crm.db", "pipedrive")
    yield s
    s.close()


def _deal(store: Store, deal_id: str) -> pd.Series:
    return store.read("deals", where={"deal_id": deal_id}).iloc[0]


def _copy(tmp_path: Path, src: Path = OCT) -> Path:
    d = tmp_path / "export"
    shutil.copytree(src, d)
    return d


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# ---------------------------------------------------------------------- parsing
def test_parsing_reads_deals_organizations_and_persons_without_writing(tmp_path: Path) -> None:
    parsed = pipedrive_frames(OCT)
    assert set(parsed.frames) == {"accounts", "contacts", "stages", "deals"}
    assert parsed.files == {
        "accounts": "organizations.csv",
        "contacts": "persons.csv",
        "stages": "deals.csv",
        "deals": "deals.csv",
    }
    assert parsed.errors == []
    deals = parsed.frames["deals"]
    assert list(deals.index) == [2, 3, 4, 5, 6, 7]  # the file's lines; line 8 is deleted
    assert deals.loc[2, "deal_id"] == "1" and deals.loc[2, "account_id"] == "101"


def test_prefixed_and_plain_headers_read_the_same(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    deals = d / "deals.csv"
    lines = deals.read_text().splitlines()
    lines[0] = lines[0].replace("Deal - ", "")
    deals.write_text("\n".join(lines) + "\n")
    plain, prefixed = pipedrive_frames(d), pipedrive_frames(OCT)
    pd.testing.assert_frame_equal(plain.frames["deals"], prefixed.frames["deals"])
    assert plain.back["deals"]["amount"] == "Value"
    assert prefixed.back["deals"]["amount"] == "Deal - Value"


def test_both_spellings_of_one_field_in_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    _edit(d / "deals.csv", "Deal - Label", "Title")
    with pytest.raises(FileFormatError, match="'Deal - Title' and 'Title' are the same"):
        pipedrive_frames(d)


def test_deleted_deals_are_skipped_and_counted(store: Store) -> None:
    result = import_pipedrive(store, OCT)
    assert "7" not in store.known_keys("deals")
    assert store.count("deals") == 6
    assert "deals.csv: 1 deleted deal(s) skipped" in result.summary()


def test_won_and_lost_deals_close_at_their_won_and_lost_time(store: Store) -> None:
    import_pipedrive(store, OCT)
    won, lost, open_ = _deal(store, "3"), _deal(store, "6"), _deal(store, "1")
    assert (won["status"], str(won["closed_at"])) == ("won", "2026-10-12 14:00:00")
    assert (lost["status"], str(lost["closed_at"])) == ("lost", "2026-10-05 13:10:00")
    assert lost["lost_reason"] == "Price"
    assert open_["status"] == "open" and pd.isna(open_["closed_at"])
    assert str(open_["created_at"]) == "2026-09-02 10:00:00"
    assert str(open_["expected_close_date"])[:10] == "2026-12-15"


def test_won_deal_without_won_time_is_refused_naming_the_pipedrive_field(
    store: Store, tmp_path: Path
) -> None:
    d = _copy(tmp_path)
    _edit(d / "deals.csv", "won,2026-10-15,2026-10-12 14:00:00,", "won,2026-10-15,,")
    with pytest.raises(ValidationError) as err:
        import_pipedrive(store, d)
    assert (
        "row 4, field 'Deal - Won time / Deal - Lost time': deals.csv: closed_at is required"
        in (str(err.value))
    )
    assert store.count("deals") == 0 and store.count("accounts") == 0


def test_deal_without_value_is_imported_without_amount_and_reported(store: Store) -> None:
    result = import_pipedrive(store, OCT)
    assert pd.isna(_deal(store, "2")["amount"])
    assert "deals.csv: 1 deal(s) without Value, imported without amount" in result.summary()


def test_second_currency_code_is_stored_unconverted(store: Store) -> None:
    import_pipedrive(store, OCT)
    eur = _deal(store, "4")
    assert (eur["currency"], eur["amount"]) == ("EUR", 20000.0)
    assert _deal(store, "1")["currency"] == "USD"


def test_deactivated_owner_stays_the_same_owner_by_name_and_is_reported(store: Store) -> None:
    import_pipedrive(store, OCT)
    assert _deal(store, "3")["owner"] == "Carla Stein"
    result = import_pipedrive(store, NOV)  # "Carla Stein (deactivated)" in the later export
    assert _deal(store, "3")["owner"] == "Carla Stein"
    assert result.files["deals.csv"]["unchanged"] >= 1
    assert "deactivated user(s) kept as owners by name: Carla Stein" in result.summary()
    owners = store.read("deals")["owner"]
    assert not owners.str.contains("deactivated").any()


def test_accounts_are_keyed_by_organization_id_and_deals_linked_by_name(store: Store) -> None:
    import_pipedrive(store, OCT)
    acc = store.read("accounts").set_index("account_id")
    assert acc.loc["104", "name"] == "Umbrella GmbH" and acc.loc["104", "country"] == "Germany"
    assert _deal(store, "4")["account_id"] == "104"


def test_accounts_are_keyed_by_name_without_an_id_column(store: Store, tmp_path: Path) -> None:
    d = _copy(tmp_path)
    org = pd.read_csv(d / "organizations.csv", dtype=str).drop(columns=["Organization - ID"])
    org.to_csv(d / "organizations.csv", index=False)
    result = import_pipedrive(store, d)
    assert sorted(store.known_keys("accounts"))[:2] == ["Acme Corp", "Globex"]
    assert _deal(store, "4")["account_id"] == "Umbrella GmbH"
    assert "keyed by organization name" in result.summary()


def test_organization_id_column_in_deals_links_deals_by_id(store: Store, tmp_path: Path) -> None:
    d = _copy(tmp_path)
    deals = pd.read_csv(d / "deals.csv", dtype=str)
    deals["Organization - ID"] = ["101", "102", "103", "104", "105", "105", "101"]  # by ID
    deals.to_csv(d / "deals.csv", index=False)
    import_pipedrive(store, d)
    assert _deal(store, "6")["account_id"] == "105"


def test_unknown_or_ambiguous_organization_name_refuses_the_deal_line(
    store: Store, tmp_path: Path
) -> None:
    d = _copy(tmp_path)
    _edit(d / "deals.csv", "Hooli,,", "Hooly,,")
    _edit(d / "organizations.csv", "102,Globex", "102,Acme Corp")
    with pytest.raises(ValidationError) as err:
        import_pipedrive(store, d)
    text = str(err.value)
    assert "row 6, field 'Deal - Organization': deals.csv: no organization of this name" in text
    assert "several organizations have this name (IDs 101, 102)" in text


def test_persons_become_contacts_and_persons_without_organization_are_counted(
    store: Store,
) -> None:
    result = import_pipedrive(store, OCT)
    contacts = store.read("contacts").set_index("contact_id")
    assert sorted(contacts.index) == ["201", "202"]
    assert contacts.loc["201", "email"] == "dana@acme.example"  # from "Person - Email - Work"
    assert contacts.loc["201", "account_id"] == "101"
    assert "persons.csv: 1 person(s) without an organization not imported" in result.summary()


def test_stages_come_from_the_deals_per_pipeline(store: Store) -> None:
    import_pipedrive(store, OCT)
    st = store.read("stages")
    assert set(zip(st["pipeline"], st["stage"], strict=True)) == {
        ("Sales", "Qualified"),
        ("Sales", "Proposal"),
        ("Renewals", "Negotiation"),
        ("Renewals", "Proposal"),
    }
    sales = st[st["pipeline"] == "Sales"].set_index("stage")["stage_order"]
    assert sales["Qualified"] < sales["Proposal"]  # as first seen in the file


def test_history_is_built_from_the_export_and_the_summary_says_so_once(store: Store) -> None:
    result = import_pipedrive(store, OCT)
    h = store.read("deal_history", where={"deal_id": "3"}).sort_values(["changed_at", "field"])
    got = [
        (str(t), f, o, n)
        for t, f, o, n in h[["changed_at", "field", "old_value", "new_value"]].itertuples(
            index=False
        )
    ]
    assert ("2026-08-01 09:00:00", "stage", None, "Negotiation") in got
    assert ("2026-08-01 09:00:00", "status", None, "open") in got
    assert ("2026-10-12 14:00:00", "status", "open", "won") in got
    assert set(h["changed_by"]) == {"pipedrive import"}
    assert result.summary().count("has no stage history") == 1


def test_summary_gives_per_file_counts(store: Store) -> None:
    text = import_pipedrive(store, OCT).summary()
    assert "organizations.csv: 5 imported, 0 updated" in text
    assert "deals.csv: 6 imported, 0 updated" in text
    assert "persons.csv: 2 imported, 0 updated" in text
    assert "deals.csv: field(s) Deal - Label not imported" in text


# ---------------------------------------------------------------------- re-import
def test_reimport_of_a_later_export_updates_by_deal_id_without_duplicates(store: Store) -> None:
    import_pipedrive(store, OCT)
    result = import_pipedrive(store, NOV)
    assert store.count("deals") == 7  # six from October, deal 8 new
    c = result.files["deals.csv"]
    assert (c["imported"], c["updated"], c["unchanged"]) == (1, 5, 1)
    assert result.files["organizations.csv"]["imported"] == 1  # Stark Industries
    one = _deal(store, "1")
    assert (one["stage"], one["amount"]) == ("Proposal", 14000.0)
    assert _deal(store, "8")["account_id"] == "106"


def test_reimport_records_changes_as_history_once(store: Store) -> None:
    import_pipedrive(store, OCT)
    import_pipedrive(store, NOV, changed_by="nov import")
    h = store.read("deal_history", where={"deal_id": "1"})
    later = h[h["changed_by"] == "nov import"].set_index("field")
    assert later.loc["stage", ["old_value", "new_value"]].tolist() == ["Qualified", "Proposal"]
    assert later.loc["amount", "new_value"] == "14000.0"
    assert later.loc["expected_close_date", "new_value"].startswith("2027-01-15")
    won = store.read("deal_history", where={"deal_id": "4"})
    assert [("open", "won")] == [
        (o, n)
        for f, o, n in won[["field", "old_value", "new_value"]].itertuples(index=False)
        if f == "status" and n == "won"
    ]
    n = store.count("deal_history")
    import_pipedrive(store, NOV, changed_by="again")
    assert store.count("deal_history") == n  # nothing changed, nothing recorded


def test_deal_won_between_exports_is_recorded_at_its_won_time(store: Store) -> None:
    import_pipedrive(store, OCT)
    import_pipedrive(store, NOV)
    h = store.read("deal_history", where={"deal_id": "4", "field": "status"})
    won = h[h["new_value"] == "won"]
    assert len(won) == 1 and str(won["changed_at"].iloc[0]) == "2026-11-20 10:00:00"
    assert won["old_value"].iloc[0] == "open"


def test_stage_change_between_exports_is_recorded_at_last_stage_change(store: Store) -> None:
    import_pipedrive(store, OCT)
    import_pipedrive(store, NOV)
    one = store.read("deal_history", where={"deal_id": "1", "field": "stage"})
    moved = one[one["old_value"] == "Qualified"]
    assert len(moved) == 1 and str(moved["changed_at"].iloc[0]) == "2026-11-05 10:00:00"
    # deal 2's stage was renamed; its last stage change is its creation: recorded at import
    two = store.read("deal_history", where={"deal_id": "2", "field": "stage"})
    renamed = two[two["new_value"] == "Discovery"]
    assert len(renamed) == 1 and renamed["changed_at"].iloc[0] > pd.Timestamp("2026-11-30")


def test_deal_moved_between_pipelines_is_updated(store: Store) -> None:
    import_pipedrive(store, OCT)
    assert _deal(store, "5")["pipeline"] == "Renewals"
    import_pipedrive(store, NOV)
    moved = _deal(store, "5")
    assert (moved["pipeline"], moved["stage"]) == ("New Business", "Proposal")
    st = store.read("stages")
    assert ("New Business", "Proposal") in set(zip(st["pipeline"], st["stage"], strict=True))


def test_renamed_stage_is_reported_on_reimport(store: Store) -> None:
    import_pipedrive(store, OCT)
    result = import_pipedrive(store, NOV)
    assert "stage(s) 'Qualified' are on no deal of this export" in result.summary()
    assert _deal(store, "2")["stage"] == "Discovery"


def test_renamed_stage_is_renamed_by_the_mapping(store: Store, tmp_path: Path) -> None:
    m = tmp_path / "m.json"
    m.write_text('{"stages": {"Qualified": "Discovery"}}')
    import_pipedrive(store, OCT, mapping=load_pipedrive_mapping(m))
    assert _deal(store, "2")["stage"] == "Discovery"
    result = import_pipedrive(store, NOV)
    assert "are on no deal of this export" not in result.summary()
    h = store.read("deal_history", where={"deal_id": "2"})
    assert "Qualified" not in set(h["new_value"].dropna()) | set(h["old_value"].dropna())


def test_mapping_file_maps_a_field_and_refuses_unknown_targets(
    store: Store, tmp_path: Path
) -> None:
    m = tmp_path / "m.json"
    m.write_text('{"deals": {"Label": "source", "Deal - Lost reason": null}}')
    result = import_pipedrive(store, OCT, mapping=load_pipedrive_mapping(m))
    assert _deal(store, "1")["source"] == "Hot"
    assert _deal(store, "6")["lost_reason"] is None  # either spelling names the field
    assert "deals.csv: field(s)" not in result.summary()  # Label mapped, Lost reason left out
    m.write_text('{"deals": {"Label": "tier"}}')
    with pytest.raises(FileFormatError, match="not a field of deals"):
        load_pipedrive_mapping(m)
    m.write_text('{"leads": {}}')
    with pytest.raises(FileFormatError, match="unknown kind 'leads'"):
        load_pipedrive_mapping(m)


# ---------------------------------------------------------------------- bad input
def _broken(tmp_path: Path) -> Path:
    d = _copy(tmp_path)
    _edit(d / "deals.csv", "Acme platform,12000,", "Acme platform,12k,")
    _edit(
        d / "deals.csv",
        "Hooli expansion,15000,USD,Renewals,Proposal,open",
        "Hooli expansion,15000,USD,Renewals,Proposal,pending",
    )
    return d


def test_any_bad_row_writes_nothing_and_names_file_line_and_field(
    store: Store, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as err:
        import_pipedrive(store, _broken(tmp_path))
    text = str(err.value)
    assert "row 2, field 'Deal - Value': deals.csv: not a number" in text
    assert "row 6, field 'Deal - Status': deals.csv: must be one of open, won, lost" in text
    assert [e.value for e in err.value.errors] == ["12k", "pending"]
    assert store.count("accounts") == 0 and store.count("deals") == 0


def test_skip_bad_writes_good_rows_and_rejects_with_reasons(store: Store, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = import_pipedrive(store, _broken(tmp_path), on_error="skip", rejects_path=rejects)
    assert store.count("deals") == 4
    assert result.files["deals.csv"]["rejected"] == 2
    table = pd.read_csv(rejects)
    assert table[["file", "row", "field"]].values.tolist() == [
        ["deals.csv", 2, "Deal - Value"],
        ["deals.csv", 6, "Deal - Status"],
    ]


def test_not_a_folder_is_a_one_line_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="not a folder"):
        import_pipedrive(store, OCT / "deals.csv")


def test_folder_without_deals_file_is_a_one_line_error(store: Store, tmp_path: Path) -> None:
    (tmp_path / "organizations.csv").write_text("ID,Name\n1,A\n")
    with pytest.raises(FileFormatError, match=r"no deals\.csv"):
        import_pipedrive(store, tmp_path)


def test_deals_file_without_status_column_is_a_one_line_error(store: Store, tmp_path: Path) -> None:
    d = _copy(tmp_path)
    pd.read_csv(d / "deals.csv", dtype=str).drop(columns=["Deal - Status"]).to_csv(
        d / "deals.csv", index=False
    )
    with pytest.raises(FileFormatError, match=r"no Status column \(as 'Status' or 'Deal - Status'"):
        import_pipedrive(store, d)
    assert store.count("deals") == 0


def test_deals_only_folder_imports_deals_without_accounts(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "only"
    d.mkdir()
    shutil.copy(OCT / "deals.csv", d / "deals.csv")
    result = import_pipedrive(store, d)
    assert store.count("deals") == 6 and store.count("accounts") == 0
    assert _deal(store, "1")["account_id"] is None
    assert "no organizations.csv" in result.summary()


def test_excel_export_reads_like_csv(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "xlsx"
    d.mkdir()
    for name in ("deals", "organizations", "persons"):
        pd.read_csv(OCT / f"{name}.csv", dtype=str).to_excel(d / f"{name}.xlsx", index=False)
    import_pipedrive(store, d)
    assert store.count("deals") == 6 and _deal(store, "4")["account_id"] == "104"


# ---------------------------------------------------------------------- CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "crmkit", "import", "pipedrive", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_cli_import_pipedrive_prints_per_file_counts_and_warnings(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    import_rates_cli(db, "pipedrive")
    out = _cli(str(OCT), "--db", db)
    assert out.returncode == 0, out.stderr
    assert "deals.csv: 6 imported, 0 updated" in out.stdout
    assert "warning: deals.csv: 1 deleted deal(s) skipped" in out.stdout
    again = _cli(str(NOV), "--db", db, "--by", "nov")
    assert again.returncode == 0, again.stderr
    assert "deals.csv: 1 imported, 5 updated, 1 unchanged" in again.stdout


def test_cli_not_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    out = _cli(str(OCT / "deals.csv"), "--db", str(tmp_path / "x.db"))
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert "not a folder" in out.stderr and "Traceback" not in out.stderr
    assert not list(tmp_path.glob("x.db*"))


def test_cli_folder_without_deals_file_is_a_one_line_error(tmp_path: Path) -> None:
    out = _cli(str(tmp_path), "--db", str(tmp_path / "x.db"))
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert "no deals.csv" in out.stderr


def test_cli_bad_rows_exit_1_and_write_nothing(tmp_path: Path) -> None:
    out = _cli(str(_broken(tmp_path)), "--db", str(tmp_path / "b.db"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "nothing was imported" in out.stderr and "Deal - Status" in out.stderr
    assert not list(tmp_path.glob("b.db*"))


def test_deal_in_a_currency_without_rate_is_refused_naming_the_row(tmp_path: Path) -> None:
    bare = Store.open(tmp_path / "norates.db")
    with pytest.raises(ValidationError, match="Currency") as info:
        import_pipedrive(bare, OCT)
    assert "'EUR' is not the reporting currency USD" in str(info.value)
    assert bare.count("deals") == 0 and bare.count("accounts") == 0
    bare.close()
