"""Initial schema of the State database.

Revision ID: 506aecd075ef
Revises:
Create Date: 2026-11-25 11:11:11.645445+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '506aecd075ef'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('connectivity',
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('latitude', sa.Float(), nullable=True),
        sa.Column('longitude', sa.Float(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('robot_id')
    )
    op.create_index(op.f('ix_connectivity_status'), 'connectivity', ['status'], unique=False)
    op.create_table('lid_cycle_event_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=16), nullable=False),
        sa.Column('attempt_id', sa.Uuid(), nullable=True),
        sa.Column('latitude', sa.Float(), nullable=False),
        sa.Column('longitude', sa.Float(), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('rejection_reason', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('robot_id', 'sequence', name='uq_lid_cycle_event_history_robot_sequence')
    )
    op.create_index(op.f('ix_lid_cycle_event_history_attempt_id'), 'lid_cycle_event_history', ['attempt_id'], unique=False)
    op.create_table('state_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('event_type', sa.String(length=32), nullable=False),
        sa.Column('attempt_id', sa.Uuid(), nullable=True),
        sa.Column('latitude', sa.Float(), nullable=True),
        sa.Column('longitude', sa.Float(), nullable=True),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('rejection_reason', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('robot_id', 'event_id', name='uq_state_history_robot_event'),
        sa.UniqueConstraint('robot_id', 'sequence', name='uq_state_history_robot_sequence')
    )
    op.create_index(op.f('ix_state_history_attempt_id'), 'state_history', ['attempt_id'], unique=False)
    op.create_index(op.f('ix_state_history_event_type'), 'state_history', ['event_type'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('state_history')
    op.drop_table('lid_cycle_event_history')
    op.drop_table('connectivity')
