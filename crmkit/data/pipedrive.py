"""Import a Pipedrive export folder (list view "Export" CSV or Excel files) into the store.

Pipedrive exports a list view as one CSV or Excel file per kind of item; the folder holds:

- ``deals.csv`` (required) → deals and the stages of each pipeline: ``ID``, ``Title``,
  ``Value``, ``Currency`` (the ISO code, stored as given, unconverted), ``Pipeline``,
  ``Stage``, ``Status`` (open, won, lost, deleted; deleted deals are skipped and counted),
  ``Expected close date``, ``Won time`` / ``Lost time`` (the close date of won and lost
  deals), ``Deal created`` (add time), ``Owner``, ``Organization`` (its name, or an
  ``Organization - ID`` column), ``Lost reason`` and, when the account shows it,
  ``Probability`` (percent);
- ``organizations.csv`` (optional) → accounts: ``ID``, ``Name``, ``Owner``,
  ``Organization created``, ``Address - Country``; accounts are keyed by the organization
  ID, or by the name when the export has no ID column;
- ``persons.csv`` (optional, also ``people.csv``) → contacts of the organizations:
  ``ID``, ``Name``, ``Organization``, ``Email`` (or the first of ``Email - Work``, ...).

Headers come in two spellings depending on the account's export settings: prefixed with the
item ("Deal - Title", "Organization - Name", "Person - Email") or plain ("Title"); both are
read. Pipedrive's deal export holds no stage history: a new deal's history starts with its
current stage and amount at its creation and its won or lost at its won or lost time
(:func:`crmkit.data.vendor.import_frames`); a later export re-imported updates deals by ID
and records what changed as deal history. The whole folder is one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from crmkit.data.reading import LINE, FileFormatError, PathLike, read_table_with_errors
from crmkit.data.vendor import (
    VendorImport,
    import_frames,
    is_given,
    mapped_fields,
    read_mapping_json,
)
from crmkit.errors import RowError

#: Pipedrive field (header without the item prefix) → crmkit field, per file; a JSON mapping
#: file overrides entries (``null`` leaves a field out).
PIPEDRIVE_FIELDS: dict[str, dict[str, str | None]] = {
    "deals": {
        "ID": "deal_id",
        "Title": "name",
        "Value": "amount",
        "Currency": "currency",
        "Pipeline": "pipeline",
        "Stage": "stage",
        "Status": "status",
        "Expected close date": "expected_close_date",
        "Deal created": "created_at",
        "Owner": "owner",
        "Lost reason": "lost_reason",
    },
    "organizations": {
        "ID": "account_id",
        "Name": "name",
        "Owner": "owner",
        "Organization created": "created_at",
        "Address - Country": "country",
    },
    "persons": {
        "ID": "contact_id",
        "Name": "name",
        "Email": "email",
    },
}
#: Other spellings of the same Pipedrive field (API names, older labels), per file.
ALIASES: dict[str, dict[str, str]] = {
    "deals": {
        "Add time": "Deal created",
        "Created": "Deal created",
        "Deal ID": "ID",
        "Name": "Title",
        "Expected close": "Expected close date",
        "Owner name": "Owner",
        "Stage change time": "Last stage change",
    },
    "organizations": {
        "Add time": "Organization created",
        "Created": "Organization created",
        "Organization ID": "ID",
        "Country": "Address - Country",
    },
    "persons": {"Person ID": "ID"},
}
#: Files read, by crmkit entity: the accepted file names (``.csv``, ``.xlsx`` or ``.xls``).
FILES: dict[str, tuple[str, ...]] = {
    "deals": ("deals",),
    "organizations": ("organizations", "organisations"),
    "persons": ("persons", "people"),
}
#: The item prefix of each file's headers ("Deal - Title").
PREFIXES = {"deals": "Deal", "organizations": "Organization", "persons": "Person"}
#: Pipeline of deals when the export has no Pipeline column.
DEFAULT_PIPELINE = "pipedrive"
#: Pipedrive's deal statuses (deleted deals are skipped; crmkit keeps open, won, lost).
STATUSES = ("open", "won", "lost", "deleted")
_ENTITY = {"deals": "deals", "organizations": "accounts", "persons": "contacts"}
_SUFFIXES = (".csv", ".xlsx", ".xls")
_DEACTIVATED = re.compile(r"\s*\((deactivated|inactive)\)\s*$", re.IGNORECASE)


class PipedriveFrames(NamedTuple):
    """A Pipedrive folder as crmkit frames, ready for :func:`crmkit.data.vendor.import_frames`."""

    frames: dict[str, pd.DataFrame]
    files: dict[str, str]
    errors: list[RowError]
    warnings: list[str]
    back: dict[str, dict[str, str]]
    #: ``{"stage": Last stage change}`` by line, when the deals export has the field
    times: dict[str, pd.Series]


# ---------------------------------------------------------------------- mapping
def load_pipedrive_mapping(path: PathLike) -> dict[str, dict[str, str | None]]:
    """Read field mapping overrides: ``{"deals": {"Label": "source"}, "stages": {...}}``.

    Parameters
    ----------
    path
        A JSON file: an object of file kind (``deals``, ``organizations``, ``persons``) to
        ``{Pipedrive field: crmkit field or null}`` (``null`` does not import the field;
        the field is written either way, "Deal - Label" or "Label"), and optionally
        ``"stages": {old stage: new stage}`` to rename stages.

    Returns
    -------
    dict
        ``{kind: {field: crmkit field or None}}`` (and ``"stages"``).

    Raises
    ------
    FileFormatError
        In one line, for a missing or malformed file, an unknown kind or crmkit field.

    """
    shape = 'an object like {"deals": {"Label": "source"}}'
    data, where = read_mapping_json(path, shape)
    out: dict[str, dict[str, str | None]] = {}
    for kind, fields in data.items():
        if not isinstance(fields, dict):
            raise FileFormatError(f"{where}: must be {shape}; {kind!r} maps to {fields!r}")
        if kind == "stages":
            out[kind] = {str(k): str(v) for k, v in fields.items()}
            continue
        if kind not in PIPEDRIVE_FIELDS:
            raise FileFormatError(
                f"{where}: unknown kind {kind!r}; mappable: {', '.join(PIPEDRIVE_FIELDS)}, stages"
            )
        out[kind] = mapped_fields(where, kind, fields, _ENTITY[kind])
    return out


# ---------------------------------------------------------------------- reading
def _norm(header: str, kind: str) -> str:
    """A header folded for comparison: without the item prefix, lowercase, single spaces."""
    h = " ".join(str(header).split())
    prefix = PREFIXES[kind].lower() + " - "
    if h.lower().startswith(prefix):
        h = h[len(prefix) :]
    return h.lower()


class _File:
    """One export file as read: rows by line, its headers by folded name, refused lines."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.name = path.name
        self.raw, shape = read_table_with_errors(path)
        self.raw = self.raw.astype(object).where(self.raw.notna(), None)
        self.errors = [RowError(e.row, e.field, f"{self.name}: {e.reason}", e.value) for e in shape]
        self.headers: dict[str, str] = {}
        self.aliases = {_norm(a, kind): _norm(c, kind) for a, c in ALIASES[kind].items()}
        for h in self.raw.columns:
            key = self.key(h)
            if key in self.headers:
                raise FileFormatError(
                    f"{path}: columns {self.headers[key]!r} and {h!r} are the same Pipedrive "
                    "field; keep one"
                )
            self.headers[key] = str(h)
        self.used: set[str] = set()

    def key(self, field: str) -> str:
        """A field's name folded for comparison, other spellings as the usual one."""
        k = _norm(field, self.kind)
        return self.aliases.get(k, k)

    def header(self, field: str) -> str | None:
        """The file's header of a Pipedrive field (either spelling), or None."""
        h = self.headers.get(self.key(field))
        if h is not None:
            self.used.add(h)
        return h

    def column(self, field: str) -> pd.Series | None:
        """The cells of a Pipedrive field, or None when the file lacks it."""
        h = self.header(field)
        return None if h is None else self.raw[h]

    def bad(self, line: int, field: str | None, reason: str, value: object = None) -> None:
        """Record a problem of one line of this file."""
        self.errors.append(RowError(line, field, f"{self.name}: {reason}", value))


