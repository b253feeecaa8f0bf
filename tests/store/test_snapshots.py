"""Forecast snapshots keep quantiles, labelled draws, parameters and diagnostics, versioned."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import xarray as xr

from crmkit.errors import CrmkitError, NotFoundError
from crmkit.store import Snapshot, Store
from crmkit.store.schema import TABLES
from crmkit.store.snapshots import SNAPSHOT_VERSION, migrate


def make_snapshot(seed: int = 0) -> Snapshot:
    rng = np.random.default_rng(seed)
    periods = ["2026-11", "2026-12", "2027-01"]
    total = rng.gamma(5.0, 1000.0, size=(200, 3))
    q = pd.DataFrame(
        {
            "period": periods,
            "source": "total",
            "p10": np.quantile(total, 0.1, axis=0),
            "p50": np.quantile(total, 0.5, axis=0),
            "p90": np.quantile(total, 0.9, axis=0),
        }
    )
    return Snapshot(
        as_of=dt.date(2026, 10, 31),
        horizon=3,
        period="M",
        quantiles=q,
        draws={"total": total},
        coords={"period": periods},
        dims={"total": ["sample", "period"]},
        parameters={"draws": 200, "target": 12_000.5},
        diagnostics={"ok": True, "r_hat_max": 1.004},
        label="test",
    )


def test_snapshot_round_trip(store: Store) -> None:
    snap = make_snapshot()
    sid = store.save_snapshot(snap)
    back = store.load_snapshot(sid)
    assert back.snapshot_id == sid
    assert back.as_of == dt.date(2026, 10, 31)
    assert (back.horizon, back.period, back.label) == (3, "M", "test")
    np.testing.assert_array_equal(back.draws["total"], snap.draws["total"])
    pd.testing.assert_frame_equal(back.quantiles, snap.quantiles, check_dtype=False)
    assert back.parameters == {"draws": 200, "target": 12_000.5}
    assert back.diagnostics["ok"] is True
    ds = back.to_xarray()
    assert ds["total"].dims == ("sample", "period")
    assert list(ds["period"].values) == ["2026-11", "2026-12", "2027-01"]


def test_latest_snapshot_and_listing(store: Store) -> None:
    a = store.save_snapshot(make_snapshot(1))
    b = store.save_snapshot(make_snapshot(2))
    assert store.load_snapshot().snapshot_id == b
    listing = store.list_snapshots()
    assert listing["snapshot_id"].tolist() == [b, a]
    assert "draws" not in listing.columns


# ---------------------------------------------------------------- labelled revenue draws, format
PERIODS = ["2026-11", "2026-12"]
SOURCES = ["pipeline", "new_business", "repeat", "total"]
GROUPS = ["all", "team=north"]


def _revenue(seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.gamma(3.0, 1000.0, size=(50, len(PERIODS), len(SOURCES), len(GROUPS)))
    rev = xr.DataArray(
        values,
        dims=("sample", "period", "source", "group"),
        coords={"period": PERIODS, "source": SOURCES, "group": GROUPS},
        name="revenue",
    )
    parts = [rev.sel(source=s) for s in SOURCES[:3]]
    rev.loc[{"source": "total"}] = parts[0] + parts[1] + parts[2]
    return rev


def _v1_row(draws: dict[str, np.ndarray], header: dict, parameters: dict) -> dict:
    """A forecast_snapshots row exactly as the release before format version 2 wrote it."""
    buf = io.BytesIO()
    raw = json.dumps(header).encode()
    arrays = {f"draw__{k}": v for k, v in draws.items()}
    np.savez_compressed(buf, __header__=np.frombuffer(raw, dtype=np.uint8), **arrays)
    q = pd.DataFrame({"group_by": ["all"], "group": ["all"], "source": ["total"],
                      "period": [PERIODS[0]], "p50": [1.0]})  # fmt: skip
    return {
        "created_at": dt.datetime(2026, 11, 1, 9, 0),
        "as_of": dt.date(2026, 10, 31),
        "horizon": 2,
        "period": "M",
        "label": "v1",
        "parameters": json.dumps(parameters),
        "diagnostics": json.dumps({"ok": True, "models": {}, "messages": []}),
        "quantiles": q.to_json(orient="split", date_format="iso", index=False),
        "draws": buf.getvalue(),
    }


def _insert(store: Store, row: dict) -> int:
    t = TABLES["forecast_snapshots"]
    with store.transaction() as conn:
        res = conn.execute(sa.insert(t).values(**row).returning(t.c.snapshot_id))
        return int(res.scalar_one())


def test_revenue_draws_round_trip_as_a_labelled_data_array(store: Store) -> None:
    rev = _revenue()
    snap = make_snapshot()
    snap = Snapshot(
        as_of=snap.as_of, horizon=2, period="M", quantiles=snap.quantiles,
        draws={"revenue": rev, "deal_amount": np.array([1.0, 2.0])},
        coords={"deal_id": ["a", "b"]}, dims={"deal_amount": ["deal_id"]},
    )  # fmt: skip
    # kept compactly: a plain array with its dims and labels
    assert isinstance(snap.draws["revenue"], np.ndarray)
    assert snap.dims["revenue"] == ["sample", "period", "source", "group"]
    assert snap.coords["source"] == SOURCES
    back = store.load_snapshot(store.save_snapshot(snap))
    got = back.revenue
    assert got.name == "revenue" and got.dims == ("sample", "period", "source", "group")
    assert got.attrs["units"] == "currency per period"
    xr.testing.assert_identical(got.drop_attrs(), rev)
    total = got.sel(source="total")
    np.testing.assert_allclose(total, got.sel(source=SOURCES[:3]).sum("source"))
    np.testing.assert_array_equal(back.draws["deal_amount"], [1.0, 2.0])
    with store.engine.connect() as conn:
        blob = conn.execute(sa.text("SELECT draws FROM forecast_snapshots")).scalar()
    with np.load(io.BytesIO(bytes(blob))) as z:
        header = json.loads(z["__header__"].tobytes().decode())
    assert header["version"] == SNAPSHOT_VERSION == 2
    with pytest.raises(CrmkitError, match="coordinate 'period'"):
        Snapshot(
            as_of=snap.as_of, horizon=2, period="M", quantiles=snap.quantiles,
            draws={"revenue": rev}, coords={"period": ["2027-01", "2027-02"]},
        )  # fmt: skip


def test_a_version_1_snapshot_loads_through_the_migration(store: Store) -> None:
    rev = _revenue(1)
    header = {
        "coords": {"period": PERIODS, "source": SOURCES, "group": GROUPS, "deal_id": ["d1"]},
        "dims": {"rollup": ["sample", "period", "source", "group"], "deal_amount": ["deal_id"]},
    }
    actuals = [{"period": "2026-09", "source": "deals", "amount": 5.0}]
    params = {"draws": 50, "tables": {"actuals": actuals, "at_risk_deals": []}}
    sid = _insert(
        store,
        _v1_row({"rollup": rev.values, "deal_amount": np.array([7.0])}, header, params),
    )
    snap = store.load_snapshot(sid)
    assert "rollup" not in snap.draws and set(snap.dims) == {"revenue", "deal_amount"}
    xr.testing.assert_identical(snap.revenue.drop_attrs(), rev)
    # the version-1 array's sources keep their labels: total is still the sum of the parts
    got = snap.revenue
    parts = got.sel(source="pipeline") + got.sel(source="new_business") + got.sel(source="repeat")
    np.testing.assert_array_equal(got.sel(source="total"), parts)
    assert snap.parameters["tables"]["actuals"] == [{"group": "all", **actuals[0]}]
    assert snap.coords["deal_id"] == ["d1"] and snap.draws["deal_amount"].tolist() == [7.0]
    # the migration itself: version 1 fields in, current fields out
    fields = {"draws": {"rollup": rev.values}, "coords": {}, "dims": {}, "parameters": {}}
    up = migrate(fields, 1)
    assert list(up["draws"]) == ["revenue"]
    assert up["dims"]["revenue"] == ["sample", "period", "source", "group"]
    assert migrate(up, SNAPSHOT_VERSION) is up


def test_a_snapshot_of_a_newer_format_is_refused(store: Store) -> None:
    header = {"version": SNAPSHOT_VERSION + 1, "coords": {}, "dims": {}}
    sid = _insert(store, _v1_row({"revenue": np.zeros((2, 1, 1, 1))}, header, {}))
    with pytest.raises(CrmkitError, match=r"version 3, newer than version 2") as err:
        store.load_snapshot(sid)
    assert f"snapshot {sid}" in str(err.value)
    with pytest.raises(CrmkitError, match="upgrade crmkit"):
        migrate({"draws": {}, "coords": {}, "dims": {}, "parameters": {}}, 3)


# ---------------------------------------------------------------- published and draft snapshots
def test_drafts_are_saved_but_not_loaded_or_listed_by_default(store: Store) -> None:
    a = store.save_snapshot(make_snapshot(1))
    reasons = ["pipeline model: diagnostics not ok (advi): not settled", "all zero"]
    draft = make_snapshot(2)
    draft.status, draft.reasons = "draft", reasons
    b = store.save_snapshot(draft)
    # the newest published one, which is what the apps read
    assert store.load_snapshot().snapshot_id == a
    assert store.list_snapshots()["snapshot_id"].tolist() == [a]
    listing = store.list_snapshots(include_drafts=True)
    assert listing["snapshot_id"].tolist() == [b, a]
    assert listing["status"].tolist() == ["draft", "published"]
    assert listing["reasons"].tolist() == [reasons, []]
    with pytest.raises(NotFoundError, match=rf"snapshot {b} is a draft.*not settled; all zero"):
        store.load_snapshot(b)
    back = store.load_snapshot(b, include_drafts=True)
    assert (back.status, back.reasons, back.published) == ("draft", reasons, False)
    assert store.load_snapshot(include_drafts=True).snapshot_id == b
    assert store.load_snapshot(a).published


def test_only_drafts_means_no_snapshot_for_the_apps(store: Store) -> None:
    draft = make_snapshot(3)
    draft.status, draft.reasons = "draft", ["diagnostics not ok"]
    store.save_snapshot(draft)
    with pytest.raises(NotFoundError, match="no forecast snapshot yet"):
        store.load_snapshot()
    assert store.list_snapshots().empty


def test_previous_snapshot_skips_drafts(store: Store) -> None:
    from crmkit.forecast.compare import previous_snapshot

    a = store.save_snapshot(make_snapshot(1))
    draft = make_snapshot(2)
    draft.status, draft.reasons = "draft", ["diagnostics not ok"]
    store.save_snapshot(draft)
    newest = make_snapshot(3)
    store.save_snapshot(newest)
    assert previous_snapshot(store, newest).snapshot_id == a


def test_snapshot_status_must_be_published_or_draft() -> None:
    with pytest.raises(CrmkitError, match="published, draft"):
        Snapshot(as_of=dt.date(2026, 10, 31), horizon=1, period="M",
                 quantiles=pd.DataFrame(), status="live")  # fmt: skip


def test_migration_0002_publishes_existing_snapshots(tmp_path) -> None:
    from alembic import command

    from crmkit.store import migrate

    old = Store.open(tmp_path / "old.db", migrate_db=False)
    migrate.upgrade(old.engine, "0001")
    assert "status" not in {c["name"] for c in sa.inspect(old.engine).get_columns(
        "forecast_snapshots")}  # fmt: skip
    row = _v1_row({"revenue": _revenue().values},
                  {"version": 2, "dims": {"revenue": list(_revenue().dims)}, "coords": {
                      d: list(_revenue().coords[d].values) for d in ("period", "source", "group")
                  }}, {"draws": 50})  # fmt: skip
    with old.engine.begin() as conn:
        t = sa.table("forecast_snapshots", *[sa.column(k) for k in row])
        conn.execute(sa.insert(t).values(**row))
    old.close()
    with Store.open(tmp_path / "old.db") as store:  # migrates to head
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        snap = store.load_snapshot()
        assert (snap.status, snap.reasons) == ("published", [])
        assert store.list_snapshots()["status"].tolist() == ["published"]
        draft = make_snapshot(4)
        draft.status = "draft"
        store.save_snapshot(draft)
        # downgrading deletes the drafts, which older code could not tell from published ones
        with store.engine.connect().execution_options(crmkit_write=True) as conn:
            command.downgrade(migrate._config(conn), "0001")
            conn.commit()
        with store.engine.connect() as conn:
            ids = conn.execute(sa.text("SELECT snapshot_id FROM forecast_snapshots")).scalars()
            assert list(ids) == [snap.snapshot_id]


# ------------------------------------------------------- backtests kept beside a snapshot
BACKTEST = [
    {"lead": "1-3", "forecaster": "model", "origins": 4, "crps": 1.5, "vs_run_rate": None},
    {"lead": "1-3", "forecaster": "run_rate", "origins": 4, "crps": 2.5, "vs_run_rate": None},
]


def _raw_parameters(store: Store, sid: int) -> str:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT parameters FROM forecast_snapshots WHERE snapshot_id = :i"), {"i": sid}
        ).scalar_one()


def test_a_backtest_kept_beside_a_snapshot_loads_with_it_and_the_first_one_stands(
    store: Store,
) -> None:
    sid = store.save_snapshot(make_snapshot())
    raw = _raw_parameters(store, sid)
    assert store.save_backtest(sid, BACKTEST, origins=4) is True
    back = store.load_snapshot(sid)
    assert back.parameters["tables"]["backtest"] == BACKTEST
    assert back.parameters["draws"] == 200  # the rest of the parameters as saved
    assert _raw_parameters(store, sid) == raw  # the snapshot itself is never rewritten
    later = [dict(r, crps=9.0) for r in BACKTEST]
    assert store.save_backtest(sid, later, origins=7) is False
    assert store.load_snapshot(sid).parameters["tables"]["backtest"] == BACKTEST
    # another snapshot has none
    other = store.save_snapshot(make_snapshot(1))
    assert "tables" not in store.load_snapshot(other).parameters


def test_a_snapshot_with_its_own_backtest_keeps_it(store: Store) -> None:
    snap = make_snapshot()
    own = [dict(r, crps=0.5) for r in BACKTEST]
    snap.parameters["tables"] = {"backtest": own}
    sid = store.save_snapshot(snap)
    assert store.save_backtest(sid, BACKTEST, origins=4) is False
    assert store.load_snapshot(sid).parameters["tables"]["backtest"] == own
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM forecast_backtests")).scalar_one() == 0


def test_a_backtest_of_a_snapshot_that_does_not_exist_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no snapshot 41"):
        store.save_backtest(41, BACKTEST, origins=4)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM forecast_backtests")).scalar_one() == 0


def test_migration_0005_adds_forecast_backtests_and_keeps_the_snapshots(store: Store) -> None:
    from alembic import command

    from crmkit.store import migrate

    sid = store.save_snapshot(make_snapshot())
    with store.engine.connect().execution_options(crmkit_write=True) as conn:
        command.downgrade(migrate._config(conn), "0004")
        conn.commit()
    assert "forecast_backtests" not in sa.inspect(store.engine).get_table_names()
    reopened = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        assert migrate.current_revision(reopened.engine) == "0005"
        assert reopened.load_snapshot(sid).parameters == {"draws": 200, "target": 12_000.5}
        assert reopened.save_backtest(sid, BACKTEST, origins=4) is True
        pk = sa.inspect(reopened.engine).get_pk_constraint("forecast_backtests")
        assert pk["constrained_columns"] == ["snapshot_id"]
    finally:
        reopened.close()


def test_a_snapshot_loads_from_a_database_not_yet_migrated_to_0005(tmp_path) -> None:
    from crmkit.store import migrate

    with Store.open(tmp_path / "crm.db") as store:
        sid = store.save_snapshot(make_snapshot())
    old = Store.open(tmp_path / "crm.db", migrate_db=False)
    try:
        from alembic import command

        with old.engine.connect().execution_options(crmkit_write=True) as conn:
            command.downgrade(migrate._config(conn), "0004")
            conn.commit()
        # a read-only page opens without the schema check: the snapshot still loads
        assert old.load_snapshot(sid).parameters == {"draws": 200, "target": 12_000.5}
    finally:
        old.close()
