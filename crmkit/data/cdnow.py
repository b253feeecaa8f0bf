"""CDNOW loaders (the standard buy-till-you-die data) and a simulator of BG/NBD + Gamma-Gamma.

CDNOW files live outside the project (``../shared/datasets/cdnow`` beside the clone, or
the folder named by the ``CRMKIT_CDNOW_DIR`` environment variable); crmkit does not ship
them. Times are in weeks, as in Fader, Hardie & Lee (2005).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from crmkit.data.purchases import purchase_summary
from crmkit.data.reading import LINE, FileFormatError
from crmkit.errors import CrmkitError
from crmkit.store.engine import project_root

#: The reference datasets beside the project (``../shared/datasets``; not shipped).
DATASETS_DIR = project_root().parent / "shared" / "datasets"

#: Calibration period of the published CDNOW analyses: 1997-01-01 .. 1997-09-30 (39 weeks).
CALIBRATION_END = pd.Timestamp("1997-09-30")
#: End of the CDNOW data (78 weeks).
OBSERVATION_END = pd.Timestamp("1998-06-30")


def cdnow_dir(path: str | Path | None = None) -> Path:
    """Folder holding the CDNOW files.

    Parameters
    ----------
    path
        Explicit folder; default ``$CRMKIT_CDNOW_DIR`` or ``../shared/datasets/cdnow``
        beside the project.

    Returns
    -------
    pathlib.Path
        An existing folder.

    Raises
    ------
    crmkit.errors.CrmkitError
        When the folder does not exist.
    """
    if path is None:
        env = os.environ.get("CRMKIT_CDNOW_DIR")
        path = env or (DATASETS_DIR / "cdnow")
    p = Path(path).resolve()
    if not p.is_dir():
        raise CrmkitError(f"CDNOW data not found at {p}; pass path= or set CRMKIT_CDNOW_DIR")
    return p


def load_cdnow_summary(path: str | Path | None = None) -> pd.DataFrame:
    """The published 2,357-customer calibration summary (weeks), with mean repeat spend.

    Parameters
    ----------
    path
        Folder of the CDNOW files (see :func:`cdnow_dir`).

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``frequency``, ``recency``, ``T``, ``monetary_value``.
    """
    df = pd.read_csv(cdnow_dir(path) / "cdnow_customers_summary_with_transactions.csv")
    return pd.DataFrame(
        {
            "customer_id": df["ID"].astype("int64"),
            "frequency": df["x"].astype("int64"),
            "recency": df["t_x"].astype(float),
            "T": df["T"].astype(float),
            "monetary_value": df["zbar"].astype(float),
        }
    )


#: File of each CDNOW transaction set in the CDNOW folder.
CDNOW_FILES = {"sample": "CDNOW_sample.txt", "master": "CDNOW_master.txt"}
#: Columns of the two layouts of the CDNOW transaction files, by number of fields.
CDNOW_COLUMNS = {
    4: ["customer_id", "date", "number_of_cds", "dollar_value"],
    5: ["customer_id", "sample_id", "date", "number_of_cds", "dollar_value"],
}


def read_cdnow_file(path: str | Path) -> pd.DataFrame:
    """Read a CDNOW transaction file as published, every field as text.

    The one reader of the CDNOW transaction files: :func:`load_cdnow_transactions`
    types its fields, :func:`crmkit.data.mappings.cdnow_frames` maps them to crmkit's
    entities for a validated import.

    Parameters
    ----------
    path
        ``CDNOW_master.txt`` (a header, then customer_id, date, number_of_cds,
        dollar_value) or ``CDNOW_sample.txt`` (no header; master id, sample id, date,
        number_of_cds, dollar_value); the layout is told by the fields, not the name.

    Returns
    -------
    pandas.DataFrame
        Text columns ``customer_id`` (the master id), [``sample_id``,] ``date``
        (``YYYYMMDD``), ``number_of_cds``, ``dollar_value``, indexed by the file's line
        numbers (1-based, index name ``line``).

    Raises
    ------
    crmkit.data.reading.FileFormatError
        When the file is missing, empty or has neither layout.
    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p.resolve()}: no such file (CDNOW is not shipped with crmkit)")
    first = p.read_text(encoding="ascii", errors="replace").lstrip().split("\n", 1)[0].split()
    header = bool(first) and not first[0].isdigit()
    raw = pd.read_csv(p, sep=r"\s+", header=None, skiprows=1 if header else 0, dtype=str)
    if raw.empty:
        raise FileFormatError(f"{p}: has no data rows")
    if raw.shape[1] not in CDNOW_COLUMNS:
        raise FileFormatError(
            f"{p}: expected 4 (master) or 5 (sample) whitespace-separated columns, "
            f"found {raw.shape[1]}"
        )
    raw.columns = CDNOW_COLUMNS[raw.shape[1]]
    raw.index = pd.RangeIndex(2 if header else 1, len(raw) + (2 if header else 1), name=LINE)
    return raw


