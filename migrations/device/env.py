"""Alembic environment of the Device database."""

from core.services import Service
from migrations.environment import run_migrations
from services.device.models import metadata

run_migrations(Service.DEVICE, metadata)
