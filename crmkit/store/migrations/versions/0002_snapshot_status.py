"""Forecast snapshots get a status (published or draft) and the reasons of a draft.

Only published snapshots reach the apps; a snapshot whose checks failed is saved as a draft
with its reasons (a JSON list of text). Existing snapshots become published.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``status`` (existing rows: 'published') and ``reasons`` to forecast_snapshots."""
    with op.batch_alter_table("forecast_snapshots") as batch:
        batch.add_column(
            sa.Column("status", sa.String(), server_default="published", nullable=False)
        )
        batch.add_column(sa.Column("reasons", sa.Text(), nullable=True))


def downgrade() -> None:
    """Delete the drafts (older code would show them), then drop ``status`` and ``reasons``."""
    op.execute(sa.text("DELETE FROM forecast_snapshots WHERE status = 'draft'"))
    with op.batch_alter_table("forecast_snapshots") as batch:
        batch.drop_column("reasons")
        batch.drop_column("status")
