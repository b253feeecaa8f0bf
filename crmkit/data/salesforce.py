"""Import a Salesforce data export folder (Data Export or Data Loader CSVs) into the store.

The folder holds one CSV per object, named by the object's API name, with Salesforce's field
API names as headers ("Object Reference for the Salesforce Platform"):

- ``Account.csv`` → accounts; ``Contact.csv`` → contacts (optional);
- ``User.csv`` → owner names (``Name``; inactive users are kept by name, with a warning);
- ``Opportunity.csv`` → deals (status from ``IsClosed``/``IsWon``; ``CloseDate`` is the
  expected close date, and the close date of closed deals; ``CurrencyIsoCode`` is stored as
  given, unconverted), and the stages with their probability (``Probability`` in percent);
- ``OpportunityHistory.csv`` → the deal history (stage, amount, close date and forecast
  category at each change, at its ``CreatedDate``), so backtests rebuild past pipelines;
- ``RecordType.csv`` (optional) names the pipelines of ``Opportunity.RecordTypeId``.

The whole folder is one transaction. A later export of the same org re-imported updates
rows by their Salesforce ``Id`` (15- and 18-character Ids are the same record) and records
what changed as deal history; history rows already stored are not written again.
Custom ``__c`` fields have no place in crmkit's schema and are reported as not imported.
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

from crmkit.data.reading import LINE, FileFormatError, PathLike, error_line, read_table_with_errors
from crmkit.errors import RowError, ValidationError
from crmkit.store.frames import to_records, value_to_text
from crmkit.store.schema import (
    CHOICE_ALIASES,
    DEAL_TRACKED_FIELDS,
    FORECAST_CATEGORIES,
    TABLES,
    entity,
)
from crmkit.store.validation import MAX_AMOUNT, MAX_DAYS_AHEAD, validate

#: Salesforce field → crmkit field, per object; a JSON mapping file overrides entries.
SALESFORCE_FIELDS: dict[str, dict[str, str | None]] = {
    "Account": {
        "Id": "account_id",
        "Name": "name",
        "Type": "segment",
        "Industry": "industry",
        "BillingCountry": "country",
        "OwnerId": "owner",
        "CreatedDate": "created_at",
    },
    "Contact": {
        "Id": "contact_id",
        "AccountId": "account_id",
        "Name": "name",
        "Email": "email",
        "Title": "role",
    },
    "Opportunity": {
        "Id": "deal_id",
        "AccountId": "account_id",
        "Name": "name",
        "OwnerId": "owner",
        "RecordTypeId": "pipeline",
        "StageName": "stage",
        "Amount": "amount",
        "CurrencyIsoCode": "currency",
        "CreatedDate": "created_at",
        "CloseDate": "expected_close_date",
        "ForecastCategoryName": "forecast_category",
        "LeadSource": "source",
    },
    "OpportunityHistory": {
        "OpportunityId": "deal_id",
        "CreatedDate": "changed_at",
        "StageName": "stage",
        "Amount": "amount",
        "CloseDate": "expected_close_date",
        "ForecastCategory": "forecast_category",
    },
}
#: Salesforce fields read by the importer itself (not stored as such).
HELPER_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": (),
    "Contact": ("FirstName", "LastName"),
    "Opportunity": ("IsClosed", "IsWon", "Probability"),
    "OpportunityHistory": ("Id", "Probability"),
}
#: Salesforce fields holding record Ids (normalised to 18 characters).
ID_FIELDS = ("Id", "AccountId", "OwnerId", "OpportunityId", "RecordTypeId", "CampaignId")
#: Pipeline of deals when the export has no record types.
DEFAULT_PIPELINE = "salesforce"
#: Objects read, in the order they load.
OBJECTS = ("Account", "Contact", "Opportunity", "OpportunityHistory")
_ENTITY = {
    "Account": "accounts",
    "Contact": "contacts",
    "Opportunity": "deals",
    "OpportunityHistory": "deal_history",
}
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


@dataclass
class SalesforceImport:
    """What a Salesforce folder import did.

    Attributes
    ----------
    files
        Per file: rows ``imported`` (new), ``updated`` (by Id) and ``rejected``.
    written
        Rows written per crmkit entity (new and updated).
    errors
        The problems of the rejected rows (file named in each reason).
    warnings
        Quirks noticed and fields not imported.
    rejects_path
        Where the rejected rows were written, if anywhere.

    """

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


# ---------------------------------------------------------------------- mapping
def load_salesforce_mapping(path: PathLike) -> dict[str, dict[str, str | None]]:
    """Read field mapping overrides: ``{"Opportunity": {"Pipeline__c": "pipeline"}, ...}``.

    Parameters
    ----------
    path
        A JSON file: an object of Salesforce object name to ``{field: crmkit field or null}``
        (``null`` does not import the field).

    Returns
    -------
    dict
        ``{object: {field: crmkit field or None}}``.

    Raises
    ------
    FileFormatError
        In one line, for a missing or malformed file, an unknown object or crmkit field.

    """
    p = Path(path)
    where = f"mapping file {p}"
    try:
        data = json.loads(p.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise FileFormatError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{where}: is not a readable JSON file ({exc})") from None
    shape = 'an object like {"Opportunity": {"Pipeline__c": "pipeline"}}'
    if not isinstance(data, dict):
        raise FileFormatError(f"{where}: must be {shape}")
    out: dict[str, dict[str, str | None]] = {}
    for obj, fields in data.items():
        if obj == "stages" and isinstance(fields, dict):  # {old stage: new stage}
            out[obj] = {str(k): str(v) for k, v in fields.items()}
            continue
        if obj not in SALESFORCE_FIELDS:
            raise FileFormatError(
                f"{where}: unknown object {obj!r}; mappable: {', '.join(SALESFORCE_FIELDS)}"
            )
        if not isinstance(fields, dict):
            raise FileFormatError(f"{where}: must be {shape}; {obj!r} maps to {fields!r}")
        allowed = entity(_ENTITY[obj]).column_names
        for src, dst in fields.items():
            if dst is not None and dst not in allowed:
                raise FileFormatError(
                    f"{where}: {obj}.{src} maps to {dst!r}, not a field of {_ENTITY[obj]} "
                    f"({', '.join(allowed)})"
                )
        out[obj] = dict(fields)
    return out


def id18(value: str) -> str:
    """Return the 18-character form of a 15-character Salesforce Id (18-character ones as given).

    Parameters
    ----------
    value
        A record Id.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``value`` is neither 15 nor 18 letters and digits.

    """
    if len(value) == 18 and value.isalnum():
        return value
    if len(value) != 15 or not value.isalnum():
        raise ValueError("not a Salesforce Id (15 or 18 letters and digits)")
    suffix = ""
    for i in range(3):
        chunk = value[i * 5 : i * 5 + 5]
        bits = sum(1 << j for j, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _ID_CHARS[bits]
    return value + suffix


# ---------------------------------------------------------------------- reading
@dataclass
class _File:
    """One object's CSV as read: rows by line, and the rows refused on the way."""

    name: str
    raw: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)

    def bad(self, line: int, sf_field: str | None, reason: str, value: object = None) -> None:
        """Record a problem of one line of this file."""
        self.errors.append(RowError(line, sf_field, f"{self.name}: {reason}", value))


