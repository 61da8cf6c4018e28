"""Alembic environment of the Operations database."""

from core.services import Service
from migrations.environment import run_migrations
from services.operations.models import metadata

run_migrations(Service.OPERATIONS, metadata)
