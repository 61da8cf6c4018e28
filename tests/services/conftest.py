"""Fixtures shared by the service tests."""

import pytest

from core.db import Databases
from core.services import Service
from core.settings import Settings
from services.operations import pilots


@pytest.fixture(scope="module")
async def ops_sessions(ops_settings: Settings):
    """Sessions on the module's private Operations database, enough for the concurrent-writer tests."""
    databases = Databases(ops_settings, services=[Service.OPERATIONS], pool_size=16)
    yield databases.sessions(Service.OPERATIONS)
    await databases.dispose()


@pytest.fixture
async def pilots_off_duty(ops_sessions):
    """Each test starts with every pilot off shift."""
    async with ops_sessions.begin() as session:
        for pilot in await pilots.list_pilots(session):
            if pilot.shift_id is not None:
                await pilots.end_shift(session, pilot.id)
