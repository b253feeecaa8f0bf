"""A small deal-pipeline simulator with known truth, for the forecast and backtest tests.

Deals arrive per month (Poisson, more in quarter-end months), start in the first stage,
and each month are won, lost, move one stage on, or stay, with stage-specific
probabilities (the truth); owners shift the win odds. The stage history, amounts and
close dates are written like a CRM would (``deals``, ``deal_history``, ``accounts``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STAGES = ("Qualify", "Propose", "Negotiate")
#: Monthly probabilities per stage: (win, lose, advance).
TRUTH = {
    "Qualify": (0.02, 0.15, 0.35),
    "Propose": (0.10, 0.12, 0.30),
    "Negotiate": (0.35, 0.10, 0.0),
}
OWNERS = {"ann": "north", "bob": "north", "cat": "south", "dan": "south"}


def simulate(
    n_months: int = 30,
    arrivals: float = 40.0,
    seed: int = 0,
    start: str = "2022-01-01",
    qe_boost: float = 1.0,
    owner_odds: dict[str, float] | None = None,
    win_shock: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """Simulate deals, their history and accounts over ``n_months`` months from ``start``.

    Deals still open at the end stay open. ``qe_boost`` multiplies the win probability in
    quarter-end months; ``owner_odds`` multiplies each owner's win probability;
    ``win_shock[m]`` (one per simulated month) multiplies every deal's win probability in
    month ``m`` (a common monthly shock).
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    owner_odds = owner_odds or {o: 1.0 for o in OWNERS}
    owners = list(OWNERS)
    deals, hist = [], []
    end = t0 + pd.DateOffset(months=n_months)
    n = 0
    for m in range(n_months):
        m_start = t0 + pd.DateOffset(months=m)
        days = (m_start + pd.DateOffset(months=1) - m_start).days
        for _ in range(rng.poisson(arrivals)):
            n += 1
            created = m_start + pd.Timedelta(days=int(rng.integers(0, days)), hours=9)
            owner = owners[int(rng.integers(len(owners)))]
            amount = float(np.round(rng.lognormal(8.5, 0.6), 2))
            expected = (created + pd.DateOffset(months=2)).normalize()
            did = f"D{n:05d}"
            hist.append((did, created, "stage", None, STAGES[0]))
            hist.append((did, created, "status", None, "open"))
            hist.append((did, created, "amount", None, repr(amount)))
            hist.append((did, created, "expected_close_date", None, expected.date().isoformat()))
            stage, status, closed_at, final = 0, "open", pd.NaT, amount
            mm = m + 1
            while mm < n_months + 1:
                month_start = t0 + pd.DateOffset(months=mm)
                if month_start >= end:
                    break
                w, lo, adv = TRUTH[STAGES[stage]]
                if (month_start.month % 3) == 0:
                    w = min(0.9, w * qe_boost)
                w = min(0.9, w * owner_odds[owner])
                if win_shock is not None:
                    w = min(0.9, w * float(win_shock[mm]))
                u = rng.random()
                at = month_start + pd.Timedelta(days=int(rng.integers(0, 27)), hours=15)
                if u < w:
                    status, closed_at = "won", at
                    final = float(np.round(amount * rng.lognormal(-0.05, 0.1), 2))
                    hist.append((did, at, "amount", repr(amount), repr(final)))
                    hist.append((did, at, "status", "open", "won"))
                    break
                if u < w + lo:
                    status, closed_at = "lost", at
                    hist.append((did, at, "status", "open", "lost"))
                    break
                if u < w + lo + adv and stage < len(STAGES) - 1:
                    hist.append((did, at, "stage", STAGES[stage], STAGES[stage + 1]))
                    stage += 1
                mm += 1
            deals.append(
                {
                    "deal_id": did,
                    "account_id": f"A{n % 50:03d}",
                    "name": f"deal {n}",
                    "owner": owner,
                    "team": OWNERS[owner],
                    "pipeline": "default",
                    "stage": STAGES[stage],
                    "status": status,
                    "amount": final,
                    "currency": "USD",
                    "created_at": created,
                    "expected_close_date": expected,
                    "closed_at": closed_at,
                    "source": ["web", "referral"][n % 2],
                }
            )
    deals_df = pd.DataFrame(deals)
    history = pd.DataFrame(
        hist, columns=["deal_id", "changed_at", "field", "old_value", "new_value"]
    )
    history["changed_by"] = "sim"
    history["history_id"] = np.arange(1, len(history) + 1)
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i:03d}" for i in range(50)],
            "name": [f"Account {i}" for i in range(50)],
            "segment": ["SMB" if i % 3 else "Enterprise" for i in range(50)],
            "owner": [owners[i % 4] for i in range(50)],
            "created_at": [t0 - pd.Timedelta(days=30)] * 50,
        }
    )
    stages = pd.DataFrame(
        {
            "pipeline": ["default"] * 3,
            "stage": list(STAGES),
            "stage_order": [1, 2, 3],
            "probability": [0.1, 0.4, 0.7],
        }
    )
    return {
        "deals": deals_df,
        "deal_history": history,
        "accounts": accounts,
        "stages": stages,
        "orders": pd.DataFrame(
            columns=["order_id", "account_id", "ordered_at", "amount", "deal_id"]
        ),
    }


def won_by_month(deals: pd.DataFrame) -> pd.Series:
    """Won amount per close month (``YYYY-MM``)."""
    w = deals[deals["status"] == "won"]
    return w.groupby(pd.to_datetime(w["closed_at"]).dt.strftime("%Y-%m"))["amount"].sum()
