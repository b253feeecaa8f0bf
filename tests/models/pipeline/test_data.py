"""Pipeline data preparation: landmark cells of deal-months at risk."""

from __future__ import annotations

import numpy as np
import pytest

from crmkit.models.pipeline.data import (
    MONTH_EDGES,
    deal_frame,
    landmark_cells,
    require_stage_ahead,
    stage_ahead_code,
    stage_ahead_coded,
    stage_ahead_levels,
    stage_ahead_matrix,
)

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


def test_stage_ahead_code_is_zero_one_month_ahead_and_one_per_stage_and_later_month(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    cells, levels = landmark_cells(deals, sim["deal_history"], AS_OF, window_months=12)
    n_stage = len(levels.stage) + 1
    n_free = len(MONTH_EDGES) - 1
    code = cells["stage_ahead"].to_numpy()
    ahead, stage = cells["ahead"].to_numpy(), cells["stage"].to_numpy()
    assert (code[ahead == 0] == 0).all() and (code[ahead > 0] > 0).all()
    np.testing.assert_array_equal(
        code[ahead > 0], 1 + stage[ahead > 0] * n_free + ahead[ahead > 0] - 1
    )
    # one code per (stage, months-ahead level >= 1), in range
    pairs = cells.loc[ahead > 0, ["stage", "ahead", "stage_ahead"]].drop_duplicates()
    assert pairs["stage_ahead"].is_unique
    assert code.max() < stage_ahead_levels(n_stage)
    # derived after the aggregation: no extra cells, and it sits with the factor codes
    keys = ["stage", "ahead", "age", "due", "miq", *levels.groups]
    assert not cells.duplicated(keys).any()
    assert list(cells.columns[-4:]) == ["stage_ahead", "n_stay", "n_win", "n_lose"]


def test_stage_ahead_matrix_puts_each_code_at_its_stage_and_months_ahead() -> None:
    n_stage = 3
    n_codes = stage_ahead_levels(n_stage)
    coded = np.arange(n_codes, dtype=float)  # effect of code c is c (code 0: reference, 0)
    mat = stage_ahead_matrix(coded, n_stage)
    assert mat.shape == (n_stage, len(MONTH_EDGES))
    for s in range(n_stage):
        for a in range(len(MONTH_EDGES)):
            c = stage_ahead_code(np.array([s]), np.array([a]), n_stage)[0]
            assert mat[s, a] == coded[c]
    assert (mat[:, 0] == 0).all()


def test_stage_ahead_coded_is_the_inverse_of_stage_ahead_matrix() -> None:
    n_stage = 3
    coded = np.random.default_rng(0).normal(size=(4, 2, stage_ahead_levels(n_stage)))
    coded[..., 0] = 0.0
    mat = stage_ahead_matrix(coded, n_stage)
    np.testing.assert_array_equal(stage_ahead_coded(mat), coded)
    mat[1, 0, 2, 0] = 0.5  # a months-ahead level 0 (reference) effect that is not zero
    with pytest.raises(ValueError, match="zero at months-ahead level 0"):
        stage_ahead_coded(mat)


def test_require_stage_ahead_returns_the_codes_and_refuses_missing_or_stale_ones(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    cells, levels = landmark_cells(deals, sim["deal_history"], AS_OF, window_months=6)
    np.testing.assert_array_equal(require_stage_ahead(cells, levels), cells["stage_ahead"])
    with pytest.raises(ValueError, match="cells lack the column 'stage_ahead'"):
        require_stage_ahead(cells.drop(columns="stage_ahead"), levels)
    # codes derived for another number of stages are stale: named by row, value and want
    wrong = cells.assign(stage_ahead=cells["stage"] * 6 + cells["ahead"])
    row = int(np.flatnonzero(wrong["stage_ahead"] != cells["stage_ahead"])[0])
    with pytest.raises(ValueError, match=f"cells row {row}: column 'stage_ahead' is ") as err:
        require_stage_ahead(wrong, levels)
    assert "\n" not in str(err.value)
