"""Initial schema of the Integrations database.

Revision ID: d22ad2ebb8b9
Revises:
Create Date: 2026-11-25 11:11:08.840980+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'd22ad2ebb8b9'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('partner',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('dialect', sa.String(length=16), nullable=False),
        sa.Column('api_key_hash', sa.String(length=128), nullable=True),
        sa.Column('webhook_url', sa.String(length=2048), nullable=True),
        sa.Column('webhook_secret_encrypted', sa.Text(), nullable=True),
        sa.Column('webhook_enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('api_key_hash')
    )
    op.create_table('store',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('external_store_id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('latitude', sa.Float(), nullable=False),
        sa.Column('longitude', sa.Float(), nullable=False),
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_id', 'external_store_id', name='uq_store_partner_external')
    )
    op.create_table('partner_delivery',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('external_delivery_id', sa.String(length=128), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=True),
        sa.Column('request_hash', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('store_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
        sa.ForeignKeyConstraint(['store_id'], ['store.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_id', 'external_delivery_id', name='uq_partner_delivery_partner_external')
    )
    op.create_index(op.f('ix_partner_delivery_delivery_id'), 'partner_delivery', ['delivery_id'], unique=False)
    op.create_index(op.f('ix_partner_delivery_status'), 'partner_delivery', ['status'], unique=False)
    op.create_table('external_state',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_delivery_id', sa.Uuid(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('internal_status', sa.String(length=32), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('callback_status', sa.String(length=16), nullable=False),
        sa.Column('callback_attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['partner_delivery_id'], ['partner_delivery.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_delivery_id', 'sequence', name='uq_external_state_delivery_sequence')
    )
    op.create_index(op.f('ix_external_state_callback_status'), 'external_state', ['callback_status'], unique=False)
    op.create_table('pii',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_delivery_id', sa.Uuid(), nullable=False),
        sa.Column('customer_name_encrypted', sa.Text(), nullable=True),
        sa.Column('customer_phone_encrypted', sa.Text(), nullable=True),
        sa.Column('dropoff_address_encrypted', sa.Text(), nullable=True),
        sa.Column('dropoff_instructions_encrypted', sa.Text(), nullable=True),
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('purge_after', sa.DateTime(timezone=True), nullable=True),
        sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['partner_delivery_id'], ['partner_delivery.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_delivery_id')
    )
    op.create_index(op.f('ix_pii_purge_after'), 'pii', ['purge_after'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('pii')
    op.drop_table('external_state')
    op.drop_table('partner_delivery')
    op.drop_table('store')
    op.drop_table('partner')
