"""Exchange rates: dated rates per currency, to convert every amount to the reporting currency.

``exchange_rates``: ``currency`` (ISO 4217), ``valid_from`` (a day) and ``rate`` = units of
``currency`` per one unit of the reporting currency (Salesforce's ``ConversionRate``); a rate
holds from ``valid_from`` until the next ``valid_from`` of the same currency. Existing data
are unchanged: ``deals.currency`` is already stored (default ``USD``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-19
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``exchange_rates``."""
    op.create_table(
        "exchange_rates",
        sa.Column("currency", sa.String(), autoincrement=False, nullable=False),
        sa.Column("valid_from", sa.Date(), autoincrement=False, nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "valid_from"),
    )


def downgrade() -> None:
    """Drop ``exchange_rates`` (the deals keep their currency codes)."""
    op.drop_table("exchange_rates")