def load_cdnow_transactions(which: str = "sample", path: str | Path | None = None) -> pd.DataFrame:
    """CDNOW transactions, one row per order line as published.

    Parameters
    ----------
    which
        ``"sample"`` (2,357 customers, numbered by their sample id) or ``"master"``
        (23,570 customers).
    path
        Folder of the CDNOW files.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (int), ``date`` (datetime64), ``n_cds`` (int), ``amount`` (float).
    """
    if which not in CDNOW_FILES:
        raise CrmkitError(f"which must be 'sample' or 'master', not {which!r}")
    raw = read_cdnow_file(cdnow_dir(path) / CDNOW_FILES[which])
    ids = raw["sample_id"] if which == "sample" else raw["customer_id"]
    return pd.DataFrame(
        {
            "customer_id": ids.astype("int64").to_numpy(),
            "date": pd.to_datetime(raw["date"], format="%Y%m%d").to_numpy(),
            "n_cds": raw["number_of_cds"].astype("int64").to_numpy(),
            "amount": raw["dollar_value"].astype(float).to_numpy(),
        }
    )


def merge_same_day(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and day: amounts summed (the models count purchase days).

    Parameters
    ----------
    transactions
        ``customer_id``, ``date``, ``amount``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``date`` (day), ``amount``, sorted.
    """
    tx = transactions.assign(date=transactions["date"].dt.normalize())
    out = tx.groupby(["customer_id", "date"], as_index=False)["amount"].sum()
    return out.sort_values(["customer_id", "date"], ignore_index=True)


def summary_from_transactions(
    transactions: pd.DataFrame,
    calibration_end: object = CALIBRATION_END,
    observation_end: object | None = None,
    *,
    time_unit: str = "W",
    first_purchase_by: object | None = None,
) -> pd.DataFrame:
    """Purchase summary at a cut-off (same-day purchases merged), optionally with a holdout.

    The calibration part is :func:`crmkit.data.purchases.purchase_summary`.

    Parameters
    ----------
    transactions
        ``customer_id``, ``date``, ``amount``.
    calibration_end
        Last day of the calibration period (inclusive).
    observation_end
        Last day of the holdout period (inclusive); adds ``frequency_holdout`` and
        ``monetary_holdout`` (spend in the holdout).
    time_unit
        ``"D"``, ``"W"`` or ``"M"`` for recency and T.
    first_purchase_by
        Keep only customers whose first purchase is on or before this day (default: all
        with a purchase by ``calibration_end``).

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``first_purchase``, ``frequency``, ``recency``, ``T``,
        ``monetary_value`` (mean repeat spend, 0 without repeats) [, holdout columns].
    """
    cal_end = pd.Timestamp(calibration_end)
    summary = purchase_summary(
        transactions, cal_end, time_unit=time_unit, first_purchase_by=first_purchase_by
    )
    out = summary[
        ["customer_id", "first_purchase", "frequency", "recency", "T", "monetary_value"]
    ].copy()
    if observation_end is not None:
        days = merge_same_day(transactions)
        hold = days[(days["date"] > cal_end) & (days["date"] <= pd.Timestamp(observation_end))]
        hg = hold.groupby("customer_id")
        out["frequency_holdout"] = (
            out["customer_id"].map(hg.size()).fillna(0).astype("int64").to_numpy()
        )
        out["monetary_holdout"] = out["customer_id"].map(hg["amount"].sum()).fillna(0.0).to_numpy()
    return out


def weekly_repeat_transactions(
    transactions: pd.DataFrame, start: object, end: object, first_purchase_by: object
) -> pd.Series:
    """Weekly count of repeat purchase days of the customers acquired by a date.

    Parameters
    ----------
    transactions
        ``customer_id``, ``date``.
    start, end
        First and last day counted (inclusive); weeks start at ``start``.
    first_purchase_by
        The cohort: customers whose first purchase is on or before this day.

    Returns
    -------
    pandas.Series
        Counts indexed by week number (0 = the week starting at ``start``).
    """
    days = merge_same_day(transactions.assign(amount=0.0))
    first = days.groupby("customer_id")["date"].transform("min")
    cohort = first <= pd.Timestamp(first_purchase_by)
    rep = days[cohort & (days["date"] > first)]
    s, e = pd.Timestamp(start), pd.Timestamp(end)
    rep = rep[(rep["date"] >= s) & (rep["date"] <= e)]
    week = ((rep["date"] - s).dt.days // 7).astype("int64")
    n_weeks = (e - s).days // 7 + 1
    return week.value_counts().reindex(range(n_weeks), fill_value=0).sort_index()


def simulate_bgnbd_gammagamma(
    n_customers: int,
    *,
    r: float = 0.243,
    alpha: float = 4.414,
    a: float = 0.793,
    b: float = 2.426,
    p: float = 6.25,
    q: float = 3.74,
    gamma: float = 15.44,
    T_max: float = 39.0,
    T_min: float = 27.0,
    holdout: float = 0.0,
    days_per_unit: float = 7.0,
    seed: int | None = None,
) -> pd.DataFrame:
    """Simulate customers from BG/NBD purchases and Gamma-Gamma spend with known truth.

    Customers are acquired uniformly so that T is between ``T_min`` and ``T_max``;
    times are on a grid of whole days (``days_per_unit`` days per time unit), as in real
    summaries: T is drawn and then put on the grid before the purchases are simulated
    (so it is exact), and the recency is rounded to the *nearest* day. Rounding the
    recency down (as this function did before) shifts every t_x by half a day on average;
    at a million customers that moved the fitted r and alpha 5-7 standard errors away
    from the truth. Defaults are the published CDNOW estimates (weeks).

    Parameters
    ----------
    n_customers
        Number of customers.
    r, alpha, a, b
        BG/NBD parameters.
    p, q, gamma
        Gamma-Gamma parameters.
    T_max, T_min
        Range of the observation time per customer.
    holdout
        Length of a holdout period after T; adds ``frequency_holdout``.
    days_per_unit
        Grid of the times (days per time unit); 0 for continuous times.
    seed
        Random seed.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``frequency``, ``recency``, ``T``, ``monetary_value``, the true
        ``lam``, ``p_drop``, ``alive`` (at T) and ``frequency_holdout`` when asked.
    """
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    T = rng.uniform(T_min, T_max, n)
    if days_per_unit:
        T = np.floor(T * days_per_unit) / days_per_unit
    lam = rng.gamma(r, 1.0 / alpha, n)
    pd_ = rng.beta(a, b, n)
    # Dies right after repeat purchase D ~ Geometric(p) (support 1, 2, ...).
    D = rng.geometric(pd_)
    N = rng.poisson(lam * T)
    x = np.minimum(N, D)
    # The x-th of N uniform event times on (0, T] is T * Beta(x, N - x + 1).
    bx = np.where(x > 0, x, 1)
    tx = np.where(x > 0, T * rng.beta(bx, np.maximum(N - x, 0) + 1), 0.0)
    if days_per_unit:
        # Nearest day, i.e. each day's bin represented by its midpoint: unbiased, and never
        # beyond T (a grid point >= t_x). Flooring biased t_x low by half a day.
        tx = np.round(tx * days_per_unit) / days_per_unit
    alive = x < D
    nu = rng.gamma(q, 1.0 / gamma, n)
    mean_spend = np.where(x > 0, rng.gamma(p * np.maximum(x, 1), 1.0) / (nu * np.maximum(x, 1)), 0)
    out = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype="int64"),
            "frequency": x.astype("int64"),
            "recency": tx,
            "T": T,
            "monetary_value": mean_spend,
            "lam": lam,
            "p_drop": pd_,
            "alive": alive,
        }
    )
    if holdout > 0:
        fut = rng.poisson(lam * holdout)
        out["frequency_holdout"] = np.where(alive, np.minimum(fut, D - x), 0).astype("int64")
    return out
