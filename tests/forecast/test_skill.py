"""Paired score differences of a forecaster against a baseline, with block-bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.forecast.backtest import month_ends
from crmkit.forecast.skill import MIN_COMPARE_ORIGINS, compare


def _paired(diffs: np.ndarray, *, base: float = 1000.0, seed: object = None) -> pd.DataFrame:
    """Backtest-like rows of ``model`` and ``run_rate`` at monthly origins, lead 1."""
    origins = [d.date() for d in month_ends("2020-01-01", "2040-12-31")[: len(diffs)]]
    rng = np.random.default_rng(1)
    b = base + rng.normal(0.0, 100.0, len(diffs))
    rows = []
    for o, bb, d in zip(origins, b, diffs, strict=True):
        for name, crps in (("model", bb + d), ("run_rate", bb)):
            rows.append({"origin": o, "lead": "1", "forecaster": name, "crps": crps,
                         "median_error": -2.0 * crps})  # fmt: skip
    out = pd.DataFrame(rows)
    return out if seed is None else out.assign(seed=seed)


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) series of mean 0 and unit innovations."""
    x = np.empty(n)
    x[0] = rng.normal(0.0, 1.0 / np.sqrt(1 - phi**2))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.normal()
    return x


def test_compare_forecaster_better_on_every_origin_has_interval_entirely_below_zero() -> None:
    rng = np.random.default_rng(0)
    res = _paired(-rng.uniform(5.0, 50.0, 19))
    row = compare(res).iloc[0]
    assert (row["lead"], row["forecaster"], row["baseline"], row["origins"]) == (
        "1",
        "model",
        "run_rate",
        19,
    )
    assert row["diff_lo"] <= row["diff"] <= row["diff_hi"] < 0
    assert row["verdict"] == "better" and row["win_share"] == 1.0
    assert row["skill"] == pytest.approx(1 - row["score"] / row["baseline_score"])
    assert row["skill"] > 0


def test_compare_forecaster_worse_on_every_origin_is_worse() -> None:
    row = compare(_paired(np.full(8, 30.0)), block=2).iloc[0]
    assert row["diff"] == pytest.approx(30.0) and row["diff_lo"] > 0
    assert row["verdict"] == "worse" and row["win_share"] == 0.0


def test_compare_two_identical_forecasters_give_zero_with_a_zero_width_interval() -> None:
    row = compare(_paired(np.zeros(12))).iloc[0]
    assert row["diff"] == 0.0 and row["diff_lo"] == 0.0 and row["diff_hi"] == 0.0
    assert row["win_share"] == 0.5  # ties count half
    assert row["skill"] == pytest.approx(0.0)
    assert row["verdict"] == "not distinguishable"


def test_compare_block_bootstrap_is_wider_than_iid_on_autocorrelated_noise_and_covers_zero() -> (
    None
):
    """AR(1) differences of known mean 0: blocks keep the autocorrelation, i.i.d. does not."""
    x = 100.0 * _ar1(60, 0.7, np.random.default_rng(3))
    res = _paired(x)
    blocked = compare(res, block=5).iloc[0]
    iid = compare(res, block=1).iloc[0]
    assert blocked["diff"] == pytest.approx(iid["diff"]) == pytest.approx(x.mean())
    assert blocked["diff_hi"] - blocked["diff_lo"] > 1.3 * (iid["diff_hi"] - iid["diff_lo"])
    assert blocked["diff_lo"] < 0 < blocked["diff_hi"]
    assert blocked["verdict"] == "not distinguishable"


def test_compare_block_intervals_cover_a_zero_mean_of_overlap_noise_near_the_nominal_90() -> None:
    """3-month overlap differences (MA(2), mean 0), 19 origins, 200 backtests.

    The block interval covers the true 0 in about 84% of them (nominal 90%); the i.i.d. one
    (block 1) in far fewer.
    """
    rng = np.random.default_rng(7)
    cover = {1: 0, 3: 0}
    for _ in range(200):
        e = rng.normal(size=21)
        res = _paired(e[2:] + e[1:-1] + e[:-2])
        for block in cover:
            row = compare(res, block=block, n_boot=400).iloc[0]
            cover[block] += int(row["diff_lo"] <= 0 <= row["diff_hi"])
    assert cover[3] >= 156  # 78% or more
    assert cover[1] <= 150 and cover[3] > cover[1] + 15


