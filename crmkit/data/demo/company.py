"""The seeded demo company: realistic CRM data generated from a documented model with known truth.

``generate_demo`` returns one DataFrame per store entity and the true parameters that
produced them (``docs/demo_company.md`` describes the model); ``build_demo`` writes both into
a :class:`crmkit.Store`, the truth under the meta key ``"demo_truth"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmkit.data.demo import params
from crmkit.data.demo.calls import manager_calls, quota_frame
from crmkit.data.demo.clock import Clock, padded_ids, take, vocab
from crmkit.data.demo.customers import (
    OWNERS,
    account_domains,
    account_names,
    draw_accounts,
    draw_contacts,
    simulate_orders,
)
from crmkit.data.demo.marketing import (
    arrival_intensity,
    channel_spend_frame,
    draw_arrivals,
    draw_marketing,
)
from crmkit.data.demo.pipeline import assign_accounts, build_deal_frames, simulate_paths
from crmkit.data.demo.truth import build_truth, true_win_probability
from crmkit.errors import RowError, ValidationError
from crmkit.store.schema import LOAD_ORDER

__all__ = [
    "DEMO_ENTITIES",
    "TRUTH_KEY",
    "DemoCompany",
    "build_demo",
    "generate_demo",
    "true_win_probability",
]

#: The entities of the demo company, in load order (quotas and calls refer to nothing).
DEMO_ENTITIES = (
    *(name for name in LOAD_ORDER if name not in ("segment_definitions", "exchange_rates")),
    "quotas",
    "forecast_calls",
)
#: Meta key under which :func:`build_demo` stores the truth.
TRUTH_KEY = "demo_truth"


@dataclass
class DemoCompany:
    """A generated company: one frame per store entity and the true parameters.

    Attributes
    ----------
    frames
        ``{entity: DataFrame}`` with the store schema's column names.
    truth
        JSON-serialisable parameters of the generative model (see ``docs/demo_company.md``).

    """

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    truth: dict = field(default_factory=dict)


def generate_demo(
    *,
    n_customers: int = 2000,
    n_deals: int = 3000,
    start: str = "2022-11-01",
    end: str = "2026-10-31",
    seed: int = 42,
) -> DemoCompany:
    """Generate the demo company from its documented generative model.

    Parameters
    ----------
    n_customers
        Number of accounts (each a customer with a first order at ``created_at``).
    n_deals
        Number of deals created over the period (exactly).
    start, end
        First and last day of the period (``end`` inclusive; it is also the as-of date:
        deals still open then stay open).
    seed
        Seed of the random generator; the same seed gives the same company.

    Returns
    -------
    DemoCompany
        Frames for accounts, contacts, stages, campaigns, channel_spend, deals,
        deal_history (forecast categories included), activities, orders, quotas and
        forecast_calls (the team managers' calls), and the truth.

    Raises
    ------
    crmkit.errors.ValidationError
        For a size below its minimum, an unreadable date or an end not after the start.

    Examples
    --------
    >>> demo = generate_demo(n_customers=200, n_deals=300, seed=1)
    >>> sorted(demo.frames) == sorted(DEMO_ENTITIES)
    True

    """
    problems = []
    if n_customers < 1:
        problems.append(RowError(None, "n_customers", "must be at least 1", n_customers))
    if n_deals < 0:
        problems.append(RowError(None, "n_deals", "must not be negative", n_deals))
    try:
        if pd.Timestamp(end) <= pd.Timestamp(start):
            problems.append(RowError(None, "end", f"must be after start {start}", end))
    except (TypeError, ValueError):
        problems.append(RowError(None, "start/end", "not a date", f"{start} / {end}"))
    if problems:
        raise ValidationError("demo", problems)
    clock = Clock(start, end)
    # streams 0-5 as before the forecast-call data came (their draws are unchanged)
    rng_acc, rng_mkt, rng_arr, rng_deal, rng_ord, rng_con, rng_cat, _rng_call = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)
    )
    acc = draw_accounts(rng_acc, clock, n_customers)
    scale = n_deals / params.REFERENCE_DEALS if n_deals else 1.0
    mk = draw_marketing(rng_mkt, clock, scale)
    arr = arrival_intensity(clock, mk, max(n_deals, 1), scale)
    new = draw_arrivals(rng_arr, clock, mk, arr, n_deals)
    deal_account = assign_accounts(rng_deal, acc, new.t)  # may move an acquisition earlier
    orders = simulate_orders(rng_ord, clock, acc)
    paths = simulate_paths(rng_deal, clock, acc, new, deal_account)

    account_ids = padded_ids("A", n_customers)
    names = account_names(acc)
    frames: dict[str, pd.DataFrame] = {}
    frames["accounts"] = pd.DataFrame(
        {
            "account_id": account_ids,
            "name": names,
            "segment": take(vocab(params.SEGMENTS), acc.segment),
            "industry": take(vocab(params.INDUSTRIES), acc.industry),
            "country": take(vocab(params.COUNTRIES), acc.country),
            "owner": take(vocab(OWNERS), acc.owner),
            "created_at": clock.to_datetime(acc.t0).astype("datetime64[ns]"),
        }
    )
    frames["contacts"] = draw_contacts(rng_con, account_ids, account_domains(acc))
    frames["stages"] = pd.DataFrame(
        {
            "pipeline": params.PIPELINE,
            "stage": list(params.STAGES),
            "stage_order": pd.array(np.arange(1, len(params.STAGES) + 1), dtype="Int64"),
            "probability": list(params.CONFIGURED_PROBABILITY),
        }
    )
    frames["campaigns"] = mk.campaigns[
        ["campaign_id", "name", "channel", "start_date", "end_date", "budget", "cost"]
    ]
    frames["channel_spend"] = channel_spend_frame(mk)
    campaign_ids = vocab(mk.campaigns["campaign_id"])
    frames.update(
        build_deal_frames(
            rng_deal, clock, new, paths, account_ids, names, campaign_ids, rng_categories=rng_cat
        )
    )
    frames["orders"] = _orders_frame(clock, orders, paths, frames["deals"], account_ids)
    frames["quotas"] = quota_frame(clock, frames["deals"])
    frames["forecast_calls"] = manager_calls(clock, frames["deals"], frames["deal_history"])
    truth = build_truth(
        clock=clock, seed=seed, n_customers=n_customers, n_deals=n_deals, marketing=mk, arrivals=arr
    )
    return DemoCompany(frames={k: frames[k] for k in DEMO_ENTITIES}, truth=truth)


def _orders_frame(clock, orders, paths, deals: pd.DataFrame, account_ids) -> pd.DataFrame:
    """Repeat-purchase orders plus one order per won deal, in time order."""
    won = np.flatnonzero((deals["status"] == "won").to_numpy())
    account = np.concatenate((orders.account, paths.account[won]))
    t = np.concatenate((orders.t, paths.close[won]))
    amount = np.concatenate((orders.amount, paths.realised[won]))
    deal_index = np.concatenate((np.full(len(orders.t), -1), won))
    at = clock.to_datetime(t).astype("datetime64[ns]")
    order = np.argsort(at.astype(np.int64), kind="stable")
    return pd.DataFrame(
        {
            "order_id": padded_ids("O", len(t), max(8, len(str(len(t))))),
            "account_id": take(account_ids, account[order]),
            "ordered_at": at[order],
            "amount": amount[order],
            "deal_id": take(deals["deal_id"].array, deal_index[order]),
        }
    )


def build_demo(store, *, validate: bool = True, **kwargs) -> DemoCompany:
    """Generate the demo company and write it into a store in one transaction.

    Parameters
    ----------
    store
        A :class:`crmkit.Store` (normally empty).
    validate
        Check every row with the import validator before writing (turn off for
        benchmark sizes; the generator's output is valid by construction).
    **kwargs
        Passed to :func:`generate_demo` (``n_customers``, ``n_deals``, ``start``,
        ``end``, ``seed``).

    Returns
    -------
    DemoCompany
        What was written; the truth is also saved as meta key ``"demo_truth"``.

    """
    demo = generate_demo(**kwargs)
    frames = dict(demo.frames)
    # let the database number the history rows (a PostgreSQL sequence must stay in step)
    frames["deal_history"] = frames["deal_history"].drop(columns=["history_id"])
    frames["forecast_calls"] = frames["forecast_calls"].drop(columns=["call_id"])
    if validate:
        _validate_frames(store, frames)
    # the frames are written as generated: the validator's clean copy would carry an empty
    # history_id column, which PostgreSQL rejects for the autoincrement key
    store.insert_many(frames, changed_by="demo", validate=False)
    store.set_meta(TRUTH_KEY, demo.truth)
    return demo


def _validate_frames(store, frames: dict[str, pd.DataFrame]) -> None:
    """Check every frame with the store's validator, references resolved across the batch."""
    from crmkit.store.schema import entity
    from crmkit.store.validation import validate

    pending: dict[str, set] = {}

    def known(ref: str) -> set:
        if ref not in pending:
            pending[ref] = set(store.known_keys(ref))
        return pending[ref]

    errors: list[RowError] = []
    for name, df in frames.items():
        result = validate(name, df, known_keys=known)
        errors.extend(result.errors)
        key = entity(name).key
        if set(key) <= set(df.columns):
            keys = df[key[0]] if len(key) == 1 else zip(*(df[k] for k in key), strict=True)
            known(name).update(keys)
    if errors:
        raise ValidationError(", ".join(frames), errors)
