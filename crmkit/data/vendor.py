"""The shared core of the vendor importers (Salesforce, HubSpot, Pipedrive): frames to the store.

A vendor module only *parses*: it turns an export folder into crmkit frames (one per entity,
indexed by the line of the source file each row comes from), the file each entity comes
from, the lines it refused while reading and warnings. :func:`import_frames` does the rest,
the same for every vendor:

- each entity frame is validated against crmkit's schema (:mod:`crmkit.store.validation`),
  in :data:`crmkit.store.schema.LOAD_ORDER` order, so references to rows of the same import
  are known; problems name the file, its line and the vendor's field;
- a line refused while reading or validating is refused for every entity read from it
  (except stages, which sum up many lines);
- ``on_error="raise"``: any problem raises :class:`crmkit.errors.ValidationError` and
  nothing is written; ``"skip"``: the good rows are written and the rejected ones listed in
  a rejects CSV;
- the rows are written in one transaction: new keys inserted, known keys updated (only when
  a value changed), for any entity present (``exchange_rates`` as well as deals);
- deal history: the vendor's history rows not stored yet, plus the changes a re-import finds
  in a deal's tracked fields (:data:`crmkit.store.schema.DEAL_TRACKED_FIELDS`), recorded at
  the time of the import under ``changed_by``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crmkit.data.reading import FileFormatError, PathLike, error_line
from crmkit.errors import RowError, ValidationError
from crmkit.store.frames import to_records, value_to_text
from crmkit.store.schema import (
    CHOICE_ALIASES,
    DEAL_TRACKED_FIELDS,
    FORECAST_CATEGORIES,
    LOAD_ORDER,
    TABLES,
    entity,
)
from crmkit.store.settings import get_setting
from crmkit.store.validation import MAX_AMOUNT, MAX_DAYS_AHEAD, validate

#: Entities whose stored rows an import never changes: a stage's probability is configured
#: in crmkit once the stage exists (new stages are added).
KEPT_AS_STORED = ("stages",)
#: Entities usually derived from another entity's file (stages from the deals' stage names,
#: history from per-stage dates); a file's counts are those of its main entity.
DERIVED = ("stages", "deal_history")


@dataclass
class VendorImport:
    """What a vendor folder import did.

    Attributes
    ----------
    source
        The vendor: ``"Salesforce"``, ``"HubSpot"``, ``"Pipedrive"``.
    files
        Per file: rows ``imported`` (new), ``updated`` (by key), ``unchanged`` and
        ``rejected``.
    written
        Rows written per crmkit entity (new and updated).
    errors
        The problems of the rejected rows (file named in each reason).
    warnings
        Quirks noticed and fields not imported.
    rejects_path
        Where the rejected rows were written, if anywhere.

    """

    source: str = ""
    files: dict[str, dict[str, int]] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rejects_path: Path | None = None

    def summary(self) -> str:
        """Return one line per file (imported, updated, rejected), then problems and warnings."""
        lines = []
        for name, c in self.files.items():
            lines.append(
                f"{name}: {c.get('imported', 0):,} imported, {c.get('updated', 0):,} updated, "
                f"{c.get('unchanged', 0):,} unchanged or already stored, "
                f"{c.get('rejected', 0):,} rejected"
            )
        if self.errors:
            where = f" (see {self.rejects_path})" if self.rejects_path else ""
            lines.append(f"rejected rows{where}:")
            lines.extend(f"  {error_line(e)}" for e in self.errors[:10])
            if len(self.errors) > 10:
                lines.append(f"  ... and {len(self.errors) - 10} more problem(s)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def forecast_category(value: object) -> str | None:
    """Return crmkit's forecast category of a vendor's value, or None if it is not one.

    Parameters
    ----------
    value
        A vendor's spelling: ``"BestCase"``, ``"Best Case"``, ``"COMMIT"``, ``"Omit"``,
        ``"Not forecasted"``, ... (compared lowercase, without spaces, ``_`` or ``-``;
        :data:`crmkit.store.schema.CHOICE_ALIASES`).

    Returns
    -------
    str or None

    """
    if not isinstance(value, str):
        return None
    folded = "".join(ch for ch in value.lower() if ch not in " _-")
    codes = {c.replace("_", ""): c for c in FORECAST_CATEGORIES}
    codes.update(CHOICE_ALIASES["forecast_category"])
    return codes.get(folded)


def is_given(value: object) -> bool:
    """Tell whether a cell holds a value (not None, NaN or empty text).

    Parameters
    ----------
    value
        A cell.

    Returns
    -------
    bool

    """
    return value is not None and value == value and str(value).strip() != ""


# ---------------------------------------------------------------------- importing
def import_frames(
    store,
    frames: dict[str, pd.DataFrame],
    files: dict[str, str],
    errors: list[RowError],
    warnings: list[str],
    *,
    source: str,
    folder: PathLike,
    back: Mapping[str, Mapping[str, str]] | None = None,
    renames: Mapping[str, str] | None = None,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "import",
    allow_future: bool = False,
) -> VendorImport:
    """Validate a vendor's crmkit frames and write them in one transaction (insert or update).

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    frames
        ``{entity: frame}`` with crmkit's column names, among ``accounts``, ``contacts``,
        ``stages``, ``deals``, ``deal_history`` (rows ``deal_id``, ``changed_at``, ``field``,
        ``old_value``, ``new_value``) or any other importable entity (``exchange_rates``);
        each frame indexed by the line of its source file.
    files
        ``{entity: source file name}``.
    errors
        Lines refused while parsing, each reason starting ``"<file name>:"``; the list is
        extended with the validation problems.
    warnings
        Quirks noticed while parsing; kept in the result.
    source
        The vendor's name, for messages (``"HubSpot"``).
    folder
        The export folder, for messages.
    back
        ``{entity: {crmkit column: vendor field}}``: problems name the vendor's field.
    renames
        ``{old stage: new stage}``, applied to deals, stages and the stage history.
    on_error
        ``"raise"``: any bad row raises :class:`ValidationError` and nothing is written;
        ``"skip"``: the good rows are written and the rejected ones go to ``rejects_path``.
    rejects_path
        CSV of the rejected rows with file, row, field, reason and value.
    changed_by
        Name recorded in the deal history of the import's rows.
    allow_future
        Accept dates more than a year ahead.

    Returns
    -------
    VendorImport

    Raises
    ------
    ValidationError
        Listing every bad row (file, line, vendor field, reason), nothing written.

    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    back = back or {}
    if renames:
        _rename_stages(frames, renames)
    order = [n for n in LOAD_ORDER if n in frames] + [n for n in frames if n not in LOAD_ORDER]
    file_entities: dict[str, list[str]] = {}
    for name in order:
        file_entities.setdefault(files[name], []).append(name)
    bad_lines: dict[str, set[int]] = {}  # file -> lines refused
    for e in errors:
        fname = next((f for f in file_entities if e.reason.startswith(f + ":")), None)
        if fname is not None and e.row is not None:
            bad_lines.setdefault(fname, set()).add(e.row)
    stored: dict[str, set] = {
        n: store.known_keys(n)
        for n in order
        if not entity(n).column(entity(n).key[0]).autoincrement
    }
    pending: dict[str, set] = {}

    def known(ref: str) -> set:
        if ref not in stored:
            stored[ref] = store.known_keys(ref)
        return stored[ref] | pending.get(ref, set())

    reporting = str(get_setting(store, "reporting_currency"))
    clean: dict[str, pd.DataFrame] = {}
    seen: set[str] = set()  # files with an entity validated (stages aside)
    result = VendorImport(source=source, warnings=warnings)
    for name in order:
        df = frames[name]
        spec = entity(name)
        key = list(spec.key)
        if name in KEPT_AS_STORED:
            df = df.loc[[k not in stored[name] for k in _keys(df, key)]]

        def known_here(ref: str, _name: str = name) -> set:
            return set() if ref == _name else known(ref)

        rows = np.asarray(df.index, dtype="int64")
        res = validate(
            name,
            df.reset_index(drop=True),
            known_keys=known_here,
            row_numbers=rows,
            max_amount=MAX_AMOUNT,
            max_days_ahead=None if allow_future else MAX_DAYS_AHEAD,
            reporting_currency=reporting if name == "deals" else None,
        )
        fname = files[name]
        names = back.get(name, {})
        col_errors = [e for e in res.errors if e.row is None]
        if col_errors:
            raise ValidationError(fname, [_named(e, fname, names) for e in col_errors])
        refused = bad_lines.setdefault(fname, set())
        derived_only = name in KEPT_AS_STORED
        # a line already refused for an entity read before from the same file (a deal's line
        # for the history read from it) is not reported again for this one
        earlier = set(refused) if fname in seen and not derived_only else set()
        errors.extend(_named(e, fname, names) for e in res.errors if e.row not in earlier)
        bad = set(res.bad_rows) | (set() if derived_only else refused)
        kept = rows[~np.isin(rows, list(res.bad_rows))]
        good = res.clean.loc[~np.isin(kept, list(bad))].reset_index(drop=True)
        clean[name] = good
        if not derived_only:
            refused |= set(res.bad_rows)
            seen.add(fname)
        if name in stored:
            pending[name] = set(_keys(good, key))
    for fname, ents in file_entities.items():
        if ents != ["stages"]:
            result.files[fname] = {"imported": 0, "updated": 0, "unchanged": 0, "rejected": 0}
            result.files[fname]["rejected"] = len(bad_lines.get(fname, set()))
    unique = {(e.row, e.field, e.reason): e for e in errors}  # one per history line and field
    result.errors = sorted(unique.values(), key=lambda e: (e.reason.split(":")[0], e.row or 0))
    if result.errors and on_error == "raise":
        raise ValidationError(f"{Path(folder).name} ({source} export)", result.errors)
    if result.errors and rejects_path is not None:
        result.rejects_path = Path(rejects_path)
        _write_rejects(result.errors, result.rejects_path)
    result.written, counts = _write(store, clean, stored, changed_by)
    for fname, ents in file_entities.items():
        main = next((n for n in ents if n not in DERIVED), ents[0])
        if fname in result.files and main in counts:
            result.files[fname].update(counts[main])
    return result