def test_compare_pools_seeds_without_blocks_crossing_them() -> None:
    """Two companies at the same origins: model -10 on every origin of one, +10 of the other.

    Resampled inside each seed, every bootstrap mean is exactly 0; a block crossing seeds
    (or pairing one seed's model with the other's run rate) would not give 0 every time.
    """
    res = pd.concat([_paired(np.full(10, -10.0), seed=1), _paired(np.full(10, 10.0), seed=2)])
    row = compare(res, block=3).iloc[0]
    assert row["origins"] == 20  # paired within each seed: 10 + 10
    assert row["diff"] == pytest.approx(0.0, abs=1e-9)
    assert row["diff_lo"] == pytest.approx(0.0, abs=1e-9)
    assert row["diff_hi"] == pytest.approx(0.0, abs=1e-9)
    assert row["win_share"] == 0.5
    # without the seed column the two series run into each other: blocks straddle them
    mixed = compare(res.drop(columns="seed").assign(origin=lambda d: d["origin"]), block=3)
    assert mixed.iloc[0]["origins"] == 10  # the same origin twice is not a pair twice


def test_compare_abs_median_error_compares_the_absolute_median_errors() -> None:
    res = _paired(np.full(6, -20.0))  # median_error = -2 * crps: |error| is 40 lower
    row = compare(res, metric="abs_median_error").iloc[0]
    assert row["metric"] == "abs_median_error"
    assert row["diff"] == pytest.approx(-40.0)
    assert row["verdict"] == "better"


def test_compare_says_too_few_origins_below_the_minimum() -> None:
    row = compare(_paired(np.full(MIN_COMPARE_ORIGINS - 1, -20.0))).iloc[0]
    assert row["diff_hi"] < 0 and row["verdict"] == "too few origins"


def test_compare_leaves_out_the_models_sources() -> None:
    res = _paired(np.full(6, -20.0))
    src = res[res["forecaster"].eq("model")].assign(forecaster="model:pipeline")
    out = compare(pd.concat([res, src]))
    assert out["forecaster"].tolist() == ["model"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": "naive"}, "compare: baseline 'naive' is not among the forecasters (model"),
        ({"metric": "rmse"}, "compare: metric must be one of crps, abs_median_error, not 'rmse'"),
        ({"block": 0}, "compare: block must be a whole number >= 1, not 0"),
        ({"n_boot": 0}, "compare: n_boot must be a whole number >= 1, not 0"),
        ({"level": 1.5}, "compare: level must be between 0 and 1, not 1.5"),
    ],
    ids=["unknown_baseline", "unknown_metric", "block_zero", "n_boot_zero", "level_above_one"],
)
def test_compare_bad_argument_is_a_one_line_error(kwargs: dict, message: str) -> None:
    with pytest.raises(CrmkitError) as err:
        compare(_paired(np.zeros(5)), **kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_compare_forecaster_without_shared_origins_is_a_one_line_error() -> None:
    res = _paired(np.zeros(5))
    later = res["forecaster"].eq("model")
    res.loc[later, "origin"] = res.loc[later, "origin"].map(lambda d: d.replace(year=d.year + 48))
    with pytest.raises(CrmkitError) as err:
        compare(res)
    msg = str(err.value)
    assert msg == "compare: forecaster 'model' has no origin in common with the baseline 'run_rate'"


def test_compare_long_baseline_name_is_cut_in_the_error() -> None:
    with pytest.raises(CrmkitError) as err:
        compare(_paired(np.zeros(5)), "x" * 500)
    assert len(str(err.value)) < 200 and "..." in str(err.value)
