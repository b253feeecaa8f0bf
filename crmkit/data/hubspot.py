"""Import a HubSpot CRM export folder (deals, companies and contacts views) into the store.

The folder holds the CSV files of HubSpot's record exports (export of the deals, companies
and contacts views, "all properties"), with HubSpot's property labels as headers. A file is
recognised by its name holding ``deal``, ``compan`` or ``contact`` (any case): ``deals.csv``
as well as HubSpot's default ``hubspot-crm-exports-all-deals-2026-11-30.csv``.

- companies → accounts (``Record ID``, ``Company name``, ``Company owner``, ``Create Date``,
  ``Industry``, ``Country/Region``, ``Type`` as the segment);
- contacts → contacts (``First Name`` + ``Last Name``, ``Email``, ``Job Title``, the
  associated company's record ID); contacts without a company are left out, with a warning
  (a crmkit contact belongs to an account);
- deals → deals: ``Deal Stage`` and ``Pipeline`` as named in HubSpot; the status from the
  stage (``Closed won`` / ``Closed lost``, or a ``"status"`` mapping for other closed
  stages); ``Close Date`` is the expected close date and the close date of closed deals;
  ``Deal owner`` is a name (a deactivated user's " (Deactivated User)" suffix is dropped,
  with a warning); ``Forecast category`` mapped to crmkit's; ``Currency`` stored as given,
  unconverted; and the stages of each pipeline with their ``Deal probability``;
- the stage history from HubSpot's stage calculated properties ``Date entered "<stage>
  (<pipeline>)"``: one history row per stage entered, in date order.

The whole folder is one transaction (:func:`crmkit.data.vendor.import_frames`). A later
export re-imported updates rows by their HubSpot ``Record ID`` and records what changed as
deal history; stage history rows already stored are not written again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from crmkit.data.reading import LINE, FileFormatError, PathLike, read_table_with_errors
from crmkit.data.vendor import (
    VendorImport,
    forecast_category,
    import_frames,
    is_given,
    mapped_fields,
    read_mapping_json,
)
from crmkit.errors import RowError
from crmkit.store.schema import DEAL_STATUSES

#: HubSpot property label → crmkit field, per export; a JSON mapping file overrides entries.
HUBSPOT_FIELDS: dict[str, dict[str, str | None]] = {
    "companies": {
        "Record ID": "account_id",
        "Company name": "name",
        "Type": "segment",
        "Industry": "industry",
        "Country/Region": "country",
        "Company owner": "owner",
        "Create Date": "created_at",
    },
    "contacts": {
        "Record ID": "contact_id",
        "Email": "email",
        "Job Title": "role",
    },
    "deals": {
        "Record ID": "deal_id",
        "Deal Name": "name",
        "Deal Stage": "stage",
        "Pipeline": "pipeline",
        "Amount": "amount",
        "Currency": "currency",
        "Deal currency code": "currency",
        "Close Date": "expected_close_date",
        "Create Date": "created_at",
        "Deal owner": "owner",
        "Forecast category": "forecast_category",
    },
}
#: Columns holding the associated company's record ID (spellings of HubSpot's exports).
COMPANY_ID_FIELDS = (
    "Associated Company (Record ID)",
    "Associated Company IDs",
    "Associated Company ID",
    "Company ID",
)
#: Columns read by the importer itself (not stored as such).
HELPER_FIELDS: dict[str, tuple[str, ...]] = {
    "companies": (),
    "contacts": ("First Name", "Last Name", *COMPANY_ID_FIELDS, "Associated Company"),
    "deals": ("Deal probability", *COMPANY_ID_FIELDS, "Associated Company"),
}
#: Which file is which export: a part of its lower-case name.
FILE_KINDS = {"deals": "deal", "companies": "compan", "contacts": "contact"}
#: A deal owner or company owner who left: HubSpot shows the name with this suffix.
DEACTIVATED = " (Deactivated User)"
#: Stages whose deals are closed, compared folded (lowercase, no spaces, "_" or "-").
CLOSED_STAGES = {"closedwon": "won", "closedlost": "lost"}
_ENTITY = {"companies": "accounts", "contacts": "contacts", "deals": "deals"}
_ENTERED = re.compile(r'^Date entered "?(?P<stage>.+) \((?P<pipeline>[^()]+)\)"?$')
_STAGE_CALCULATED = ("Date entered ", "Date exited ", "Latest time in ", "Cumulative time in ")


# ---------------------------------------------------------------------- mapping
def load_hubspot_mapping(path: PathLike) -> dict[str, dict[str, str | None]]:
    """Read mapping overrides: ``{"deals": {"Deal Type": "source"}, "stages": {...}, ...}``.

    Parameters
    ----------
    path
        A JSON file: an object of export (``deals``, ``companies``, ``contacts``) to
        ``{HubSpot property label: crmkit field or null}`` (``null`` does not import it);
        ``"stages"``: ``{old stage: new stage}``; ``"status"``: ``{stage: "won" | "lost" |
        "open"}`` for closed stages not named "Closed won" / "Closed lost".

    Returns
    -------
    dict

    Raises
    ------
    FileFormatError
        In one line, for a missing or malformed file, an unknown export or crmkit field.

    """
    shape = 'an object like {"deals": {"Deal Type": "source"}}'
    data, where = read_mapping_json(path, shape)
    out: dict[str, dict[str, str | None]] = {}
    for obj, fields in data.items():
        if not isinstance(fields, dict):
            raise FileFormatError(f"{where}: must be {shape}; {obj!r} maps to {fields!r}")
        if obj == "stages":
            out[obj] = {str(k): str(v) for k, v in fields.items()}
            continue
        if obj == "status":
            bad = {k: v for k, v in fields.items() if v not in DEAL_STATUSES}
            if bad:
                k, v = next(iter(bad.items()))
                raise FileFormatError(
                    f"{where}: status of stage {k!r} is {v!r}, not one of "
                    f"{', '.join(DEAL_STATUSES)}"
                )
            out[obj] = {str(k): str(v) for k, v in fields.items()}
            continue
        if obj not in HUBSPOT_FIELDS:
            raise FileFormatError(
                f"{where}: unknown export {obj!r}; mappable: "
                f"{', '.join([*HUBSPOT_FIELDS, 'stages', 'status'])}"
            )
        out[obj] = mapped_fields(where, obj, fields, _ENTITY[obj])
    return out


# ---------------------------------------------------------------------- reading
@dataclass
class _File:
    """One export's CSV as read: rows by line, and the rows refused on the way."""

    name: str
    raw: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)

    def bad(self, line: int, label: str | None, reason: str, value: object = None) -> None:
        """Record a problem of one line of this file."""
        self.errors.append(RowError(line, label, f"{self.name}: {reason}", value))

    def col(self, name: str) -> pd.Series:
        """A column as text with None for empty cells (all None when absent)."""
        if name not in self.raw.columns:
            return pd.Series(None, index=self.raw.index, dtype=object)
        vals = [str(v).strip() if is_given(v) else None for v in self.raw[name]]
        return pd.Series(vals, index=self.raw.index, dtype=object)


