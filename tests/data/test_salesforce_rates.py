"""Salesforce's CurrencyType and DatedConversionRate exports become crmkit exchange rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmkit.data.io import import_frames
from crmkit.data.salesforce_rates import corporate_currency, salesforce_rates
from crmkit.store import Store
from crmkit.store.currency import convert, rate_table

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce" / "rates_2026-07"


def test_dated_rates_start_on_their_start_date_and_currency_type_fills_the_rest() -> None:
    frame, errors = salesforce_rates(FIXTURE)
    assert errors == []
    got = list(frame.itertuples(name=None))
    assert got == [
        (2, "USD", "1900-01-01", "1"),  # CurrencyType.csv line 2: corporate, rate 1
        (5, "CAD", "1900-01-01", "1.360000"),  # inactive, no dated rates: from the earliest day
        (2, "EUR", "1900-01-01", "0.900000"),  # DatedConversionRate.csv: year 1 -> 1900-01-01
        (3, "EUR", "2026-04-01", "0.940000"),
        (4, "EUR", "2026-07-01", "0.920000"),
        (5, "GBP", "1900-01-01", "0.780000"),
        (6, "GBP", "2026-05-01", "0.790000"),
    ]
    assert frame.index.name == "line"
    assert frame.attrs["files"] == "CurrencyType.csv, DatedConversionRate.csv"


def test_corporate_currency_is_the_natural_reporting_currency() -> None:
    assert corporate_currency(FIXTURE) == "USD"


def test_imported_rates_convert_each_deal_at_its_days_range(mem_store: Store) -> None:
    frame, _ = salesforce_rates(FIXTURE)
    result = import_frames(mem_store, {"exchange_rates": frame})
    assert result.written == {"exchange_rates": 7}
    days = ["2026-03-31", "2026-04-01", "2026-06-30", "2026-07-01", "2020-01-01"]
    got = convert([94.0] * 5, ["EUR"] * 4 + ["CAD"], days, rate_table(mem_store), "USD")
    np.testing.assert_allclose(got, [94 / 0.90, 100.0, 100.0, 94 / 0.92, 94 / 1.36])


def test_currency_type_alone_holds_from_the_earliest_day(tmp_path: Path) -> None:
    (tmp_path / "CurrencyType.csv").write_text(
        "IsoCode,ConversionRate,IsActive,IsCorporate\nEUR,1.0,true,true\nUSD,1.09,true,false\n"
    )
    frame, errors = salesforce_rates(tmp_path)
    assert errors == []
    assert frame.to_dict("list") == {
        "currency": ["EUR", "USD"],
        "valid_from": ["1900-01-01", "1900-01-01"],
        "rate": ["1", "1.09"],
    }
    assert corporate_currency(tmp_path) == "EUR"


def test_missing_column_and_bad_start_date_are_named_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "CurrencyType.csv").write_text("IsoCode,IsCorporate\nUSD,true\n")
    (tmp_path / "DatedConversionRate.csv").write_text(
        "IsoCode,ConversionRate,StartDate\nEUR,0.9,2026-13-01\nEUR,0.8,2026-01-01\n"
    )
    frame, errors = salesforce_rates(tmp_path)
    reasons = [(e.row, e.field, e.reason) for e in errors]
    assert reasons == [
        (None, "ConversionRate", "CurrencyType.csv: required column ConversionRate missing"),
        (2, "StartDate", "DatedConversionRate.csv: unparseable date '2026-13-01'"),
    ]
    assert list(frame.itertuples(name=None)) == [(3, "EUR", "2026-01-01", "0.8")]


def test_a_zero_salesforce_rate_is_refused_by_the_import_naming_its_line(
    tmp_path: Path, mem_store: Store
) -> None:
    from crmkit.errors import ValidationError

    (tmp_path / "DatedConversionRate.csv").write_text(
        "IsoCode,ConversionRate,StartDate\nEUR,0.9,2026-01-01\nGBP,0,2026-01-01\n"
    )
    frame, _ = salesforce_rates(tmp_path)
    with pytest.raises(ValidationError) as info:
        import_frames(mem_store, {"exchange_rates": frame})
    (err,) = info.value.errors
    assert (err.row, err.field) == (3, "rate")
    assert mem_store.count("exchange_rates") == 0


def test_a_folder_without_rate_files_gives_no_rows(tmp_path: Path) -> None:
    frame, errors = salesforce_rates(tmp_path)
    assert frame.empty and list(frame.columns) == ["currency", "valid_from", "rate"]
    assert errors == [] and isinstance(frame, pd.DataFrame)