def _read(folder: Path, obj: str, required: bool) -> _File | None:
    """Read ``<obj>.csv`` with its Ids normalised to 18 characters."""
    p = folder / f"{obj}.csv"
    if not p.exists():
        if required:
            raise FileFormatError(
                f"{folder}: no {obj}.csv; a Salesforce export names files by object"
            )
        return None
    df, shape = read_table_with_errors(p)
    f = _File(p.name, df)
    f.errors.extend(RowError(e.row, e.field, f"{p.name}: {e.reason}", e.value) for e in shape)
    for col in ID_FIELDS:
        if col not in df.columns:
            continue
        vals = df[col]
        fixed = []
        for line, v in zip(df.index, vals, strict=True):
            if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
                fixed.append(None)
                continue
            try:
                fixed.append(id18(str(v)))
            except ValueError as exc:
                f.bad(int(line), col, str(exc), v)
                fixed.append(None)
        df[col] = pd.Series(fixed, index=df.index, dtype=object)
    return f


def _bools(f: _File, col: str) -> pd.Series:
    """Read a ``true``/``false`` field; other values are errors of their line."""
    out = pd.Series(False, index=f.raw.index)
    if col not in f.raw.columns:
        return out
    for line, v in f.raw[col].items():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        b = _BOOLS.get(str(v).strip().lower())
        if b is None:
            f.bad(int(line), col, "not true or false", v)
        else:
            out[line] = b
    return out


