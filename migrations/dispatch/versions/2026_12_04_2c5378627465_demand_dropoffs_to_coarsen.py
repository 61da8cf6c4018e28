"""Demands whose dropoff the PII purge has yet to coarsen, found by a partial index.

Revision ID: 2c5378627465
Revises: 5c1d9e7a3f20
Create Date: 2026-12-04 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '2c5378627465'
down_revision: str | Sequence[str] | None = '5c1d9e7a3f20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_demand_dropoff_to_coarsen', 'demand', ['updated_at'], unique=False, postgresql_where=sa.text(
        "(dropoff_latitude <> CAST(round(CAST(dropoff_latitude AS numeric), 2) AS double precision)"
        " OR dropoff_longitude <> CAST(round(CAST(dropoff_longitude AS numeric), 2) AS double precision))"))


def downgrade() -> None:
    op.drop_index('ix_demand_dropoff_to_coarsen', table_name='demand')
