"""Forecast snapshots: what a forecast said at a moment, saved so apps and reports can read it.

A snapshot keeps its as-of date, horizon and period, the parameters and diagnostics
of the fit, a table of per-period quantiles, and the draws themselves (labelled
arrays, stored compressed) so that roll-ups and target probabilities can be
recomputed without refitting.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crmkit.store.frames import _json_default
from crmkit.store.schema import TABLES


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
        Named arrays of draws, e.g. ``{"total": array(sample, period)}``; the first axis is
        the draw.
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
    """Compress the draws and their labels into bytes."""
    buf = io.BytesIO()
    arrays = {f"draw__{k}": np.asarray(v) for k, v in snap.draws.items()}
    header = json.dumps({"coords": snap.coords, "dims": snap.dims}, default=_json_default)
    np.savez_compressed(buf, __header__=np.frombuffer(header.encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def _unpack_draws(blob: bytes | None) -> tuple[dict, dict, dict]:
    """Read draws, coords and dims back from bytes."""
    if not blob:
        return {}, {}, {}
    with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as z:
        header = json.loads(z["__header__"].tobytes().decode())
        draws = {k[len("draw__") :]: z[k] for k in z.files if k.startswith("draw__")}
    return draws, header.get("coords", {}), header.get("dims", {})


def save(conn: sa.Connection, snap: Snapshot) -> int:
    """Insert a snapshot within an open transaction and return its id."""
    t = TABLES["forecast_snapshots"]
    created = snap.created_at or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
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
    }
    res = conn.execute(sa.insert(t).values(**values).returning(t.c.snapshot_id))
    snap.snapshot_id = int(res.scalar_one())
    snap.created_at = created
    return snap.snapshot_id


def load(conn: sa.Connection, snapshot_id: int | None = None) -> Snapshot | None:
    """Read one snapshot (the newest when ``snapshot_id`` is None), or None."""
    t = TABLES["forecast_snapshots"]
    stmt = sa.select(t)
    if snapshot_id is None:
        stmt = stmt.order_by(t.c.snapshot_id.desc()).limit(1)
    else:
        stmt = stmt.where(t.c.snapshot_id == int(snapshot_id))
    row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    draws, coords, dims = _unpack_draws(row["draws"])
    quantiles = pd.read_json(io.StringIO(row["quantiles"]), orient="split")
    return Snapshot(
        as_of=pd.Timestamp(row["as_of"]).date(),
        horizon=int(row["horizon"]),
        period=row["period"],
        quantiles=quantiles,
        draws=draws,
        coords=coords,
        dims=dims,
        parameters=json.loads(row["parameters"] or "{}"),
        diagnostics=json.loads(row["diagnostics"] or "{}"),
        label=row["label"],
        snapshot_id=int(row["snapshot_id"]),
        created_at=pd.Timestamp(row["created_at"]).to_pydatetime(),
    )


def listing(conn: sa.Connection) -> pd.DataFrame:
    """List the snapshots without their draws, newest first."""
    t = TABLES["forecast_snapshots"]
    cols = [t.c.snapshot_id, t.c.created_at, t.c.as_of, t.c.horizon, t.c.period, t.c.label]
    result = conn.execute(sa.select(*cols).order_by(t.c.snapshot_id.desc()))
    df = pd.DataFrame(result.fetchall(), columns=[c.name for c in cols])
    df["created_at"] = pd.to_datetime(df["created_at"])
    df["as_of"] = pd.to_datetime(df["as_of"])
    return df
