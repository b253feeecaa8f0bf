"""Repeat revenue for the forecast: the purchase summary of orders without a deal, and draws."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from crmkit.forecast.sources.repeat import repeat_draws, repeat_summary


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5", "O6"],
            "account_id": ["A1", "A1", "A1", "A2", "A2", "A3"],
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 15:00",
                    "2024-01-15 00:00",
                    "2024-01-08 00:00",
                    "2024-02-05 00:00",
                    "2024-03-01 00:00",
                ]
            ),
            "amount": [100.0, 50.0, 80.0, 5000.0, 60.0, 10.0],
            "deal_id": [None, None, None, "D1", None, None],
        }
    )


def test_summary_merges_days_and_leaves_out_deal_orders() -> None:
    s = repeat_summary(_orders(), "2024-01-29").set_index("customer_id")
    # A1: two orders on Jan 1 are one purchase day, Jan 15 one repeat
    assert s.loc["A1", "frequency"] == 1
    assert s.loc["A1", "recency"] == pytest.approx(2.0)
    assert s.loc["A1", "T"] == pytest.approx(4.0)
    assert s.loc["A1", "monetary_value"] == pytest.approx(80.0)
    assert "A2" not in s.index  # its only order before the cut-off belongs to a deal
    assert "A3" not in s.index  # first order after the cut-off


def test_no_orders_gives_zero_repeat_revenue() -> None:
    out, diag = repeat_draws(
        None,
        None,
        {"all": 0},
        {},
        as_of="2024-01-31",
        month_edges_weeks=np.array([4.3, 8.7]),
        period_of_k=np.array([0, 1]),
        n_periods=2,
        n_draws=50,
    )
    assert out.shape == (50, 2, 1) and not out.any()
    assert diag["method"] == "none"


@pytest.mark.slow
def test_repeat_draws_follow_the_purchase_rate() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for c in range(300):
        t = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        while t < pd.Timestamp("2024-06-30"):
            rows.append((f"A{c}", t, float(rng.gamma(4, 25))))
            if rng.random() < 0.03:  # the customer drops out (BG/NBD)
                break
            t += pd.Timedelta(days=int(rng.exponential(30)) + 1)
    orders = pd.DataFrame(rows, columns=["account_id", "ordered_at", "amount"])
    orders["deal_id"] = None
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{c}" for c in range(300)],
            "segment": ["SMB"] * 300,
            "owner": [None] * 300,
        }
    )
    index = {"all": 0, "segment=SMB": 1}
    out, diag = repeat_draws(
        orders,
        accounts,
        index,
        {},
        as_of="2024-06-30",
        month_edges_weeks=np.array([31 / 7]),
        period_of_k=np.array([0]),
        n_periods=1,
        n_draws=400,
        method="map",
    )
    alive = orders.groupby("account_id")["ordered_at"].max() > pd.Timestamp("2024-05-01")
    # about one purchase a month of mean value 100 from each active customer
    expected = 100.0 * alive.sum()
    assert 0.5 * expected < np.median(out[:, 0, 0]) < 1.5 * expected
    assert np.allclose(out[:, 0, 0], out[:, 0, 1])
    assert "customers" in diag


# ---------------------------------------------------------------------- at scale
AS_OF = "2026-10-31"
#: Six months after the demo's last day: the first one empty (as_of is a month's end).
MONTHS = {
    "month_edges_weeks": np.array([0.0, 30, 61, 91, 122, 153]) / 7.0,
    "period_of_k": np.array([0, 0, 1, 2, 3, 4]),
    "n_periods": 5,
}


def _demo(n_customers: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """The demo company's orders and accounts, a group index and owners' teams."""
    from crmkit.data.demo.company import generate_demo

    demo = generate_demo(n_customers=n_customers, n_deals=n_customers // 10, seed=seed)
    orders, accounts = demo.frames["orders"], demo.frames["accounts"]
    owners = sorted(accounts["owner"].dropna().unique())
    groups = ["all"] + [f"segment={s}" for s in sorted(accounts["segment"].dropna().unique())]
    groups += [f"owner={o}" for o in owners[:-1]]  # one owner outside the groups
    groups += ["team=east", "team=west"]
    owner_team = {o: ("east" if i % 2 else "west") for i, o in enumerate(owners[:-2])}
    return orders, accounts, {g: i for i, g in enumerate(groups)}, owner_team


def _per_customer_reference(orders, accounts, group_index, owner_team, *, n_draws, seed=0):
    """The repeat draws as computed before: customers x draws arrays, summed per cell."""
    from crmkit.models.clv.models import BetaGeo, GammaGamma

    data = repeat_summary(orders, AS_OF)
    bg = BetaGeo(random_seed=seed).fit(data, method="map")
    edges = np.concatenate([[0.0], MONTHS["month_edges_weeks"]])
    cum = np.stack(
        [
            np.asarray(bg.expected_purchases(float(t), data, n_draws=100))
            if t > 0
            else np.zeros((100, len(data)))
            for t in edges
        ],
        axis=-1,
    )
    per_month = np.diff(cum, axis=-1)  # (P, customers, months)
    gg = GammaGamma(random_seed=seed).fit(data[data["frequency"] > 0], method="map")
    rev = per_month * np.asarray(gg.expected_spend(data, n_draws=100))[:, :, None]
    a = accounts.set_index("account_id")
    member = np.zeros((len(data), len(group_index)))
    member[:, group_index["all"]] = 1.0
    for kind in ("segment", "owner"):
        for i, v in enumerate(data["customer_id"].map(a[kind]).to_numpy()):
            if (gi := group_index.get(f"{kind}={v}")) is not None:
                member[i, gi] = 1.0
            if kind == "owner" and v in owner_team:
                member[i, group_index[f"team={owner_team[v]}"]] = 1.0
    cells, cell_of = np.unique(member, axis=0, return_inverse=True)
    onehot = np.zeros((len(data), len(cells)))
    onehot[np.arange(len(data)), cell_of.ravel()] = 1.0
    mean_rev = np.einsum("pcm,cj->pmj", rev, onehot)
    mean_n = np.einsum("pcm,cj->pmj", per_month, onehot)
    rng = np.random.default_rng(seed + 7)
    pick = np.arange(n_draws) % 100
    mr, mn = mean_rev[pick], np.maximum(mean_n[pick], 1e-9)
    noise = rng.gamma(mn / 2.0, 2.0 / mn)
    monthly = np.einsum("dmj,jg->dmg", mr * noise, cells)
    out = np.zeros((n_draws, MONTHS["n_periods"], len(group_index)))
    for k, per in enumerate(MONTHS["period_of_k"]):
        out[:, per, :] += monthly[:, k, :]
    return out


@pytest.mark.slow
def test_repeat_draws_equal_the_per_customer_computation_they_replace() -> None:
    orders, accounts, index, owner_team = _demo(3000, seed=5)
    got, diag = repeat_draws(
        orders, accounts, index, owner_team, as_of=AS_OF, n_draws=500, calendar="off",
        param_draws=100, **MONTHS,
    )  # fmt: skip
    want = _per_customer_reference(orders, accounts, index, owner_team, n_draws=500)
    assert diag["customers"] > 1000 and got[:, 0, 0].mean() > 0
    assert (got[:, :, index["team=east"]] > 0).all()  # owners' teams get their revenue
    # the same draws, not only the same distribution: the sums are exact, the noise the same
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    # group sums stay sums: the segments add up to "all"
    segs = [i for g, i in index.items() if g.startswith("segment=")]
    np.testing.assert_allclose(got[:, :, segs].sum(axis=2), got[:, :, index["all"]], rtol=1e-9)


@pytest.mark.slow
def test_repeat_draws_do_not_depend_on_the_chunk_size() -> None:
    orders, accounts, index, owner_team = _demo(3000, seed=6)
    kw = {"as_of": AS_OF, "n_draws": 300, "seed": 3, **MONTHS}
    small = repeat_draws(orders, accounts, index, owner_team, chunk_size=97, **kw)[0]
    large = repeat_draws(orders, accounts, index, owner_team, chunk_size=1_000_000, **kw)[0]
    assert small[:, 1:, :].any()
    np.testing.assert_array_equal(small, large)


@pytest.mark.slow
def test_repeat_draws_build_no_customers_by_draws_array() -> None:
    import tracemalloc

    orders, accounts, index, owner_team = _demo(30_000, seed=7)
    kw = {"as_of": AS_OF, "n_draws": 1000, "param_draws": 400, **MONTHS}
    repeat_draws(orders, accounts, index, owner_team, **kw)  # compiles what it compiles once
    tracemalloc.start()
    try:
        out, diag = repeat_draws(orders, accounts, index, owner_team, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_array = diag["customers"] * 400 * 8  # one float64 customers x draws array
    assert diag["customers"] > 20_000 and out.any()
    assert peak < one_array, f"peak {peak / 2**20:.0f} MiB"


# ------------------------------------------------------------------ calendar effects
def _retailer_orders(n: int, seed: int, **kw) -> pd.DataFrame:
    """The seasonal retailer's transactions as the store's orders (no deals)."""
    from crmkit.data.demo.seasonal_retailer import simulate_seasonal_retailer

    tx = simulate_seasonal_retailer(n, seed=seed, **kw).transactions
    return pd.DataFrame(
        {
            "account_id": "A" + tx["customer_id"].astype(str),
            "ordered_at": tx["date"],
            "amount": tx["amount"],
            "deal_id": None,
        }
    )


#: October, November and December 2024 after an as-of of 2024-09-30.
AUTUMN = {
    "month_edges_weeks": np.array([31.0, 61.0, 92.0]) / 7.0,
    "period_of_k": np.array([0, 1, 2]),
    "n_periods": 3,
}


@pytest.mark.slow
def test_repeat_draws_forecast_the_known_holiday_season_with_a_year_of_orders() -> None:
    orders = _retailer_orders(3000, seed=11)
    kw = {"as_of": "2024-09-30", "n_draws": 400, "method": "map", **AUTUMN}
    auto, diag = repeat_draws(orders, None, {"all": 0}, {}, **kw)
    off, off_diag = repeat_draws(orders, None, {"all": 0}, {}, calendar="off", **kw)
    assert diag["calendar"]["fitted"] and "12 monthly seasonal effects" in diag["calendar"]["spend"]
    assert not off_diag["calendar"]["fitted"] and diag["ok"]
    assert _p_no_spend_effect(diag) < 0.01  # the +30% Nov-Dec basket outweighs "none"
    med = np.median(auto[:, :, 0], axis=0)
    med_off = np.median(off[:, :, 0], axis=0)
    # truth: +60% purchase rate and +30% basket in Nov-Dec; the standard model sees no season
    assert med[1] / med[0] > 1.35 and med[2] / med[0] > 1.35
    assert med_off[1] / med_off[0] < 1.1 and med_off[2] / med_off[0] < 1.1
    # what the customers then spent in Nov-Dec: the calendar effects' medians are the closer
    first = orders.groupby("account_id")["ordered_at"].transform("min")
    later = orders[(first <= pd.Timestamp(kw["as_of"])) & (orders["ordered_at"] > kw["as_of"])]
    actual = later.groupby(later["ordered_at"].dt.month)["amount"].sum().to_numpy()
    err, err_off = (np.abs(np.log(m[1:] / actual[1:])) for m in (med, med_off))
    assert np.all(err < err_off)
    # the effects widen the interval: the forecast carries their uncertainty
    iqr = np.subtract(*np.quantile(auto[:, 0, 0], [0.75, 0.25])) / med[0]
    iqr_off = np.subtract(*np.quantile(off[:, 0, 0], [0.75, 0.25])) / med_off[0]
    assert iqr > iqr_off


def _p_no_spend_effect(diag: dict) -> float:
    """P(no spend effect) as the diagnostics' description of the spend effect gives it."""
    found = re.search(r"P\(no spend effect\) ([0-9.]+)", diag["calendar"]["spend"])
    assert found, diag["calendar"]["spend"]
    return float(found.group(1))


