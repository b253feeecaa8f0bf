"""Paired score differences of a forecaster against a baseline: DM-HLN and block intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import CrmkitError
from crmkit.forecast.backtest import month_ends
from crmkit.forecast.skill import MIN_COMPARE_ORIGINS, compare, with_run_rate_verdict


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
    blocked = compare(res, block=5, interval="block").iloc[0]
    iid = compare(res, block=1, interval="block").iloc[0]
    assert blocked["diff"] == pytest.approx(iid["diff"]) == pytest.approx(x.mean())
    assert blocked["diff_hi"] - blocked["diff_lo"] > 1.3 * (iid["diff_hi"] - iid["diff_lo"])
    assert blocked["diff_lo"] < 0 < blocked["diff_hi"]
    assert blocked["verdict"] == "not distinguishable"


def test_compare_block_intervals_cover_a_zero_mean_of_overlap_noise_near_the_nominal_90() -> None:
    """3-month overlap differences (MA(2), mean 0), 19 origins, 200 backtests.

    The block interval covers the true 0 in about 83% of them (nominal 90%); the i.i.d. one
    (block 1) in far fewer.
    """
    rng = np.random.default_rng(7)
    cover = {1: 0, 3: 0}
    for _ in range(200):
        e = rng.normal(size=21)
        res = _paired(e[2:] + e[1:-1] + e[:-2])
        for block in cover:
            row = compare(res, block=block, n_boot=400, interval="block").iloc[0]
            cover[block] += int(row["diff_lo"] <= 0 <= row["diff_hi"])
    assert cover[3] >= 156  # 78% or more
    assert cover[1] <= 150 and cover[3] > cover[1] + 15


def test_compare_pools_seeds_without_blocks_crossing_them() -> None:
    """Two companies at the same origins: model -10 on every origin of one, +10 of the other.

    Resampled inside each seed, every bootstrap mean is exactly 0; a block crossing seeds
    (or pairing one seed's model with the other's run rate) would not give 0 every time.
    """
    res = pd.concat([_paired(np.full(10, -10.0), seed=1), _paired(np.full(10, 10.0), seed=2)])
    row = compare(res, block=3, interval="block").iloc[0]
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
    # no overlap (block 1): an interval entirely below 0, and still too few origins to tell
    row = compare(_paired(np.full(MIN_COMPARE_ORIGINS - 1, -20.0)), block=1).iloc[0]
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
        ({"interval": "x"}, "compare: interval must be one of dm, block, not 'x'"),
    ],
    ids=[
        "unknown_baseline",
        "unknown_metric",
        "block_zero",
        "n_boot_zero",
        "level_above_one",
        "unknown_interval",
    ],
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


# ------------------------------------------------ DM-HLN interval (issue 17, H3)
def _satterthwaite_df(sizes: list[int], h: int) -> float:
    """Satterthwaite df of the DM variance under h-period overlap noise, written out in full."""
    tr1 = tr2 = 0.0
    for n in sizes:
        hs = min(h, n)
        center = np.eye(n) - np.full((n, n), 1.0 / n)
        kernel = np.array([[1.0 if abs(i - j) < hs else 0.0 for j in range(n)] for i in range(n)])
        noise = np.array([[max(hs - abs(i - j), 0) for j in range(n)] for i in range(n)], float)
        p = center @ kernel @ center @ noise
        tr1 += np.trace(p)
        tr2 += np.trace(p @ p)
    return tr1 * tr1 / tr2


def _t90(df: float) -> float:
    """Student-t 95% quantile (two-sided 90%)."""
    from scipy import stats

    return float(stats.t.ppf(0.95, df))


def test_compare_dm_is_the_default_interval_and_differs_from_the_block_one() -> None:
    res = _paired(100.0 * _ar1(19, 0.5, np.random.default_rng(5)))
    default, dm = compare(res).iloc[0], compare(res, interval="dm").iloc[0]
    block = compare(res, interval="block").iloc[0]
    assert (default["diff_lo"], default["diff_hi"]) == (dm["diff_lo"], dm["diff_hi"])
    assert dm["diff_lo"] != pytest.approx(block["diff_lo"])
    assert dm["diff"] == pytest.approx(block["diff"])


def test_compare_dm_interval_of_five_values_with_overlap_two_equals_the_hln_formula() -> None:
    """d = 1, 2, 4, 5, 3; h = 2, by hand.

    mean 3, centred -2 -1 1 2 0: g0 = 10 / 5 = 2, g1 = (2 - 1 + 2 + 0) / 5 = 0.6;
    DM variance (g0 + 2 g1) / n = 3.2 / 5 = 0.64; HLN factor (5 + 1 - 4 + 2 / 5) / 5 = 0.48;
    V = 0.64 / 0.48 = 4 / 3. df: Satterthwaite under MA(1) overlap noise, tr(P) = 8.16 and
    tr(P P) = 41.6256 (P = centre x band kernel x centre x MA(1) covariance), below n - 1 = 4.
    """
    row = compare(_paired(np.array([1.0, 2.0, 4.0, 5.0, 3.0])), block=2).iloc[0]
    df = 8.16**2 / 41.6256
    assert df == pytest.approx(_satterthwaite_df([5], 2))
    half = _t90(df) * np.sqrt(4.0 / 3.0)
    assert row["diff"] == pytest.approx(3.0)
    assert row["diff_lo"] == pytest.approx(3.0 - half, rel=1e-9)
    assert row["diff_hi"] == pytest.approx(3.0 + half, rel=1e-9)
    assert half == pytest.approx(4.024, abs=1e-3)


def test_compare_dm_interval_with_overlap_one_is_the_classical_t_interval() -> None:
    d = np.array([3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0])
    row = compare(_paired(d), block=1).iloc[0]
    half = _t90(len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert row["diff_lo"] == pytest.approx(d.mean() - half, rel=1e-9)
    assert row["diff_hi"] == pytest.approx(d.mean() + half, rel=1e-9)


def test_compare_dm_negative_long_run_variance_falls_back_to_bartlett_weights() -> None:
    """d = 1 -1 1 -1 1 -1, h = 2: g0 = 1, g1 = -5/6, so g0 + 2 g1 = -2/3 < 0.

    Bartlett weights (1 - 1/2 at lag 1): 1 - 5/6 = 1/6; n x HLN factor (6 - 2)(6 - 1) / 6 =
    20/6; V = 1/20.
    """
    d = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    row = compare(_paired(d), block=2).iloc[0]
    half = _t90(min(_satterthwaite_df([6], 2), 5)) * np.sqrt(1.0 / 20.0)
    assert row["diff"] == pytest.approx(0.0, abs=1e-9)
    assert row["diff_lo"] == pytest.approx(-half, rel=1e-9)
    assert row["diff_hi"] == pytest.approx(half, rel=1e-9)


def test_compare_dm_pools_series_without_autocovariances_across_them() -> None:
    """Two companies at the same 6 origins: 1..6 and 16..11 (means 3.5 and 13.5), h = 2.

    Each centred on its own mean: -2.5 .. 2.5 and 2.5 .. -2.5. Summed within each:
    lag 0: 17.5 + 17.5, lag 1: 8.75 + 8.75, over 12 origins: g0 = 35 / 12, g1 = 17.5 / 12;
    g0 + 2 g1 = 70 / 12; sum of n x HLN factor 2 x (4 x 5 / 6) = 20 / 3; V = 0.875.
    Mixed (one series of 12: centred on the pooled mean 8.5, lag 1 pairing the first
    company's last origin with the second's first) the interval is almost 3 times as wide.
    """
    one = _paired(np.arange(1.0, 7.0), seed=1)
    two = _paired(np.arange(16.0, 10.0, -1.0), seed=2)
    row = compare(pd.concat([one, two]), block=2).iloc[0]
    df = min(_satterthwaite_df([6, 6], 2), 12 - 2)
    half = _t90(df) * np.sqrt(0.875)
    assert row["origins"] == 12 and row["diff"] == pytest.approx(8.5)
    assert row["diff_lo"] == pytest.approx(8.5 - half, rel=1e-9)
    assert row["diff_hi"] == pytest.approx(8.5 + half, rel=1e-9)
    later = two.assign(origin=[o.replace(year=o.year + 4) for o in two["origin"]], seed=1)
    mixed = compare(pd.concat([one, later]), block=2).iloc[0]  # one series of 12 origins
    assert mixed["origins"] == 12 and mixed["diff"] == pytest.approx(8.5)
    assert mixed["diff_hi"] - mixed["diff_lo"] > 2.5 * (row["diff_hi"] - row["diff_lo"])


def test_compare_dm_series_no_longer_than_the_overlap_give_no_interval() -> None:
    """Two companies of 3 origins each, h = 3: no lag is estimable, whatever the pooled count."""
    res = pd.concat([_paired(np.array([-5.0, -9.0, -2.0]), seed=s) for s in (1, 2)])
    row = compare(res, block=3).iloc[0]
    assert row["origins"] == 6 >= MIN_COMPARE_ORIGINS
    assert np.isnan(row["diff_lo"]) and np.isnan(row["diff_hi"])
    assert row["verdict"] == "too few origins"


def test_compare_dm_constant_series_no_longer_than_the_overlap_give_no_interval_either() -> None:
    """No variation and no estimable lag: still no interval, not a zero-width "better"."""
    res = pd.concat([_paired(np.array([-5.0, -5.0, -5.0]), seed=s) for s in (1, 2)])
    row = compare(res, block=3).iloc[0]
    assert np.isnan(row["diff_lo"]) and np.isnan(row["diff_hi"])
    assert row["verdict"] == "too few origins"


def test_compare_dm_intervals_cover_a_zero_mean_of_overlap_noise_within_the_binomial_band() -> None:
    """3-month overlap differences (MA(2), mean 0), 19 origins, 200 backtests, h = 3.

    Band 172..190 of 200 (0.86-0.95): the binomial sd of a 90% coverage over 200 runs is
    sqrt(0.9 x 0.1 / 200) = 0.021 (4.2 runs), so 172 is 2 sd below the nominal 180 and 190
    2.4 sd above it. An interval that covers 84% expects 168, below the band; the block
    interval (about 83%) covers 164 of these very 200 and is asserted to fail the band. The
    dm interval covers about 89% on 1000 runs (module docstring).
    """
    rng = np.random.default_rng(7)
    cover = {"dm": 0, "block": 0}
    for _ in range(200):
        e = rng.normal(size=21)
        res = _paired(e[2:] + e[1:-1] + e[:-2])
        for interval in cover:
            row = compare(res, block=3, n_boot=400, interval=interval).iloc[0]
            cover[interval] += int(row["diff_lo"] <= 0 <= row["diff_hi"])
    assert 172 <= cover["dm"] <= 190
    assert cover["block"] < 172


def test_with_run_rate_verdict_passes_the_interval_to_compare() -> None:
    res = _paired(100.0 * _ar1(19, 0.5, np.random.default_rng(5)))
    from crmkit.forecast.backtest import summarise

    summary = summarise(res.assign(median_error=1.0, hit50=1.0, hit80=1.0, hit95=1.0))
    for interval in ("dm", "block"):
        out = with_run_rate_verdict(summary, res, interval=interval).set_index("forecaster")
        want = compare(res, interval=interval).iloc[0]
        assert out.loc["model", "crps_diff_lo"] == pytest.approx(want["diff_lo"])
        assert out.loc["model", "crps_diff_hi"] == pytest.approx(want["diff_hi"])


@pytest.mark.parametrize(
    ("interval", "how"),
    [
        ("dm", "90% Diebold-Mariano (HLN) interval, overlap 3"),
        ("block", "90% block bootstrap interval, overlap 3"),
    ],
)
def test_with_run_rate_verdict_says_how_its_interval_was_made(interval: str, how: str) -> None:
    scores = _paired(np.linspace(-30.0, -10.0, 12))
    summary = pd.DataFrame({"lead": ["1", "1"], "forecaster": ["model", "run_rate"]})
    out = with_run_rate_verdict(summary, scores, block=3, interval=interval)
    by = out.set_index("forecaster")
    assert by.loc["model", "vs_run_rate_how"] == how
    assert by.loc["run_rate", "vs_run_rate_how"] is None  # no comparison of its own
    alone = scores[scores["forecaster"] == "model"]
    none = with_run_rate_verdict(summary.head(1), alone)
    assert none["vs_run_rate_how"].tolist() == [None] and none["vs_run_rate"].tolist() == [None]
