"""The forecast end to end on simulated deals: draws per source and group, the saved snapshot.

The axes, tables, snapshot layout and comparison have their own tests
(``test_axes.py``, ``test_tables.py``, ``test_snapshot.py``, ``test_compare.py``). The
simulated deals are the session's (``sim_deals`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from crmkit.errors import CrmkitError, ValidationError
from crmkit.forecast.axes import SOURCES
from crmkit.forecast.engine import (
    check_model_data,
    fit_models,
    forecast_draws,
    load_frames,
    resolve_method,
    run_forecast,
)
from crmkit.forecast.snapshot import publication_reasons

AS_OF = "2024-04-30"


@pytest.fixture(scope="module")
def store_and_snap(sim_deals, sim_deals_db_file, copy_db, tmp_path_factory):
    """A copy of the simulated-deals store (the snapshot is saved in it), the snapshot, sim."""
    from crmkit.store import Store

    store = Store.open(copy_db(sim_deals_db_file, tmp_path_factory.mktemp("engine")))
    snap = run_forecast(
        store, as_of=AS_OF, horizon=3, draws=400, target=150000.0, seed=1, method="map"
    )
    yield store, snap, sim_deals
    store.close()


def test_snapshot_follows_the_contract(store_and_snap) -> None:
    store, snap, _ = store_and_snap
    assert snap.snapshot_id is not None
    rev = snap.revenue
    assert rev.name == "revenue" and rev.dims == ("sample", "period", "source", "group")
    assert rev.shape == (400, 3, 4, len(snap.coords["group"]))
    assert list(rev.coords["source"].values) == list(SOURCES)
    assert list(rev.coords["period"].values) == ["2024-05", "2024-06", "2024-07"]
    assert rev.coords["group"].values[0] == "all"
    # total is the sum of the sources, draw by draw, by label
    parts = rev.sel(source=["pipeline", "new_business", "repeat"]).sum("source")
    xr.testing.assert_allclose(rev.sel(source="total", drop=True), parts)
    assert set(snap.quantiles["group_by"]) == {"all", "team", "owner", "segment"}
    assert {"stage_probabilities", "at_risk_deals", "actuals"} <= set(snap.parameters["tables"])
    assert set(snap.diagnostics["models"]) == {"pipeline", "new_business", "repeat"}
    loaded = store.load_snapshot(snap.snapshot_id)
    xr.testing.assert_identical(loaded.revenue, rev)
    assert loaded.parameters["tables"]["stage_probabilities"][0]["configured"] is not None


def test_rollups_are_sums_of_draws(store_and_snap) -> None:
    _, snap, _ = store_and_snap
    rev, groups = snap.revenue, snap.coords["group"]
    teams = [g for g in groups if g.startswith("team=")]
    owners = [g for g in groups if g.startswith("owner=")]
    for src in ("pipeline", "new_business"):  # every deal has a team and an owner
        one = rev.sel(source=src, drop=True)
        company = one.sel(group="all", drop=True)
        xr.testing.assert_allclose(one.sel(group=teams).sum("group"), company)
        xr.testing.assert_allclose(one.sel(group=owners).sum("group"), company)


def test_forecast_is_near_what_happened(store_and_snap) -> None:
    _, snap, sim = store_and_snap
    d = sim["deals"]
    # the simulation runs 30 months from January 2022: May and June 2024 are its last
    # months, July is not simulated (its "actual" would be zero)
    assert d["closed_at"].max() < pd.Timestamp("2024-07-01")
    won = d[
        (d["status"] == "won")
        & (d["closed_at"] > "2024-04-30 23:59")
        & (d["closed_at"] < "2024-07-01")
    ]
    both = snap.revenue.sel(source="total", group="all", period=["2024-05", "2024-06"])
    lo, hi = np.quantile(both.sum("period").to_numpy(), [0.01, 0.99])
    assert lo <= won["amount"].sum() <= hi


def test_quarterly_forecast_counts_closed_to_date(store_and_snap) -> None:
    store, _, sim = store_and_snap
    snap = run_forecast(
        store,
        as_of="2024-05-15",
        horizon=2,
        period="Q",
        draws=100,
        seed=3,
        save=False,
        include_repeat=False,
        method="map",
    )
    assert snap.coords["period"] == ["2024-Q2", "2024-Q3"]
    q = snap.quantiles.query("group_by == 'all' and source == 'total'").set_index("period")
    d = sim["deals"]
    won = d[
        (d["status"] == "won")
        & (d["closed_at"] >= "2024-04-01")
        & (d["closed_at"] <= "2024-05-15 23:59:59")
    ]
    assert q.loc["2024-Q2", "closed_to_date"] == pytest.approx(won["amount"].sum())
    assert q.loc["2024-Q3", "closed_to_date"] == 0.0


def test_forecast_draws_are_labelled_data_arrays(store_and_snap) -> None:
    store, snap, _ = store_and_snap
    frames = load_frames(store)
    models = fit_models(frames, as_of=AS_OF, seed=1)
    res = forecast_draws(models, frames, as_of=AS_OF, horizon=3, draws=400, seed=1)
    rev, closed = res["revenue"], res["closed_to_date"]
    assert isinstance(rev, xr.DataArray) and rev.name == "revenue"
    assert rev.dims == ("sample", "period", "source", "group")
    assert rev.attrs["units"] == "currency per period"
    assert list(rev.coords["period"].values) == res["axis"].labels
    assert list(rev.coords["group"].values) == snap.coords["group"]
    assert closed.dims == ("period", "group")
    assert list(closed.coords["group"].values) == snap.coords["group"]
    # the same seeds give the saved snapshot's draws
    np.testing.assert_array_equal(rev.to_numpy(), snap.revenue.to_numpy())
    total = rev.sel(source="total")
    parts = rev.sel(source="pipeline") + rev.sel(source="new_business") + rev.sel(source="repeat")
    np.testing.assert_array_equal(total.to_numpy(), parts.to_numpy())


# ---------------------------------------------------------------- nothing silently wrong
def _saved(store) -> int:
    return len(store.list_snapshots(include_drafts=True))


def test_snapshot_of_a_sound_forecast_is_published(store_and_snap) -> None:
    store, snap, _ = store_and_snap
    assert snap.status == "published" and snap.reasons == []
    assert store.load_snapshot().snapshot_id == snap.snapshot_id


def test_as_of_outside_the_data_is_refused_before_fitting(store_and_snap) -> None:
    store, _, _ = store_and_snap
    before = _saved(store)
    with pytest.raises(ValidationError, match=r"2022-01-01 \.\. 2024-06-29") as err:
        run_forecast(store, as_of="1990-01-01", horizon=3, draws=20)
    assert {e.field for e in err.value.errors} == {"as_of"}
    with pytest.raises(ValidationError, match="in the future"):
        run_forecast(store, as_of="3000-01-01", horizon=3, draws=20)
    with pytest.raises(ValidationError) as err:
        run_forecast(store, as_of=AS_OF, horizon=500, draws=20, target=float("nan"), seed=-1)
    assert {e.field for e in err.value.errors} == {"horizon", "target", "seed"}
    assert _saved(store) == before


def test_pipeline_model_without_closed_deals_says_so(store_and_snap) -> None:
    store, _, _ = store_and_snap
    before = _saved(store)
    with pytest.raises(CrmkitError, match=r"^pipeline model: no closed deals in the 24 months "
                       r"before 2022-01-10; nothing to learn stage win rates from$"):  # fmt: skip
        run_forecast(store, as_of="2022-01-10", horizon=3, draws=20)
    with pytest.raises(CrmkitError, match="pipeline model: no deals created by 1990-01-01"):
        fit_models(load_frames(store), as_of="1990-01-01")
    assert _saved(store) == before


def test_pipeline_model_without_won_deals_says_so(store_and_snap) -> None:
    store, _, _ = store_and_snap
    frames = load_frames(store)
    deals = frames["deals"].copy()
    deals["status"] = deals["status"].replace("won", "lost")
    with pytest.raises(CrmkitError, match=r"pipeline model: no won deals in the 24 months .*lost"):
        check_model_data({**frames, "deals": deals}, as_of=AS_OF)


def test_new_business_model_without_recent_wins_says_so(store_and_snap) -> None:
    store, _, _ = store_and_snap
    frames = load_frames(store)
    deals = frames["deals"].copy()
    recent = pd.to_datetime(deals["closed_at"]) > pd.Timestamp(AS_OF) - pd.DateOffset(months=12)
    deals.loc[recent & deals["status"].eq("won"), "status"] = "lost"  # wins 13-24 months ago
    with pytest.raises(CrmkitError, match="new business model: no deals won with an amount in "
                       "the 12 months before 2024-04-30; nothing to draw"):  # fmt: skip
        check_model_data({**frames, "deals": deals}, as_of=AS_OF)


def test_new_business_model_with_one_month_of_arrivals_says_so(store_and_snap) -> None:
    store, _, _ = store_and_snap
    before = _saved(store)
    # one complete month (2022-01) of deals and a deal won in it: the pipeline can be fitted
    with pytest.raises(CrmkitError, match=r"new business model: 1 complete month\(s\) of deal "
                       "arrivals before 2022-02-20, at least 2 needed"):  # fmt: skip
        run_forecast(store, as_of="2022-02-20", horizon=2, draws=20, method="map")
    assert _saved(store) == before


def test_repeat_model_with_too_few_customers_says_so(demo_db_file, copy_db, tmp_path) -> None:
    from crmkit.store import Store

    with Store.open(copy_db(demo_db_file, tmp_path)) as store:
        with pytest.raises(CrmkitError, match=r"^repeat model: too few customers with orders by "
                           r"2023-01-31 \(\d+ customers: too few .*--no-repeat\)$"):  # fmt: skip
            run_forecast(store, as_of="2023-01-31", horizon=1, draws=20, method="map")
        assert _saved(store) == 0
        # without repeat revenue the same day is forecast
        snap = run_forecast(
            store, as_of="2023-01-31", horizon=1, draws=20, include_repeat=False, method="map"
        )
        assert snap.parameters["methods"]["repeat"] == "none"


def test_repeat_spend_without_differences_between_customers_says_so_in_one_line(
    sim_deals_store,
) -> None:
    from tests.forecast.test_checks import _orders

    orders = _orders(seed=5)  # every order's value from one Gamma(4, scale 25)
    orders["order_id"] = [f"O{i:05d}" for i in range(len(orders))]
    ids = orders["account_id"].unique()
    accounts = pd.DataFrame({"account_id": ids, "name": ids, "created_at": "2022-01-01"})
    sim_deals_store.insert_many({"accounts": accounts, "orders": orders}, changed_by="test")
    snap = run_forecast(sim_deals_store, as_of=AS_OF, horizon=1, draws=50, seed=1, method="map")
    rep = snap.diagnostics["models"]["repeat"]
    # before: "repeat failed: Eigenvalues did not converge" (numpy's, from the Laplace step)
    why = (
        "repeat failed: Laplace approximation failed: the posterior is flat or not finite in "
        "p, q, gamma (the data do not identify them)"
    )
    assert (rep["ok"], rep["method"], rep["message"]) == (False, "map", why)
    assert snap.status == "draft"
    assert snap.reasons == [f"repeat model: diagnostics not ok (map): {why}"]
    # the purchase model was fitted: the repeat check is there, none is missing
    tables = snap.parameters["tables"]
    assert tables["model_checks_missing"] == []
    assert "repeat purchases per week" in {r["check"] for r in tables["model_checks"]}


def test_publication_checks_find_failed_diagnostics_and_an_all_zero_forecast(
    store_and_snap,
) -> None:
    _, snap, _ = store_and_snap
    assert publication_reasons(snap) == []
    bad = copy.deepcopy(snap)
    bad.diagnostics["models"]["pipeline"].update(ok=False, method="advi", message="not settled")
    assert publication_reasons(bad) == ["pipeline model: diagnostics not ok (advi): not settled"]
    zero = copy.deepcopy(snap)
    zero.draws["revenue"] = np.zeros_like(snap.draws["revenue"])
    (reason,) = publication_reasons(zero)
    assert reason.startswith("the forecast is zero in every period, while the past")
    nan = copy.deepcopy(snap)
    nan.draws["revenue"][0, 0, 0, 0] = np.nan
    assert publication_reasons(nan) == ["the revenue draws hold NaN or infinite values"]
    neg = copy.deepcopy(snap)
    neg.draws["revenue"][0, 0, 0, 0] = -1.0
    assert publication_reasons(neg) == ["the revenue draws hold negative amounts"]


# ---------------------------------------------------------------- the forecast call (#16)
def test_snapshot_carries_the_forecast_call_attainment_and_open_deals(store_and_snap) -> None:
    store, snap, _ = store_and_snap
    tables = store.load_snapshot(snap.snapshot_id).parameters["tables"]
    groups = [g for g in snap.coords["group"] if g == "all" or g.startswith(("team=", "owner="))]
    call = pd.DataFrame(tables["forecast_call"])
    assert len(call) == len(groups) * 3
    assert list(dict.fromkeys(call["group"])) == groups
    # the categories' closed revenue is the model's closed to date, group by group
    q = snap.quantiles[snap.quantiles["source"].eq("total")]
    q_group = np.where(q["group_by"].eq("all"), "all", q["group_by"] + "=" + q["group"])
    ctd = dict(zip(zip(q_group, q["period"], strict=True), q["closed_to_date"], strict=True))
    for r in call.itertuples():
        assert r.closed == pytest.approx(ctd[(r.group, r.period)])
        assert r.closed <= r.commit <= r.best_case <= r.pipeline
        assert r.p10 <= r.p50 <= r.p90
        assert 0.0 <= r.p_commit <= 1.0 and 0.0 <= r.p_best_case <= 1.0
    # the model's P10 of the company is closed to date plus the P10 of the forecast
    first = call[call["group"].eq("all")].iloc[0]
    draws = snap.revenue.sel(source="total", group="all", period="2024-05").to_numpy()
    assert first["p10"] == pytest.approx(first["closed"] + np.quantile(draws, 0.1))
    assert tables["attainment"] == []  # no quotas in this store
    open_deals = pd.DataFrame(tables["open_deals"])
    assert open_deals["deal_id"].tolist() == snap.coords["deal_id"]
    np.testing.assert_allclose(open_deals["expected_revenue"], snap.draws["deal_expected"])
    assert (open_deals["p_win"] <= np.asarray(snap.draws["deal_p_win"]) + 1e-6).all()


def test_run_forecast_reads_quotas_and_the_managers_calls(
    sim_deals_db_file, copy_db, tmp_path
) -> None:
    from crmkit.store import Store
    from crmkit.store.calls import add_call

    store = Store.open(copy_db(sim_deals_db_file, tmp_path))
    store.insert(
        "quotas",
        pd.DataFrame(
            {
                "scope": ["company", "team"],
                "name": ["all", "nowhere"],
                "period": ["M", "M"],
                "period_start": pd.to_datetime(["2024-05-01", "2024-05-01"]),
                "amount": [100_000.0, 50_000.0],
            }
        ),
    )
    add_call(
        store,
        scope="company",
        name="all",
        period="M",
        period_start="2024-05-01",
        amount=90_000.0,
        author="mia",
        note="solid",
        at="2024-04-29 16:00",
    )
    add_call(
        store,
        scope="company",
        name="all",
        period="M",
        period_start="2024-05-01",
        amount=120_000.0,
        author="mia",
        at="2024-05-02 09:00",
    )  # after as_of
    snap = run_forecast(store, as_of=AS_OF, horizon=2, draws=200, seed=1, save=False,
                        include_repeat=False, method="map")  # fmt: skip
    tables = snap.parameters["tables"]
    (att,) = tables["attainment"]  # the quota of an unknown team has no record
    draws = snap.revenue.sel(source="total", group="all", period="2024-05").to_numpy()
    assert (att["group"], att["period"], att["quota"]) == ("all", "2024-05", 100_000.0)
    assert att["p_attain"] == pytest.approx(np.mean(att["closed_to_date"] + draws >= 100_000.0))
    assert att["expected_attainment"] == pytest.approx(
        np.mean((att["closed_to_date"] + draws) / 100_000.0)
    )
    company = [r for r in tables["forecast_call"] if r["group"] == "all"]
    assert (company[0]["call"], company[0]["call_author"], company[0]["call_note"]) == (
        90_000.0, "mia", "solid")  # fmt: skip
    assert company[1]["call"] is None
    store.close()


# ------------------------------------------------ money in more than one currency (issue #15)
def _plain_frames(store, *, marketing: bool = False, as_of: object = None) -> dict:
    """load_frames as it was before currencies: the tables as stored."""
    from crmkit.forecast.engine import FORECAST_TABLES, MARKETING_TABLES

    names = FORECAST_TABLES + (MARKETING_TABLES if marketing else ())
    return {name: store.read(name) for name in names}


def _set_currency(store, currency: str, deal_ids: list[str]) -> None:
    import sqlalchemy as sa

    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE deals SET currency = :c WHERE deal_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"c": currency, "ids": deal_ids},
        )


def test_single_currency_forecast_draws_are_identical_to_before_conversion(
    sim_deals_store, monkeypatch
) -> None:
    import crmkit.forecast.engine as engine

    kw = {"as_of": AS_OF, "horizon": 2, "draws": 200, "seed": 3, "save": False, "method": "map"}
    snap = run_forecast(sim_deals_store, **kw)
    assert snap.parameters["currency"] == "USD"
    monkeypatch.setattr(engine, "load_frames", _plain_frames)
    before = run_forecast(sim_deals_store, **kw)
    np.testing.assert_array_equal(snap.revenue.to_numpy(), before.revenue.to_numpy())
    pd.testing.assert_frame_equal(snap.quantiles, before.quantiles)


def test_two_currency_deals_convert_each_at_its_own_close_days_rate(sim_deals_store) -> None:
    store = sim_deals_store
    deals = store.read("deals")
    won = deals[deals["status"].eq("won")].sort_values("closed_at")
    eur_ids = won["deal_id"].iloc[::2].tolist()  # every other won deal is in EUR
    open_ids = deals.loc[deals["status"].eq("open"), "deal_id"].iloc[:3].tolist()
    _set_currency(store, "EUR", eur_ids + open_ids)
    change = pd.Timestamp("2023-06-01")
    store.insert(
        "exchange_rates",
        pd.DataFrame(
            {"currency": ["EUR", "EUR"], "valid_from": ["2000-01-01", "2023-06-01"],
             "rate": [0.5, 0.8]}
        ),
    )  # fmt: skip

    def by_hand(row) -> float:
        if row.name not in eur_ids:
            return row["amount"]
        return row["amount"] / (0.8 if pd.Timestamp(row["closed_at"]) >= change else 0.5)

    frames = load_frames(store, as_of=AS_OF)
    got = frames["deals"].set_index("deal_id")
    closed_by = won[pd.to_datetime(won["closed_at"]) <= pd.Timestamp(AS_OF) + pd.Timedelta(days=1)]
    expected = closed_by.set_index("deal_id").apply(by_hand, axis=1)
    eur_closed = [d for d in eur_ids if d in expected.index]
    assert any(pd.Timestamp(won.set_index("deal_id").loc[d, "closed_at"]) < change
               for d in eur_closed)  # fmt: skip
    assert any(pd.Timestamp(won.set_index("deal_id").loc[d, "closed_at"]) >= change
               for d in eur_closed)  # fmt: skip
    np.testing.assert_allclose(got.loc[expected.index, "amount"], expected)
    assert (got["currency"] == "USD").all()
    assert set(got.loc[got["currency_original"] == "EUR"].index) == set(eur_ids + open_ids)
    raw_open = deals.set_index("deal_id").loc[open_ids, "amount"]
    np.testing.assert_allclose(got.loc[open_ids, "amount"], raw_open / 0.8)  # as_of's rate

    snap = run_forecast(store, as_of=AS_OF, horizon=2, draws=100, seed=1, save=False, method="map")
    actual = pd.DataFrame(snap.parameters["tables"]["actuals"])
    won_rows = actual[(actual["group"] == "all") & (actual["source"] == "deals")]
    months = pd.to_datetime(closed_by["closed_at"]).dt.strftime("%Y-%m")
    hand = expected.groupby(months.to_numpy()).sum()
    for _, r in won_rows.iterrows():
        assert r["amount"] == pytest.approx(hand.get(r["period"], 0.0)), r["period"]
    assert won_rows["amount"].sum() > 0


def test_forecast_without_the_rates_it_needs_refuses_listing_each_currency(
    sim_deals_store,
) -> None:
    deals = sim_deals_store.read("deals")
    won = deals[deals["status"].eq("won")].sort_values("closed_at")
    _set_currency(sim_deals_store, "EUR", won["deal_id"].iloc[[0, 5]].tolist())
    _set_currency(sim_deals_store, "JPY", won["deal_id"].iloc[[3]].tolist())
    first_eur = pd.Timestamp(won["closed_at"].iloc[0]).date()
    first_jpy = pd.Timestamp(won["closed_at"].iloc[3]).date()
    with pytest.raises(CrmkitError) as info:
        run_forecast(sim_deals_store, as_of=AS_OF, horizon=2, draws=100, save=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"EUR from {first_eur}, JPY from {first_jpy}" in msg
    assert sim_deals_store.list_snapshots(include_drafts=True).empty


def test_forecast_refuses_after_the_reporting_currency_changes_without_rates(
    sim_deals_store,
) -> None:
    from crmkit.store.settings import set_setting

    set_setting(sim_deals_store, "reporting_currency", "EUR")
    with pytest.raises(CrmkitError, match=r"reporting currency EUR for: USD from \d{4}-\d\d-\d\d;"):
        run_forecast(sim_deals_store, as_of=AS_OF, horizon=2, draws=100, save=False)


def test_demo_company_forecast_draws_are_identical_to_before_conversion(
    tmp_path, monkeypatch
) -> None:
    import crmkit.forecast.engine as engine
    from crmkit.data.demo.company import build_demo
    from crmkit.store import Store

    with Store.open(tmp_path / "demo.db") as store:
        build_demo(store, n_customers=200, n_deals=300)
        assert set(store.read("deals")["currency"]) == {"USD"}
        kw = {"as_of": "2026-10-31", "horizon": 2, "draws": 100, "seed": 5, "save": False,
              "method": "map"}  # fmt: skip
        snap = run_forecast(store, **kw)
        monkeypatch.setattr(engine, "load_frames", _plain_frames)
        before = run_forecast(store, **kw)
    np.testing.assert_array_equal(snap.revenue.to_numpy(), before.revenue.to_numpy())
    assert snap.parameters["tables"] == before.parameters["tables"]


def test_fit_models_reports_each_model_start_and_end_with_its_checks(store_and_snap) -> None:
    store, _snap, _ = store_and_snap
    lines: list[str] = []
    fit_models(load_frames(store), as_of=AS_OF, seed=1, report=lines.append)
    assert lines[0] == "fitting the pipeline model (map) ..."
    assert lines[1].startswith("pipeline model fitted in ") and "checks passed" in lines[1]
    assert lines[2] == "fitting the new business model (map) ..."
    assert lines[3].startswith("new business model fitted in ")
    assert len(lines) == 4


def test_fit_report_names_failed_checks_and_the_nuts_settings() -> None:
    from types import SimpleNamespace

    from crmkit.forecast.engine import fit_report

    failed = SimpleNamespace(
        diagnostics_={"ok": False, "r_hat_max": 1.031, "ess_bulk_min": 207.4, "divergences": 3}
    )

    lines: list[str] = []
    settings = {"method": "nuts", "draws": 1000, "tune": 500}
    with fit_report(lines.append, "pipeline", settings) as done:
        done(failed)
    assert lines[0] == (
        "fitting the pipeline model (nuts: 1000 draws after 500 tuning steps per chain) ..."
    )
    assert lines[1].endswith("CHECKS FAILED (R-hat 1.031, bulk ESS 207, 3 divergences)"), lines[1]


# ---------------------------------------------------------------- method "auto" (issue #17)
def test_auto_method_resolves_to_nuts_on_small_data_with_its_reason(store_and_snap) -> None:
    from crmkit.forecast.fitting import NUTS_BUDGET_SECONDS, nuts_seconds, training_deals

    store, _, _ = store_and_snap
    frames = load_frames(store)
    n = training_deals(frames, as_of=AS_OF)
    assert 0 < n < len(frames["deals"])  # deals closed before the window are not counted
    used, why = resolve_method(frames, as_of=AS_OF, method="auto")
    assert nuts_seconds(n) <= NUTS_BUDGET_SECONDS
    assert used == "nuts"
    assert re.fullmatch(rf"{n:,} deals: NUTS takes about \d+ s", why), why


def test_auto_method_falls_back_to_map_above_the_nuts_budget(store_and_snap) -> None:
    store, _, _ = store_and_snap
    frames = load_frames(store)
    used, why = resolve_method(frames, as_of=AS_OF, method="auto", nuts_budget_s=1.0)
    assert used == "map"
    assert "NUTS would take about" in why and "MAP + Laplace used" in why
    assert why.endswith("--method nuts to sample anyway")


def _open_deals(n: int) -> dict[str, pd.DataFrame]:
    """Frames with ``n`` deals open since 2024-01-01 (all training deals on AS_OF)."""
    deals = pd.DataFrame({"created_at": pd.to_datetime(["2024-01-01"] * n), "closed_at": pd.NaT})
    return {"deals": deals}


def test_auto_method_is_map_for_a_company_whose_nuts_would_take_minutes() -> None:
    from crmkit.forecast.fitting import NUTS_BUDGET_SECONDS, nuts_seconds

    assert nuts_seconds(1_769) <= NUTS_BUDGET_SECONDS  # the 3,000-deal demo samples
    assert nuts_seconds(500_000) > 10 * NUTS_BUDGET_SECONDS  # a big company does not
    used, why = resolve_method(_open_deals(50_000), as_of=AS_OF, method="auto")
    assert used == "map"
    assert re.fullmatch(
        r"50,000 deals: NUTS would take about \d+ min; MAP \+ Laplace used; "
        r"--method nuts to sample anyway",
        why,
    ), why


def test_auto_method_is_map_above_the_size_where_nuts_passed_its_checks() -> None:
    from crmkit.forecast.fitting import NUTS_BUDGET_SECONDS, NUTS_MAX_DEALS, nuts_seconds

    n = NUTS_MAX_DEALS + 1
    assert nuts_seconds(n) <= NUTS_BUDGET_SECONDS  # in time, but beyond what was checked
    used, why = resolve_method(_open_deals(n), as_of=AS_OF, method="auto")
    assert used == "map"
    assert why.startswith(f"{n:,} deals: above the {NUTS_MAX_DEALS:,} up to which NUTS passed")
    assert resolve_method(_open_deals(NUTS_MAX_DEALS), as_of=AS_OF, method="auto")[0] == "nuts"


@pytest.mark.parametrize("method", ["map", "nuts", "advi"])
def test_an_explicit_method_is_used_as_asked(method) -> None:
    assert resolve_method({}, as_of=AS_OF, method=method) == (method, f"{method} as asked")


def test_run_forecast_records_the_method_asked_used_and_why(store_and_snap) -> None:
    store, snap, _ = store_and_snap
    assert (snap.parameters["method"], snap.parameters["method_used"]) == ("map", "map")
    assert snap.parameters["method_reason"] == "map as asked"
    assert store.load_snapshot(snap.snapshot_id).parameters["method_used"] == "map"


def test_each_forecast_draw_has_its_own_parameter_draw_so_the_median_is_stable_across_seeds(
    store_and_snap,
) -> None:
    store, _, _ = store_and_snap
    frames = load_frames(store)
    models = fit_models(frames, as_of=AS_OF, seed=1)

    def p50s(**kw) -> np.ndarray:
        out = []
        for s in range(6):
            res = forecast_draws(
                models, frames, as_of=AS_OF, horizon=3, draws=2000, seed=s,
                include_repeat=False, **kw,
            )  # fmt: skip
            total = res["revenue"].sel(source="total", group="all").sum("period")
            out.append(float(np.median(total)))
            if not kw:
                assert res["settings"]["n_p"] == 2000
        return np.array(out)

    few, default = p50s(param_draws=10), p50s()
    # with 10 posterior draws the P50 carries their Monte Carlo error; one per draw removes it
    assert np.std(default) < 0.5 * np.std(few)
