"""The one forecast parameter validator: every rule, the data's span and the default day.

The store is the small hand-built company (``company`` in ``tests/conftest.py``): its orders
and deals run from 2024-01-10 to 2024-05-04.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
import sqlalchemy as sa

from crmkit.apps.report import validate_parameters
from crmkit.errors import CrmkitError, ValidationError
from crmkit.forecast.params import (
    AS_OF_GRACE_DAYS,
    DataSpan,
    data_span,
    default_as_of,
    validate_forecast_parameters,
)
from crmkit.store import Store
from crmkit.store.schema import TABLES

TODAY = dt.date(2026, 12, 5)
SPAN = DataSpan(first=dt.date(2024, 1, 10), last=dt.date(2024, 5, 4))
GOOD = {"as_of": "2024-04-30", "horizon": 3, "period": "M", "draws": 200, "target": None,
        "method": "map", "seed": 0}  # fmt: skip


def _problems(span=SPAN, **changes) -> dict[str, str]:
    """The problems (field -> reason) of GOOD with ``changes``; {} when it validates."""
    try:
        validate_forecast_parameters(span, **{**GOOD, **changes}, today=TODAY)
    except ValidationError as exc:
        return {e.field: e.reason for e in exc.errors}
    return {}


def test_good_parameters_are_returned_normalised() -> None:
    p = validate_forecast_parameters(
        SPAN, **{**GOOD, "as_of": dt.datetime(2024, 4, 30, 15), "target": 150_000}, today=TODAY
    )
    assert p == {**GOOD, "target": 150_000.0}
    assert isinstance(p["target"], float)


@pytest.mark.parametrize("as_of", ["yesterday", "2024-02-30", "30.04.2024", "", None, 20240430])
def test_as_of_that_is_not_a_real_iso_day_is_refused(as_of) -> None:
    problems = _problems(as_of=as_of)
    assert set(problems) == {"as_of"}
    assert "YYYY-MM-DD" in problems["as_of"] and repr(as_of) in problems["as_of"]


def test_as_of_in_the_future_is_refused() -> None:
    problems = _problems(as_of="3000-01-01")
    assert "3000-01-01 is in the future" in problems["as_of"]
    assert "in the future" in _problems(as_of="2026-12-06")["as_of"]
    assert _problems(span=None, as_of="2026-12-05") == {}  # today itself is fine


def test_as_of_before_the_data_is_refused_naming_the_span() -> None:
    reason = _problems(as_of="1990-01-01")["as_of"]
    assert "outside the data" in reason and "2024-01-10 .. 2024-05-04" in reason
    assert "'1990-01-01'" in reason
    assert "as_of" in _problems(as_of="2024-01-09")
    assert _problems(as_of="2024-01-10") == {}


def test_as_of_after_the_last_data_day_is_allowed_only_within_the_grace() -> None:
    last_ok = SPAN.last + dt.timedelta(days=AS_OF_GRACE_DAYS)
    assert _problems(as_of=last_ok.isoformat()) == {}
    reason = _problems(as_of=(last_ok + dt.timedelta(days=1)).isoformat())["as_of"]
    assert "outside the data" in reason and f"to {last_ok}" in reason


@pytest.mark.parametrize(
    ("period", "horizon"),
    [("M", 0), ("M", -1), ("M", 37), ("M", 500), ("Q", 13), ("M", 2.5), ("M", True), ("M", "6")],
)
def test_horizon_outside_1_to_36_months_or_12_quarters_is_refused(period, horizon) -> None:
    problems = _problems(period=period, horizon=horizon)
    assert set(problems) == {"horizon"}
    assert f"from 1 to {36 if period == 'M' else 12}" in problems["horizon"]
    assert repr(horizon) in problems["horizon"]


def test_horizon_limits_themselves_are_accepted() -> None:
    assert _problems(horizon=1) == _problems(horizon=36) == {}
    assert _problems(period="Q", horizon=12) == {}


@pytest.mark.parametrize("target", [-100.0, 0, math.nan, math.inf, -math.inf, "1e6", True, {}])
def test_target_that_is_not_a_finite_positive_amount_is_refused(target) -> None:
    problems = _problems(target=target)
    assert set(problems) == {"target"}
    assert "finite amount > 0" in problems["target"]


def test_target_per_period_must_name_the_forecasts_periods() -> None:
    p = validate_forecast_parameters(
        SPAN, **{**GOOD, "target": {"2024-05": 10, "2024-07": 2.5}}, today=TODAY
    )
    assert p["target"] == {"2024-05": 10.0, "2024-07": 2.5}
    reason = _problems(target={"2024-05": 10.0, "2025-01": 5.0})["target"]
    assert "2025-01" in reason and "2024-05, 2024-06, 2024-07" in reason
    assert "target" in _problems(target={"2024-05": math.nan})


@pytest.mark.parametrize("draws", [9, 100_001, 0, -5, 50.5, None])
def test_draws_outside_their_bounds_are_refused(draws) -> None:
    assert set(_problems(draws=draws)) == {"draws"}


def test_draws_bounds_themselves_are_accepted() -> None:
    assert _problems(draws=10) == _problems(draws=100_000) == {}


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_seed_that_is_not_a_whole_number_from_0_is_refused(seed) -> None:
    assert set(_problems(seed=seed)) == {"seed"}


@pytest.mark.parametrize("method", ["gibbs", "MAP", None])
def test_method_that_is_not_one_of_the_choices_is_refused(method) -> None:
    problems = _problems(method=method)
    assert set(problems) == {"method"} and "map, nuts, advi" in problems["method"]


def test_every_problem_is_named_on_one_line_with_its_value() -> None:
    with pytest.raises(ValidationError) as err:
        validate_forecast_parameters(
            SPAN, as_of="yesterday", horizon=500, period="M", draws=5, target=-100,
            method="gibbs", seed=-1, today=TODAY,
        )  # fmt: skip
    exc = err.value
    assert isinstance(exc, CrmkitError)
    assert {e.field for e in exc.errors} == {"as_of", "horizon", "draws", "target", "method",
                                             "seed"}  # fmt: skip
    text = str(exc)
    assert "\n" not in text and text.startswith("forecast parameters: 6 problem(s)")
    for shown in ("'yesterday'", "got 500", "got 5", "got -100", "'gibbs'", "got -1"):
        assert shown in text


def test_a_long_bad_value_is_truncated_in_the_message() -> None:
    reason = _problems(as_of="x" * 500)["as_of"]
    assert len(reason) < 120 and reason.endswith("...")


def test_report_parameters_use_the_same_rules() -> None:
    with pytest.raises(ValidationError) as err:
        validate_parameters("2024-04-30", 3, target=math.nan, draws=5, today=TODAY)
    got = {e.field: e.reason for e in err.value.errors}
    assert got == {k: v for k, v in _problems(target=math.nan, draws=5).items()}


# ---------------------------------------------------------------- the data's span, default day
def _insert_order(store: Store, order_id: str, day: str) -> None:
    """Insert an order as a raw row (as another tool might have written it)."""
    with store.transaction() as conn:
        conn.execute(sa.insert(TABLES["orders"]).values(
            order_id=order_id, account_id="A1", ordered_at=pd.Timestamp(day).to_pydatetime(),
            amount=10.0,
        ))  # fmt: skip


def test_data_span_covers_deals_and_orders(company: Store) -> None:
    span = data_span(company, today=TODAY)
    assert span == DataSpan(first=dt.date(2024, 1, 10), last=dt.date(2024, 5, 4), future_rows=0)
    with pytest.raises(ValidationError, match=r"2024-01-10 \.\. 2024-05-04"):
        validate_forecast_parameters(company, **{**GOOD, "as_of": "1990-01-01"}, today=TODAY)


def test_data_span_of_an_empty_store_is_none(mem_store: Store) -> None:
    assert data_span(mem_store, today=TODAY) is None
    with pytest.raises(CrmkitError, match="no deals or orders"):
        default_as_of(None, today=TODAY)


def test_a_future_dated_order_does_not_move_the_default_as_of(company: Store) -> None:
    _insert_order(company, "O-2030", "2030-06-01")
    span = data_span(company, today=TODAY)
    assert span.last == dt.date(2024, 5, 4) and span.future_rows == 1
    assert default_as_of(span, today=TODAY) == "2024-05-04"


def test_default_as_of_is_today_when_the_data_reach_today(company: Store) -> None:
    _insert_order(company, "O-today", "2026-12-05 08:00")
    assert default_as_of(data_span(company, today=TODAY), today=TODAY) == "2026-12-05"
    # the data end earlier: their last day; never a day after today
    assert default_as_of(SPAN, today=TODAY) == "2024-05-04"
    late = DataSpan(first=SPAN.first, last=dt.date(2027, 1, 1))
    assert default_as_of(late, today=TODAY) == "2026-12-05"


def test_parameter_draws_give_each_draw_its_own_until_the_budget_then_no_fewer_than_the_floor():
    from crmkit.forecast.params import MIN_PARAM_DRAWS, PARAM_BUDGET, parameter_draws

    assert parameter_draws(1000, 150) == 1000  # a demo-sized pipeline: one per draw
    assert parameter_draws(2000, 1400) == 2000
    assert parameter_draws(2000, PARAM_BUDGET // 500) == 500  # the budget binds
    assert parameter_draws(1000, 50_000_000) == MIN_PARAM_DRAWS  # never below the floor
    assert parameter_draws(50, 10) == 50  # never more than the draws
    assert parameter_draws(1000, 0) == 1000