def _mapped(f: _File, obj: str, fields: Mapping[str, str | None]) -> tuple[pd.DataFrame, list[str]]:
    """Rename the mapped fields to crmkit's names; return the frame and the fields left out."""
    cols = {src: dst for src, dst in fields.items() if dst is not None and src in f.raw.columns}
    df = f.raw[list(cols)].rename(columns=cols)
    df.index.name = LINE
    used = set(cols) | set(HELPER_FIELDS.get(obj, ())) | {s for s, d in fields.items() if d is None}
    left = [c for c in f.raw.columns if c not in used]
    return df, left


def salesforce_frames(
    folder: PathLike, mapping: Mapping[str, Mapping[str, str | None]] | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], list[RowError], list[str]]:
    """Map a Salesforce export folder to crmkit frames.

    Parameters
    ----------
    folder
        The export folder (``Account.csv``, ``User.csv``, ``Opportunity.csv``, ...).
    mapping
        Overrides of :data:`SALESFORCE_FIELDS`, per object.

    Returns
    -------
    frames : dict
        ``{"accounts", "contacts", "stages", "deals", "deal_history"}`` (those present),
        indexed by the line of the file each row comes from.
    sources : dict
        ``{entity: frame with column "file"}``: which file each row comes from.
    errors : list of RowError
        Lines refused while reading (bad Ids, booleans, unknown Ids).
    warnings : list of str

    """
    d = Path(folder)
    if not d.is_dir():
        raise FileFormatError(f"{d}: not a folder; pass the Salesforce export folder")
    fields = {obj: dict(m) for obj, m in SALESFORCE_FIELDS.items()}
    for obj, m in (mapping or {}).items():
        fields[obj].update(m)
    warnings: list[str] = []
    errors: list[RowError] = []
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}

    users = _read(d, "User", required=False)
    owner_names: dict[str, str] = {}
    if users is not None:
        errors.extend(users.errors)
        active = _bools(users, "IsActive") if "IsActive" in users.raw else None
        for line, uid in users.raw.get("Id", pd.Series(dtype=object)).items():
            if uid is not None:
                owner_names[uid] = users.raw.at[line, "Name"]
        if active is not None:
            gone = sorted(users.raw.loc[~active & users.raw["Id"].notna(), "Name"].dropna())
            if gone:
                warnings.append(
                    f"User.csv: {len(gone)} inactive user(s) kept as owners by name: "
                    + ", ".join(gone)
                )
    else:
        warnings.append("no User.csv: owners are stored as their Salesforce user Ids")

    def owners(f: _File, df: pd.DataFrame, col: str = "owner") -> None:
        if col not in df.columns or users is None:
            return
        unknown = df[col].notna() & ~df[col].isin(list(owner_names))
        for line, v in df.loc[unknown, col].items():
            f.bad(int(line), "OwnerId", "no such user in User.csv", v)
        df[col] = df[col].map(lambda v: owner_names.get(v, v) if isinstance(v, str) else v)

    record_types: dict[str, str] = {}
    rt = _read(d, "RecordType", required=False)
    if rt is not None and {"Id", "Name"} <= set(rt.raw.columns):
        record_types = dict(zip(rt.raw["Id"], rt.raw["Name"], strict=True))

    for obj in OBJECTS:
        f = _read(d, obj, required=obj == "Opportunity")
        if f is None:
            continue
        df, left = _mapped(f, obj, fields[obj])
        custom = [c for c in left if c.endswith("__c")]
        other = [c for c in left if not c.endswith("__c")]
        if custom:
            warnings.append(
                f"{f.name}: custom field(s) {', '.join(custom)} not imported (crmkit's schema "
                "has no place for them; map one to a crmkit field with --mapping)"
            )
        if other:
            warnings.append(f"{f.name}: field(s) {', '.join(other)} not imported")
        if obj == "Account":
            owners(f, df)
        elif obj == "Contact":
            if "name" not in df.columns and {"FirstName", "LastName"} & set(f.raw.columns):
                first = f.raw.get("FirstName", pd.Series("", index=f.raw.index)).fillna("")
                last = f.raw.get("LastName", pd.Series("", index=f.raw.index)).fillna("")
                df["name"] = (first + " " + last).str.strip().replace("", None)
        elif obj == "Opportunity":
            owners(f, df)
            closed, won = _bools(f, "IsClosed"), _bools(f, "IsWon")
            df["status"] = np.where(closed, np.where(won, "won", "lost"), "open")
            if "expected_close_date" in df.columns:
                df["closed_at"] = df["expected_close_date"].where(closed, None)
            if "pipeline" in df.columns:
                df["pipeline"] = df["pipeline"].map(
                    lambda v: record_types.get(v, v) if isinstance(v, str) else DEFAULT_PIPELINE
                )
            else:
                df["pipeline"] = DEFAULT_PIPELINE
            if "currency" not in df.columns:
                warnings.append(
                    "Opportunity.csv: no CurrencyIsoCode (a single-currency org); amounts stored "
                    "in crmkit's default currency USD"
                )
            no_amount = int(df["amount"].isna().sum()) if "amount" in df.columns else len(df)
            if no_amount:
                warnings.append(f"Opportunity.csv: {no_amount} deal(s) without Amount")
            frames["stages"] = _stages(df, f)
            files["stages"] = f.name
        elif obj == "OpportunityHistory":
            df = _history(df, f)
        errors.extend(f.errors)
        frames[_ENTITY[obj]] = df
        files[_ENTITY[obj]] = f.name
    read = {f"{o}.csv" for o in (*OBJECTS, "User", "RecordType")}
    unread = sorted(p.name for p in d.glob("*.csv") if p.name not in read)
    if unread:
        warnings.append(f"file(s) {', '.join(unread)} not imported by the Salesforce importer")
    if "deals" in frames and "deal_history" in frames:
        current = set(frames["stages"]["stage"])
        past = set(frames["deal_history"].query("field == 'stage'")["new_value"].dropna())
        gone = sorted(past - current)
        if gone:
            warnings.append(
                "OpportunityHistory.csv: stage(s) "
                + ", ".join(map(repr, gone))
                + " are on no current opportunity (renamed or retired); rename them with "
                '--mapping {"stages": {"old": "new"}} or they stay as history only'
            )
    return frames, files, errors, warnings


