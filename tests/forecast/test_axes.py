"""The forecast's axes: periods after as_of, groups and the groups each deal counts in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import group_axis, memberships, period_axis
from crmkit.forecast.engine import forecast_draws, run_forecast
from crmkit.store import Store
from crmkit.store.fiscal import FiscalCalendar
from crmkit.store.settings import set_setting


def test_period_axis_month_end_starts_next_month() -> None:
    ax = period_axis("2024-04-30", 3, "M")
    assert ax.labels == ["2024-05", "2024-06", "2024-07"]
    assert ax.frac_first == 1.0
    assert ax.period_of_k.tolist() == [0, 1, 2]


def test_period_axis_mid_month_keeps_the_rest_of_the_month() -> None:
    ax = period_axis("2024-04-10", 2, "M")
    assert ax.labels == ["2024-04", "2024-05"]
    assert ax.frac_first == pytest.approx(20 / 30)


def test_period_axis_quarters_map_months() -> None:
    ax = period_axis("2024-05-15", 2, "Q")
    assert ax.labels == ["2024-Q2", "2024-Q3"]
    assert ax.period_of_k.tolist() == [0, 0, 1, 1, 1]
    assert ax.months == 5
    assert [len(m) for m in ax.period_months] == [2, 3]


@pytest.mark.parametrize(("horizon", "period"), [(0, "M"), (2, "W")])
def test_period_axis_rejects_bad_settings(horizon: int, period: str) -> None:
    with pytest.raises(CrmkitError):
        period_axis("2024-04-30", horizon, period)


def test_groups_and_memberships() -> None:
    deals = pd.DataFrame(
        {
            "team": ["north", "south", "(none)"],
            "owner": ["ann", "cy", "bob"],
            "segment": ["SMB", None, "SMB"],
        }
    )
    accounts = pd.DataFrame({"segment": ["Enterprise"], "owner": ["dee"]})
    groups = group_axis(deals, accounts)
    assert groups == [
        "all",
        "team=north",
        "team=south",
        "owner=ann",
        "owner=bob",
        "owner=cy",
        "owner=dee",
        "segment=Enterprise",
        "segment=SMB",
    ]
    index = {g: i for i, g in enumerate(groups)}
    m = memberships(deals, index)
    assert m.shape == (3, 4)
    assert m[:, 0].tolist() == [0, 0, 0]
    assert m[0].tolist() == [0, index["team=north"], index["owner=ann"], index["segment=SMB"]]
    # no team and no segment give -1
    assert m[2, 1] == -1 and m[1, 3] == -1


# ---------------------------------------------------------------------- fiscal calendars
@pytest.mark.parametrize(
    ("as_of", "horizon", "period"),
    [
        ("2024-04-30", 3, "M"),
        ("2024-04-10", 2, "M"),
        ("2024-05-15", 2, "Q"),
        ("2024-12-31", 4, "Q"),
    ],
)
def test_period_axis_default_calendar_reproduces_the_old_axis(
    as_of: str, horizon: int, period: str
) -> None:
    old = period_axis(as_of, horizon, period)
    new = period_axis(as_of, horizon, period, FiscalCalendar())
    assert new.labels == old.labels and new.first_month == old.first_month
    assert new.period_of_k.tolist() == old.period_of_k.tolist()
    assert new.period_months == old.period_months and new.frac_first == old.frac_first
    step = "MS" if period == "M" else "QS"
    starts = pd.date_range(new.bounds[0][0], periods=horizon, freq=step)
    assert [b[0] for b in new.bounds] == list(starts)


def test_period_axis_april_fiscal_quarters_have_fy_labels_and_bounds() -> None:
    ax = period_axis("2024-05-15", 3, "Q", FiscalCalendar(4))
    assert ax.labels == ["FY25 Q1", "FY25 Q2", "FY25 Q3"]
    assert ax.bounds[0] == (pd.Timestamp("2024-04-01"), pd.Timestamp("2024-06-30"))
    assert ax.period_of_k.tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    feb = period_axis("2024-05-15", 2, "Q", FiscalCalendar(2))
    assert feb.labels == ["FY25 Q2", "FY25 Q3"]  # May-Jul, Aug-Oct
    assert feb.bounds[1] == (pd.Timestamp("2024-08-01"), pd.Timestamp("2024-10-31"))
    assert feb.period_of_k.tolist() == [0, 0, 0, 1, 1, 1]
    assert feb.period_of(["2024-07-31", "2024-08-01", "2024-04-30"]).tolist() == [0, 1, -1]


def test_period_axis_refuses_a_week_calendar_it_cannot_simulate() -> None:
    with pytest.raises(CrmkitError, match="fiscal_pattern 4-4-5: the forecast simulates calendar"):
        period_axis("2024-05-15", 2, "Q", FiscalCalendar(1, "4-4-5"))


def test_fiscal_quarter_draws_are_the_sums_of_their_months(marketing_setup) -> None:
    _, frames, models = marketing_setup
    cal = FiscalCalendar(4)
    kw = {"as_of": "2024-04-30", "draws": 50, "seed": 3, "include_repeat": False}
    q = forecast_draws(models, frames, horizon=2, period="Q", calendar=cal, **kw)["revenue"]
    m = forecast_draws(models, frames, horizon=5, period="M", calendar=cal, **kw)["revenue"]
    assert list(q.coords["period"].values) == ["FY25 Q1", "FY25 Q2"]
    assert list(m.coords["period"].values) == [
        "2024-05",
        "2024-06",
        "2024-07",
        "2024-08",
        "2024-09",
    ]
    months = {"FY25 Q1": ["2024-05", "2024-06"], "FY25 Q2": ["2024-07", "2024-08", "2024-09"]}
    for label, parts in months.items():
        np.testing.assert_allclose(
            q.sel(period=label).values, m.sel(period=parts).sum("period").values
        )
    assert float(q.sel(source="total", group="all").sum()) > 0


def test_forecast_of_an_april_fiscal_year_store_has_fy_quarters(
    sim_deals_db_file, copy_db, tmp_path
) -> None:
    store = Store.open(copy_db(sim_deals_db_file, tmp_path))
    try:
        set_setting(store, "fiscal_year_start_month", 4)
        snap = run_forecast(
            store, as_of="2024-04-30", horizon=2, period="Q", draws=40, seed=1,
            target={"FY25 Q2": 1000.0}, include_repeat=False, save=False, method="map",
        )  # fmt: skip
    finally:
        store.close()
    assert list(snap.revenue.coords["period"].values) == ["FY25 Q1", "FY25 Q2"]
    assert snap.parameters["calendar"] == {"start_month": 4, "pattern": "months"}
    q = snap.quantiles
    assert set(q["period"]) == {"FY25 Q1", "FY25 Q2"}
    total = q[(q["source"] == "total") & (q["group"] == "all")].set_index("period")
    assert total.loc["FY25 Q1", "closed_to_date"] > 0  # April's won deals are in FY25 Q1
    assert total.loc["FY25 Q2", "target"] == 1000.0
    calls = snap.parameters["tables"]["forecast_call"]
    assert {r["period"] for r in calls} == {"FY25 Q1", "FY25 Q2"}
    actual = {r["period"] for r in snap.parameters["tables"]["actuals"]}
    assert "FY25 Q1" in actual and all(p.startswith("FY") for p in actual)
