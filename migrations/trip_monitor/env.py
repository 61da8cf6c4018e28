"""Alembic environment of the Trip Monitor database."""

from core.services import Service
from migrations.environment import run_migrations
from services.trip_monitor.models import metadata

run_migrations(Service.TRIP_MONITOR, metadata)
