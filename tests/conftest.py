"""Session-wide real servers: an embedded Postgres, the Temporal dev server and the time-skipping server."""

import socket
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from cli.supervisor import Child
from core.embedded import prepare_postgres, installed_binary, wait_for_postgres
from core.migrations import create_databases, upgrade_all
from core.services import Service
from core.settings import SEARCH_ATTRIBUTES, Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
async def pg_settings(data_dir):
    """Settings pointing at a running embedded Postgres; service databases are not created yet."""
    settings = Settings(data_dir=data_dir, postgres_port=free_port(), temporal_embedded=False)
    spec = prepare_postgres(settings)
    server = Child("postgres", spec.argv, data_dir / "logs" / "postgres.log", user=spec.user,
                   stop_signal=spec.stop_signal, critical=True)
    await server.start()
    await wait_for_postgres(f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/postgres", timeout=60)
    yield settings
    await server.stop()


@pytest.fixture(scope="session")
async def settings(pg_settings) -> Settings:
    """Settings whose seven databases exist and sit at migration head."""
    await create_databases(pg_settings)
    upgrade_all(pg_settings)
    return pg_settings


async def with_private_database(settings: Settings, service: Service) -> Settings:
    """Settings whose `service` database is a fresh one of its own, migrated, on the same server."""
    name = f"{service.value}_{uuid4().hex[:12]}"
    url = urlsplit(settings.database_dsn(service))._replace(path=f"/{name}").geturl()
    own = settings.model_copy(update={f"{service.value}_database_url": url})
    await create_databases(own)
    upgrade_all(own)
    return own


@pytest.fixture(scope="module")
async def ops_settings(settings: Settings) -> Settings:
    """Settings with a private Operations database: pilots are one shared pool, so no other test may add to it."""
    return await with_private_database(settings, Service.OPERATIONS)


@pytest.fixture(scope="session")
async def temporal_env():
    """A real Temporal dev server (the same binary `deliveryctl up` runs), in memory, with its Web UI."""
    for attempt in range(3):
        ui_port = free_port()  # the server's own random ports (HTTP, metrics) may take it first: then another
        try:
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=installed_binary("temporal"),
                ui=True, ui_port=ui_port,
                data_converter=pydantic_data_converter,
                search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
            )
            break
        except RuntimeError:
            if attempt == 2:
                raise
    env.ui_url = f"http://127.0.0.1:{ui_port}"
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_ui_url(temporal_env) -> str:
    """Where the session's dev server serves its Web UI (the browser test opens it)."""
    return temporal_env.ui_url


@pytest.fixture(scope="session")
async def time_skipping_env():
    """The time-skipping test server, so minutes-long timers pass instantly."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    # The test server cannot list search attributes, but it can add them.
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES}))
    yield env
    await env.shutdown()