@pytest.mark.slow
def test_repeat_draws_leave_a_spend_per_purchase_without_season_alone() -> None:
    flat = (1.0,) * 12
    orders = _retailer_orders(3000, seed=13, spend_season=flat)
    kw = {"as_of": "2024-09-30", "n_draws": 400, "method": "map", **AUTUMN}
    auto, diag = repeat_draws(orders, None, {"all": 0}, {}, **kw)
    assert diag["calendar"]["fitted"] and _p_no_spend_effect(diag) > 0.8
    med = np.median(auto[:, :, 0], axis=0)
    assert med[1] / med[0] > 1.2  # the rate season (+60% Nov-Dec) is still forecast


@pytest.mark.slow
def test_repeat_draws_leave_less_than_a_year_of_orders_to_the_standard_model() -> None:
    orders = _retailer_orders(3000, seed=12)
    orders = orders[orders["ordered_at"] >= pd.Timestamp("2023-12-01")]
    kw = {"as_of": "2024-09-30", "n_draws": 200, "method": "map", "seed": 2, **AUTUMN}
    auto, diag = repeat_draws(orders, None, {"all": 0}, {}, **kw)
    off, _ = repeat_draws(orders, None, {"all": 0}, {}, calendar="off", **kw)
    np.testing.assert_array_equal(auto, off)
    assert not diag["calendar"]["fitted"] and "weeks of orders" in diag["calendar"]["message"]
    with pytest.raises(ValueError, match="calendar must be one of"):
        repeat_draws(orders, None, {"all": 0}, {}, calendar="yes", **kw)


def test_repeat_draws_take_one_posterior_draw_per_forecast_draw_for_a_small_customer_base():
    orders, accounts, index, owner_team = _demo(300, seed=5)
    kw = {"as_of": AS_OF, "n_draws": 400, "calendar": "off", **MONTHS}
    _, own = repeat_draws(orders, accounts, index, owner_team, **kw)
    _, few = repeat_draws(orders, accounts, index, owner_team, param_draws=10, **kw)
    assert own["param_draws"] == 400  # 300 customers x 400 draws is well within the budget
    assert few["param_draws"] == 10
