"""When each order's delivery workflow accepted it, so the stranded-orders pass names only orders never accepted.

Revision ID: 3d8e52c0a7b1
Revises: 84b9f29a1ce2
Create Date: 2026-12-06 04:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '3d8e52c0a7b1'
down_revision: str | Sequence[str] | None = '84b9f29a1ce2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Orders stored before this revision have none: a pass names them as before, and Temporal refuses a second
    start of any whose workflow exists."""
    op.add_column('partner_delivery', sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('partner_delivery', 'accepted_at')
