"""Each market's outlook for a new order, written by every planning round: the API admits orders by it.

Revision ID: 76a4e0cf32f8
Revises: 7e3b91c4d2a8
Create Date: 2026-12-05 02:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '76a4e0cf32f8'
down_revision: str | Sequence[str] | None = '7e3b91c4d2a8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('market_outlook',
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('free_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('robots', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('market'),
    )


def downgrade() -> None:
    op.drop_table('market_outlook')
