"""Forecast backtests: a backtest run after its snapshot was saved, kept beside it.

``forecast_backtests``: ``snapshot_id`` (the snapshot's id, one backtest each),
``created_at``, ``origins`` (month ends backtested) and ``records`` (the summary with the
run-rate verdict, as a refit report stores inside its snapshot). Snapshots are never
rewritten, so a ``--no-refit`` report keeps its backtest here; loading a snapshot without
one of its own reads it from this table. Existing data are unchanged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``forecast_backtests``."""
    op.create_table(
        "forecast_backtests",
        sa.Column("snapshot_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("origins", sa.Integer(), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )


def downgrade() -> None:
    """Drop ``forecast_backtests`` (snapshots keep the backtests stored inside them)."""
    op.drop_table("forecast_backtests")