def _rename_stages(frames: dict[str, pd.DataFrame], renames: Mapping[str, str]) -> None:
    """Rename stages in the deals, the stages and the stage history (in place)."""
    renames = dict(renames)
    if "deals" in frames and "stage" in frames["deals"].columns:
        frames["deals"]["stage"] = frames["deals"]["stage"].replace(renames)
    if "stages" in frames:
        frames["stages"]["stage"] = frames["stages"]["stage"].replace(renames)
        frames["stages"] = frames["stages"].drop_duplicates(["pipeline", "stage"])
    if "deal_history" in frames:
        h = frames["deal_history"]
        st = h["field"] == "stage"
        for c in ("old_value", "new_value"):
            h.loc[st, c] = h.loc[st, c].replace(renames)


def _keys(df: pd.DataFrame, key: list[str]) -> list:
    """The key of each row: the value for a one-column key, else a tuple."""
    if len(key) == 1:
        return list(df[key[0]])
    return [tuple(r) for r in df[key].itertuples(index=False, name=None)]


def _text_key(k: object) -> tuple:
    """A key compared as text, so a stored date and a parsed timestamp are the same key."""
    return tuple(value_to_text(v) for v in (k if isinstance(k, tuple) else (k,)))


def _write_rejects(errors: list[RowError], path: Path) -> None:
    """Write the rejected rows' problems as CSV (file, row, field, reason, value)."""
    pd.DataFrame(
        [
            {
                "file": e.reason.split(":")[0],
                "row": e.row,
                "field": e.field,
                "reason": e.reason.split(": ", 1)[-1],
                "value": e.value,
            }
            for e in errors
        ]
    ).to_csv(path, index=False)


