"""Field tasks: who was sent, and at most one open task per robot and kind.

Revision ID: 5c2e9a71d3b4
Revises: f4b8f16f8c9f
Create Date: 2026-11-26 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5c2e9a71d3b4'
down_revision: str | Sequence[str] | None = 'f4b8f16f8c9f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('fo_task', sa.Column('assignee', sa.String(length=200), nullable=True))
    op.create_index('uq_fo_task_one_open_per_robot_kind', 'fo_task', ['robot_id', 'kind'], unique=True,
                    postgresql_where=sa.text("status IN ('open', 'assigned')"))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('uq_fo_task_one_open_per_robot_kind', table_name='fo_task',
                  postgresql_where=sa.text("status IN ('open', 'assigned')"))
    op.drop_column('fo_task', 'assignee')
