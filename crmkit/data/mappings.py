"""Ready mappings for public datasets, imported through the same validated path as any file.

- Maven Analytics "CRM Sales Opportunities" (``maven_crm/``): accounts, a ``maven``
  pipeline of stages and deals (status from ``deal_stage`` Won/Lost, stage for open
  deals, team = the agent's manager).
- CDNOW purchase history (``cdnow/CDNOW_master.txt`` or ``CDNOW_sample.txt``): accounts
  and orders.

Each dataset's known quirks are reported as warnings in the :class:`~crmkit.data.io.ImportResult`,
never as crashes. The data are not shipped with crmkit; by default they are looked up
in ``../shared/datasets`` beside the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from crmkit.data.cdnow import DATASETS_DIR, read_cdnow_file
from crmkit.data.io import ImportResult, import_frames
from crmkit.data.reading import FileFormatError, PathLike, read_table

#: Default folder of the shared datasets (beside the project checkout).
DATASETS = DATASETS_DIR

#: The Maven pipeline: stage, order and the configured win probability of an open deal there.
#: Won and lost deals keep the last open stage they reached (Engaging) with status won/lost.
MAVEN_PIPELINE = "maven"
MAVEN_STAGES = (("Prospecting", 1, 0.2), ("Engaging", 2, 0.6))
#: Spellings in the Maven files corrected on import.
MAVEN_PRODUCT_FIXES = {"GTXPro": "GTX Pro"}
MAVEN_SECTOR_FIXES = {"technolgy": "technology"}


def _folder(path: PathLike | None, name: str) -> Path:
    """Return the dataset folder, or raise a clear error when it is absent."""
    p = Path(path) if path is not None else DATASETS / name
    if not p.exists():
        raise FileFormatError(
            f"dataset folder {p.resolve()} not found; pass its path (it is not shipped with crmkit)"
        )
    return p


# ---------------------------------------------------------------------- mapping files
def load_mapping(path: PathLike) -> dict[str, str | None]:
    """Read a column mapping from a JSON file: ``{"file column": "field", ...}``.

    A ``null`` target drops the column (as ``None`` in :func:`crmkit.data.reading.apply_mapping`).

    Parameters
    ----------
    path
        The JSON file (UTF-8).

    Returns
    -------
    dict
        ``{file column: field or None}``.

    Raises
    ------
    FileFormatError
        In one line naming the file: missing, unreadable, not JSON (with line and column),
        or not an object of text to text.

    """
    p = Path(path)
    where = f"mapping file {p}"
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FileFormatError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{where}: is a folder, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{where}: is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        pos = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        raise FileFormatError(f"{where}: is not valid JSON: {msg}{pos}") from None
    shape = 'a JSON object of file column to field, e.g. {"Company": "name"}'
    if not isinstance(data, dict):
        raise FileFormatError(f"{where}: must be {shape}, not a {type(data).__name__}")
    for src, dst in data.items():
        if not src.strip() or not (dst is None or (isinstance(dst, str) and dst.strip())):
            raise FileFormatError(
                f"{where}: must be {shape} (null drops a column); {src!r} maps to {dst!r}"
            )
    return {src.strip(): dst.strip() if isinstance(dst, str) else None for src, dst in data.items()}


# ---------------------------------------------------------------------- Maven CRM
def maven_frames(
    folder: PathLike | None = None, *, fill_missing_amounts: bool = False
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Map the Maven CRM files to crmkit's stages, accounts and deals.

    Parameters
    ----------
    folder
        The ``maven_crm`` folder (default ``../shared/datasets/maven_crm``).
    fill_missing_amounts
        Give open and lost deals (which have no ``close_value``) their product's list
        price as amount. Default: leave their amount empty.

    Returns
    -------
    frames : dict
        ``{"stages", "accounts", "deals"}`` frames of text cells; the ``accounts`` and
        ``deals`` indexes hold line numbers of ``accounts.csv`` and ``sales_pipeline.csv``.
    warnings : list of str
        The quirks found and what was done about each.

    """
    d = _folder(folder, "maven_crm")
    warnings: list[str] = []
    pipe = read_table(d / "sales_pipeline.csv")
    accounts_raw = read_table(d / "accounts.csv")
    teams = read_table(d / "sales_teams.csv")
    products = read_table(d / "products.csv")

    # accounts
    sector = accounts_raw["sector"]
    misspelt = sector.isin(list(MAVEN_SECTOR_FIXES))
    if misspelt.any():
        found = ", ".join(sorted(set(sector[misspelt])))
        warnings.append(
            f"accounts.csv: sector {found!r} on {int(misspelt.sum())} accounts is misspelt; "
            f"imported as {', '.join(sorted(set(sector[misspelt].map(MAVEN_SECTOR_FIXES))))!r}"
        )
    accounts = pd.DataFrame(
        {
            "account_id": accounts_raw["account"],
            "name": accounts_raw["account"],
            "industry": sector.replace(MAVEN_SECTOR_FIXES),
            "country": accounts_raw["office_location"],
            "created_at": accounts_raw["year_established"] + "-01-01",
        },
        index=accounts_raw.index,
    )
    warnings.append(
        "accounts.csv: created_at is 1 January of year_established; revenue, employees and "
        "subsidiary_of have no account field and are not imported"
    )

    # deals
    stage = pipe["deal_stage"]
    status = stage.str.lower().where(stage.isin(["Won", "Lost"]), "open")
    is_open = status == "open"
    product = pipe["product"]
    respelt = product.isin(list(MAVEN_PRODUCT_FIXES))
    if respelt.any():
        known_products = set(products["product"])
        for bad, good in MAVEN_PRODUCT_FIXES.items():
            n = int((product == bad).sum())
            if n and good in known_products:
                warnings.append(
                    f"sales_pipeline.csv: product {bad!r} on {n} deals is spelt {good!r} in "
                    f"products.csv; imported as {good!r}"
                )
    product = product.replace(MAVEN_PRODUCT_FIXES)
    as_of = pd.to_datetime(pipe["close_date"]).max()
    created = pipe["engage_date"]
    no_engage = created.isna()
    if no_engage.any():
        warnings.append(
            f"sales_pipeline.csv: {int(no_engage.sum())} open deals "
            f"({', '.join(sorted(set(stage[no_engage])))}) have no engage_date; created_at set "
            f"to the data's last date {as_of.date()}"
        )
        created = created.fillna(as_of.strftime("%Y-%m-%d"))
    amount = pipe["close_value"]
    no_value = is_open & amount.isna()
    if no_value.any():
        warnings.append(
            f"sales_pipeline.csv: {int(no_value.sum())} open deals have no close_value"
            + ("; amount set to the product's list price" if fill_missing_amounts else "")
        )
    lost_zero = (status == "lost") & (pd.to_numeric(amount) == 0)
    if lost_zero.any():
        warnings.append(
            f"sales_pipeline.csv: {int(lost_zero.sum())} lost deals have close_value 0 (the "
            "deal's size is unknown); amount left empty"
            + ("; set to the product's list price" if fill_missing_amounts else "")
        )
        amount = amount.where(~lost_zero)
    if fill_missing_amounts:
        price = product.map(products.set_index("product")["sales_price"])
        amount = amount.fillna(price)
    no_account = pipe["account"].isna()
    if no_account.any():
        by = pipe.loc[no_account, "deal_stage"].value_counts()
        detail = ", ".join(f"{n} {s}" for s, n in by.items())
        warnings.append(
            f"sales_pipeline.csv: {int(no_account.sum())} deals have no account ({detail}); "
            "imported without account_id"
        )
    manager = pipe["sales_agent"].map(teams.set_index("sales_agent")["manager"])
    no_team = manager.isna()
    if no_team.any():
        warnings.append(
            f"sales_pipeline.csv: {int(no_team.sum())} deals have an agent missing from "
            "sales_teams.csv; imported without team"
        )
    deals = pd.DataFrame(
        {
            "deal_id": pipe["opportunity_id"],
            "account_id": pipe["account"],
            "name": product,
            "owner": pipe["sales_agent"],
            "team": manager,
            "pipeline": MAVEN_PIPELINE,
            "stage": stage.where(is_open, "Engaging"),
            "status": status,
            "amount": amount,
            "created_at": created,
            "expected_close_date": pipe["close_date"],
            "closed_at": pipe["close_date"].where(~is_open),
            "source": "maven_crm",
        },
        index=pipe.index,
    )
    stages = pd.DataFrame(
        [(MAVEN_PIPELINE, s, o, p) for s, o, p in MAVEN_STAGES],
        columns=["pipeline", "stage", "stage_order", "probability"],
    )
    return {"stages": stages, "accounts": accounts, "deals": deals}, warnings


