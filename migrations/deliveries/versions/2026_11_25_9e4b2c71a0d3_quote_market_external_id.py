"""Quotes know their market and, for dialects that quote per order, the partner's order id.

Revision ID: 9e4b2c71a0d3
Revises: ab4623d99422
Create Date: 2026-11-25 13:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '9e4b2c71a0d3'
down_revision: str | Sequence[str] | None = 'ab4623d99422'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('quote', sa.Column('external_delivery_id', sa.String(length=128), nullable=True))
    op.add_column('quote', sa.Column('market', sa.String(length=64), nullable=False, server_default=''))
    op.alter_column('quote', 'market', server_default=None)
    op.create_index('ix_quote_partner_external', 'quote', ['partner_id', 'external_delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_quote_partner_external', table_name='quote')
    op.drop_column('quote', 'market')
    op.drop_column('quote', 'external_delivery_id')
