"""Conversion between pandas DataFrames and database rows, typed by the schema."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmkit.store.schema import Entity


def to_records(entity: Entity, df: pd.DataFrame, *, as_columns: bool = False):
    """Turn a validated frame into plain Python rows (or columns) the database driver accepts."""
    cols = [c for c in entity.columns if c.name in df.columns]
    out_cols: dict[str, list[object]] = {}
    for c in cols:
        s = df[c.name]
        if c.kind == "datetime":
            ts = pd.to_datetime(s)
            out_cols[c.name] = _with_none(ts.dt.to_pydatetime(), ts.isna())
        elif c.kind == "date":
            ts = pd.to_datetime(s).dt.normalize()
            out_cols[c.name] = _with_none(
                np.array([v.date() for v in ts.dt.to_pydatetime()], dtype=object)
                if ts.notna().all()
                else np.array([None if pd.isna(v) else v.date() for v in ts], dtype=object),
                ts.isna(),
            )
        elif c.kind == "int":
            out_cols[c.name] = [None if pd.isna(v) else int(v) for v in s]
        elif c.kind == "float":
            f = pd.to_numeric(s).astype("float64")
            out_cols[c.name] = _with_none(f.to_numpy(dtype=object), f.isna())
        elif c.kind == "json":
            out_cols[c.name] = [
                v if (v is None or isinstance(v, str)) else json.dumps(v, default=_json_default)
                for v in s
            ]
        elif c.kind == "blob":
            out_cols[c.name] = list(s)
        else:
            mask = s.isna()
            arr = s.to_numpy(dtype=object)
            if not all(type(v) is str for v in arr[~mask.to_numpy()][:1000]):
                arr = np.array([None if m else str(v) for v, m in zip(arr, mask, strict=True)])
            out_cols[c.name] = _with_none(arr, mask)
    if as_columns:
        return out_cols
    names = list(out_cols)
    return [dict(zip(names, row, strict=True)) for row in zip(*out_cols.values(), strict=True)]


def to_sqlite_rows(entity: Entity, df: pd.DataFrame) -> tuple[list[str], list[tuple]]:
    """Turn a validated frame into SQLite parameter tuples, dates as SQLAlchemy's text format.

    About twice as fast as :func:`to_records` plus SQLAlchemy's per-value processing; the
    text written is exactly what SQLAlchemy's SQLite ``DateTime`` and ``Date`` types store.
    """
    cols = [c for c in entity.columns if c.name in df.columns]
    arrays: list[list[object]] = []
    for c in cols:
        s = df[c.name]
        if c.kind in ("datetime", "date"):
            ts = pd.to_datetime(s)
            unit = "us" if c.kind == "datetime" else "D"
            text = np.datetime_as_string(ts.to_numpy(dtype="datetime64[us]"), unit=unit)
            if c.kind == "datetime":
                text = np.char.replace(text, "T", " ")
                text = np.where(np.char.find(text, ".") < 0, np.char.add(text, ".000000"), text)
            arrays.append(_with_none(text.astype(object), ts.isna()))
        else:
            arrays.append(to_records(entity, df[[c.name]], as_columns=True)[c.name])
    return [c.name for c in cols], list(zip(*arrays, strict=True))


#: Characters escaped in PostgreSQL's COPY text format, backslash first.
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
#: Column kinds :func:`to_copy_text` writes (a blob column goes row by row).
COPY_TEXT_KINDS = ("str", "text", "int", "float", "date", "datetime", "json")


def to_copy_text(entity: Entity, df: pd.DataFrame) -> tuple[list[str], str]:
    r"""Turn a validated frame into one block of PostgreSQL ``COPY ... FROM STDIN`` text.

    Built column by column (numpy and Arrow, no loop over rows but for JSON values): the
    values are those :func:`to_records` gives, written as the server reads them back
    exactly (floats as their shortest round-trip text, times to the microsecond).

    Parameters
    ----------
    entity
        The entity spec; its columns present in ``df`` are written, in spec order.
    df
        The validated rows; no column of kind ``blob`` (see :data:`COPY_TEXT_KINDS`).

    Returns
    -------
    list of str
        The column names, in the order of the text's fields.
    str
        Tab-separated lines, ``\N`` for missing values, each line ending with a newline.

    """
    cols = [c for c in entity.columns if c.name in df.columns]
    fields: list[pa.Array] = []
    for c in cols:
        if c.kind not in COPY_TEXT_KINDS:
            raise ValueError(f"column {c.name!r} of kind {c.kind!r} cannot be written as text")
        s = df[c.name]
        if c.kind in ("datetime", "date"):
            ts = pd.to_datetime(s)
            if c.kind == "date":
                ts = ts.dt.normalize()
            unit = "us" if c.kind == "datetime" else "D"
            text = np.datetime_as_string(ts.to_numpy(dtype="datetime64[us]"), unit=unit)
            arr = pa.array(text, type=pa.large_string(), mask=ts.isna().to_numpy())
        elif c.kind == "int":
            n = pd.to_numeric(s).astype("Int64")
            missing = n.isna().to_numpy()
            text = n.fillna(0).to_numpy(dtype="int64").astype(str)
            arr = pa.array(text, type=pa.large_string(), mask=missing)
        elif c.kind == "float":
            f = pd.to_numeric(s).astype("float64")
            text = f.to_numpy().astype(str)
            arr = pa.array(text, type=pa.large_string(), mask=f.isna().to_numpy())
        else:
            values = to_records(entity, df[[c.name]], as_columns=True)[c.name]
            arr = pa.array(values, type=pa.large_string())
            for plain, escaped in _COPY_ESCAPES:
                arr = pc.replace_substring(arr, plain, escaped)
        fields.append(pc.fill_null(arr, "\\N"))
    if not len(df):
        return [c.name for c in cols], ""
    lines = pc.binary_join_element_wise(*fields, pa.scalar("\t", pa.large_string()))
    return [c.name for c in cols], "\n".join(lines.to_pylist()) + "\n"


def _with_none(values: np.ndarray, mask: pd.Series) -> list[object]:
    """Return values as a list with None where ``mask`` is set."""
    out = np.asarray(values, dtype=object).copy()
    m = np.asarray(mask, dtype=bool)
    if m.any():
        out[m] = None
    return out.tolist()


def _is_missing(v: object) -> bool:
    """True for None, NaN and pandas' missing markers."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _json_default(v: object) -> object:
    """Serialise numpy and datetime values inside JSON columns."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (dt.date, dt.datetime, pd.Timestamp)):
        return v.isoformat()
    raise TypeError(f"cannot store {type(v).__name__} as JSON")


def typed_frame(entity: Entity, df: pd.DataFrame, extra: Iterable[str] = ()) -> pd.DataFrame:
    """Give a frame read from the database the schema's dtypes and column order."""
    for c in entity.columns:
        if c.name not in df.columns:
            continue
        if c.kind in ("datetime", "date"):
            df[c.name] = pd.to_datetime(df[c.name], format="ISO8601")
        elif c.kind == "float":
            df[c.name] = pd.to_numeric(df[c.name]).astype("float64")
        elif c.kind == "int":
            df[c.name] = pd.to_numeric(df[c.name]).astype("Int64")
        elif c.kind in ("str", "text"):
            df[c.name] = df[c.name].astype(object).where(df[c.name].notna(), None)
    if "row_version" in df.columns:
        df["row_version"] = pd.to_numeric(df["row_version"]).astype("int64")
    if "updated_at" in df.columns:
        df["updated_at"] = pd.to_datetime(df["updated_at"], format="ISO8601")
    order = [c for c in entity.column_names if c in df.columns]
    order += [c for c in df.columns if c not in order]
    return df[order]


def value_to_text(value: object) -> str | None:
    """Render a tracked value for the deal history's text columns."""
    if _is_missing(value):
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        ts = pd.Timestamp(value)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)
