"""Sealed quote requests for dialects that accept a quote by id; the quoted fee on each order.

Revision ID: 7b3f0d5e9a12
Revises: 5c1e7a90d2f4
Create Date: 2026-11-25 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '7b3f0d5e9a12'
down_revision: str | Sequence[str] | None = '5c1e7a90d2f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add quote_request, and fee_cents/currency on partner_delivery."""
    op.create_table('quote_request',
        sa.Column('quote_id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('external_delivery_id', sa.String(length=128), nullable=False),
        sa.Column('request_encrypted', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id']),
        sa.PrimaryKeyConstraint('quote_id'),
    )
    op.create_index('ix_quote_request_partner_external', 'quote_request', ['partner_id', 'external_delivery_id'],
                    unique=False)
    op.create_index(op.f('ix_quote_request_expires_at'), 'quote_request', ['expires_at'], unique=False)
    op.add_column('partner_delivery', sa.Column('fee_cents', sa.Integer(), nullable=True))
    op.add_column('partner_delivery', sa.Column('currency', sa.String(length=3), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    op.drop_column('partner_delivery', 'currency')
    op.drop_column('partner_delivery', 'fee_cents')
    op.drop_index(op.f('ix_quote_request_expires_at'), table_name='quote_request')
    op.drop_index('ix_quote_request_partner_external', table_name='quote_request')
    op.drop_table('quote_request')
