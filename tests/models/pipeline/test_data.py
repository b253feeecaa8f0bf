"""Pipeline data preparation: landmark cells of deal-months at risk."""

from __future__ import annotations

import pytest

from crmkit.models.pipeline.data import deal_frame, landmark_cells

AS_OF = "2024-04-30"


def test_cells_weight_each_deal_month_once(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    cells, _ = landmark_cells(deals, sim["deal_history"], AS_OF, window_months=12, max_ahead=6)
    n = cells[["n_win", "n_lose", "n_stay"]].to_numpy().sum()
    # deal-months at risk in the window: every trial weight sums to one per deal-month,
    # so the total is at most (open deals per month x months) and far less than landmarks x ahead
    wins = cells["n_win"].sum()
    won_in_window = sim["deals"][
        (sim["deals"]["status"] == "won")
        & (sim["deals"]["closed_at"] > "2023-04-30")
        & (sim["deals"]["closed_at"] <= "2024-04-30 23:59")
    ]
    assert wins == pytest.approx(len(won_in_window), rel=0.15)
    assert n > wins
