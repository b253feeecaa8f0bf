"""Money in more than one currency: exchange rates, conversion, the import check (issue #15)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crmkit.cli import main
from crmkit.data.io import import_frames
from crmkit.errors import CrmkitError, ValidationError
from crmkit.store import Store, migrate
from crmkit.store.currency import (
    conversion_days,
    convert,
    converted_deals,
    converted_history,
    currency_factor,
    missing_rates,
    rate_table,
    rates_on,
)
from crmkit.store.settings import get_setting, set_setting
from tests.factories import small_company

RATES = pd.DataFrame(
    {
        "currency": ["EUR", "EUR", "GBP"],
        "valid_from": ["2024-01-01", "2024-04-01", "2024-01-01"],
        "rate": [0.8, 0.9, 0.5],  # units of the currency per 1 USD
    }
)


def _rates_csv(path: Path, rows: str = "EUR,2024-01-01,0.8\nEUR,2024-04-01,0.9\n") -> Path:
    path.write_text("currency,valid_from,rate\n" + rows)
    return path


def _deals_csv(path: Path, currency: str, created: str = "2024-02-01") -> Path:
    path.write_text(
        "deal_id,owner,pipeline,stage,status,amount,currency,created_at,closed_at\n"
        f"N1,ann,default,Proposal,open,100,USD,{created},\n"
        f"N2,ann,default,Proposal,open,200,{currency},{created},\n"
    )
    return path


def _company_db(path: Path) -> Path:
    s = Store.open(path)
    s.insert_many(small_company())
    s.close()
    return path


# ---------------------------------------------------------------- step 1: table and functions
def test_upgrade_from_0003_adds_exchange_rates_and_downgrade_drops_it(store: Store) -> None:
    from alembic import command

    store.insert_many(small_company())
    deals = store.read("deals")
    with store.engine.connect().execution_options(crmkit_write=True) as conn:
        command.downgrade(migrate._config(conn), "0003")
        conn.commit()
    assert migrate.current_revision(store.engine) == "0003"
    assert "exchange_rates" not in sa.inspect(store.engine).get_table_names()
    reopened = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        assert migrate.current_revision(reopened.engine) == migrate.head_revision()
        pd.testing.assert_frame_equal(reopened.read("deals"), deals)
        reopened.insert("exchange_rates", RATES)
        pk = sa.inspect(reopened.engine).get_pk_constraint("exchange_rates")
        assert pk["constrained_columns"] == ["currency", "valid_from"]
        assert rate_table(reopened)["rate"].tolist() == [0.8, 0.9, 0.5]
    finally:
        reopened.close()


def test_cli_imports_exchange_rates_csv_through_the_generic_importer(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    f = _rates_csv(tmp_path / "rates.csv", "EUR,2024-01-01,0.8\nGBP,2024-01-01,0.5\n")
    assert main(["import", "exchange_rates", str(f), "--db", str(db)]) == 0
    s = Store.open(db)
    table = rate_table(s)
    s.close()
    assert table["currency"].tolist() == ["EUR", "GBP"]
    assert table["valid_from"].tolist() == [pd.Timestamp("2024-01-01")] * 2
    assert table["rate"].tolist() == [0.8, 0.5]


def test_rate_of_zero_or_a_lowercase_code_is_refused_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    f = _rates_csv(tmp_path / "rates.csv", "EUR,2024-01-01,0\neur,2024-01-01,0.8\n")
    assert main(["import", "exchange_rates", str(f), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "row 2" in err and "rate must be > 0" in err
    assert "row 3" in err and "'eur' is not an ISO 4217 code" in err


def test_a_rate_holds_from_its_day_until_the_next_of_the_same_currency() -> None:
    days = ["2023-12-31", "2024-01-01", "2024-03-31 23:00", "2024-04-01", "2030-01-01"]
    got = rates_on(["EUR"] * 5, days, RATES)
    np.testing.assert_array_equal(got, [np.nan, 0.8, 0.8, 0.9, 0.9])
    assert np.isnan(rates_on(["JPY"], ["2024-06-01"], RATES)[0])


def test_reporting_currency_needs_no_rate_and_is_returned_unchanged() -> None:
    amounts = [123.456, 7.0]
    got = convert(amounts, ["USD", "USD"], ["1990-01-01", "2024-01-01"], RATES.iloc[0:0], "USD")
    assert got.tolist() == amounts


def test_amount_is_divided_by_the_rate_of_its_day() -> None:
    got = convert([80.0, 90.0], ["EUR", "EUR"], ["2024-02-01", "2024-05-01"], RATES, "USD")
    np.testing.assert_allclose(got, [100.0, 100.0])


def test_convert_lists_every_missing_currency_with_its_first_day() -> None:
    with pytest.raises(CrmkitError) as info:
        convert(
            [1.0, 2.0, 3.0, 4.0],
            ["JPY", "EUR", "CHF", "JPY"],
            ["2024-02-01", "2023-06-01", "2024-01-01", "2024-01-15"],
            RATES,
            "USD",
        )
    msg = str(info.value)
    assert "\n" not in msg
    assert "CHF from 2024-01-01, EUR from 2023-06-01, JPY from 2024-01-15" in msg
    assert missing_rates(["EUR"], ["2024-06-01"], RATES, "USD") == []


def test_rates_on_another_base_are_rebased_through_the_reporting_currency() -> None:
    # rates per USD, reporting switched to EUR: a USD amount needs USD's own row (rate 1)
    rates = pd.concat(
        [RATES, pd.DataFrame({"currency": ["USD"], "valid_from": ["2020-01-01"], "rate": [1.0]})]
    )
    got = convert([100.0, 50.0], ["USD", "GBP"], ["2024-02-01", "2024-02-01"], rates, "EUR")
    np.testing.assert_allclose(got, [80.0, 80.0])  # 100 USD = 80 EUR; 50 GBP = 100 USD
    assert currency_factor(rates, "GBP", "2024-02-01", "EUR") == pytest.approx(0.5 / 0.8)
    assert missing_rates(["USD"], ["2024-02-01"], RATES, "EUR") == [("USD", dt.date(2024, 2, 1))]


def test_won_and_lost_deals_convert_at_their_close_day_open_ones_at_as_of() -> None:
    deals = small_company()["deals"].assign(currency="EUR")  # D1 open, D2 won 04-20, D3 lost
    days = conversion_days(deals, "2024-05-10")
    assert days.tolist() == [pd.Timestamp(d) for d in ("2024-05-10", "2024-04-20", "2024-03-15")]
    # as of a day before D2 closed, D2 was open: it converts at as_of
    assert conversion_days(deals, "2024-04-01")[1] == pd.Timestamp("2024-04-01")
    out = converted_deals(deals, RATES, "USD", "2024-05-10")
    np.testing.assert_allclose(out["amount"], [12000 / 0.9, 50000 / 0.9, 3000 / 0.8])
    assert out["currency"].tolist() == ["USD"] * 3
    assert out["currency_original"].tolist() == ["EUR"] * 3
    assert out["amount_original"].tolist() == [12000.0, 50000.0, 3000.0]


def test_history_amounts_convert_at_their_deals_day() -> None:
    deals = small_company()["deals"].assign(currency=["EUR", "USD", "EUR"])
    history = pd.DataFrame(
        {
            "deal_id": ["D1", "D1", "D2", "D3"],
            "changed_at": pd.to_datetime(["2024-03-02", "2024-03-09", "2024-02-01", "2024-03-01"]),
            "field": ["amount", "stage", "amount", "amount"],
            "old_value": [None, "Discovery", "40000", "1800"],
            "new_value": ["9000", "Proposal", "50000", "3000"],
        }
    )
    out = converted_history(history, deals, RATES, "USD", as_of="2024-05-10")
    assert float(out["new_value"][0]) == pytest.approx(9000 / 0.9)  # open D1: at as_of
    assert pd.isna(out["old_value"][0])
    assert out["new_value"][1] == "Proposal"
    assert out["old_value"][2] == "40000"  # USD deal untouched
    assert float(out["old_value"][3]) == pytest.approx(1800 / 0.8)  # lost D3: at 2024-03-15


# ---------------------------------------------------------------- step 2: the import check
def test_deal_in_a_currency_without_rate_is_refused_naming_row_field_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _company_db(tmp_path / "c.db")
    f = _deals_csv(tmp_path / "deals.csv", "EUR")
    assert main(["import", "deals", str(f), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "row 3" in err and "currency" in err and "'EUR'" in err
    assert "no exchange rate valid on or before the deal's created_at day 2024-02-01" in err
    assert "row 2" not in err  # the USD deal is fine
    s = Store.open(db)
    assert s.count("deals") == 3  # nothing written
    s.close()


def test_deal_currency_is_accepted_with_a_stored_rate_valid_by_its_day(tmp_path: Path) -> None:
    db = _company_db(tmp_path / "c.db")
    rates = _rates_csv(tmp_path / "rates.csv")
    assert main(["import", "exchange_rates", str(rates), "--db", str(db)]) == 0
    early = _deals_csv(tmp_path / "early.csv", "EUR", created="2023-12-31")
    assert main(["import", "deals", str(early), "--db", str(db)]) == 1  # before the first rate
    ok = _deals_csv(tmp_path / "deals.csv", "EUR", created="2024-01-01")
    assert main(["import", "deals", str(ok), "--db", str(db)]) == 0
    s = Store.open(db)
    assert s.read("deals").set_index("deal_id").loc["N2", "currency"] == "EUR"
    s.close()


def test_deal_currency_is_accepted_with_a_rate_in_the_same_import_batch(company: Store) -> None:
    deals = pd.DataFrame(
        {
            "deal_id": ["N1"],
            "owner": ["ann"],
            "stage": ["Proposal"],
            "amount": [5.0],
            "currency": ["GBP"],
            "created_at": ["2024-02-01"],
        }
    )
    rates = pd.DataFrame({"currency": ["GBP"], "valid_from": ["2024-01-01"], "rate": ["0.5"]})
    with pytest.raises(ValidationError, match="currency 'GBP' is not the reporting currency USD"):
        import_frames(company, {"deals": deals})
    result = import_frames(company, {"deals": deals, "exchange_rates": rates})
    assert result.written == {"exchange_rates": 1, "deals": 1}


def test_won_deal_is_checked_at_its_close_day(company: Store) -> None:
    company.insert("exchange_rates", RATES.iloc[[1]])  # EUR from 2024-04-01 only
    deals = pd.DataFrame(
        {
            "deal_id": ["W1", "W2"],
            "owner": ["ann", "ann"],
            "stage": ["Proposal", "Proposal"],
            "status": ["won", "won"],
            "amount": [5.0, 6.0],
            "currency": ["EUR", "EUR"],
            "created_at": ["2024-02-01", "2024-02-01"],
            "closed_at": ["2024-04-02", "2024-03-31"],
        }
    )
    with pytest.raises(ValidationError) as info:
        import_frames(company, {"deals": deals})
    (err,) = info.value.errors
    assert err.row == 2 and err.field == "currency" and "closed_at day 2024-03-31" in err.reason


def test_changing_the_reporting_currency_refuses_nothing_already_stored(company: Store) -> None:
    assert set_setting(company, "reporting_currency", "eur") == "EUR"
    assert get_setting(company, "reporting_currency") == "EUR"
    assert company.count("deals") == 3  # the USD deals stay; the forecast refuses (engine)
    more = pd.DataFrame({"account_id": ["A9"], "name": ["Later"], "created_at": ["2024-05-01"]})
    assert import_frames(company, {"accounts": more}).written == {"accounts": 1}
