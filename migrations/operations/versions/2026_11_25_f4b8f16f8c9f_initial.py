"""Initial schema of the Operations database.

Revision ID: f4b8f16f8c9f
Revises:
Create Date: 2026-11-25 11:11:10.533045+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'f4b8f16f8c9f'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('fo_task',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=True),
        sa.Column('attempt_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_fo_task_attempt_id'), 'fo_task', ['attempt_id'], unique=False)
    op.create_index('ix_fo_task_robot_id_status', 'fo_task', ['robot_id', 'status'], unique=False)
    op.create_table('pilot',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('active_shift_id', sa.Uuid(), nullable=True),
        sa.Column('active_assignment_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_table('robot',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('battery', sa.Float(), nullable=False),
        sa.Column('in_service', sa.Boolean(), nullable=False),
        sa.Column('active_task_id', sa.Uuid(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('battery >= 0 AND battery <= 1', name='ck_robot_battery_fraction'),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_robot_market'), 'robot', ['market'], unique=False)
    op.create_index(op.f('ix_robot_status'), 'robot', ['status'], unique=False)
    op.create_table('fo_task_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('fo_task_id', sa.Uuid(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(['fo_task_id'], ['fo_task.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('fo_task_id', 'sequence', name='uq_fo_task_history_fo_task_id_sequence')
    )
    op.create_table('pilot_shift',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('pilot_id', sa.Uuid(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['pilot_id'], ['pilot.id'], ),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uq_pilot_shift_one_open_per_pilot', 'pilot_shift', ['pilot_id'], unique=True, postgresql_where=sa.text("status IN ('active', 'on_break')"))
    op.create_table('task',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=False),
        sa.Column('attempt_id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['robot_id'], ['robot.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('attempt_id', 'kind', name='uq_task_attempt_kind')
    )
    op.create_index(op.f('ix_task_delivery_id'), 'task', ['delivery_id'], unique=False)
    op.create_index(op.f('ix_task_status'), 'task', ['status'], unique=False)
    op.create_index('uq_task_one_active_per_robot', 'task', ['robot_id'], unique=True, postgresql_where=sa.text("status IN ('created', 'assigned', 'in_progress')"))
    op.create_table('pilot_assignment',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('pilot_id', sa.Uuid(), nullable=False),
        sa.Column('task_id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('pilot_version', sa.Integer(), nullable=False),
        sa.Column('task_version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['pilot_id'], ['pilot.id'], ),
        sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_pilot_assignment_pilot_id'), 'pilot_assignment', ['pilot_id'], unique=False)
    op.create_index(op.f('ix_pilot_assignment_task_id'), 'pilot_assignment', ['task_id'], unique=False)
    op.create_table('pilot_shift_state_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('shift_id', sa.Uuid(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(['shift_id'], ['pilot_shift.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('shift_id', 'sequence', name='uq_pilot_shift_state_history_shift_id_sequence')
    )
    op.create_table('task_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('task_id', sa.Uuid(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id', 'sequence', name='uq_task_history_task_id_sequence')
    )
    op.create_table('trip',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('task_id', sa.Uuid(), nullable=False),
        sa.Column('delivery_id', sa.Uuid(), nullable=False),
        sa.Column('attempt_id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('leg', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id', 'leg', name='uq_trip_task_leg')
    )
    op.create_index(op.f('ix_trip_attempt_id'), 'trip', ['attempt_id'], unique=False)
    op.create_index(op.f('ix_trip_delivery_id'), 'trip', ['delivery_id'], unique=False)
    op.create_index(op.f('ix_trip_robot_id'), 'trip', ['robot_id'], unique=False)
    op.create_index(op.f('ix_trip_status'), 'trip', ['status'], unique=False)
    op.create_table('trip_history',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('trip_id', sa.Uuid(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(['trip_id'], ['trip.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('trip_id', 'sequence', name='uq_trip_history_trip_id_sequence')
    )
    # Keys that close a reference cycle go in after both tables exist.
    op.create_foreign_key(
        'fk_pilot_active_assignment_id_pilot_assignment',
        'pilot', 'pilot_assignment', ['active_assignment_id'], ['id'],
    )
    op.create_foreign_key(
        'fk_pilot_active_shift_id_pilot_shift',
        'pilot', 'pilot_shift', ['active_shift_id'], ['id'],
    )
    op.create_foreign_key(
        'fk_robot_active_task_id_task',
        'robot', 'task', ['active_task_id'], ['id'],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint('fk_pilot_active_assignment_id_pilot_assignment', 'pilot', type_='foreignkey')
    op.drop_constraint('fk_pilot_active_shift_id_pilot_shift', 'pilot', type_='foreignkey')
    op.drop_constraint('fk_robot_active_task_id_task', 'robot', type_='foreignkey')
    op.drop_table('trip_history')
    op.drop_table('trip')
    op.drop_table('task_history')
    op.drop_table('pilot_shift_state_history')
    op.drop_table('pilot_assignment')
    op.drop_table('task')
    op.drop_table('pilot_shift')
    op.drop_table('fo_task_history')
    op.drop_table('robot')
    op.drop_table('pilot')
    op.drop_table('fo_task')
