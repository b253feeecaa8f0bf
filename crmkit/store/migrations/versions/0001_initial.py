"""Initial schema: every entity of crmkit 0.1.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create all tables."""
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("segment", sa.String(), nullable=True),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("row_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_accounts_owner", "accounts", ["owner"], unique=False)
    op.create_index("ix_accounts_segment", "accounts", ["segment"], unique=False)
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("budget", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    op.create_table(
        "channel_spend",
        sa.Column("channel", sa.String(), autoincrement=False, nullable=False),
        sa.Column("week_start", sa.Date(), autoincrement=False, nullable=False),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "week_start"),
    )
    op.create_table(
        "forecast_snapshots",
        sa.Column("snapshot_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("diagnostics", sa.Text(), nullable=True),
        sa.Column("quantiles", sa.Text(), nullable=True),
        sa.Column("draws", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), autoincrement=False, nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "segment_definitions",
        sa.Column("name", sa.String(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "stages",
        sa.Column("pipeline", sa.String(), autoincrement=False, nullable=False),
        sa.Column("stage", sa.String(), autoincrement=False, nullable=False),
        sa.Column("stage_order", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "stage"),
    )
    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("row_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
        ),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_index("ix_contacts_account_id", "contacts", ["account_id"], unique=False)
    op.create_table(
        "deals",
        sa.Column("deal_id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("team", sa.String(), nullable=True),
        sa.Column("pipeline", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expected_close_date", sa.Date(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("probability_override", sa.Float(), nullable=True),
        sa.Column("forecast_category", sa.String(), nullable=True),
        sa.Column("lost_reason", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("row_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
        ),
        sa.PrimaryKeyConstraint("deal_id"),
    )
    op.create_index("ix_deals_account_id", "deals", ["account_id"], unique=False)
    op.create_index("ix_deals_campaign_id", "deals", ["campaign_id"], unique=False)
    op.create_index("ix_deals_owner", "deals", ["owner"], unique=False)
    op.create_index("ix_deals_status_stage", "deals", ["status", "stage"], unique=False)
    op.create_table(
        "activities",
        sa.Column("activity_id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.deal_id"],
        ),
        sa.PrimaryKeyConstraint("activity_id"),
    )
    op.create_index("ix_activities_account_id", "activities", ["account_id"], unique=False)
    op.create_index("ix_activities_deal_id", "activities", ["deal_id"], unique=False)
    op.create_table(
        "deal_history",
        sa.Column("history_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deal_id", sa.String(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(), nullable=True),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("old_value", sa.String(), nullable=True),
        sa.Column("new_value", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.deal_id"],
        ),
        sa.PrimaryKeyConstraint("history_id"),
    )
    op.create_index(
        "ix_deal_history_deal_id_changed_at",
        "deal_history",
        ["deal_id", "changed_at"],
        unique=False,
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("ordered_at", sa.DateTime(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.deal_id"],
        ),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index(
        "ix_orders_account_id_ordered_at_amount",
        "orders",
        ["account_id", "ordered_at", "amount"],
        unique=False,
    )


def downgrade() -> None:
    """Drop all tables."""
    op.drop_index("ix_orders_account_id_ordered_at_amount", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_deal_history_deal_id_changed_at", table_name="deal_history")
    op.drop_table("deal_history")
    op.drop_index("ix_activities_deal_id", table_name="activities")
    op.drop_index("ix_activities_account_id", table_name="activities")
    op.drop_table("activities")
    op.drop_index("ix_deals_status_stage", table_name="deals")
    op.drop_index("ix_deals_owner", table_name="deals")
    op.drop_index("ix_deals_campaign_id", table_name="deals")
    op.drop_index("ix_deals_account_id", table_name="deals")
    op.drop_table("deals")
    op.drop_index("ix_contacts_account_id", table_name="contacts")
    op.drop_table("contacts")
    op.drop_table("stages")
    op.drop_table("segment_definitions")
    op.drop_table("meta")
    op.drop_table("forecast_snapshots")
    op.drop_table("channel_spend")
    op.drop_table("campaigns")
    op.drop_index("ix_accounts_segment", table_name="accounts")
    op.drop_index("ix_accounts_owner", table_name="accounts")
    op.drop_table("accounts")
