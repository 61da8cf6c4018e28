"""Initial schema of the Trip Monitor database.

Revision ID: 6a3f7bd2ef68
Revises:
Create Date: 2026-11-25 11:11:11.080501+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '6a3f7bd2ef68'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('trip',
        sa.Column('attempt_id', sa.Uuid(), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=False),
        sa.Column('trip_id', sa.Uuid(), nullable=True),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('last_heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_latitude', sa.Float(), nullable=True),
        sa.Column('last_longitude', sa.Float(), nullable=True),
        sa.Column('last_progress_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('moving', sa.Boolean(), nullable=False),
        sa.Column('planned_dropoff_eta', sa.DateTime(timezone=True), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('attempt_id')
    )
    op.create_index(op.f('ix_trip_delivery_id'), 'trip', ['delivery_id'], unique=False)
    op.create_index(op.f('ix_trip_robot_id'), 'trip', ['robot_id'], unique=False)
    op.create_index(op.f('ix_trip_status'), 'trip', ['status'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('trip')
