"""Alembic environment of the State database."""

from core.services import Service
from migrations.environment import run_migrations
from services.state.models import metadata

run_migrations(Service.STATE, metadata)
