"""The planning view: where, when and with what charge each robot becomes free; demand requests and exclusions.

Revision ID: 5c1d9e7a3f20
Revises: 0b976bbf1024
Create Date: 2026-11-25 13:45:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '5c1d9e7a3f20'
down_revision: str | Sequence[str] | None = '0b976bbf1024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('demand', sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('demand', sa.Column('excluded_robot_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.execute("UPDATE demand SET requested_at = created_at, excluded_robot_ids = '[]'::jsonb")
    op.alter_column('demand', 'requested_at', nullable=False)
    op.alter_column('demand', 'excluded_robot_ids', nullable=False)
    for column in ('available_latitude', 'available_longitude', 'available_battery'):
        op.add_column('robot', sa.Column(column, sa.Float(), nullable=True))
    # A robot with a demand becomes free where that demand drops off; one without is free where it is.
    op.execute("""
        UPDATE robot SET available_latitude = COALESCE(demand.dropoff_latitude, robot.latitude),
                         available_longitude = COALESCE(demand.dropoff_longitude, robot.longitude),
                         available_battery = robot.battery
        FROM robot AS r LEFT JOIN demand ON demand.id = r.active_demand_id
        WHERE r.id = robot.id
    """)
    for column in ('available_latitude', 'available_longitude', 'available_battery'):
        op.alter_column('robot', column, nullable=False)


def downgrade() -> None:
    """Downgrade schema."""
    for column in ('available_battery', 'available_longitude', 'available_latitude'):
        op.drop_column('robot', column)
    op.drop_column('demand', 'excluded_robot_ids')
    op.drop_column('demand', 'requested_at')
