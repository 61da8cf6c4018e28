"""Fixtures shared by the service tests."""

import uuid

import pytest

from activities.dispatch import DispatchActivities
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


# Dispatch's activities on the session's Dispatch database (test_deliveries_activities.py brings its own
# `databases` and `sessions`, for Deliveries).

@pytest.fixture(scope="module")
async def databases(settings):
    databases = Databases(settings, [Service.DISPATCH], pool_size=10)
    yield databases
    await databases.dispose()


@pytest.fixture
def sessions(databases):
    return databases.sessions(Service.DISPATCH)


@pytest.fixture
def dispatch(sessions, settings) -> DispatchActivities:
    return DispatchActivities(sessions, settings)


@pytest.fixture
def market() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"