def _stages(deals: pd.DataFrame, f: _File) -> pd.DataFrame:
    """Stages per pipeline with their probability (the most common ``Probability``)."""
    prob = pd.to_numeric(f.raw.get("Probability"), errors="coerce") / 100.0
    t = pd.DataFrame({"pipeline": deals["pipeline"], "stage": deals["stage"], "p": prob})
    t = t.dropna(subset=["stage"])
    rows = []
    for (pipe, stage), g in t.groupby(["pipeline", "stage"], sort=False):
        p = g["p"].dropna()
        rows.append((g.index[0], pipe, stage, float(p.mode().iloc[0]) if len(p) else 0.0))
    out = pd.DataFrame(rows, columns=[LINE, "pipeline", "stage", "probability"])
    out = out.sort_values(["pipeline", "probability", LINE], kind="stable")
    out["stage_order"] = out.groupby("pipeline").cumcount() + 1
    return out.set_index(LINE)[["pipeline", "stage", "stage_order", "probability"]]


def _history(h: pd.DataFrame, f: _File) -> pd.DataFrame:
    """Turn OpportunityHistory snapshots into deal_history change rows (one per changed field)."""
    h = h.copy()
    h["_at"] = pd.to_datetime(h.get("changed_at"), errors="coerce", utc=True).dt.tz_localize(None)
    for line in h.index[h["_at"].isna()]:
        f.bad(int(line), "CreatedDate", "not an ISO date and time", h.at[line, "changed_at"])
    typed = {
        "amount": pd.to_numeric(h.get("amount"), errors="coerce"),
        "expected_close_date": pd.to_datetime(h.get("expected_close_date"), errors="coerce"),
    }
    rows = []
    h = h[h["_at"].notna() & h["deal_id"].notna()].sort_values(["deal_id", "_at"], kind="stable")
    for deal_id, g in h.groupby("deal_id", sort=False):
        prev: dict[str, str | None] = {}
        for line in g.index:
            for fld in ("stage", "amount", "expected_close_date", "forecast_category"):
                if fld not in g.columns:
                    continue
                raw = g.at[line, fld]
                v = typed[fld][line] if fld in typed else raw
                if fld == "forecast_category" and isinstance(raw, str):
                    v = _category(raw)
                text = value_to_text(v)
                if (fld in typed or fld == "forecast_category") and text is None and _given(raw):
                    f.bad(int(line), fld, "not a valid value", raw)
                    continue
                if fld in prev and prev[fld] == text:
                    continue
                if fld not in prev and text is None:
                    continue
                rows.append((line, deal_id, g.at[line, "_at"], fld, prev.get(fld), text))
                prev[fld] = text
    out = pd.DataFrame(
        rows, columns=[LINE, "deal_id", "changed_at", "field", "old_value", "new_value"]
    )
    return out.set_index(LINE)


