"""Session-wide real servers: an embedded Postgres, the Temporal dev server and the time-skipping server."""

from pathlib import Path

import pytest

from core.migrations import create_databases, upgrade_all
from core.services import Service
from core.settings import Settings
from tests.support.servers import postgres, temporal_dev_server, time_skipping_server, with_private_database


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
async def pg_settings(data_dir):
    """Settings pointing at a running embedded Postgres; service databases are not created yet."""
    async with postgres(data_dir) as settings:
        yield settings


@pytest.fixture(scope="session")
async def settings(pg_settings) -> Settings:
    """Settings whose seven databases exist and sit at migration head."""
    await create_databases(pg_settings)
    upgrade_all(pg_settings)
    return pg_settings


@pytest.fixture(scope="module")
async def ops_settings(settings: Settings) -> Settings:
    """Settings with a private Operations database: pilots are one shared pool, so no other test may add to it."""
    return await with_private_database(settings, Service.OPERATIONS)


@pytest.fixture(scope="session")
async def temporal_env():
    """A real Temporal dev server (the same binary `deliveryctl up` runs), in memory, with its Web UI."""
    async with temporal_dev_server() as env:
        yield env


@pytest.fixture(scope="session")
def temporal_ui_url(temporal_env) -> str:
    """Where the session's dev server serves its Web UI (the browser test opens it)."""
    return temporal_env.ui_url


@pytest.fixture(scope="session")
async def time_skipping_env():
    """The time-skipping test server, so minutes-long timers pass instantly."""
    async with time_skipping_server() as env:
        yield env
