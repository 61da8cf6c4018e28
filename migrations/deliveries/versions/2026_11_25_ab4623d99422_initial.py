"""Initial schema of the Deliveries database.

Revision ID: ab4623d99422
Revises:
Create Date: 2026-11-25 11:11:09.399109+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'ab4623d99422'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('customer',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('pii_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_customer_partner_id'), 'customer', ['partner_id'], unique=False)
    op.create_table('quote',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('fee_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('pickup_latitude', sa.Float(), nullable=False),
        sa.Column('pickup_longitude', sa.Float(), nullable=False),
        sa.Column('dropoff_latitude', sa.Float(), nullable=False),
        sa.Column('dropoff_longitude', sa.Float(), nullable=False),
        sa.Column('pickup_eta', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dropoff_eta', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_by_delivery_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_quote_partner_id'), 'quote', ['partner_id'], unique=False)
    op.create_table('delivery',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('external_delivery_id', sa.String(length=128), nullable=False),
        sa.Column('customer_id', sa.Uuid(), nullable=False),
        sa.Column('quote_id', sa.Uuid(), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('store_id', sa.Uuid(), nullable=True),
        sa.Column('pickup_latitude', sa.Float(), nullable=False),
        sa.Column('pickup_longitude', sa.Float(), nullable=False),
        sa.Column('dropoff_latitude', sa.Float(), nullable=False),
        sa.Column('dropoff_longitude', sa.Float(), nullable=False),
        sa.Column('latest_attempt_id', sa.Uuid(), nullable=True),
        sa.Column('cancel_reason', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
        sa.ForeignKeyConstraint(['quote_id'], ['quote.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_id', 'external_delivery_id', name='uq_delivery_partner_external')
    )
    op.create_index(op.f('ix_delivery_customer_id'), 'delivery', ['customer_id'], unique=False)
    op.create_index(op.f('ix_delivery_market'), 'delivery', ['market'], unique=False)
    op.create_index(op.f('ix_delivery_status'), 'delivery', ['status'], unique=False)
    op.create_table('attempt',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('end_reason', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('delivery_id', 'number', name='uq_attempt_delivery_number')
    )
    op.create_index(op.f('ix_attempt_robot_id'), 'attempt', ['robot_id'], unique=False)
    op.create_index(op.f('ix_attempt_status'), 'attempt', ['status'], unique=False)
    op.create_table('attempt_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('attempt_id', sa.Uuid(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('attempt_id', 'sequence', name='uq_attempt_history_attempt_sequence')
    )
    # Keys that close a reference cycle go in after both tables exist.
    op.create_foreign_key(
        'fk_delivery_latest_attempt_id_attempt',
        'delivery', 'attempt', ['latest_attempt_id'], ['id'],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint('fk_delivery_latest_attempt_id_attempt', 'delivery', type_='foreignkey')
    op.drop_table('attempt_history')
    op.drop_table('attempt')
    op.drop_table('delivery')
    op.drop_table('quote')
    op.drop_table('customer')
