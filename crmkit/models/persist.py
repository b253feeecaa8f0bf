"""Saving a fit to one netCDF file: its InferenceData, the data it was fitted on, and attributes.

The data frame goes into the InferenceData's ``constant_data`` group, one variable per column
along one dimension, in column order; text columns are stored as fixed-width unicode. The
attributes (strings: JSON for anything structured) go into the file's global attributes.

A model's other tables (deals, history, templates) go into ``table_<name>`` groups,
encoded without loss by :func:`table_to_dataset` and decoded by :func:`dataset_to_table`:
numbers and times bit for bit, text with its missing values, each column's dtype and the
index, so a loaded model predicts exactly what the saved one did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "TABLE_PREFIX",
    "dataset_to_table",
    "load_idata",
    "save_idata",
    "split_tables",
    "table_to_dataset",
    "with_tables",
]

FRAME_GROUP = "constant_data"
#: Prefix of the InferenceData groups holding a model's tables in a saved file.
TABLE_PREFIX = "table_"
_ROW = "row"
_INDEX = "__index__"


def _column_values(col: pd.Series) -> np.ndarray:
    """A column as a numpy array netCDF can store (text as unicode)."""
    if pd.api.types.is_string_dtype(col) or col.dtype == object:
        return col.astype(str).to_numpy(dtype=str)
    return col.to_numpy()


def save_idata(
    path: str | Path,
    idata: az.InferenceData,
    frame: pd.DataFrame,
    attrs: Mapping[str, str] | None = None,
    *,
    dim: str = "row",
) -> Path:
    """Write an InferenceData, a data frame and attributes to one netCDF file.

    Parameters
    ----------
    path
        File to write.
    idata
        The fit's InferenceData (not modified); a ``constant_data`` group it holds is replaced.
    frame
        Data to keep with it (e.g. the fit data); its index is dropped.
    attrs
        Global attributes added to (and overriding) those of ``idata``.
    dim
        Name of the frame's row dimension in the file (underscores are appended while a
        column has that name).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    groups = {g: idata[g] for g in idata.groups() if g != FRAME_GROUP}
    out = az.InferenceData(**groups)
    frame = frame.reset_index(drop=True).rename(columns=str)
    while dim in frame.columns:  # a column named like the dimension would become its index
        dim += "_"
    ds = xr.Dataset({c: (dim, _column_values(frame[c])) for c in frame.columns})
    out.add_groups({FRAME_GROUP: ds})
    out.attrs.update(idata.attrs)
    out.attrs.update(attrs or {})
    out.to_netcdf(str(path))
    return path


def load_idata(path: str | Path) -> tuple[az.InferenceData, pd.DataFrame, dict[str, str]]:
    """Read a file written by :func:`save_idata`.

    Parameters
    ----------
    path
        A netCDF file written by :func:`save_idata`.

    Returns
    -------
    idata : arviz.InferenceData
        Every group but the frame's, with the file's attributes.
    frame : pandas.DataFrame
        The saved frame, columns in their saved order (text columns as strings).
    attrs : dict
        The file's global attributes.
    """
    full = az.from_netcdf(str(path))
    attrs = dict(full.attrs)
    groups = [g for g in full.groups() if g != FRAME_GROUP]
    idata = az.InferenceData(**{g: full[g] for g in groups})
    idata.attrs.update(attrs)
    frame = pd.DataFrame()
    if FRAME_GROUP in full.groups():
        ds = full[FRAME_GROUP]
        # row-dimension coordinates that are not the index (older files kept ids there) first
        names = [c for c in ds.coords if c not in ds.dims] + list(ds.data_vars)
        frame = pd.DataFrame({str(n): ds[n].to_numpy() for n in names})
    return idata, frame, attrs