def find_exports(folder: PathLike) -> tuple[dict[str, Path], list[str]]:
    """Find the deals, companies and contacts CSV files of a HubSpot export folder.

    Parameters
    ----------
    folder
        The export folder.

    Returns
    -------
    files : dict
        ``{"deals" | "companies" | "contacts": path}`` (those present).
    unread : list of str
        CSV files of the folder that are none of them.

    Raises
    ------
    FileFormatError
        For a folder that is not one, without a deals file, or with two files of one kind.

    """
    d = Path(folder)
    if not d.is_dir():
        raise FileFormatError(f"{d}: not a folder; pass the HubSpot export folder")
    found: dict[str, list[Path]] = {}
    unread = []
    for p in sorted(d.iterdir()):
        if not p.is_file() or p.suffix.lower() != ".csv":
            continue
        name = p.name.lower()
        kinds = [k for k, part in FILE_KINDS.items() if part in name]
        if len(kinds) == 1:
            found.setdefault(kinds[0], []).append(p)
        else:
            unread.append(p.name)
    for kind, paths in found.items():
        if len(paths) > 1:
            raise FileFormatError(
                f"{d}: {len(paths)} {kind} files ({', '.join(p.name for p in paths)}); "
                "keep one export of each kind in the folder"
            )
    if "deals" not in found:
        raise FileFormatError(
            f"{d}: no deals export (a CSV file whose name contains 'deal', e.g. deals.csv)"
        )
    return {k: v[0] for k, v in found.items()}, unread


def _owner(names: pd.Series, gone: set[str]) -> pd.Series:
    """Owner names as exported, a deactivated user's suffix dropped (and noted in ``gone``)."""

    def strip(v: str | None) -> str | None:
        if v is not None and v.endswith(DEACTIVATED):
            v = v[: -len(DEACTIVATED)].strip()
            gone.add(v)
        return v

    return names.map(strip)


