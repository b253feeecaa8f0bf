"""The fiscal calendar: years, periods, quarters and labels; quotas follow it.

Hand-computed boundaries; the 52-53-week rule is the "same weekday nearest the last day of
the month" year of 26 CFR 1.441-2(a)(1)(iii)(B) (its own example is checked below).
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pandas as pd
import pytest

from crmkit.data.io import import_file
from crmkit.errors import CrmkitError, ValidationError
from crmkit.store import Store
from crmkit.store.calls import add_call, period_label, quota_frame
from crmkit.store.fiscal import FISCAL_WEEKS, FiscalCalendar, fiscal_calendar
from crmkit.store.settings import FISCAL_PATTERNS, set_setting

T = pd.Timestamp


def _days(bounds: tuple[pd.Timestamp, pd.Timestamp]) -> int:
    return (bounds[1] - bounds[0]).days + 1


# ---------------------------------------------------------------------- default calendar
def test_default_calendar_is_calendar_months_with_todays_labels() -> None:
    cal = FiscalCalendar()
    assert cal.is_default and not cal.in_weeks
    assert cal.period_bounds("2024-02-10") == (T("2024-02-01"), T("2024-02-29"))
    assert cal.quarter_bounds("2026-11-15") == (T("2026-10-01"), T("2026-12-31"))
    assert cal.quarter_of("2026-11-15") == (2026, 4)
    assert cal.period_label("2026-11-01") == "2026-11"
    assert cal.quarter_label("2026-10-01") == "2026-Q4"
    assert period_label("Q", "2026-10-01") == "2026-Q4"


# ---------------------------------------------------------------------- April start, months
def test_april_start_quarters_are_hand_computed_fiscal_quarters() -> None:
    cal = FiscalCalendar(4)
    # FY2027 runs April 2026 to March 2027 (named by the year it ends in)
    assert cal.year_bounds(2027) == (T("2026-04-01"), T("2027-03-31"))
    assert cal.quarters("2026-04-01", 4) == [
        (T("2026-04-01"), T("2026-06-30")),
        (T("2026-07-01"), T("2026-09-30")),
        (T("2026-10-01"), T("2026-12-31")),
        (T("2027-01-01"), T("2027-03-31")),
    ]
    assert cal.quarter_of("2026-03-31") == (2026, 4)
    assert cal.quarter_of("2026-04-01") == (2027, 1)
    assert cal.quarter_of("2027-02-10") == (2027, 4)
    assert cal.period_bounds("2026-05-20") == (T("2026-05-01"), T("2026-05-31"))
    assert cal.year_periods(2027)[0] == (T("2026-04-01"), T("2026-04-30"))
    assert cal.year_periods(2027)[-1] == (T("2027-03-01"), T("2027-03-31"))


def test_april_start_labels_are_fy_quarters_and_calendar_months() -> None:
    cal = FiscalCalendar(4)
    assert cal.quarter_label("2026-04-01") == "FY27 Q1"
    assert cal.quarter_label("2027-01-01") == "FY27 Q4"
    assert cal.period_label("2026-04-01") == "2026-04"  # fiscal months are calendar months
    assert period_label("Q", "2026-07-01", cal) == "FY27 Q2"
    assert list(cal.labels("Q", ["2026-05-03", None, "2027-03-31 17:00"])[[0, 2]]) == [
        "FY27 Q1",
        "FY27 Q4",
    ]


def test_periods_run_on_across_fiscal_years() -> None:
    cal = FiscalCalendar(4)
    got = cal.periods("2027-02-14", 3)
    assert got == [
        (T("2027-02-01"), T("2027-02-28")),
        (T("2027-03-01"), T("2027-03-31")),
        (T("2027-04-01"), T("2027-04-30")),
    ]
    assert cal.label("M", got[2][0]) == "2027-04"
    assert cal.quarter_label(got[2][0]) == "FY28 Q1"


# ---------------------------------------------------------------------- 52-53-week years
def test_week_year_ends_on_the_saturday_nearest_the_month_end_cfr_example() -> None:
    # 26 CFR 1.441-2(a)(4): a year ending on the Saturday nearest the end of November ends,
    # for 2001, on December 1, 2001
    cal = FiscalCalendar(12, "4-4-5")
    assert cal.year_bounds(2001)[1] == T("2001-12-01")
    assert cal.year_bounds(2001)[1].day_name() == "Saturday"
    # calendar-year 4-4-5: FY2026 ends Sat 2027-01-02 (nearest Dec 31, 2026, a Thursday)
    assert FiscalCalendar(1, "4-4-5").year_bounds(2026) == (T("2026-01-04"), T("2027-01-02"))


@pytest.mark.parametrize("pattern", list(FISCAL_WEEKS))
@pytest.mark.parametrize("start_month", [1, 4, 10])
def test_week_year_has_12_periods_summing_to_364_or_371_days_without_gaps(
    pattern: str, start_month: int
) -> None:
    cal = FiscalCalendar(start_month, pattern)
    weeks = FISCAL_WEEKS[pattern] * 4
    long_years = 0
    previous_end = cal.year_bounds(2019)[1]
    for fy in range(2020, 2032):
        periods = cal.year_periods(fy)
        assert len(periods) == 12
        total = sum(_days(p) for p in periods)
        assert total in (364, 371)
        assert periods[0][0] == previous_end + pd.Timedelta(days=1)  # years tile
        for (_, end), (start, _) in itertools.pairwise(periods):
            assert start == end + pd.Timedelta(days=1)  # periods tile
        assert all(end.day_name() == "Saturday" for _, end in periods)
        extra = (total - 364) // 7
        long_years += extra
        assert [_days(p) // 7 for p in periods] == [*weeks[:-1], weeks[-1] + extra]
        assert abs((periods[-1][1] - cal.year_bounds(fy)[1]).days) == 0
        previous_end = periods[-1][1]
    assert 1 <= long_years <= 3  # a 53-week year every five or six years


def test_week_calendar_labels_name_fiscal_periods_and_quarters() -> None:
    cal = FiscalCalendar(1, "4-4-5")
    p3 = cal.year_periods(2026)[2]
    assert p3 == (T("2026-03-01"), T("2026-04-04"))  # weeks 9-13: the 5-week period
    assert cal.period_label(p3[0]) == "FY26 P03"
    assert cal.period_label("2026-04-05") == "FY26 P04"
    assert cal.quarter_label("2026-04-04") == "FY26 Q1"
    assert cal.quarter_bounds("2026-04-05") == (T("2026-04-05"), T("2026-07-04"))
    assert cal.quarter_of("2027-01-02") == (2026, 4)  # the year's last day
    assert cal.quarter_of("2027-01-03") == (2027, 1)


def test_bad_month_or_pattern_is_refused_in_one_line() -> None:
    with pytest.raises(CrmkitError, match="not a month 1-12"):
        FiscalCalendar(13)
    with pytest.raises(CrmkitError, match="not one of months, 4-4-5"):
        FiscalCalendar(1, "4-4-4")
    with pytest.raises(CrmkitError, match="not a day"):
        FiscalCalendar().period_bounds("soon")


def test_patterns_are_the_settings_patterns() -> None:
    assert FISCAL_PATTERNS == ("months", *FISCAL_WEEKS)


# ---------------------------------------------------------------------- from the store
def test_fiscal_calendar_reads_the_settings(store: Store) -> None:
    assert fiscal_calendar(store) == FiscalCalendar()
    set_setting(store, "fiscal_year_start_month", "4")
    set_setting(store, "fiscal_pattern", "5-4-4")
    assert fiscal_calendar(store) == FiscalCalendar(4, "5-4-4")


# ---------------------------------------------------------------------- quotas and calls
def _quotas(period: str, starts: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scope": ["team"] * len(starts),
            "name": [f"T{i}" for i in range(len(starts))],
            "period": [period] * len(starts),
            "period_start": starts,
            "amount": [100.0] * len(starts),
        }
    )


def test_quota_on_a_fiscal_quarter_start_is_kept_with_its_fy_label(store: Store) -> None:
    set_setting(store, "fiscal_year_start_month", 2)
    store.insert("quotas", _quotas("Q", ["2026-02-01", "2026-11-01"]))
    q = quota_frame(store).set_index("name")
    assert q.loc["T0", "label"] == "FY27 Q1"
    assert q.loc["T1", "label"] == "FY27 Q4"


def test_quota_not_on_a_fiscal_quarter_start_is_refused_naming_the_row(store: Store) -> None:
    set_setting(store, "fiscal_year_start_month", 2)
    with pytest.raises(ValidationError) as info:
        store.insert("quotas", _quotas("Q", ["2026-02-01", "2026-01-01"]))
    msg = str(info.value)
    assert "row 2, field 'period_start': period_start 2026-01-01 is not the first day of a " in msg
    assert "fiscal quarter (fiscal year from Feb, calendar months; that quarter starts " in msg
    assert "2025-11-01" in msg and "\n" not in msg.strip()
    assert store.count("quotas") == 0


def test_quota_file_import_follows_the_week_calendar(store: Store, tmp_path: Path) -> None:
    set_setting(store, "fiscal_pattern", "4-4-5")
    path = tmp_path / "quotas.csv"
    _quotas("M", ["2026-01-04", "2026-01-01"]).to_csv(path, index=False)
    with pytest.raises(ValidationError, match=r"row 3, field 'period_start'.*fiscal month"):
        import_file(store, "quotas", path)
    assert store.count("quotas") == 0
    _quotas("M", ["2026-01-04", "2026-03-01"]).to_csv(path, index=False)
    import_file(store, "quotas", path)
    assert list(quota_frame(store)["label"]) == ["FY26 P01", "FY26 P03"]


def test_quota_edit_to_a_non_fiscal_start_is_refused(store: Store) -> None:
    set_setting(store, "fiscal_year_start_month", 4)
    store.insert("quotas", _quotas("Q", ["2026-04-01"]))
    key = ("team", "T0", "Q", dt.date(2026, 4, 1))
    store.update("quotas", key, {"amount": 5.0})  # a valid row stays editable
    with pytest.raises(ValidationError, match="fiscal quarter"):
        store.insert("quotas", _quotas("Q", ["2026-03-01"]).assign(name="X"))


def test_call_checks_its_period_start_against_the_fiscal_calendar(store: Store) -> None:
    set_setting(store, "fiscal_year_start_month", 4)
    with pytest.raises(ValidationError, match="2026-01-02 is not the first day of a fiscal"):
        add_call(
            store, scope="company", name="all", period="Q", period_start="2026-01-02",
            amount=1.0, author="cfo",
        )  # fmt: skip
    add_call(
        store, scope="company", name="all", period="Q", period_start="2026-04-01",
        amount=1.0, author="cfo",
    )  # fmt: skip
    assert store.count("forecast_calls") == 1


def test_default_calendar_keeps_todays_quota_messages(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.insert("quotas", _quotas("Q", ["2026-02-01"]))
    assert "is not the first day of a quarter (Jan 1, Apr 1, Jul 1 or Oct 1)" in str(info.value)
