"""Saving a fit to one netCDF file: its InferenceData, the data it was fitted on, and attributes.

The data frame goes into the InferenceData's ``constant_data`` group, one variable per column
along one dimension, in column order; text columns are stored as fixed-width unicode. The
attributes (strings: JSON for anything structured) go into the file's global attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["load_idata", "save_idata"]

FRAME_GROUP = "constant_data"


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
