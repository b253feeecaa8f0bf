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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.data.reading import LINE, FileFormatError, PathLike, read_table_with_errors
from crmkit.data.salesforce_rates import corporate_currency, salesforce_rates
from crmkit.data.vendor import (
    VendorImport,
    forecast_category,
    import_frames,
    is_given,
    mapped_fields,
    read_mapping_json,
)
from crmkit.errors import RowError
from crmkit.store.frames import value_to_text
from crmkit.store.settings import get_setting

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
    "Campaign": {
        "Id": "campaign_id",
        "Name": "name",
        "Type": "channel",
        "StartDate": "start_date",
        "EndDate": "end_date",
        "BudgetedCost": "budget",
        "ActualCost": "cost",
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
        "CampaignId": "campaign_id",
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
    "Campaign": ("CreatedDate",),
    "Opportunity": ("IsClosed", "IsWon", "Probability"),
    "OpportunityHistory": ("Id", "Probability"),
}
#: Salesforce fields holding record Ids (normalised to 18 characters).
ID_FIELDS = ("Id", "AccountId", "OwnerId", "OpportunityId", "RecordTypeId", "CampaignId")
#: Pipeline of deals when the export has no record types.
DEFAULT_PIPELINE = "salesforce"
#: Objects read, in the order they load.
OBJECTS = ("Account", "Contact", "Campaign", "Opportunity", "OpportunityHistory")
#: Channel of a campaign without a ``Type``.
NO_CHANNEL = "(none)"
_ENTITY = {
    "Account": "accounts",
    "Contact": "contacts",
    "Campaign": "campaigns",
    "Opportunity": "deals",
    "OpportunityHistory": "deal_history",
}
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


#: What a Salesforce folder import did (the vendor importers' shared result).
SalesforceImport = VendorImport


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
    shape = 'an object like {"Opportunity": {"Pipeline__c": "pipeline"}}'
    data, where = read_mapping_json(path, shape)
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
        out[obj] = mapped_fields(where, obj, fields, _ENTITY[obj])
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
) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[RowError], list[str]]:
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
    files : dict
        ``{entity: file name}``: which file each entity comes from.
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
        elif obj == "Campaign":
            _campaign_defaults(df, f, warnings)
        elif obj == "Opportunity":
            owners(f, df)
            if "campaign_id" in df.columns and "campaigns" not in frames:
                linked = int(df["campaign_id"].notna().sum())
                df = df.drop(columns="campaign_id")
                if linked:
                    warnings.append(
                        f"Opportunity.csv: CampaignId of {linked} deal(s) not imported "
                        "(no Campaign.csv in the folder)"
                    )
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
    members = _read(d, "CampaignMember", required=False)
    if members is not None:
        warnings.append(
            f"CampaignMember.csv: {len(members.raw)} member(s) not imported (crmkit keeps "
            "campaigns and each deal's primary campaign, Opportunity.CampaignId)"
        )
    read = {
        f"{o}.csv" for o in (*OBJECTS, "User", "RecordType", "CampaignMember", "CurrencyType")
    } | {"DatedConversionRate.csv"}
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


def _campaign_defaults(df: pd.DataFrame, f: _File, warnings: list[str]) -> None:
    """Campaigns without ``Type``: channel ``(none)``; without ``StartDate``: their creation day."""
    if "channel" in df.columns:
        untyped = df["channel"].isna()
        if untyped.any():
            df.loc[untyped, "channel"] = NO_CHANNEL
            warnings.append(
                f"Campaign.csv: {int(untyped.sum())} campaign(s) without Type get channel "
                f"{NO_CHANNEL!r}"
            )
    if "start_date" in df.columns and "CreatedDate" in f.raw.columns:
        undated = df["start_date"].isna()
        if undated.any():
            df.loc[undated, "start_date"] = f.raw.loc[undated, "CreatedDate"].str[:10]


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
                    v = forecast_category(raw)
                text = value_to_text(v)
                if (fld in typed or fld == "forecast_category") and text is None and is_given(raw):
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
    rates, rate_errors = salesforce_rates(folder)
    if len(rates):
        frames["exchange_rates"] = rates
        files["exchange_rates"] = rates.attrs["files"]
        errors.extend(rate_errors)
        corporate = corporate_currency(folder)
        reporting = get_setting(store, "reporting_currency")
        if corporate and corporate != reporting:
            warnings.append(
                f"Salesforce's corporate currency is {corporate} but this database reports "
                f"in {reporting}; amounts are converted to {reporting} (change it with "
                f"`crmkit config reporting_currency={corporate}`)"
            )
    back = {_ENTITY[o]: {d: s for s, d in m.items() if d} for o, m in SALESFORCE_FIELDS.items()}
    return import_frames(
        store,
        frames,
        files,
        errors,
        warnings,
        source="Salesforce",
        folder=Path(folder),
        back=back,
        renames=renames,
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        allow_future=allow_future,
    )


__all__ = [
    "SALESFORCE_FIELDS",
    "SalesforceImport",
    "id18",
    "import_salesforce",
    "load_salesforce_mapping",
    "salesforce_frames",
]
