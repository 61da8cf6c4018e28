"""Initial schema of the Device database.

Revision ID: b87322185dfd
Revises:
Create Date: 2026-11-25 11:11:12.194323+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'b87322185dfd'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('deployment',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('robot_id', sa.String(length=64), nullable=False),
        sa.Column('market', sa.String(length=64), nullable=False),
        sa.Column('software_version', sa.String(length=64), nullable=False),
        sa.Column('credential_hash', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_deployment_credential_hash'), 'deployment', ['credential_hash'], unique=False)
    op.create_index(op.f('ix_deployment_market'), 'deployment', ['market'], unique=False)
    op.create_index('uq_deployment_one_active_per_robot', 'deployment', ['robot_id'], unique=True, postgresql_where=sa.text("status = 'active'"))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('deployment')