def _given(v: object) -> bool:
    """Tell whether a cell holds a value (not None, NaN or empty)."""
    return v is not None and v == v and str(v).strip() != ""


def _category(v: str) -> str | None:
    """Return the crmkit forecast category of a Salesforce value ("BestCase"), else None."""
    folded = "".join(ch for ch in v.lower() if ch not in " _-")
    codes = {c.replace("_", ""): c for c in FORECAST_CATEGORIES}
    codes.update(CHOICE_ALIASES["forecast_category"])
    return codes.get(folded)


# ---------------------------------------------------------------------- importing
def import_salesforce(
    store,
    folder: PathLike,
    *,
    mapping: Mapping[str, Mapping[str, str | None]] | None = None,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "salesforce import",
    allow_future: bool = False,
) -> SalesforceImport:
    """Import a Salesforce export folder in one transaction; update rows already imported.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    folder
        The export folder; see the module docstring for the files read.
    mapping
        Field mapping overrides (:func:`load_salesforce_mapping`); an extra key ``"stages"``
        ``{old stage: new stage}`` renames stages (e.g. a renamed stage in old history).
    on_error
        ``"raise"``: any bad row raises :class:`ValidationError` and nothing is written;
        ``"skip"``: the good rows are written and the rejected ones go to ``rejects_path``.
    rejects_path
        CSV of the rejected rows with file, line and reasons.
    changed_by
        Name recorded in the deal history of changes found on re-import.
    allow_future
        Accept dates more than a year ahead.

    Returns
    -------
    SalesforceImport

    Raises
    ------
    ValidationError
        Listing every bad row (file, line, Salesforce field, reason), nothing written.
    FileFormatError
        For a missing folder or ``Opportunity.csv``, or unreadable files.

    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    mapping = dict(mapping or {})
    renames = mapping.pop("stages", None) or {}
    frames, files, errors, warnings = salesforce_frames(folder, mapping)
    if renames:
        if "deals" in frames:
            frames["deals"]["stage"] = frames["deals"]["stage"].replace(renames)
            frames["stages"]["stage"] = frames["stages"]["stage"].replace(renames)
            frames["stages"] = frames["stages"].drop_duplicates(["pipeline", "stage"])
        if "deal_history" in frames:
            h = frames["deal_history"]
            st = h["field"] == "stage"
            for c in ("old_value", "new_value"):
                h.loc[st, c] = h.loc[st, c].replace(renames)
    back = {_ENTITY[o]: {d: s for s, d in m.items() if d} for o, m in SALESFORCE_FIELDS.items()}
    bad_lines: dict[str, set[int]] = {}
    for e in errors:
        ent = next(
            (k for k, v in files.items() if k != "stages" and e.reason.startswith(v + ":")), None
        )
        if ent is not None and e.row is not None:
            bad_lines.setdefault(ent, set()).add(e.row)
    stored = {name: store.known_keys(name) for name in ("accounts", "contacts", "deals", "stages")}
    pending: dict[str, set] = {}

    def known(ref: str) -> set:
        return stored.get(ref, set()) | pending.get(ref, set()) if ref in stored else set()

    clean: dict[str, pd.DataFrame] = {}
    result = SalesforceImport(warnings=warnings)
    for name in ("accounts", "contacts", "stages", "deals", "deal_history"):
        if name not in frames:
            continue
        df = frames[name]
        if name == "stages":
            keep = [
                (p, s) not in stored["stages"]
                for p, s in zip(df["pipeline"], df["stage"], strict=True)
            ]
            df = df.loc[keep]
        spec = entity(name)

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
        )
        fname = files[name]
        col_errors = [e for e in res.errors if e.row is None]
        if col_errors:
            raise ValidationError(fname, [_named(e, fname, back.get(name, {})) for e in col_errors])
        errors.extend(_named(e, fname, back.get(name, {})) for e in res.errors)
        bad = set(res.bad_rows) | bad_lines.get(name, set())
        good = res.clean.loc[~np.isin(rows[~np.isin(rows, list(res.bad_rows))], list(bad))]
        good = good.reset_index(drop=True)
        clean[name] = good
        key = list(spec.key)
        if name != "deal_history":
            keys = set(good[key[0]]) if len(key) == 1 else set(map(tuple, good[key].values))
            pending[name] = keys
        if name != "stages":
            result.files[fname] = {
                "imported": 0,
                "updated": 0,
                "unchanged": 0,
                "rejected": len(bad),
            }
    unique = {(e.row, e.field, e.reason): e for e in errors}  # one per history line and field
    result.errors = sorted(unique.values(), key=lambda e: (e.reason.split(":")[0], e.row or 0))
    if result.errors and on_error == "raise":
        raise ValidationError(f"{Path(folder).name} (Salesforce export)", result.errors)
    if result.errors and rejects_path is not None:
        result.rejects_path = Path(rejects_path)
        pd.DataFrame(
            [
                {
                    "file": e.reason.split(":")[0],
                    "row": e.row,
                    "field": e.field,
                    "reason": e.reason.split(": ", 1)[-1],
                    "value": e.value,
                }
                for e in result.errors
            ]
        ).to_csv(result.rejects_path, index=False)
    result.written, counts = _write(store, clean, stored, changed_by)
    for name, c in counts.items():
        if files.get(name) in result.files:
            result.files[files[name]].update(c)
    return result


def _named(e: RowError, fname: str, back: Mapping[str, str]) -> RowError:
    """Name the file and the Salesforce field of a validation problem."""
    return RowError(e.row, back.get(e.field or "", e.field), f"{fname}: {e.reason}", e.value)


def _write(
    store, clean: Mapping[str, pd.DataFrame], stored: Mapping[str, set], changed_by: str
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Insert new rows, update known ones by Id, and add new history rows, in one transaction."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
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
    history = clean.get("deal_history", pd.DataFrame(columns=["deal_id", "changed_at", "field"]))
    history = history.assign(changed_by=changed_by)
    new_hist = history[
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
        has_history = set(history["deal_id"])
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
                elif new is not None and did not in has_history:
                    extra.append(_hist(did, rec["created_at"], changed_by, f, None, new))
    written: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    with store.transaction() as conn:
        for name in ("accounts", "contacts", "stages", "deals"):
            df = clean.get(name)
            if df is None or not len(df):
                continue
            spec = entity(name)
            table = TABLES[name]
            key = list(spec.key)
            old = (
                df[key[0]].isin(stored.get(name, set()))
                if len(key) == 1
                else pd.Series(False, index=df.index)
            )
            ins = to_records(spec, df.loc[~old])
            if spec.versioned:
                for r in ins:
                    r["updated_at"] = now
            if ins:
                conn.execute(sa.insert(table), ins)
            cols = [c for c in spec.column_names if c not in key and c in df.columns]
            upd = _changed(store, spec, to_records(spec, df.loc[old]), cols)
            counts[name] = {
                "imported": len(ins),
                "updated": len(upd),
                "unchanged": int(old.sum()) - len(upd),
            }
            if upd:
                values = {c: sa.bindparam(f"v_{c}") for c in cols}
                if spec.versioned:
                    values["row_version"] = table.c.row_version + 1
                    values["updated_at"] = now
                cond = [table.c[k] == sa.bindparam(f"k_{k}") for k in key]
                params = [
                    {**{f"v_{c}": r[c] for c in cols}, **{f"k_{k}": r[k] for k in key}} for r in upd
                ]
                conn.execute(sa.update(table).where(*cond).values(**values), params)
            written[name] = len(ins) + len(upd)
        recs = to_records(
            entity("deal_history"), new_hist.drop(columns=["history_id"], errors="ignore")
        )
        recs += extra
        if recs:
            conn.execute(sa.insert(TABLES["deal_history"]), recs)
        written["deal_history"] = len(recs)
    counts["deal_history"] = {"imported": len(new_hist), "unchanged": len(history) - len(new_hist)}
    return written, counts


def _changed(store, spec, recs: list[dict], cols: list[str]) -> list[dict]:
    """The records whose columns differ from the stored row of the same key."""
    if not recs:
        return []
    key = list(spec.key)
    where = {key[0]: [r[key[0]] for r in recs]} if len(key) == 1 else None
    stored = store.read(spec.name, where=where)
    stored_recs = to_records(spec, stored[[*key, *cols]])
    have = {tuple(r[k] for k in key): r for r in stored_recs}
    out = []
    for r in recs:
        s = have.get(tuple(r[k] for k in key))
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


__all__ = [
    "SALESFORCE_FIELDS",
    "SalesforceImport",
    "id18",
    "import_salesforce",
    "load_salesforce_mapping",
    "salesforce_frames",
]
