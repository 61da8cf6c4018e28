"""The real platform in-process: a worker for every queue and the HTTP API, and what its databases hold."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import worker
from api.app import create_app
from core.contracts import LifecyclePolicy
from core.db import Databases
from core.services import Service, TaskQueue
from core.settings import Settings
from core.temporal import connect
from services.integrations.models import PII, PartnerDelivery, QuoteRequest
from tests.support.interceptors import FailOnceAfterCommit, HoldWhenTold
from tests.support.servers import free_port, serving
from workflows.planning_rounds import start_planning_rounds

# The lifecycle's timers for the tests: short where a test waits for them, long where it must not.
FAST = LifecyclePolicy(
    step_retry_initial_seconds=0.05,
    robot_search_seconds=4, robot_retry_seconds=0.5, pilot_retry_seconds=0.5, pickup_wait_seconds=600,
    customer_no_show_seconds=600, pilot_wait_seconds=4, callback_initial_interval_seconds=0.2, callback_max_attempts=5,
    callback_max_interval_seconds=1, connectivity_lost_seconds=60,
    stuck_window_seconds=60,
)


@dataclass
class Platform:
    settings: Settings
    client: Client
    databases: Databases
    api_url: str
    app: FastAPI
    metrics_url: str = ""  # the workers' Prometheus endpoint (their client's Temporal runtime)
    flaky: FailOnceAfterCommit = field(default_factory=FailOnceAfterCommit)  # the workers' failure injection
    holds: HoldWhenTold = field(default_factory=HoldWhenTold)  # activities the workers hold back when told
    market_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))  # each test's own market


@asynccontextmanager
async def running_platform(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[Platform]:
    """Workers on every task queue and the API, against the given Postgres and Temporal server."""
    target = temporal_env.client.service_client.config.target_host
    port = free_port()
    settings = settings.model_copy(update={"temporal_address": target, "lifecycle": FAST,
                                           "metrics_port": free_port(), "public_base_url": f"http://127.0.0.1:{port}"})
    databases = Databases(settings)
    # The workers' own client, as worker.py makes it: its runtime serves their metrics on metrics_port.
    client = await connect(settings)
    flaky, holds = FailOnceAfterCommit(), HoldWhenTold()
    workers = [worker.build_worker(client, queue, databases, settings, [flaky, holds]) for queue in TaskQueue]
    running = [asyncio.create_task(w.run()) for w in workers]
    await start_planning_rounds(client, settings.planning_round_seconds)
    app = create_app(settings)
    try:
        async with serving(app, port) as api_url:
            yield Platform(settings, client, databases, api_url, app, f"http://{settings.metrics_address}/metrics",
                           flaky, holds)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*running, return_exceptions=True)
        await databases.dispose()


_shared: dict = {}  # the session's one platform, and how many fixtures hold it


@asynccontextmanager
async def shared_platform(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[Platform]:
    """The session's one platform, whichever test directories ask for it: a second set of workers on the same task
    queues would take activities the first one's holds and failure injection are meant to see."""
    if not _shared:
        stack = AsyncExitStack()
        _shared.update(platform=await stack.enter_async_context(running_platform(settings, temporal_env)),
                       stack=stack, holders=0)
    _shared["holders"] += 1
    try:
        yield _shared["platform"]
    finally:
        _shared["holders"] -= 1
        if _shared["holders"] == 0:
            stack = _shared.pop("stack")
            _shared.clear()
            await stack.aclose()


async def rows(platform: Platform, service: Service, statement) -> list:
    async with platform.databases.sessions(service).begin() as session:
        return list(await session.scalars(statement))


async def order_rows(platform: Platform) -> dict[str, int]:
    """How many orders, sealed customers and quoted requests Integrations holds: a refused request adds none."""
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        return {table.__tablename__: await session.scalar(select(func.count()).select_from(table))
                for table in (PartnerDelivery, PII, QuoteRequest)}