def _named(e: RowError, fname: str, back: Mapping[str, str]) -> RowError:
    """Name the file and the vendor's field of a validation problem."""
    return RowError(e.row, back.get(e.field or "", e.field), f"{fname}: {e.reason}", e.value)


def _deal_history(
    store, clean: Mapping[str, pd.DataFrame], changed_by: str, now: dt.datetime
) -> tuple[pd.DataFrame, list[dict], int]:
    """New vendor history rows, the changes a re-import finds, and the history rows given."""
    deals = clean.get("deals")
    before = pd.DataFrame()
    old_history: set = set()
    if deals is not None and len(deals):
        ids = list(deals["deal_id"])
        before = store.read("deals", where={"deal_id": ids}).set_index("deal_id")
        h = store.read(
            "deal_history", where={"deal_id": ids}, columns=["deal_id", "changed_at", "field"]
        )
        old_history = set(
            zip(h["deal_id"], pd.to_datetime(h["changed_at"]), h["field"], strict=True)
        )
    history = clean.get("deal_history")
    if history is None or not len(history):  # none given, or every row refused
        history = pd.DataFrame(columns=["deal_id", "changed_at", "field"])
    history = history.assign(changed_by=changed_by)
    new_hist = history.loc[  # .loc: an empty mask selects no rows (not no columns)
        [
            (d, pd.Timestamp(t), f) not in old_history
            for d, t, f in zip(
                history["deal_id"], history["changed_at"], history["field"], strict=True
            )
        ]
    ]
    covered = set(zip(new_hist["deal_id"], new_hist["field"], strict=True))
    extra: list[dict] = []
    if deals is not None:
        given = set(zip(history["deal_id"], history["field"], strict=True))
        for rec in deals.to_dict("records"):
            did = rec["deal_id"]
            for f in DEAL_TRACKED_FIELDS:
                new = value_to_text(rec.get(f))
                if did in before.index:
                    old = value_to_text(before.at[did, f])
                    if old != new and (did, f) not in covered:
                        extra.append(_hist(did, now, changed_by, f, old, new))
                elif f == "status":
                    extra.append(_hist(did, rec["created_at"], changed_by, f, None, "open"))
                    if new != "open" and rec.get("closed_at") is not None:
                        extra.append(_hist(did, rec["closed_at"], changed_by, f, "open", new))
                elif new is not None and (did, f) not in given:  # first value at creation
                    extra.append(_hist(did, rec["created_at"], changed_by, f, None, new))
    return new_hist, extra, len(history)


