"""The forecast's axes: periods after as_of, groups and the groups each deal counts in."""

from __future__ import annotations

import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.forecast.axes import group_axis, memberships, period_axis


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
