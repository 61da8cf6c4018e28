"""Alembic environment of the Dispatch database."""

from core.services import Service
from migrations.environment import run_migrations
from services.dispatch.models import metadata

run_migrations(Service.DISPATCH, metadata)
