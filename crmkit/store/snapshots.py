"""Forecast snapshots: what a forecast said at a moment, saved so apps and reports can read it.

A snapshot keeps its as-of date, horizon and period, the parameters and diagnostics
of the fit, a table of per-period quantiles, and the draws themselves (labelled
arrays, stored compressed) so that roll-ups and target probabilities can be
recomputed without refitting. What a forecast snapshot holds, field by field, is the
contract written in :mod:`crmkit.forecast.snapshot` (and ``docs/architecture.md``).

Storage: the draws go into one compressed ``.npz`` blob with a JSON header holding
``version`` (:data:`SNAPSHOT_VERSION`), ``coords`` and ``dims``; the quantiles,
parameters and diagnostics are JSON columns. A snapshot saved in an older format is
brought up to date on load by :func:`migrate` (version 1, written before the header had a
version, named the revenue draws ``rollup``); one saved in a newer format than this code
knows is refused.

Backtests: a refit report stores its backtest inside the snapshot (``parameters["tables"]
["backtest"]``); a backtest run later (a ``--no-refit`` report's) is kept beside it in
``forecast_backtests`` by :func:`save_backtest`, since a saved snapshot is never rewritten,
and :func:`load` puts it in the same place, so readers see one backtest either way.

Publication: a snapshot is ``"published"`` (the apps, the report and
:meth:`crmkit.Store.load_snapshot` read it) or a ``"draft"`` (saved with its ``reasons``, a
list of text, for a person to inspect; read only with ``include_drafts=True``).
:func:`crmkit.forecast.engine.run_forecast` saves a forecast whose checks fail as a draft.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crmkit.errors import CrmkitError, NotFoundError
from crmkit.store.frames import _json_default
from crmkit.store.schema import SNAPSHOT_STATUSES, TABLES

#: Format version of the snapshots this code writes (kept in the draws' header).
SNAPSHOT_VERSION = 2
#: Name of the revenue draws in ``Snapshot.draws``.
REVENUE = "revenue"
#: Dims of the revenue draws.
REVENUE_DIMS = ("sample", "period", "source", "group")
#: Units of the revenue draws.
REVENUE_UNITS = "currency per period"


@dataclass
class Snapshot:
    """A saved forecast.

    Parameters
    ----------
    as_of
        The day the forecast was made as of.
    horizon
        Number of periods forecast.
    period
        ``"M"`` (months) or ``"Q"`` (quarters).
    quantiles
        Long table with at least ``period`` and ``source`` and quantile columns (``p10``...).
    draws
        Named arrays of draws, e.g. ``{"revenue": array(sample, period, source, group)}``;
        the first axis is the draw. A labelled ``xarray.DataArray`` may be given: its values
        are kept here and its dims and coordinates go into ``dims`` and ``coords``.
    coords
        Labels for the draw arrays' axes, e.g. ``{"period": [...], "deal_id": [...]}``.
    dims
        Axis names of each draw array, e.g. ``{"total": ["sample", "period"]}``.
    parameters
        Inputs of the forecast (JSON-serialisable).
    diagnostics
        Model diagnostics (JSON-serialisable), with ``ok`` True or False.
    label
        A free-text name.
    status
        ``"published"`` (the default: apps show it) or ``"draft"`` (its checks failed; apps
        never show it).
    reasons
        Why a draft is not published, one line of text each (empty when published).

    """

    as_of: dt.date
    horizon: int
    period: str
    quantiles: pd.DataFrame
    draws: dict[str, np.ndarray] = field(default_factory=dict)
    coords: dict[str, list] = field(default_factory=dict)
    dims: dict[str, list[str]] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    label: str | None = None
    snapshot_id: int | None = None
    created_at: dt.datetime | None = None
    status: str = "published"
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in SNAPSHOT_STATUSES:
            raise CrmkitError(
                f"snapshot status must be one of {', '.join(SNAPSHOT_STATUSES)}, "
                f"not {self.status!r}"
            )
        self.reasons = [str(r) for r in self.reasons]
        self.draws, self.coords, self.dims = dict(self.draws), dict(self.coords), dict(self.dims)
        for name, arr in list(self.draws.items()):
            if hasattr(arr, "dims") and hasattr(arr, "coords"):  # an xarray.DataArray
                self.dims[name] = [str(d) for d in arr.dims]
                for d in arr.dims:
                    if d not in arr.coords:
                        continue
                    labels = list(arr.coords[d].values.tolist())
                    if d in self.coords and list(self.coords[d]) != labels:
                        raise CrmkitError(
                            f"draws {name!r}: coordinate {d!r} differs from the snapshot's"
                        )
                    self.coords[d] = labels
                self.draws[name] = np.asarray(arr.values)

    @property
    def published(self) -> bool:
        """True when the snapshot is published (apps show it), False for a draft."""
        return self.status == "published"

    @property
    def revenue(self):
        """The revenue draws as an ``xarray.DataArray`` named ``revenue``.

        Dims ``(sample, period, source, group)``, coordinates the period labels, the source
        names (``pipeline``, ``new_business``, ``repeat``, ``total``) and the group labels
        (``all``, ``team=..``, ``owner=..``, ``segment=..``); values are currency amounts
        of each period (attribute ``units``). Select by label, e.g.
        ``snap.revenue.sel(source="total", group="all")``.
        """
        import xarray as xr

        if REVENUE not in self.draws:
            raise CrmkitError(f"snapshot {self.snapshot_id} holds no {REVENUE!r} draws")
        dims = list(self.dims.get(REVENUE, REVENUE_DIMS))
        coords = {d: list(self.coords[d]) for d in dims if d in self.coords}
        arr = xr.DataArray(
            self.draws[REVENUE], dims=dims, coords=coords, name=REVENUE,
            attrs={"units": REVENUE_UNITS},
        )  # fmt: skip
        return arr.transpose(*REVENUE_DIMS)

    def to_xarray(self):
        """Return the draws as an ``xarray.Dataset`` with labelled dimensions."""
        import xarray as xr

        data_vars = {
            name: (self.dims.get(name, [f"{name}_dim_{i}" for i in range(arr.ndim)]), arr)
            for name, arr in self.draws.items()
        }
        used = {d for dims in self.dims.values() for d in dims}
        coords = {k: v for k, v in self.coords.items() if k in used}
        return xr.Dataset(data_vars, coords=coords)


def _pack_draws(snap: Snapshot) -> bytes:
    """Compress the draws and their labels (and the format version) into bytes."""
    buf = io.BytesIO()
    arrays = {f"draw__{k}": np.asarray(v) for k, v in snap.draws.items()}
    header = json.dumps(
        {"version": SNAPSHOT_VERSION, "coords": snap.coords, "dims": snap.dims},
        default=_json_default,
    )
    np.savez_compressed(buf, __header__=np.frombuffer(header.encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def _unpack_draws(blob: bytes | None) -> tuple[dict, dict, dict, int]:
    """Read draws, coords, dims and the format version back from bytes."""
    if not blob:
        return {}, {}, {}, SNAPSHOT_VERSION
    with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as z:
        header = json.loads(z["__header__"].tobytes().decode())
        draws = {k[len("draw__") :]: z[k] for k in z.files if k.startswith("draw__")}
    version = int(header.get("version", 1))
    return draws, header.get("coords", {}), header.get("dims", {}), version


def _v1_to_v2(fields: dict) -> dict:
    """Version 1 to 2: ``rollup`` draws become ``revenue``; actuals records get a group."""
    draws, dims = dict(fields["draws"]), dict(fields["dims"])
    if "rollup" in draws:
        draws[REVENUE] = draws.pop("rollup")
        dims[REVENUE] = dims.pop("rollup", list(REVENUE_DIMS))
    params = dict(fields["parameters"])
    tables = dict(params.get("tables") or {})
    if tables.get("actuals"):
        # version 1 written without ``extra_tables``: won deals of the whole company only
        recs = tables["actuals"]
        tables["actuals"] = [r if "group" in r else {"group": "all", **r} for r in recs]
        params["tables"] = tables
    return {**fields, "draws": draws, "dims": dims, "parameters": params}


#: Upgrade of a snapshot's stored fields from each older version to the next.
MIGRATIONS = {1: _v1_to_v2}


def migrate(fields: dict, version: int, *, snapshot_id: int | None = None) -> dict:
    """Bring a stored snapshot's fields up to :data:`SNAPSHOT_VERSION`.

    Parameters
    ----------
    fields
        ``draws``, ``coords``, ``dims`` and ``parameters`` as stored.
    version
        The format version they were saved in (1 when the header has none).
    snapshot_id
        The snapshot's id, for the error message.

    Returns
    -------
    dict
        The fields in the current format.

    Raises
    ------
    CrmkitError
        When ``version`` is newer than this code's :data:`SNAPSHOT_VERSION`.
    """
    if version > SNAPSHOT_VERSION:
        raise CrmkitError(
            f"snapshot {snapshot_id} was saved in snapshot format version {version}, newer "
            f"than version {SNAPSHOT_VERSION} that this crmkit reads; upgrade crmkit to load it"
        )
    while version < SNAPSHOT_VERSION:
        fields = MIGRATIONS[version](fields)
        version += 1
    return fields


def save(conn: sa.Connection, snap: Snapshot) -> int:
    """Insert a snapshot (with its status and reasons) within an open transaction; its id."""
    t = TABLES["forecast_snapshots"]
    if snap.status not in SNAPSHOT_STATUSES:
        raise CrmkitError(
            f"snapshot status must be one of {SNAPSHOT_STATUSES}, not {snap.status!r}"
        )
    created = snap.created_at or _utc_now()
    values = {
        "created_at": created,
        "as_of": pd.Timestamp(snap.as_of).date(),
        "horizon": int(snap.horizon),
        "period": snap.period,
        "label": snap.label,
        "parameters": json.dumps(snap.parameters, default=_json_default),
        "diagnostics": json.dumps(snap.diagnostics, default=_json_default),
        "quantiles": snap.quantiles.to_json(orient="split", date_format="iso", index=False),
        "draws": _pack_draws(snap),
        "status": snap.status,
        "reasons": json.dumps(list(snap.reasons)),
    }
    res = conn.execute(sa.insert(t).values(**values).returning(t.c.snapshot_id))
    snap.snapshot_id = int(res.scalar_one())
    snap.created_at = created
    return snap.snapshot_id


def save_backtest(conn: sa.Connection, snapshot_id: int, records: list[dict], origins: int) -> bool:
    """Keep a backtest of a saved snapshot beside it, within an open transaction.

    Parameters
    ----------
    conn
        An open connection (in a transaction).
    snapshot_id
        The snapshot backtested.
    records
        The backtest's summary as the snapshot's ``backtest`` table
        (:func:`crmkit.forecast.snapshot_tables.backtest_records`).
    origins
        Month ends backtested.

    Returns
    -------
    bool
        True when stored; False when the snapshot already has a backtest (inside it, or
        kept here earlier): the first one stands.

    Raises
    ------
    NotFoundError
        When there is no snapshot ``snapshot_id``.
    """
    t = TABLES["forecast_snapshots"]
    row = conn.execute(sa.select(t.c.parameters).where(t.c.snapshot_id == int(snapshot_id))).first()
    if row is None:
        raise NotFoundError(f"no snapshot {snapshot_id}")
    if (json.loads(row[0] or "{}").get("tables") or {}).get("backtest"):
        return False
    b = TABLES["forecast_backtests"]
    if conn.execute(sa.select(b.c.snapshot_id).where(b.c.snapshot_id == int(snapshot_id))).first():
        return False
    conn.execute(
        sa.insert(b).values(
            snapshot_id=int(snapshot_id),
            created_at=_utc_now(),
            origins=int(origins),
            records=json.dumps(records, default=_json_default),
        )
    )
    return True


def _kept_backtest(conn: sa.Connection, snapshot_id: int) -> list[dict] | None:
    """The backtest kept beside a snapshot (:func:`save_backtest`), or None.

    None also for a database not yet migrated to 0005 that a read-only page opened without
    the schema check: the snapshot still loads.
    """
    if not sa.inspect(conn).has_table("forecast_backtests"):
        return None
    b = TABLES["forecast_backtests"]
    text = conn.execute(
        sa.select(b.c.records).where(b.c.snapshot_id == int(snapshot_id))
    ).scalar_one_or_none()
    return json.loads(text) if text else None


def _utc_now() -> dt.datetime:
    """The current time, naive UTC, to the second (as the snapshot tables store it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _reasons(text: str | None) -> list[str]:
    """The stored reasons (a JSON list) as a list of text."""
    return [str(r) for r in json.loads(text)] if text else []


def load(
    conn: sa.Connection, snapshot_id: int | None = None, *, include_drafts: bool = False
) -> Snapshot | None:
    """Read one snapshot, or None when there is none.

    Parameters
    ----------
    conn
        An open connection.
    snapshot_id
        The snapshot; None for the newest published one (the newest of all with
        ``include_drafts``).
    include_drafts
        Also read drafts.

    Returns
    -------
    Snapshot or None

    Raises
    ------
    NotFoundError
        When ``snapshot_id`` is a draft and ``include_drafts`` is False; the message gives
        the draft's reasons.
    """
    t = TABLES["forecast_snapshots"]
    stmt = sa.select(t)
    if snapshot_id is None:
        if not include_drafts:
            stmt = stmt.where(t.c.status == "published")
        stmt = stmt.order_by(t.c.snapshot_id.desc()).limit(1)
    else:
        stmt = stmt.where(t.c.snapshot_id == int(snapshot_id))
    row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    reasons = _reasons(row["reasons"])
    if row["status"] != "published" and not include_drafts:
        why = "; ".join(reasons) or "no reason recorded"
        raise NotFoundError(
            f"snapshot {row['snapshot_id']} is a draft, not published ({why}); "
            "load it with include_drafts=True"
        )
    draws, coords, dims, version = _unpack_draws(row["draws"])
    fields = migrate(
        {
            "draws": draws,
            "coords": coords,
            "dims": dims,
            "parameters": json.loads(row["parameters"] or "{}"),
        },
        version,
        snapshot_id=int(row["snapshot_id"]),
    )
    tables = fields["parameters"].get("tables") or {}
    if not tables.get("backtest"):  # one run after the snapshot was saved, kept beside it
        kept = _kept_backtest(conn, int(row["snapshot_id"]))
        if kept:
            fields["parameters"]["tables"] = {**tables, "backtest": kept}
    quantiles = pd.read_json(io.StringIO(row["quantiles"]), orient="split")
    return Snapshot(
        as_of=pd.Timestamp(row["as_of"]).date(),
        horizon=int(row["horizon"]),
        period=row["period"],
        quantiles=quantiles,
        draws=fields["draws"],
        coords=fields["coords"],
        dims=fields["dims"],
        parameters=fields["parameters"],
        diagnostics=json.loads(row["diagnostics"] or "{}"),
        label=row["label"],
        snapshot_id=int(row["snapshot_id"]),
        created_at=pd.Timestamp(row["created_at"]).to_pydatetime(),
        status=row["status"],
        reasons=reasons,
    )


def listing(conn: sa.Connection, *, include_drafts: bool = False) -> pd.DataFrame:
    """List the published snapshots (and drafts if asked) without their draws, newest first.

    Columns ``snapshot_id``, ``created_at``, ``as_of``, ``horizon``, ``period``, ``label``,
    ``status`` and ``reasons`` (a list of text).
    """
    t = TABLES["forecast_snapshots"]
    cols = [t.c.snapshot_id, t.c.created_at, t.c.as_of, t.c.horizon, t.c.period, t.c.label,
            t.c.status, t.c.reasons]  # fmt: skip
    stmt = sa.select(*cols).order_by(t.c.snapshot_id.desc())
    if not include_drafts:
        stmt = stmt.where(t.c.status == "published")
    result = conn.execute(stmt)
    df = pd.DataFrame(result.fetchall(), columns=[c.name for c in cols])
    df["created_at"] = pd.to_datetime(df["created_at"])
    df["as_of"] = pd.to_datetime(df["as_of"])
    df["reasons"] = [_reasons(r) for r in df["reasons"]]
    return df
