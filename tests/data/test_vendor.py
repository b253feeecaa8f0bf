"""Tests of crmkit.data.vendor: import_frames on small hand-made crmkit frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crmkit import Store
from crmkit.data.vendor import VendorImport, forecast_category, import_frames
from crmkit.errors import RowError, ValidationError
from crmkit.store.schema import ENTITIES

FILES = {
    "accounts": "companies.csv",
    "stages": "deals.csv",
    "deals": "deals.csv",
    "deal_history": "deals.csv",
}
BACK = {"deals": {"amount": "Amount", "expected_close_date": "Close Date"}}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "crm.db")
    yield s
    s.close()


def _frames(amount: object = 1000.0, stage: str = "Proposal") -> dict[str, pd.DataFrame]:
    """Two accounts, two stages, two deals and a stage history, indexed by file line."""
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "name": ["Acme", "Globex"],
            "created_at": ["2026-01-05", "2026-02-01"],
        },
        index=pd.Index([2, 3], name="line"),
    )
    stages = pd.DataFrame(
        {
            "pipeline": ["sales", "sales"],
            "stage": ["Discovery", "Proposal"],
            "stage_order": [1, 2],
            "probability": [0.2, 0.6],
        },
        index=pd.Index([2, 3], name="line"),
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["D1", "D2"],
            "account_id": ["A1", "A2"],
            "owner": ["Ana", "Ben"],
            "pipeline": ["sales", "sales"],
            "stage": [stage, "Discovery"],
            "status": ["open", "open"],
            "amount": [amount, 500.0],
            "created_at": ["2026-03-01", "2026-03-02"],
            "expected_close_date": ["2026-06-30", "2026-07-31"],
        },
        index=pd.Index([2, 3], name="line"),
    )
    history = pd.DataFrame(
        {
            "deal_id": ["D1", "D1"],
            "changed_at": [pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-10")],
            "field": ["stage", "stage"],
            "old_value": [None, "Discovery"],
            "new_value": ["Discovery", "Proposal"],
        },
        index=pd.Index([2, 2], name="line"),
    )
    return {"accounts": accounts, "stages": stages, "deals": deals, "deal_history": history}


def _run(store: Store, frames: dict, errors: list | None = None, **kw) -> VendorImport:
    return import_frames(
        store,
        frames,
        {n: FILES[n] for n in frames},
        errors if errors is not None else [],
        [],
        source="Test",
        folder=Path("export"),
        back=BACK,
        **kw,
    )


def test_new_rows_of_every_entity_are_inserted_with_per_file_counts(store: Store) -> None:
    result = _run(store, _frames())
    assert store.count("accounts") == 2 and store.count("deals") == 2
    assert store.count("stages") == 2
    assert result.files["deals.csv"] == {"imported": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    assert result.files["companies.csv"]["imported"] == 2
    h = store.read("deal_history", where={"deal_id": "D1", "field": "stage"})
    assert h.sort_values("changed_at")["new_value"].tolist() == ["Discovery", "Proposal"]
    assert "deals.csv: 2 imported, 0 updated" in result.summary()


def test_reimport_updates_by_key_and_records_the_change_as_history(store: Store) -> None:
    _run(store, _frames())
    frames = _frames(amount=1500.0)
    result = _run(store, frames, changed_by="re-import")
    d = store.read("deals", where={"deal_id": "D1"}).iloc[0]
    assert (d["amount"], d["row_version"]) == (1500.0, 2)
    assert result.files["deals.csv"] == {"imported": 0, "updated": 1, "unchanged": 1, "rejected": 0}
    h = store.read("deal_history", where={"deal_id": "D1", "field": "amount"})
    change = h[h["changed_by"] == "re-import"]
    assert change[["old_value", "new_value"]].values.tolist() == [["1000.0", "1500.0"]]
    # the vendor's history rows already stored are not written again
    assert len(store.read("deal_history", where={"deal_id": "D1", "field": "stage"})) == 2


def test_stored_stage_probabilities_are_kept_on_reimport(store: Store) -> None:
    _run(store, _frames())
    frames = _frames()
    frames["stages"]["probability"] = [0.9, 0.9]
    _run(store, frames)
    st = store.read("stages").set_index("stage")["probability"]
    assert st["Discovery"] == pytest.approx(0.2)


def test_a_bad_row_raises_naming_file_line_and_vendor_field_and_writes_nothing(
    store: Store,
) -> None:
    with pytest.raises(ValidationError) as err:
        _run(store, _frames(amount=-5.0))
    text = str(err.value)
    assert "export (Test export)" in text
    assert "row 2, field 'Amount': deals.csv:" in text
    # the history read from the same line is not reported a second time
    assert "deal_history" not in text and text.count("row 2") == 1
    assert store.count("accounts") == 0 and store.count("deals") == 0


def test_a_line_refused_while_parsing_is_refused_for_every_entity_of_its_file(
    store: Store, tmp_path: Path
) -> None:
    errors = [RowError(2, "Deal Stage", "deals.csv: not a stage", "??")]
    rejects = tmp_path / "rejects.csv"
    result = _run(store, _frames(), errors, on_error="skip", rejects_path=rejects)
    assert set(store.read("deals")["deal_id"]) == {"D2"}
    assert store.count("deal_history") == len(store.read("deal_history", where={"deal_id": "D2"}))
    assert result.files["deals.csv"]["rejected"] == 1
    table = pd.read_csv(rejects)
    assert table[["file", "row", "field"]].values.tolist() == [["deals.csv", 2, "Deal Stage"]]


def test_skip_mode_writes_the_good_rows_and_the_rejects_csv(store: Store, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = _run(store, _frames(amount="lots"), on_error="skip", rejects_path=rejects)
    assert set(store.read("deals")["deal_id"]) == {"D2"}
    assert result.rejects_path == rejects
    table = pd.read_csv(rejects)
    assert table[["file", "row", "field"]].values.tolist() == [["deals.csv", 2, "Amount"]]
    assert "rejected rows (see" in result.summary()


def test_renames_apply_to_deals_stages_and_stage_history(store: Store) -> None:
    frames = _frames()
    _run(store, frames, renames={"Discovery": "Qualify"})
    assert set(store.read("stages")["stage"]) == {"Qualify", "Proposal"}
    h = store.read("deal_history", where={"deal_id": "D1", "field": "stage"})
    assert "Discovery" not in set(h["new_value"]) and "Qualify" in set(h["old_value"])


def test_an_entity_without_special_code_is_inserted_then_updated_by_key(store: Store) -> None:
    # channel_spend (composite key channel + week_start, a date) goes through the generic path
    # as exchange_rates will
    spend = pd.DataFrame(
        {"channel": ["web", "tv"], "week_start": ["2026-01-05", "2026-01-05"], "spend": [10, 20]},
        index=pd.Index([2, 3], name="line"),
    )
    files = {"channel_spend": "spend.csv"}
    import_frames(store, {"channel_spend": spend}, files, [], [], source="T", folder=Path("x"))
    spend2 = spend.assign(spend=[10, 25])
    result = import_frames(
        store, {"channel_spend": spend2}, files, [], [], source="T", folder=Path("x")
    )
    assert result.files["spend.csv"] == {"imported": 0, "updated": 1, "unchanged": 1, "rejected": 0}
    got = store.read("channel_spend").set_index("channel")["spend"]
    assert got.to_dict() == {"web": 10.0, "tv": 25.0}


@pytest.mark.skipif("exchange_rates" not in ENTITIES, reason="exchange_rates not in schema yet")
def test_exchange_rates_frame_is_written_with_no_special_code(store: Store) -> None:
    rates = pd.DataFrame(
        {"currency": ["EUR"], "valid_from": ["2026-01-01"], "rate": [0.9]},
        index=pd.Index([2], name="line"),
    )
    files = {"exchange_rates": "rates.csv"}
    import_frames(store, {"exchange_rates": rates}, files, [], [], source="T", folder=Path("x"))
    import_frames(
        store,
        {"exchange_rates": rates.assign(rate=[0.92])},
        files,
        [],
        [],
        source="T",
        folder=Path("x"),
    )
    assert store.read("exchange_rates")["rate"].tolist() == [0.92]


def test_forecast_category_reads_vendor_spellings() -> None:
    assert forecast_category("Best Case") == "best_case"
    assert forecast_category("BESTCASE") == "best_case"
    assert forecast_category("Not forecasted") == "omitted"
    assert forecast_category("Forecast") == "commit"
    assert forecast_category("maybe") is None
