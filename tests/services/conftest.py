"""Fixtures shared by the service tests."""

from urllib.parse import urlsplit
from uuid import uuid4

import pytest

from core.migrations import create_databases, upgrade_all
from core.services import Service
from core.settings import Settings


@pytest.fixture(scope="module")
async def ops_settings(settings: Settings) -> Settings:
    """Settings with a private Operations database: pilots are one shared pool, so no other test may add to it."""
    name = f"operations_{uuid4().hex[:12]}"
    url = urlsplit(settings.database_dsn(Service.OPERATIONS))._replace(path=f"/{name}").geturl()
    own = settings.model_copy(update={"operations_database_url": url})
    await create_databases(own)
    upgrade_all(own)
    return own
