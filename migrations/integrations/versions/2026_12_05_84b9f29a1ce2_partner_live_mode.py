"""Test partners (the sandbox): live_mode on partner, and on each order as it was created.

Revision ID: 84b9f29a1ce2
Revises: 9fa0b9e3ad25
Create Date: 2026-12-05 02:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '84b9f29a1ce2'
down_revision: str | Sequence[str] | None = '9fa0b9e3ad25'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Every partner and order stored before this revision is live."""
    for table in ('partner', 'partner_delivery'):
        op.add_column(table, sa.Column('live_mode', sa.Boolean(), nullable=False, server_default=sa.true()))
        op.alter_column(table, 'live_mode', server_default=None)


def downgrade() -> None:
    """Drop them again; refused while test partners exist, as they would turn live."""
    if op.get_bind().scalar(sa.text('SELECT count(*) FROM partner WHERE NOT live_mode')):
        raise RuntimeError('test partners exist: without live_mode they would be live; remove them first')
    for table in ('partner_delivery', 'partner'):
        op.drop_column(table, 'live_mode')
