"""When each order is ready at the store, and each store's preparation estimate.

Revision ID: 9fa0b9e3ad25
Revises: 7b3f0d5e9a12
Create Date: 2026-12-05 02:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '9fa0b9e3ad25'
down_revision: str | Sequence[str] | None = '7b3f0d5e9a12'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ready_at on partner_delivery and preparation_minutes on store; existing rows keep none."""
    op.add_column('partner_delivery', sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('store', sa.Column('preparation_minutes', sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    op.drop_column('store', 'preparation_minutes')
    op.drop_column('partner_delivery', 'ready_at')
