"""When a demand's order is ready at the store: the planner does not send a robot to stand there long before.

Revision ID: 7e3b91c4d2a8
Revises: 2c5378627465
Create Date: 2026-12-04 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '7e3b91c4d2a8'
down_revision: str | Sequence[str] | None = '2c5378627465'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('demand', sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('demand', 'ready_at')
