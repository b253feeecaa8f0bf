"""Export an entity to CSV or Parquet; CSV text cells a spreadsheet would run are escaped.

A CSV text cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
formula to a spreadsheet (OWASP CSV injection); it is written with a leading ``'`` unless
the caller asks for the raw text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crmkit.data.reading import PARQUET_SUFFIXES, FileFormatError, PathLike
from crmkit.errors import NotFoundError
from crmkit.store.schema import ENTITIES

#: A text cell starting with one of these is a formula to a spreadsheet (OWASP CSV injection);
#: CSV export prefixes such cells with :data:`FORMULA_ESCAPE`.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMULA_ESCAPE = "'"


def export(store, entity: str, path: PathLike, *, raw: bool = False) -> int:
    """Write every row of an entity to CSV or Parquet, chosen by the file suffix.

    CSV text cells beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    are read by spreadsheets as formulas (CSV injection); they are written with a leading
    ``'`` (the OWASP recommendation) unless ``raw``. Numbers, e.g. negative amounts, are
    not text cells and are written as they are; Parquet is written as stored.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    entity
        Entity name.
    path
        A ``.csv`` or ``.parquet`` file; it is overwritten.
    raw
        Write CSV text cells exactly as stored (for files read back by programs, not
        opened in a spreadsheet).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    FileFormatError
        For another suffix.
    NotFoundError
        For an unknown entity.

    """
    if entity not in ENTITIES:
        raise NotFoundError(f"unknown entity {entity!r}; entities: {', '.join(sorted(ENTITIES))}")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", *PARQUET_SUFFIXES):
        raise FileFormatError(f"{p}: export writes .csv or .parquet files, not {suffix!r}")
    spec = ENTITIES[entity]
    df = store.read(entity)
    df = df[[c for c in spec.column_names if c in df.columns]]
    if suffix == ".csv":
        out = df.copy()
        for c in spec.columns:
            if c.kind == "date":
                out[c.name] = out[c.name].dt.strftime("%Y-%m-%d")
            elif c.kind == "datetime":
                out[c.name] = out[c.name].map(_datetime_text, na_action="ignore")
            elif c.kind in ("str", "text", "json") and not raw:
                out[c.name] = out[c.name].map(_formula_safe, na_action="ignore")
        # CRLF line ends (RFC 4180): the csv writer then quotes a text holding a lone
        # carriage return, which it writes bare with "\n" line ends (a broken record)
        out.to_csv(p, index=False, encoding="utf-8", lineterminator="\r\n")
    else:
        df.to_parquet(p, index=False)
    return len(df)


def _formula_safe(v: object) -> object:
    """Prefix text a spreadsheet would run as a formula with ``'``."""
    if isinstance(v, str) and v.startswith(FORMULA_PREFIXES):
        return FORMULA_ESCAPE + v
    return v


def _datetime_text(ts: pd.Timestamp) -> str:
    """Format a timestamp as ISO text, without the time when it is midnight."""
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat(sep=" ")
