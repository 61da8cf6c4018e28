"""Real servers the tests run against: the embedded Postgres, Temporal's dev and test servers, HTTP apps."""

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import uvicorn
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.codec import create_codec_app
from cli.supervisor import Child
from core.embedded import installed_binary, prepare_postgres, wait_for_postgres
from core.migrations import create_databases, upgrade_all
from core.services import Service
from core.settings import SEARCH_ATTRIBUTES, Settings


# The payload key of every test stack: fixed, so that histories the lifecycle tests record replay in
# tests/replay with the same cipher. A test key, never a deployment's.
TEST_PAYLOAD_KEYS = "test1:dGVzdC1wYXlsb2Fkcy1rZXktMzItYnl0ZXMtbG9uZyE="


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def postgres(data_dir: Path) -> AsyncIterator[Settings]:
    """Settings pointing at a running embedded Postgres; service databases are not created yet."""
    settings = Settings(data_dir=data_dir, postgres_port=free_port(), temporal_embedded=False,
                        payload_keys=TEST_PAYLOAD_KEYS)
    spec = prepare_postgres(settings)
    server = Child("postgres", spec.argv, data_dir / "logs" / "postgres.log", user=spec.user,
                   stop_signal=spec.stop_signal, critical=True)
    await server.start()
    try:
        await wait_for_postgres(settings.postgres_admin_dsn, timeout=60)
        yield settings
    finally:
        await server.stop()


async def with_private_database(settings: Settings, service: Service) -> Settings:
    """Settings whose `service` database is a fresh one of its own, migrated, on the same server."""
    name = f"{service.value}_{uuid4().hex[:12]}"
    url = urlsplit(settings.database_dsn(service))._replace(path=f"/{name}").geturl()
    own = settings.model_copy(update={f"{service.value}_database_url": url})
    await create_databases(own)
    upgrade_all(own)
    return own


@asynccontextmanager
async def temporal_dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the same binary `deliveryctl up` runs), in memory, with its Web UI at `ui_url`,
    which shows payloads decrypted by a codec server holding the test stacks' payload key, as `up` wires it."""
    for attempt in range(3):
        ui_port, codec_port = free_port(), free_port()  # the server's own random ports may take them: then others
        try:
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=installed_binary("temporal"),
                ui=True, ui_port=ui_port,
                dev_server_extra_args=["--ui-codec-endpoint", f"http://127.0.0.1:{codec_port}"],
                data_converter=pydantic_data_converter,
                search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
            )
            break
        except RuntimeError:
            if attempt == 2:
                raise
    env.ui_url = f"http://127.0.0.1:{ui_port}"
    with tempfile.TemporaryDirectory() as data_dir:
        codec = create_codec_app(Settings(data_dir=Path(data_dir), payload_keys=TEST_PAYLOAD_KEYS,
                                          codec_ui_origin=env.ui_url))
        try:
            async with serving(codec, codec_port):
                yield env
        finally:
            await env.shutdown()


@asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, so minutes-long timers pass instantly; it starts in a tenth of a second."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        # The test server cannot list search attributes, but it can add them.
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES}))
        yield env
    finally:
        await env.shutdown()


@asynccontextmanager
async def serving(app, port: int) -> AsyncIterator[str]:
    """An ASGI app served on 127.0.0.1:`port` until the block ends; its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
