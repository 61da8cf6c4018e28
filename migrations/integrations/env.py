"""Alembic environment of the Integrations database."""

from core.services import Service
from migrations.environment import run_migrations
from services.integrations.models import metadata

run_migrations(Service.INTEGRATIONS, metadata)