def _encode(col: pd.Series) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Values netCDF can store, the missing-value mask (or None) and the kind of a column."""
    dtype = col.dtype
    mask = col.isna().to_numpy(dtype=bool)
    if isinstance(dtype, pd.DatetimeTZDtype):
        naive = col.dt.tz_convert("UTC").dt.tz_localize(None)
        return naive.to_numpy().view("int64"), None, "datetime_tz"
    if isinstance(dtype, np.dtype) and dtype.kind in "mM":
        return col.to_numpy().view("int64"), None, "ticks"
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return col.to_numpy().astype(np.int8), None, "bool"
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return col.to_numpy(), None, "numeric"
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if numpy_dtype is not None and numpy_dtype.kind in "iufb":  # Int64, Float64, boolean
        values = col.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))
        return (values.astype(np.int8) if numpy_dtype.kind == "b" else values), mask, "masked"
    text = np.array(["" if m else str(v) for v, m in zip(col.tolist(), mask, strict=True)])
    return text.astype(str) if len(text) else np.array([], dtype=str), mask, "text"


def _decode(values: np.ndarray, mask: np.ndarray | None, kind: str, dtype: str) -> pd.Series:
    """Inverse of :func:`_encode`."""
    if kind == "datetime_tz":
        tz_dtype = pd.api.types.pandas_dtype(dtype)
        naive = pd.Series(values.astype("int64").view(f"datetime64[{tz_dtype.unit}]"))
        return naive.dt.tz_localize("UTC").dt.tz_convert(tz_dtype.tz)
    if kind == "ticks":
        return pd.Series(values.astype("int64").view(np.dtype(dtype)))
    if kind == "bool":
        return pd.Series(values.astype(bool))
    if kind == "numeric":
        return pd.Series(values.astype(np.dtype(dtype)))
    if kind == "masked":
        out = pd.Series(values).astype(dtype)
        return out.mask(mask) if mask is not None else out
    obj = values.astype(object)
    if mask is not None:
        obj[mask] = None
    out = pd.Series(obj, dtype=object)
    return out if dtype == "object" else out.astype(dtype)


def table_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """A data frame as a Dataset on one ``row`` dimension, decodable by :func:`dataset_to_table`.

    Parameters
    ----------
    frame
        Any frame of numbers, times, booleans and text (other objects are kept as text).

    Returns
    -------
    xarray.Dataset
        One variable per column (``c0, c1, ...``, plus ``c<i>_missing`` masks), the
        index as ``index``; names, dtypes and kinds in the attributes.
    """
    columns = [_INDEX, *map(str, frame.columns)]
    index_name = frame.index.name
    flat = frame.reset_index(drop=True)
    series = [pd.Series(frame.index), *(flat.iloc[:, i] for i in range(flat.shape[1]))]
    data: dict[str, Any] = {}
    kinds, dtypes = [], []
    for i, col in enumerate(series):
        values, mask, kind = _encode(col)
        name = "index" if i == 0 else f"c{i - 1}"
        data[name] = (_ROW, values)
        if mask is not None and mask.any():
            data[f"{name}_missing"] = (_ROW, mask.astype(np.int8))
        kinds.append(kind)
        dtypes.append(str(col.dtype))
    attrs = {
        "columns": json.dumps(columns),
        "kinds": json.dumps(kinds),
        "dtypes": json.dumps(dtypes),
        "index_name": json.dumps(index_name),
    }
    return xr.Dataset(data, attrs=attrs)


def dataset_to_table(ds: xr.Dataset) -> pd.DataFrame:
    """The frame :func:`table_to_dataset` encoded.

    Parameters
    ----------
    ds
        A Dataset written by :func:`table_to_dataset` (possibly read back from a file).

    Returns
    -------
    pandas.DataFrame
        Equal to the frame encoded: columns, dtypes, missing values and index.
    """
    columns = json.loads(ds.attrs["columns"])
    kinds = json.loads(ds.attrs["kinds"])
    dtypes = json.loads(ds.attrs["dtypes"])
    cols = {}
    for i, (kind, dtype) in enumerate(zip(kinds, dtypes, strict=True)):
        name = "index" if i == 0 else f"c{i - 1}"
        values = np.asarray(ds[name].to_numpy())
        mask_name = f"{name}_missing"
        mask = ds[mask_name].to_numpy().astype(bool) if mask_name in ds else None
        cols[i] = _decode(values, mask, kind, dtype)
    index = pd.Index(cols.pop(0), name=json.loads(ds.attrs["index_name"]))
    return pd.DataFrame({columns[i]: s.set_axis(index) for i, s in cols.items()}, index=index)


def with_tables(idata: az.InferenceData, tables: dict[str, pd.DataFrame]) -> az.InferenceData:
    """A shallow copy of an InferenceData with tables added as groups, for saving.

    Parameters
    ----------
    idata
        The fit's InferenceData (not modified).
    tables
        Name to table; each becomes the group ``table_<name>`` (see :func:`table_to_dataset`).

    Returns
    -------
    arviz.InferenceData
        The groups of ``idata`` and the tables, with ``idata``'s attributes.
    """
    out = az.InferenceData(**{g: idata[g] for g in idata.groups()})
    if tables:
        out.add_groups({f"{TABLE_PREFIX}{k}": table_to_dataset(v) for k, v in tables.items()})
    out.attrs.update(idata.attrs)
    return out


def split_tables(idata: az.InferenceData) -> tuple[az.InferenceData, dict[str, pd.DataFrame]]:
    """Inverse of :func:`with_tables`: the InferenceData without its tables, and the tables.

    Parameters
    ----------
    idata
        An InferenceData with ``table_<name>`` groups (e.g. read back from a saved file).

    Returns
    -------
    (arviz.InferenceData, dict)
        The other groups (same attributes), and name to decoded table.
    """
    groups = idata.groups()
    tables = {
        g[len(TABLE_PREFIX) :]: dataset_to_table(idata[g])
        for g in groups
        if g.startswith(TABLE_PREFIX)
    }
    out = az.InferenceData(**{g: idata[g] for g in groups if not g.startswith(TABLE_PREFIX)})
    out.attrs.update(idata.attrs)
    return out, tables
