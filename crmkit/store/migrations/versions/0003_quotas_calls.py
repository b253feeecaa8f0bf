"""Quotas and the managers' forecast calls (issue #16).

``quotas``: an amount per owner, team or the company ("all") and month or quarter, versioned
like the other editable entities. ``forecast_calls``: a manager's number per owner, team or
company and period, with author, note and time; rows are only added (a later call of the same
key supersedes an earlier one), so the table is its own history.

``deal_history.field`` gains the value ``forecast_category``; the column has no
database-level CHECK of its values (the validator applies the choices), so nothing changes
in the deal tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_CALLS_INDEX = "ix_forecast_calls_scope_name_period_period_start"


def upgrade() -> None:
    """Create ``quotas`` and ``forecast_calls``."""
    op.create_table(
        "quotas",
        sa.Column("scope", sa.String(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(), autoincrement=False, nullable=False),
        sa.Column("period", sa.String(), autoincrement=False, nullable=False),
        sa.Column("period_start", sa.Date(), autoincrement=False, nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("row_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("scope", "name", "period", "period_start"),
    )
    op.create_table(
        "forecast_calls",
        sa.Column("call_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index(
        _CALLS_INDEX,
        "forecast_calls",
        ["scope", "name", "period", "period_start"],
        unique=False,
    )


def downgrade() -> None:
    """Drop both tables, and the deal history of forecast categories (0002 does not track it)."""
    op.drop_index(_CALLS_INDEX, table_name="forecast_calls")
    op.drop_table("forecast_calls")
    op.drop_table("quotas")
    op.execute(sa.text("DELETE FROM deal_history WHERE field = 'forecast_category'"))
