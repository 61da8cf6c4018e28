"""Alembic environment of the Deliveries database."""

from core.services import Service
from migrations.environment import run_migrations
from services.deliveries.models import metadata

run_migrations(Service.DELIVERIES, metadata)