def _find(folder: Path, kind: str) -> Path | None:
    """The folder's file of one kind (``deals.csv``, ``deals.xlsx``, ...), or None."""
    names = {f"{stem}{suf}" for stem in FILES[kind] for suf in _SUFFIXES}
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower() in names)
    if len(found) > 1:
        raise FileFormatError(
            f"{folder}: {' and '.join(p.name for p in found)} are both {kind}; keep one"
        )
    return found[0] if found else None


def _id(v: object) -> str | None:
    """A Pipedrive ID as text (``12``, also from Excel's ``12.0``), or None when empty."""
    if not is_given(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    text = str(v).strip()
    return text[:-2] if re.fullmatch(r"\d+\.0", text) else text


def _mapped(f: _File, fields: Mapping[str, str | None]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The mapped fields under crmkit's names, and crmkit field → header (for messages)."""
    cols: dict[str, str] = {}
    folded = {f.key(src): dst for src, dst in fields.items()}  # a later spelling overrides
    for src, dst in folded.items():
        h = f.header(src)
        if h is not None and dst is not None:
            cols[h] = dst
        elif h is not None:
            f.used.add(h)
    df = f.raw[list(cols)].rename(columns=cols)
    df.index.name = LINE
    return df, {dst: h for h, dst in cols.items()}


def pipedrive_frames(
    folder: PathLike, mapping: Mapping[str, Mapping[str, str | None]] | None = None
) -> PipedriveFrames:
    """Map a Pipedrive export folder to crmkit frames (reads files only; writes nothing).

    Parameters
    ----------
    folder
        The folder of exported files (``deals.csv``, ``organizations.csv``, ``persons.csv``;
        ``.xlsx`` or ``.xls`` as well).
    mapping
        Overrides of :data:`PIPEDRIVE_FIELDS`, per kind (:func:`load_pipedrive_mapping`).

    Returns
    -------
    PipedriveFrames
        ``frames`` among ``accounts``, ``contacts``, ``stages``, ``deals``, each indexed by
        the line of its file; ``files`` (entity → file name); ``errors`` (lines refused
        while reading); ``warnings``; ``back`` (entity → {crmkit field: header}).

    Raises
    ------
    FileFormatError
        In one line, for a missing folder or deals file, or an unreadable file.

    """
    d = Path(folder)
    if not d.is_dir():
        raise FileFormatError(f"{d}: not a folder; pass the folder of Pipedrive export files")
    fields = {kind: dict(m) for kind, m in PIPEDRIVE_FIELDS.items()}
    for kind, m in (mapping or {}).items():
        if kind in fields:
            fields[kind].update(m)
    deals_path = _find(d, "deals")
    if deals_path is None:
        raise FileFormatError(
            f"{d}: no deals.csv (or deals.xlsx); export the Deals list view into this folder"
        )
    out = PipedriveFrames({}, {}, [], [], {}, {})
    orgs = _organizations(d, fields["organizations"], out)
    _deals(deals_path, fields["deals"], orgs, out)
    _persons(d, fields["persons"], orgs, out)
    read = {p.name for kind in FILES if (p := _find(d, kind)) is not None}
    unread = sorted(p.name for p in d.iterdir() if p.is_file() and p.name not in read)
    unread = [n for n in unread if not n.startswith(".")]
    if unread:
        out.warnings.append(f"file(s) {', '.join(unread)} not imported by the Pipedrive importer")
    return out


class _Orgs(NamedTuple):
    """The organizations read: account key by ID and by name (None: no organizations file)."""

    by_id: dict[str, str] | None
    by_name: dict[str, list[str]]
    keyed_by: str  # "ID" or "Name"


def _organizations(d: Path, fields: Mapping[str, str | None], out: PipedriveFrames) -> _Orgs:
    """Read organizations into accounts; return how deals and persons refer to them."""
    p = _find(d, "organizations")
    if p is None:
        out.warnings.append(
            "no organizations.csv: deals are imported without accounts (export the "
            "Organizations list view into the folder to link them)"
        )
        return _Orgs(None, {}, "ID")
    f = _File("organizations", p)
    df, back = _mapped(f, fields)
    if "name" not in df.columns:
        raise FileFormatError(f"{p}: no Name column; an organizations export has one")
    keyed_by = "ID"
    if "account_id" not in df.columns:  # keyed by name
        keyed_by = "Name"
        df["account_id"] = df["name"]
        back["account_id"] = back["name"]
        out.warnings.append(
            f"{f.name}: no ID column; accounts are keyed by organization name (add the ID "
            "column to the export to keep accounts apart when a name changes)"
        )
    else:
        df["account_id"] = df["account_id"].map(_id)
    if "owner" in df.columns:
        df["owner"] = _owners(df["owner"], f.name, out.warnings)
    by_id: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for key, name in zip(df["account_id"], df["name"], strict=True):
        if key is not None:
            by_id[key] = key
            if is_given(name):
                by_name.setdefault(str(name), []).append(key)
    _note_unused(f, out.warnings)
    out.errors.extend(f.errors)
    out.frames["accounts"] = df
    out.files["accounts"] = f.name
    out.back["accounts"] = back
    return _Orgs(by_id, by_name, keyed_by)


def _account_refs(f: _File, orgs: _Orgs, warnings: list[str]) -> pd.Series:
    """Each row's account key, from an organization ID column or the organization's name."""
    refs = pd.Series(None, index=f.raw.index, dtype=object)
    ids = f.column("Organization - ID")
    if ids is None:
        ids = f.column("Organization ID")
    names = f.column("Organization")
    if orgs.by_id is None:
        return refs
    if ids is not None and orgs.keyed_by == "ID":
        h = f.header("Organization - ID") or f.header("Organization ID")
        for line, v in ids.items():
            key = _id(v)
            if key is not None and key not in orgs.by_id:
                f.bad(int(line), h, "no such organization ID in the organizations file", v)
            refs[line] = key
        return refs
    if names is None:
        warnings.append(f"{f.name}: no Organization column; imported without accounts")
        return refs
    h = f.header("Organization")
    for line, v in names.items():
        if not is_given(v):
            continue
        keys = orgs.by_name.get(str(v), [])
        if len(keys) == 1:
            refs[line] = keys[0]
        elif not keys:
            f.bad(int(line), h, "no organization of this name in the organizations file", v)
        else:
            f.bad(
                int(line),
                h,
                f"several organizations have this name (IDs {', '.join(keys)}); add the "
                "Organization - ID column to the export",
                v,
            )
    return refs


def _deals(p: Path, fields: Mapping[str, str | None], orgs: _Orgs, out: PipedriveFrames) -> None:
    """Read the deals file into deals and stages; deleted deals are skipped and counted."""
    f = _File("deals", p)
    df, back = _mapped(f, fields)
    for need in ("deal_id", "status"):
        if need not in df.columns:
            src = next(s for s, t in PIPEDRIVE_FIELDS["deals"].items() if t == need)
            raise FileFormatError(f"{p}: no {src} column (as '{src}' or 'Deal - {src}')")
    df["deal_id"] = df["deal_id"].map(_id)
    # Pipedrive's statuses: open, won, lost, deleted (the validator refuses any other)
    status = df["status"].map(lambda v: str(v).strip().lower() if is_given(v) else None)
    deleted = status == "deleted"
    df["status"] = status
    won_h, lost_h = f.header("Won time"), f.header("Lost time")
    close = f.column("Close time")
    closed_at = pd.Series(None, index=df.index, dtype=object)
    for st, h in (("won", won_h), ("lost", lost_h)):
        col = f.raw[h] if h is not None else pd.Series(None, index=df.index, dtype=object)
        if close is not None:
            col = col.where(col.map(is_given), close)
        closed_at = closed_at.where(status != st, col)
    df["closed_at"] = closed_at
    back["closed_at"] = " / ".join(h for h in (won_h, lost_h) if h) or "Won time / Lost time"
    if "owner" in df.columns:
        df["owner"] = _owners(df["owner"], f.name, out.warnings)
    if "pipeline" not in df.columns:
        df["pipeline"] = DEFAULT_PIPELINE
    df["account_id"] = _account_refs(f, orgs, out.warnings)
    prob = f.column("Probability")
    stage_time = f.column("Last stage change")
    if stage_time is not None:
        out.times["stage"] = stage_time
        back["stage_changed_at"] = f.header("Last stage change") or "Last stage change"
    n_deleted = int(deleted.sum())
    if n_deleted:
        out.warnings.append(
            f"{f.name}: {n_deleted} deleted deal(s) skipped (a deal imported before keeps "
            "its last imported state)"
        )
        df = df.loc[~deleted]
    if "amount" in df.columns:
        no_value = int((~df["amount"].map(is_given)).sum())
        if no_value:
            out.warnings.append(
                f"{f.name}: {no_value} deal(s) without Value, imported without amount"
            )
    if "currency" not in df.columns:
        out.warnings.append(
            f"{f.name}: no Currency column; amounts stored in crmkit's default currency USD"
        )
    out.frames["stages"] = _stages(df, prob)
    out.files["stages"] = f.name
    out.warnings.append(
        f"{f.name}: Pipedrive's deal export has no stage history, stage order or stage "
        "probability: a new deal's history starts in its current stage and amount at its "
        "creation, with won or lost at its won or lost time; later changes are recorded when "
        "a later export is imported; stages are ordered as first seen in the file, with the "
        "deals' Probability when exported (else 0): check them in the stages table"
    )
    _note_unused(f, out.warnings)
    out.errors.extend(f.errors)
    out.frames["deals"] = df
    out.files["deals"] = f.name
    back["account_id"] = f.header("Organization - ID") or f.header("Organization") or "Organization"
    out.back["deals"] = back
    out.back["stages"] = {
        "stage": back.get("stage", "Stage"),
        "pipeline": back.get("pipeline", "Pipeline"),
    }


def _stages(deals: pd.DataFrame, prob: pd.Series | None) -> pd.DataFrame:
    """Stages per pipeline in first-seen order, with the most common deal probability."""
    p = (
        pd.to_numeric(prob.reindex(deals.index), errors="coerce") / 100.0
        if prob is not None
        else pd.Series(np.nan, index=deals.index)
    )
    t = pd.DataFrame({"pipeline": deals["pipeline"], "stage": deals["stage"], "p": p})
    t = t.dropna(subset=["stage"])
    t = t[t["pipeline"].map(is_given) & t["stage"].map(is_given)]
    rows = []
    for (pipe, stage), g in t.groupby(["pipeline", "stage"], sort=False):
        ps = g["p"].dropna()
        rows.append((g.index[0], pipe, stage, float(ps.mode().iloc[0]) if len(ps) else 0.0))
    out = pd.DataFrame(rows, columns=[LINE, "pipeline", "stage", "probability"])
    out = out.sort_values(["pipeline", LINE], kind="stable")
    if prob is not None:
        out = out.sort_values(["pipeline", "probability"], kind="stable")
    out["stage_order"] = out.groupby("pipeline").cumcount() + 1
    return out.set_index(LINE)[["pipeline", "stage", "stage_order", "probability"]]


def _persons(d: Path, fields: Mapping[str, str | None], orgs: _Orgs, out: PipedriveFrames) -> None:
    """Read persons into contacts of their organization; persons without one are counted."""
    p = _find(d, "persons")
    if p is None:
        return
    f = _File("persons", p)
    df, back = _mapped(f, fields)
    if "email" not in df.columns:
        emails = [h for k, h in f.headers.items() if k.startswith("email - ")]
        if emails:
            f.used.update(emails)
            df["email"] = f.raw[emails].bfill(axis=1).iloc[:, 0]
            back["email"] = emails[0]
    if "contact_id" in df.columns:
        df["contact_id"] = df["contact_id"].map(_id)
    df["account_id"] = _account_refs(f, orgs, out.warnings)
    back["account_id"] = f.header("Organization") or "Organization"
    if orgs.by_id is None:
        out.warnings.append(f"{f.name}: not imported without an organizations file")
        _note_unused(f, [])
        return
    refused = df.index.isin([e.row for e in f.errors])  # reported once, by the reading
    alone = df["account_id"].isna() & ~refused
    df, alone = df.loc[~refused], alone.loc[~refused]
    if alone.any():
        out.warnings.append(
            f"{f.name}: {int(alone.sum())} person(s) without an organization not imported "
            "(crmkit's contacts belong to an account)"
        )
        df = df.loc[~alone]
    _note_unused(f, out.warnings)
    out.errors.extend(f.errors)
    out.frames["contacts"] = df
    out.files["contacts"] = f.name
    out.back["contacts"] = back


def _owners(owner: pd.Series, fname: str, warnings: list[str]) -> pd.Series:
    """Owner names with a "(deactivated)" mark removed, so a user stays one owner."""
    marked = owner.map(lambda v: isinstance(v, str) and bool(_DEACTIVATED.search(v)))
    if not marked.any():
        return owner
    names = sorted({_DEACTIVATED.sub("", v) for v in owner[marked]})
    warnings.append(f"{fname}: deactivated user(s) kept as owners by name: {', '.join(names)}")
    return owner.map(lambda v: _DEACTIVATED.sub("", v) if isinstance(v, str) else v)


def _note_unused(f: _File, warnings: list[str]) -> None:
    """Warn about the file's columns that nothing read."""
    left = [h for h in f.raw.columns if h not in f.used]
    if left:
        warnings.append(f"{f.name}: field(s) {', '.join(left)} not imported")


# ---------------------------------------------------------------------- importing
def import_pipedrive(
    store,
    folder: PathLike,
    *,
    mapping: Mapping[str, Mapping[str, str | None]] | None = None,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "pipedrive import",
    allow_future: bool = False,
) -> VendorImport:
    """Import a Pipedrive export folder in one transaction; update deals already imported.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    folder
        The export folder; see the module docstring for the files read.
    mapping
        Field mapping overrides (:func:`load_pipedrive_mapping`); an extra key ``"stages"``
        ``{old stage: new stage}`` renames stages (a stage renamed in Pipedrive between two
        exports).
    on_error
        ``"raise"``: any bad row raises :class:`crmkit.errors.ValidationError` and nothing
        is written; ``"skip"``: the good rows are written and the rejected ones go to
        ``rejects_path``.
    rejects_path
        CSV of the rejected rows with file, line and reasons.
    changed_by
        Name recorded in the deal history of the imported deals and their changes.
    allow_future
        Accept dates more than a year ahead.

    Returns
    -------
    crmkit.data.vendor.VendorImport

    Raises
    ------
    crmkit.errors.ValidationError
        Listing every bad row (file, line, Pipedrive field, reason), nothing written.
    FileFormatError
        For a missing folder or deals file, or an unreadable file.

    """
    mapping = dict(mapping or {})
    renames = dict(mapping.pop("stages", None) or {})
    parsed = pipedrive_frames(folder, mapping)
    deals = parsed.frames.get("deals")
    if deals is not None and len(deals):
        ids = [i for i in deals["deal_id"] if i is not None]
        before = store.read(
            "deals", where={"deal_id": ids}, columns=["deal_id", "pipeline", "stage", "status"]
        )
        parsed.warnings.extend(_renamed_stages(before, deals, renames))
        history = _known_change_times(before, deals, parsed.times, renames)
        if len(history):
            parsed.frames["deal_history"] = history
            parsed.files["deal_history"] = parsed.files["deals"]
            b = parsed.back["deals"]
            when = " / ".join(x for x in (b.get("closed_at"), b.get("stage_changed_at")) if x)
            parsed.back["deal_history"] = {"changed_at": when, "deal_id": b["deal_id"]}
    return import_frames(
        store,
        parsed.frames,
        parsed.files,
        parsed.errors,
        parsed.warnings,
        source="Pipedrive",
        folder=Path(folder),
        back=parsed.back,
        renames=renames,
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        allow_future=allow_future,
    )


def _known_change_times(
    before: pd.DataFrame,
    deals: pd.DataFrame,
    times: Mapping[str, pd.Series],
    renames: Mapping[str, str],
) -> pd.DataFrame:
    """History of stored deals' changes whose time the export tells (indexed by line).

    A stored open deal now won or lost changed status at its won or lost time; a deal in
    another stage changed stage at its "Last stage change" (when exported and after the
    deal's creation). Other changes are recorded at the time of the import.
    """
    cols = [LINE, "deal_id", "changed_at", "field", "old_value", "new_value"]
    if not len(before):
        return pd.DataFrame(columns=cols).set_index(LINE)
    stored = before.set_index("deal_id")
    rows = []
    stage_time = times.get("stage")
    for line, rec in deals.iterrows():
        did = rec["deal_id"]
        if did not in stored.index:
            continue
        old = stored.loc[did]
        if old["status"] == "open" and rec["status"] in ("won", "lost"):
            if is_given(rec.get("closed_at")):
                rows.append((line, did, rec["closed_at"], "status", "open", rec["status"]))
        stage = renames.get(rec.get("stage"), rec.get("stage"))
        if stage_time is None or not is_given(stage) or stage == old["stage"]:
            continue
        at = stage_time.get(line)
        if not is_given(at):
            continue
        after = pd.to_datetime(at, errors="coerce") > pd.to_datetime(
            rec["created_at"], errors="coerce"
        )
        if after or pd.isna(pd.to_datetime(at, errors="coerce")):  # bad text: the validator says
            rows.append((line, did, at, "stage", old["stage"], stage))
    return pd.DataFrame(rows, columns=cols).set_index(LINE)


def _renamed_stages(
    before: pd.DataFrame, deals: pd.DataFrame, renames: Mapping[str, str]
) -> list[str]:
    """Warn of stored stages that deals of this export left and no deal of it is in (renamed?)."""
    if not len(before) or not {"stage", "pipeline"} <= set(deals.columns):
        return []
    now = deals.assign(stage=deals["stage"].replace(dict(renames)))
    current = set(zip(now["pipeline"], now["stage"], strict=True))
    left = before[
        [(p, s) not in current for p, s in zip(before["pipeline"], before["stage"], strict=True)]
    ]
    moved = left.merge(now[["deal_id", "pipeline"]], on=["deal_id", "pipeline"])
    gone = sorted(set(moved["stage"]))
    if not gone:
        return []
    return [
        "stage(s) "
        + ", ".join(map(repr, gone))
        + " are on no deal of this export though stored deals were in them (renamed or "
        "retired in Pipedrive?); the moves are recorded as stage changes; to rename instead, "
        'import with --mapping {"stages": {"old": "new"}}'
    ]


__all__ = [
    "PIPEDRIVE_FIELDS",
    "PipedriveFrames",
    "import_pipedrive",
    "load_pipedrive_mapping",
    "pipedrive_frames",
]
