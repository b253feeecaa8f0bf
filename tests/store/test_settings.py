"""Settings kept in the database: defaults, checks, and nothing saved on a refusal."""

from __future__ import annotations

import pytest

from crmkit.errors import CrmkitError
from crmkit.store import Store
from crmkit.store.settings import SETTINGS, all_settings, get_setting, set_setting


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "s.db")
    yield s
    s.close()


def test_defaults_are_usd_and_the_calendar_year(store) -> None:
    assert all_settings(store) == {
        "reporting_currency": "USD",
        "fiscal_year_start_month": 1,
        "fiscal_pattern": "months",
    }


def test_values_are_normalised_and_kept_across_opens(tmp_path) -> None:
    with Store.open(tmp_path / "k.db") as s:
        assert set_setting(s, "reporting_currency", " eur ") == "EUR"
        assert set_setting(s, "fiscal_year_start_month", "4") == 4
        assert set_setting(s, "fiscal_pattern", "4-4-5") == "4-4-5"
    with Store.open(tmp_path / "k.db") as s:
        assert get_setting(s, "reporting_currency") == "EUR"
        assert get_setting(s, "fiscal_year_start_month") == 4
        assert get_setting(s, "fiscal_pattern") == "4-4-5"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("reporting_currency", "EURO", "not a 3-letter ISO code"),
        ("reporting_currency", "E1R", "not a 3-letter ISO code"),
        ("fiscal_year_start_month", "13", "not a month 1-12"),
        ("fiscal_year_start_month", "April", "not a month 1-12"),
        ("fiscal_pattern", "4-4-6", "not one of months, 4-4-5"),
        ("colour", "red", "unknown setting 'colour'"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_and_nothing_is_saved(
    store, name, value, message
) -> None:
    before = all_settings(store)
    with pytest.raises(CrmkitError, match=message) as info:
        set_setting(store, name, value)
    assert "\n" not in str(info.value)
    assert all_settings(store) == before


def test_a_hand_edited_bad_value_is_refused_when_read(store) -> None:
    store.set_meta("setting:fiscal_year_start_month", 0)
    with pytest.raises(CrmkitError, match="not a month"):
        get_setting(store, "fiscal_year_start_month")


def test_every_setting_default_passes_its_own_check() -> None:
    for spec in SETTINGS.values():
        assert spec.check(spec.default) == spec.default