def _company_ids(f: _File, names: Mapping[str, str], warnings: list[str]) -> pd.Series:
    """The associated company's record ID of each row (the first of several, or by name)."""
    col = next((c for c in COMPANY_ID_FIELDS if c in f.raw.columns), None)
    ids = f.col(col) if col else pd.Series(None, index=f.raw.index, dtype=object)
    several = ids.map(lambda v: v is not None and ";" in v)
    if several.any():
        warnings.append(
            f"{f.name}: {int(several.sum())} row(s) with several associated companies; "
            "the first is kept"
        )
    ids = ids.map(lambda v: v.split(";")[0].strip() if v is not None else None)
    by_name = f.col("Associated Company").map(lambda v: names.get(v) if v else None)
    return ids.where(ids.notna(), by_name)


def _mapped(f: _File, kind: str, fields: Mapping[str, str | None]) -> tuple[pd.DataFrame, list]:
    """Rename the mapped columns to crmkit's names; return the frame and the columns left out."""
    cols: dict[str, str] = {}
    for src, dst in fields.items():
        if dst is not None and src in f.raw.columns and dst not in cols.values():
            cols[src] = dst
    df = pd.DataFrame({dst: f.col(src) for src, dst in cols.items()}, index=f.raw.index)
    df.index.name = LINE
    used = set(fields) | set(HELPER_FIELDS[kind])
    left = [c for c in f.raw.columns if c not in used and not c.startswith(_STAGE_CALCULATED)]
    return df, left


def _status(stage: str | None, status_map: Mapping[str, str]) -> str:
    """A deal's status from its stage: the mapping, else Closed won / Closed lost, else open."""
    if stage is None:
        return "open"
    if stage in status_map:
        return status_map[stage]
    return CLOSED_STAGES.get("".join(ch for ch in stage.lower() if ch not in " _-"), "open")


def _day(f: _File, df: pd.DataFrame, col: str, label: str) -> None:
    """Keep the date part of a date-and-time column (HubSpot writes Close Date with a time)."""
    if col not in df.columns:
        return
    parsed = pd.to_datetime(df[col], errors="coerce", format="ISO8601")
    for line in df.index[parsed.isna() & df[col].notna()]:
        f.bad(int(line), label, "not an ISO date (YYYY-MM-DD)", df.at[line, col])
    df[col] = parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), None)


def _stages(deals: pd.DataFrame, prob: pd.Series) -> pd.DataFrame:
    """Stages per pipeline with their probability (the most common ``Deal probability``)."""
    t = pd.DataFrame({"pipeline": deals["pipeline"], "stage": deals["stage"], "p": prob})
    t = t.dropna(subset=["stage", "pipeline"])
    rows = []
    for (pipe, stage), g in t.groupby(["pipeline", "stage"], sort=False):
        p = g["p"].dropna()
        rows.append((g.index[0], pipe, stage, float(p.mode().iloc[0]) if len(p) else 0.0))
    out = pd.DataFrame(rows, columns=[LINE, "pipeline", "stage", "probability"])
    out = out.sort_values(["pipeline", "probability", LINE], kind="stable")
    out["stage_order"] = out.groupby("pipeline").cumcount() + 1
    return out.set_index(LINE)[["pipeline", "stage", "stage_order", "probability"]]


def _history(f: _File, deal_ids: pd.Series) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """One stage history row per ``Date entered`` value, in date order, per deal line."""
    entered = {c: m for c in f.raw.columns if (m := _ENTERED.match(c))}
    header_stages = {(m["pipeline"], m["stage"]) for m in entered.values()}
    rows = []
    for line, deal_id in deal_ids.items():
        if deal_id is None:
            continue
        steps = []
        for c, m in entered.items():
            v = f.raw.at[line, c]
            if not is_given(v):
                continue
            at = pd.to_datetime(str(v).strip(), errors="coerce", format="ISO8601")
            if pd.isna(at):
                f.bad(int(line), c, "not an ISO date and time", v)
                continue
            if at.tzinfo is not None:
                at = at.tz_convert("UTC").tz_localize(None)
            steps.append((at, m["stage"]))
        prev = None
        for at, stage in sorted(steps, key=lambda s: s[0]):
            if stage == prev:
                continue
            rows.append((line, deal_id, at, "stage", prev, stage))
            prev = stage
    out = pd.DataFrame(
        rows, columns=[LINE, "deal_id", "changed_at", "field", "old_value", "new_value"]
    )
    return out.set_index(LINE), header_stages


