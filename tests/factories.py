"""Small, valid CRM frames for tests, built by hand so expected values are known."""

from __future__ import annotations

import pandas as pd


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def small_company() -> dict[str, pd.DataFrame]:
    """Three accounts with contacts, a four-stage pipeline, deals, a campaign and orders."""
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3"],
            "name": ["Acme", "Globex", "Initech"],
            "segment": ["SMB", "Enterprise", None],
            "industry": ["Retail", "Energy", "Software"],
            "country": ["DE", "US", "FR"],
            "owner": ["ann", "bob", "ann"],
            "created_at": [ts("2024-01-05"), ts("2024-02-10 09:30"), ts("2024-03-01")],
        }
    )
    contacts = pd.DataFrame(
        {
            "contact_id": ["C1", "C2"],
            "account_id": ["A1", "A2"],
            "name": ["Ada", "Grace"],
            "email": ["ada@acme.test", "grace@globex.test"],
            "role": ["CTO", "Buyer"],
        }
    )
    stages = pd.DataFrame(
        {
            "pipeline": ["default"] * 4,
            "stage": ["Qualification", "Discovery", "Proposal", "Negotiation"],
            "stage_order": [1, 2, 3, 4],
            "probability": [0.1, 0.25, 0.6, 0.8],
        }
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": ["K1"],
            "name": ["Spring search"],
            "channel": ["search"],
            "start_date": [ts("2024-03-01")],
            "end_date": [ts("2024-04-30")],
            "budget": [5000.0],
            "cost": [4200.0],
        }
    )
    channel_spend = pd.DataFrame(
        {
            "channel": ["search", "search"],
            "week_start": [ts("2024-03-04"), ts("2024-03-11")],
            "spend": [500.0, 650.0],
        }
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["D1", "D2", "D3"],
            "account_id": ["A1", "A2", "A3"],
            "name": ["Acme renewal", "Globex rollout", "Initech pilot"],
            "owner": ["ann", "bob", "ann"],
            "team": ["north", "south", "north"],
            "pipeline": ["default"] * 3,
            "stage": ["Proposal", "Negotiation", "Discovery"],
            "status": ["open", "won", "lost"],
            "amount": [12000.0, 50000.0, 3000.0],
            "currency": ["USD", "USD", "USD"],
            "created_at": [ts("2024-03-02"), ts("2024-01-15"), ts("2024-02-01")],
            "expected_close_date": [ts("2024-06-30"), ts("2024-04-30"), ts("2024-03-31")],
            "closed_at": [pd.NaT, ts("2024-04-20"), ts("2024-03-15")],
            "probability_override": [None, None, None],
            "forecast_category": ["pipeline", "closed", "omitted"],
            "lost_reason": [None, None, "price"],
            "source": ["campaign", "referral", "outbound"],
            "campaign_id": ["K1", None, None],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5"],
            "account_id": ["A1", "A1", "A1", "A2", "A2"],
            "ordered_at": [
                ts("2024-01-10 10:00"),
                ts("2024-01-10 15:00"),
                ts("2024-02-07"),
                ts("2024-04-20"),
                ts("2024-05-04"),
            ],
            "amount": [100.0, 50.0, 80.0, 50000.0, 700.0],
            "deal_id": [None, None, None, "D2", None],
        }
    )
    activities = pd.DataFrame(
        {
            "activity_id": ["T1"],
            "account_id": ["A1"],
            "deal_id": ["D1"],
            "type": ["call"],
            "at": [ts("2024-03-05 14:00")],
            "owner": ["ann"],
            "note": ["intro call"],
        }
    )
    return {
        "accounts": accounts,
        "contacts": contacts,
        "stages": stages,
        "campaigns": campaigns,
        "channel_spend": channel_spend,
        "deals": deals,
        "activities": activities,
        "orders": orders,
    }
