"""When a quoted order is ready at the store: a delivery created from the quote without one takes it.

Revision ID: 0dcd21c05117
Revises: 1690b3e85c3d
Create Date: 2026-12-05 02:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0dcd21c05117'
down_revision: str | Sequence[str] | None = '1690b3e85c3d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('quote', sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('quote', 'ready_at')
