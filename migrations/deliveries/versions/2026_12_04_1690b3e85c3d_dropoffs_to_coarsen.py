"""Deliveries and quotes whose dropoff the PII purge has yet to coarsen, found by partial indexes.

Revision ID: 1690b3e85c3d
Revises: 9e4b2c71a0d3
Create Date: 2026-12-04 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '1690b3e85c3d'
down_revision: str | Sequence[str] | None = '9e4b2c71a0d3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXACT_DROPOFF = sa.text(
    "(dropoff_latitude <> CAST(round(CAST(dropoff_latitude AS numeric), 2) AS double precision)"
    " OR dropoff_longitude <> CAST(round(CAST(dropoff_longitude AS numeric), 2) AS double precision))")


def upgrade() -> None:
    op.create_index('ix_delivery_dropoff_to_coarsen', 'delivery', ['ended_at'], unique=False,
                    postgresql_where=EXACT_DROPOFF)
    op.create_index('ix_quote_dropoff_to_coarsen', 'quote', ['expires_at'], unique=False,
                    postgresql_where=EXACT_DROPOFF)


def downgrade() -> None:
    op.drop_index('ix_quote_dropoff_to_coarsen', table_name='quote')
    op.drop_index('ix_delivery_dropoff_to_coarsen', table_name='delivery')