def _write(
    store, clean: Mapping[str, pd.DataFrame], stored: Mapping[str, set], changed_by: str
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Insert new rows, update known ones by key, and add new history rows, in one transaction."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    new_hist, extra, n_history = _deal_history(store, clean, changed_by, now)
    written: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    with store.transaction() as conn:
        for name, df in clean.items():
            if name == "deal_history":
                recs = to_records(
                    entity("deal_history"), new_hist.drop(columns=["history_id"], errors="ignore")
                )
                recs += extra
                if recs:
                    conn.execute(sa.insert(TABLES["deal_history"]), recs)
                written[name] = len(recs)
                counts[name] = {"imported": len(new_hist), "unchanged": n_history - len(new_hist)}
                continue
            if not len(df):
                continue
            written[name], counts[name] = _upsert(conn, store, name, df, stored, now)
        if "deal_history" not in clean and "deals" in clean:
            if extra:
                conn.execute(sa.insert(TABLES["deal_history"]), extra)
            written["deal_history"] = len(extra)
    return written, counts


def _upsert(
    conn, store, name: str, df: pd.DataFrame, stored: Mapping[str, set], now: dt.datetime
) -> tuple[int, dict[str, int]]:
    """Insert the rows of new keys and update the changed rows of known keys."""
    spec = entity(name)
    table = TABLES[name]
    key = list(spec.key)
    if spec.column(key[0]).autoincrement:
        ins = to_records(spec, df.drop(columns=key, errors="ignore"))
        if ins:
            conn.execute(sa.insert(table), ins)
        return len(ins), {"imported": len(ins), "updated": 0, "unchanged": 0}
    known = {_text_key(k) for k in stored.get(name, set())}
    old = pd.Series([_text_key(k) in known for k in _keys(df, key)], index=df.index, dtype=bool)
    ins = to_records(spec, df.loc[~old])
    if spec.versioned:
        for r in ins:
            r["updated_at"] = now
    if ins:
        conn.execute(sa.insert(table), ins)
    cols = [c for c in spec.column_names if c not in key and c in df.columns]
    upd = _changed(store, spec, to_records(spec, df.loc[old]), cols)
    if upd:
        values: dict[str, object] = {c: sa.bindparam(f"v_{c}") for c in cols}
        if spec.versioned:
            values["row_version"] = table.c.row_version + 1
            values["updated_at"] = now
        cond = [table.c[k] == sa.bindparam(f"k_{k}") for k in key]
        params = [{**{f"v_{c}": r[c] for c in cols}, **{f"k_{k}": r[k] for k in key}} for r in upd]
        conn.execute(sa.update(table).where(*cond).values(**values), params)
    c = {"imported": len(ins), "updated": len(upd), "unchanged": int(old.sum()) - len(upd)}
    return len(ins) + len(upd), c


def _changed(store, spec, recs: list[dict], cols: list[str]) -> list[dict]:
    """The records whose columns differ from the stored row of the same key."""
    if not recs:
        return []
    key = list(spec.key)
    stored = store.read(spec.name, where={key[0]: sorted({r[key[0]] for r in recs}, key=str)})
    stored_recs = to_records(spec, stored[[*key, *cols]])
    have = {_text_key(tuple(r[k] for k in key)): r for r in stored_recs}
    out = []
    for r in recs:
        s = have.get(_text_key(tuple(r[k] for k in key)))
        if s is None or any(value_to_text(s[c]) != value_to_text(r[c]) for c in cols):
            out.append(r)
    return out


def _hist(deal_id: str, at: object, by: str, f: str, old: str | None, new: str | None) -> dict:
    """One deal_history record."""
    at = pd.Timestamp(at).to_pydatetime() if at is not None else None
    return {
        "deal_id": deal_id,
        "changed_at": at,
        "changed_by": by,
        "field": f,
        "old_value": old,
        "new_value": new,
    }


# ---------------------------------------------------------------------- --mapping files
def read_mapping_json(path: PathLike, shape: str) -> tuple[dict, str]:
    """Read a vendor's ``--mapping`` JSON object; return it and the name its errors start with.

    Parameters
    ----------
    path
        The JSON file.
    shape
        What the file must be, for the error message (``'an object like {...}'``).

    Returns
    -------
    (dict, str)
        The object, and ``"mapping file <path>"``.

    Raises
    ------
    FileFormatError
        In one line, for a missing or unreadable file or one that is not a JSON object.
    """
    p = Path(path)
    where = f"mapping file {p}"
    try:
        data = json.loads(p.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise FileFormatError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{where}: is not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise FileFormatError(f"{where}: must be {shape}")
    return data, where


def mapped_fields(
    where: str, name: str, fields: Mapping[str, str | None], table: str
) -> dict[str, str | None]:
    """Check that a file's mapping names fields of ``table`` (or None); return it as a dict.

    Raises
    ------
    FileFormatError
        In one line, naming the vendor field, the crmkit name and ``table``'s fields.
    """
    allowed = entity(table).column_names
    for src, dst in fields.items():
        if dst is not None and dst not in allowed:
            raise FileFormatError(
                f"{where}: {name}.{src} maps to {dst!r}, not a field of {table} "
                f"({', '.join(allowed)})"
            )
    return dict(fields)


__all__ = [
    "DERIVED",
    "KEPT_AS_STORED",
    "VendorImport",
    "forecast_category",
    "import_frames",
    "is_given",
    "mapped_fields",
    "read_mapping_json",
]