@dataclass
class _Parsed:
    """A HubSpot folder as crmkit frames."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    header_stages: set[tuple[str, str]] = field(default_factory=set)


def _parse(folder: PathLike, mapping: Mapping[str, Mapping[str, str]] | None) -> _Parsed:
    """Read the exports of a folder into crmkit frames (see :func:`hubspot_frames`)."""
    paths, unread = find_exports(folder)
    mapping = dict(mapping or {})
    status_map = dict(mapping.pop("status", None) or {})
    mapping.pop("stages", None)
    fields = {kind: dict(m) for kind, m in HUBSPOT_FIELDS.items()}
    for kind, m in mapping.items():
        fields[kind].update(m)
    out = _Parsed()
    gone: set[str] = set()
    company_names: dict[str, str] = {}
    for kind in ("companies", "contacts", "deals"):
        if kind not in paths:
            continue
        raw, shape = read_table_with_errors(paths[kind])
        f = _File(paths[kind].name, raw)
        f.errors.extend(RowError(e.row, e.field, f"{f.name}: {e.reason}", e.value) for e in shape)
        df, left = _mapped(f, kind, fields[kind])
        if left:
            out.warnings.append(f"{f.name}: column(s) {', '.join(left)} not imported")
        if kind == "companies":
            if "owner" in df.columns:
                df["owner"] = _owner(df["owner"], gone)
            if {"account_id", "name"} <= set(df.columns):
                counts = df["name"].value_counts()
                company_names = {
                    n: i
                    for i, n in zip(df["account_id"], df["name"], strict=True)
                    if n is not None and counts.get(n) == 1
                }
        elif kind == "contacts":
            if "name" not in df.columns:
                first, last = f.col("First Name").fillna(""), f.col("Last Name").fillna("")
                df["name"] = (first + " " + last).str.strip().replace("", None)
            if "account_id" not in df.columns:
                df["account_id"] = _company_ids(f, company_names, out.warnings)
            alone = df["account_id"].isna()
            if alone.any():
                out.warnings.append(
                    f"{f.name}: {int(alone.sum())} contact(s) without an associated company "
                    "not imported (a crmkit contact belongs to an account)"
                )
                df = df.loc[~alone]
        else:
            if "owner" in df.columns:
                df["owner"] = _owner(df["owner"], gone)
            if "account_id" not in df.columns:
                df["account_id"] = _company_ids(f, company_names, out.warnings)
            if "pipeline" not in df.columns:
                df["pipeline"] = "default"
            df["pipeline"] = df["pipeline"].fillna("default")
            df["status"] = [_status(s, status_map) for s in df.get("stage", [None] * len(df))]
            _day(f, df, "expected_close_date", "Close Date")
            if "expected_close_date" in df.columns:
                df["closed_at"] = df["expected_close_date"].where(df["status"] != "open", None)
            if "forecast_category" in df.columns:
                cats = df["forecast_category"].map(forecast_category)
                for line in df.index[cats.isna() & df["forecast_category"].notna()]:
                    f.bad(
                        int(line),
                        "Forecast category",
                        "not a forecast category (Pipeline, Best case, Commit, Closed won, "
                        "Not forecasted)",
                        df.at[line, "forecast_category"],
                    )
                df["forecast_category"] = cats
            if "currency" not in df.columns:
                out.warnings.append(
                    f"{f.name}: no Currency column (a single-currency account); amounts stored "
                    "in crmkit's default currency USD"
                )
            no_amount = int(df["amount"].isna().sum()) if "amount" in df.columns else len(df)
            if no_amount:
                out.warnings.append(f"{f.name}: {no_amount} deal(s) without Amount")
            prob = pd.to_numeric(f.col("Deal probability"), errors="coerce")
            if prob.notna().any() and prob.max() > 1:
                prob = prob / 100.0  # given in percent
            if "Deal probability" not in f.raw.columns:
                out.warnings.append(
                    f"{f.name}: no Deal probability column; new stages stored with "
                    "probability 0 (set them in crmkit)"
                )
            out.frames["stages"] = _stages(df, prob)
            out.files["stages"] = f.name
            history, out.header_stages = _history(f, df["deal_id"])
            if len(history):
                out.frames["deal_history"] = history
                out.files["deal_history"] = f.name
        out.errors.extend(f.errors)
        out.frames[_ENTITY[kind]] = df
        out.files[_ENTITY[kind]] = f.name
    if gone:
        out.warnings.append(
            f"{len(gone)} deactivated user(s) kept as owners by name: {', '.join(sorted(gone))}"
        )
    if unread:
        out.warnings.append(f"file(s) {', '.join(unread)} not imported by the HubSpot importer")
    return out


def hubspot_frames(
    folder: PathLike, mapping: Mapping[str, Mapping[str, str | None]] | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[RowError], list[str]]:
    """Map a HubSpot export folder to crmkit frames.

    Parameters
    ----------
    folder
        The export folder (deals, companies and contacts CSV files).
    mapping
        Overrides of :data:`HUBSPOT_FIELDS` per export, and ``"status"``
        (:func:`load_hubspot_mapping`).

    Returns
    -------
    frames : dict
        ``{"accounts", "contacts", "stages", "deals", "deal_history"}`` (those present),
        indexed by the line of the file each row comes from.
    files : dict
        ``{entity: file name}``.
    errors : list of RowError
        Lines refused while reading (bad dates, forecast categories, misshapen lines).
    warnings : list of str

    """
    p = _parse(folder, mapping)
    return p.frames, p.files, p.errors, p.warnings


# ---------------------------------------------------------------------- importing
def import_hubspot(
    store,
    folder: PathLike,
    *,
    mapping: Mapping[str, Mapping[str, str | None]] | None = None,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "hubspot import",
    allow_future: bool = False,
) -> VendorImport:
    """Import a HubSpot export folder in one transaction; update rows already imported.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    folder
        The export folder; see the module docstring for the files read.
    mapping
        Mapping overrides (:func:`load_hubspot_mapping`): per export ``{label: field}``,
        ``"stages"`` ``{old stage: new stage}``, ``"status"`` ``{stage: status}``.
    on_error
        ``"raise"``: any bad row raises :class:`crmkit.errors.ValidationError` and nothing
        is written; ``"skip"``: the good rows are written and the rejected ones go to
        ``rejects_path``.
    rejects_path
        CSV of the rejected rows with file, line and reasons.
    changed_by
        Name recorded in the deal history of the import.
    allow_future
        Accept dates more than a year ahead.

    Returns
    -------
    VendorImport

    Raises
    ------
    crmkit.errors.ValidationError
        Listing every bad row (file, line, HubSpot column, reason), nothing written.
    FileFormatError
        For a missing folder or deals export, or unreadable files.

    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    mapping = dict(mapping or {})
    renames = dict(mapping.get("stages") or {})
    parsed = _parse(folder, mapping)
    _warn_renamed(store, parsed, renames)
    fields = {kind: dict(m) for kind, m in HUBSPOT_FIELDS.items()}
    for kind, m in mapping.items():
        if kind in fields:
            fields[kind].update(m)
    back = {_ENTITY[k]: {d: s for s, d in m.items() if d} for k, m in fields.items()}
    back["deal_history"] = {"changed_at": "Date entered", "new_value": "Date entered"}
    return import_frames(
        store,
        parsed.frames,
        parsed.files,
        parsed.errors,
        parsed.warnings,
        source="HubSpot",
        folder=Path(folder),
        back=back,
        renames=renames,
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        allow_future=allow_future,
    )


def _warn_renamed(store, parsed: _Parsed, renames: Mapping[str, str]) -> None:
    """Warn of stored stages of the export's pipelines that HubSpot no longer has (renamed)."""
    if "stages" not in parsed.frames or not parsed.header_stages:
        return
    now = {(p, renames.get(s, s)) for p, s in parsed.header_stages}
    st = parsed.frames["stages"]
    now |= set(zip(st["pipeline"], st["stage"], strict=True))
    pipes = {p for p, _ in now}
    stored = store.read("stages", columns=["pipeline", "stage"])
    gone = sorted(
        (p, s)
        for p, s in zip(stored["pipeline"], stored["stage"], strict=True)
        if p in pipes and (p, s) not in now
    )
    if gone:
        names = ", ".join(f"{s!r} ({p})" for p, s in gone)
        parsed.warnings.append(
            f"stage(s) {names} stored by an earlier import are no longer in HubSpot's export "
            "(renamed or deleted); their deals move to the new stage and the move is recorded "
            'as history. To keep the old name, use --mapping {"stages": {"new name": "old name"}}'
        )


__all__ = [
    "HUBSPOT_FIELDS",
    "find_exports",
    "hubspot_frames",
    "import_hubspot",
    "load_hubspot_mapping",
]
