"""Initial schema of the Dispatch database.

Revision ID: 0b976bbf1024
Revises:
Create Date: 2026-11-25 11:11:09.947143+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0b976bbf1024'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('demand',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=False),
        sa.Column('attempt_id', sa.Uuid(), nullable=False),
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('pickup_latitude', sa.Float(), nullable=False),
        sa.Column('pickup_longitude', sa.Float(), nullable=False),
        sa.Column('dropoff_latitude', sa.Float(), nullable=False),
        sa.Column('dropoff_longitude', sa.Float(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('attempt_id')
    )
    op.create_index(op.f('ix_demand_delivery_id'), 'demand', ['delivery_id'], unique=False)
    op.create_index(op.f('ix_demand_market'), 'demand', ['market'], unique=False)
    op.create_index(op.f('ix_demand_robot_id'), 'demand', ['robot_id'], unique=False)
    op.create_index(op.f('ix_demand_status'), 'demand', ['status'], unique=False)
    op.create_table('robot',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('latitude', sa.Float(), nullable=False),
        sa.Column('longitude', sa.Float(), nullable=False),
        sa.Column('battery', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('active_demand_id', sa.Uuid(), nullable=True),
        sa.Column('scheduled_pickup_id', sa.Uuid(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('battery >= 0 AND battery <= 1', name='ck_robot_battery_fraction'),
        sa.ForeignKeyConstraint(['active_demand_id'], ['demand.id'], ),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_robot_market_status', 'robot', ['market', 'status'], unique=False)
    op.create_table('plan',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('demand_id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('planner', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('cost_seconds', sa.Float(), nullable=False),
        sa.Column('pickup_eta', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dropoff_eta', sa.DateTime(timezone=True), nullable=False),
        sa.Column('alternatives', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['demand_id'], ['demand.id'], ),
        sa.ForeignKeyConstraint(['robot_id'], ['robot.id'], ),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_plan_demand_id'), 'plan', ['demand_id'], unique=False)
    op.create_index(op.f('ix_plan_robot_id'), 'plan', ['robot_id'], unique=False)
    # Keys that close a reference cycle go in after both tables exist.
    op.create_foreign_key(
        'fk_robot_scheduled_pickup_id_plan',
        'robot', 'plan', ['scheduled_pickup_id'], ['id'],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint('fk_robot_scheduled_pickup_id_plan', 'robot', type_='foreignkey')
    op.drop_table('plan')
    op.drop_table('robot')
    op.drop_table('demand')