def import_maven(
    store,
    folder: PathLike | None = None,
    *,
    fill_missing_amounts: bool = False,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "import",
) -> ImportResult:
    """Import the Maven CRM dataset (stages, accounts, deals) in one transaction.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    folder
        The ``maven_crm`` folder (default ``../shared/datasets/maven_crm``).
    fill_missing_amounts
        See :func:`maven_frames`.
    on_error, rejects_path, changed_by
        As in :func:`crmkit.data.io.import_file`.

    Returns
    -------
    ImportResult
        Rows written and the dataset's quirks as ``warnings``.

    """
    frames, warnings = maven_frames(folder, fill_missing_amounts=fill_missing_amounts)
    stored = store.known_keys("stages")
    st = frames["stages"]
    keep = [(p, s) not in stored for p, s in zip(st["pipeline"], st["stage"], strict=True)]
    frames["stages"] = st.loc[keep]
    return import_frames(
        store,
        frames,
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        warnings=warnings,
    )


# ---------------------------------------------------------------------- CDNOW
def cdnow_frames(path: PathLike | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Map a CDNOW transaction file to crmkit's accounts and orders.

    Parameters
    ----------
    path
        ``CDNOW_master.txt`` (with a header: customer_id, date, number_of_cds,
        dollar_value) or ``CDNOW_sample.txt`` (no header: master_id, sample_id, date,
        number_of_cds, dollar_value); a folder means its ``CDNOW_sample.txt``.
        Default ``../shared/datasets/cdnow/CDNOW_sample.txt``.

    Returns
    -------
    frames : dict
        ``{"accounts", "orders"}``; indexes hold the file's line numbers. An account is
        created per customer at its first purchase; order ids are
        ``<customer>-<n>`` in file order.
    warnings : list of str

    """
    p = Path(path) if path is not None else _folder(None, "cdnow") / "CDNOW_sample.txt"
    if p.is_dir():
        p = p / "CDNOW_sample.txt"
    raw = read_cdnow_file(p)
    d = raw["date"]
    iso = d.str[:4] + "-" + d.str[4:6] + "-" + d.str[6:8]
    seq = raw.groupby("customer_id").cumcount() + 1
    orders = pd.DataFrame(
        {
            "order_id": raw["customer_id"] + "-" + seq.astype(str),
            "account_id": raw["customer_id"],
            "ordered_at": iso,
            "amount": raw["dollar_value"],
        },
        index=raw.index,
    )
    firsts = ~raw["customer_id"].duplicated()
    first_day = (
        pd.DataFrame({"c": raw["customer_id"], "d": iso}).groupby("c")["d"].min()
    )  # the file is sorted by date within a customer; min() makes sure
    accounts = pd.DataFrame(
        {
            "account_id": raw.loc[firsts, "customer_id"],
            "name": "CDNOW customer " + raw.loc[firsts, "customer_id"],
            "created_at": raw.loc[firsts, "customer_id"].map(first_day),
        },
        index=raw.index[firsts.to_numpy()],
    )
    warnings = ["number_of_cds has no order field and is not imported"]
    same_day = raw.duplicated(["customer_id", "date"])
    if same_day.any():
        warnings.append(
            f"{int(same_day.sum())} purchases fall on a day the same customer already bought "
            "on; kept as separate orders (the purchase summary counts purchase days)"
        )
    zero = pd.to_numeric(raw["dollar_value"], errors="coerce") == 0
    if zero.any():
        warnings.append(f"{int(zero.sum())} purchases have dollar_value 0; imported as 0")
    return {"accounts": accounts, "orders": orders}, warnings


def import_cdnow(
    store,
    path: PathLike | None = None,
    *,
    on_error: str = "raise",
    rejects_path: PathLike | None = None,
    changed_by: str = "import",
) -> ImportResult:
    """Import a CDNOW file as accounts and orders in one transaction.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    path
        See :func:`cdnow_frames`.
    on_error, rejects_path, changed_by
        As in :func:`crmkit.data.io.import_file`.

    Returns
    -------
    ImportResult

    """
    frames, warnings = cdnow_frames(path)
    return import_frames(
        store,
        frames,
        on_error=on_error,
        rejects_path=rejects_path,
        changed_by=changed_by,
        warnings=warnings,
    )


__all__ = [
    "MAVEN_STAGES",
    "cdnow_frames",
    "import_cdnow",
    "import_maven",
    "load_mapping",
    "maven_frames",
]
