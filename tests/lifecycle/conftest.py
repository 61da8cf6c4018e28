"""The real platform in-process: a worker for every queue, the HTTP API on a port, and a partner's webhook receiver.

Each test gets its own market (a disjoint service area) with its own robots and pilots, so tests
sharing the session's servers never compete for a robot.
"""

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

import worker
from api.app import create_app
from core.contracts import LifecyclePolicy, Point, TERMINAL_STATUSES
from core.crypto import vault_from_settings
from core.geocoding import DEMO_ADDRESSES, OfflineGeocoder
from core.db import Databases
from core.markets import Market, register_market
from core.services import Service, TaskQueue
from core.temporal import connect
from services.device import repository as devices
from services.dispatch import repository as dispatch
from services.integrations import credentials
from services.operations import repository as operations
from tests.conftest import free_port
from workflows.planning_rounds import start_planning_rounds

FAST = LifecyclePolicy(
    step_retry_initial_seconds=0.05,
    robot_search_seconds=4, robot_retry_seconds=0.5, pickup_wait_seconds=600, customer_no_show_seconds=600,
    pilot_wait_seconds=4, callback_initial_interval_seconds=0.2, callback_max_attempts=5,
    callback_max_interval_seconds=1, monitor_poll_seconds=0.5, connectivity_lost_seconds=60,
    stuck_window_seconds=60,
)
_market_numbers = itertools.count(1)


async def serve(app, port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task


FLAKY = {"on": False, "injected": 0}


class FailOnceAfterCommit(Interceptor):
    """While FLAKY is on, every activity's first attempt does its work, then reports a failure.

    Temporal then retries it: the retry must find the work done and add nothing twice.
    """

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _FailAfterCommit(next)


class _FailAfterCommit(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput):
        info = activity.info()
        result = await self.next.execute_activity(input)
        if FLAKY["on"] and info.attempt == 1:
            FLAKY["injected"] += 1
            raise ApplicationError(f"injected failure after {info.activity_type} committed")
        return result


@dataclass
class Hold:
    """Keeps one kind of activity from starting, for the arguments it matches, until the test releases it."""

    activity_type: str
    matches: Callable[[Any], bool]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


HOLDS: list[Hold] = []


class HoldWhenTold(Interceptor):
    """Opens a window the test can act in: a held activity waits before doing its work."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Held(next)


class _Held(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput):
        for hold in HOLDS:
            if hold.activity_type == activity.info().activity_type and hold.matches(*input.args):
                hold.reached.set()
                await hold.released.wait()
        return await self.next.execute_activity(input)


@pytest.fixture
def hold_activity():
    """`hold_activity(type, matches)`: the matching activities wait until `.released` is set (at the latest
    when the test ends)."""
    def hold(activity_type: str, matches: Callable[[Any], bool]) -> Hold:
        HOLDS.append(Hold(activity_type, matches))
        return HOLDS[-1]

    yield hold
    for held in HOLDS:
        held.released.set()
    HOLDS.clear()


@pytest.fixture
def flaky():
    """Switch on failure injection for one test (the conftest module's own switch, shared with the workers)."""
    FLAKY.update(on=False, injected=0)
    yield FLAKY
    FLAKY["on"] = False


@dataclass
class Platform:
    settings: object
    client: object
    databases: Databases
    api_url: str
    app: FastAPI
    metrics_url: str = ""  # the workers' Prometheus endpoint (their client's Temporal runtime)


@pytest.fixture(scope="session")
async def platform(settings, temporal_env):
    """Workers on every task queue and the API, against the session's Postgres and Temporal dev server."""
    target = temporal_env.client.service_client.config.target_host
    port = free_port()
    settings = settings.model_copy(update={"temporal_address": target, "lifecycle": FAST,
                                           "metrics_port": free_port(), "public_base_url": f"http://127.0.0.1:{port}"})
    databases = Databases(settings)
    # The workers' own client, as worker.py makes it: its runtime serves their metrics on metrics_port.
    client = await connect(settings)
    workers = [worker.build_worker(client, queue, databases, settings, [FailOnceAfterCommit(), HoldWhenTold()])
               for queue in TaskQueue]
    running = [asyncio.create_task(w.run()) for w in workers]
    await start_planning_rounds(client, settings.planning_round_seconds)
    app = create_app(settings)
    server, serving = await serve(app, port)
    yield Platform(settings, client, databases, f"http://127.0.0.1:{port}", app,
                   f"http://{settings.metrics_address}/metrics")
    server.should_exit = True
    await serving
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*running, return_exceptions=True)
    await databases.dispose()


@dataclass
class Receiver:
    """A partner's webhook endpoint: records every callback and checks its Standard Webhooks signature."""

    secret: str = ""
    url: str = ""
    received: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    fail_next: int = 0
    gone_for: dict[str, int] = field(default_factory=dict)  # external delivery id -> 410 answers left
    # Every market's partner shares this endpoint: a callback of an earlier test's delivery that is still in
    # flight is signed with its own partner's secret, which is as valid as the latest one.
    earlier_secrets: list[str] = field(default_factory=list)

    def verify(self, headers, body: bytes) -> bool:
        return any(self._signed_with(secret, headers, body) for secret in (self.secret, *self.earlier_secrets))

    @staticmethod
    def _signed_with(secret: str, headers, body: bytes) -> bool:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(hmac.compare_digest(f"v1,{expected}", s) for s in headers["webhook-signature"].split())

    def statuses(self, delivery_id) -> list[str]:
        return [c["data"]["status"] for c in self.received if c["data"]["delivery_id"] == str(delivery_id)]


@pytest.fixture(scope="session")
async def receiver():
    state = Receiver()
    app = FastAPI()

    @app.post("/hooks")
    async def hook(request: Request) -> Response:
        body = await request.body()
        external_id = json.loads(body)["data"]["external_delivery_id"]
        if state.gone_for.get(external_id, 0) > 0:
            state.gone_for[external_id] -= 1
            return Response(status_code=410)
        if state.fail_next > 0:
            state.fail_next -= 1
            return Response(status_code=503)
        if not state.verify(request.headers, body):
            state.bad_signatures += 1
            return Response(status_code=400)
        payload = json.loads(body)
        payload["webhook_id"] = request.headers["webhook-id"]
        state.received.append(payload)
        return Response(status_code=204)

    port = free_port()
    server, serving = await serve(app, port)
    state.url = f"http://127.0.0.1:{port}/hooks"
    yield state
    server.should_exit = True
    await serving


@dataclass
class Market_:
    """One test's own market: its area, robots (with credentials), pilots and partner."""

    platform: Platform
    market: Market
    api_key: str = ""
    partner_id: uuid.UUID | None = None
    robots: dict[str, str] = field(default_factory=dict)

    @property
    def centre(self) -> Point:
        return self.market.depot

    def point(self, north_m: float = 0, east_m: float = 0) -> dict:
        return {"latitude": self.centre.latitude + north_m / 111_000,
                "longitude": self.centre.longitude + east_m / 92_000}

    async def add_robot(self, robot_id: str | None = None, north_m: float = 0, battery: float = 1.0) -> str:
        robot_id = robot_id or f"{self.market.name}-robot-{len(self.robots) + 1}"
        where = self.point(north_m=north_m)
        dbs = self.platform.databases
        async with dbs.sessions(Service.DEVICE).begin() as session:
            self.robots[robot_id] = await devices.deploy_robot(session, robot_id, self.market.name, "test")
        async with dbs.sessions(Service.DISPATCH).begin() as session:
            await dispatch.register_robot(session, robot_id, self.market.name, where["latitude"],
                                          where["longitude"], battery)
        async with dbs.sessions(Service.OPERATIONS).begin() as session:
            await operations.register_robot(session, robot_id, self.market.name)
        return robot_id

    async def add_pilot(self) -> uuid.UUID:
        async with self.platform.databases.sessions(Service.OPERATIONS).begin() as session:
            pilot_id = await operations.create_pilot(session, f"pilot {uuid.uuid4().hex[:6]}")
            await operations.start_shift(session, pilot_id)
        return pilot_id

    async def add_partner(self, webhook_url: str | None, dialect: str = "native",
                          webhook_authorization: str | None = None) -> dict:
        """A partner of any dialect; a native one becomes the market's own partner (`api_key`, `partner_id`)."""
        async with self.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner, secrets = await credentials.create_partner(
                session, vault_from_settings(self.platform.settings), f"{dialect} partner {self.market.name}",
                dialect, webhook_url, webhook_authorization)
        if dialect == "native":
            self.api_key, self.partner_id = secrets["api_key"], partner.id
        return secrets

    @property
    def addresses(self) -> dict[str, tuple[float, float]]:
        """Street addresses in (and one just outside) this market, for the geocoder."""
        def at(north_m: float, east_m: float = 0) -> tuple[float, float]:
            point = self.point(north_m, east_m)
            return point["latitude"], point["longitude"]

        town = f"Testville {self.market.name}, TS 00001"
        return {f"1 Store Way, {town}": at(100), f"2 Home Ave, {town}": at(400, 200),
                f"9 Far Away Rd, {town}": at(5_000)}

    def partner_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.platform.api_url, timeout=30,
                                 headers={"authorization": f"Bearer {self.api_key}"})

    def robot_http(self, robot_id: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.platform.api_url, timeout=30,
                                 headers={"authorization": f"Bearer {self.robots[robot_id]}"})

    def order(self, external_id: str | None = None) -> dict:
        return {
            "external_id": external_id or f"order-{uuid.uuid4().hex[:10]}",
            "pickup": self.point(north_m=100),
            "dropoff": {**self.point(north_m=400, east_m=200), "address": "1 Test Way", "instructions": "ring"},
            "customer": {"name": "Test Customer", "phone": "+13105550199"},
        }


@pytest.fixture
async def market(platform, receiver) -> Market_:
    """A fresh market 5 km square, far from every other test's, with a partner whose webhook is the receiver."""
    n = next(_market_numbers)
    depot = Point(latitude=40.0 + n * 0.1, longitude=-100.0)
    half = 0.02
    area = Market(name=f"test-market-{n}-{uuid.uuid4().hex[:4]}", depot=depot, polygon=(
        (depot.latitude + half, depot.longitude - half), (depot.latitude + half, depot.longitude + half),
        (depot.latitude - half, depot.longitude + half), (depot.latitude - half, depot.longitude - half)))
    register_market(area)
    made = Market_(platform, area)
    secrets = await made.add_partner(receiver.url)
    if receiver.secret:
        receiver.earlier_secrets.append(receiver.secret)
    receiver.secret = secrets["webhook_secret"]
    return made


async def wait_for(predicate, timeout: float = 30, interval: float = 0.1):
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate.__name__}")
        await asyncio.sleep(interval)


async def workflow_status(platform: Platform, delivery_id) -> dict:
    from workflows.delivery import DeliveryWorkflow, workflow_id

    view = await platform.client.get_workflow_handle(workflow_id(delivery_id)).query(DeliveryWorkflow.status)
    return view.model_dump(mode="json")


async def wait_status(platform: Platform, delivery_id, status: str, timeout: float = 30) -> dict:
    async def reached():
        view = await workflow_status(platform, delivery_id)
        return view if view["status"] == status else None

    reached.__name__ = f"status {status}"
    return await wait_for(reached, timeout)


async def wait_terminal(platform: Platform, delivery_id, timeout: float = 60) -> dict:
    from workflows.delivery import workflow_id

    handle = platform.client.get_workflow_handle(workflow_id(delivery_id))
    result = await asyncio.wait_for(handle.result(), timeout)
    assert result["status"] in TERMINAL_STATUSES
    if record_dir := os.environ.get("RECORD_HISTORIES"):
        # Keeps real histories for the replay test: RECORD_HISTORIES=tests/replay/histories pytest tests/lifecycle
        test_name = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].split(" ")[0]
        history = await handle.fetch_history()
        Path(record_dir, f"{test_name}.json").write_text(history.to_json())
    return result



class RobotDriver:
    """Plays one robot through the robot API, as the simulator does."""

    def __init__(self, market: Market_, robot_id: str):
        self.market, self.robot_id = market, robot_id
        self.http = market.robot_http(robot_id)
        self.count = itertools.count(1)
        self.where = market.point()

    async def send(self, event_type: str, expect: int = 200, event_id: str | None = None) -> httpx.Response:
        body = {"event_id": event_id or f"{self.robot_id}-{next(self.count)}-{uuid.uuid4().hex[:6]}",
                "type": event_type, **self.where}
        response = await self.http.post("/v1/robot/events", json=body)
        assert response.status_code == expect, (event_type, response.status_code, response.text)
        return response

    async def heartbeat(self, moving: bool = True) -> None:
        response = await self.http.post("/v1/robot/heartbeat", json={**self.where, "moving": moving})
        assert response.status_code == 204, response.text

    async def assignment(self) -> dict | None:
        response = await self.http.get("/v1/robot/assignment")
        return response.json() if response.status_code == 200 else None

    async def to_pickup(self, delivery_id) -> None:
        await wait_status(self.market.platform, delivery_id, "robot_assigned")
        await self.send("departed")
        await self.heartbeat()
        await self.send("arrived_at_pickup")

    async def load_and_go(self) -> None:
        await self.send("lid_opened")
        await self.send("lid_closed")
        await self.send("departed")
        await self.send("arrived_at_dropoff")

    async def hand_over(self) -> None:
        await self.send("lid_opened")
        await self.send("lid_closed")


@pytest.fixture
def geocoded(platform, market) -> dict[str, tuple[float, float]]:
    """The API's offline geocoder knows the market's street addresses for one test."""
    original = platform.app.state.partner_desk.geocoder
    platform.app.state.partner_desk.geocoder = OfflineGeocoder({**DEMO_ADDRESSES, **market.addresses})
    yield market.addresses
    platform.app.state.partner_desk.geocoder = original


@dataclass
class Hook:
    """One request a webhook endpoint received."""

    headers: dict[str, str]
    body: bytes
    url: str

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Hooks:
    """A partner's webhook endpoints, one path per test: every request is kept as received, with its raw body."""

    base_url: str = ""
    received: dict[str, list[Hook]] = field(default_factory=dict)

    def endpoint(self) -> str:
        path = uuid.uuid4().hex
        self.received[path] = []
        return f"{self.base_url}/{path}"

    def of(self, url: str) -> list[Hook]:
        return self.received[url.rsplit("/", 1)[1]]


@pytest.fixture(scope="session")
async def hooks():
    state = Hooks()
    app = FastAPI()

    @app.post("/{path}")
    async def hook(path: str, request: Request) -> Response:
        state.received.setdefault(path, []).append(Hook(dict(request.headers), await request.body(), str(request.url)))
        return Response(status_code=204)

    port = free_port()
    server, serving = await serve(app, port)
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    server.should_exit = True
    await serving


@pytest.fixture
def settings_override(platform):
    """Let one test run the API with other settings (e.g. a short quote validity)."""
    original = platform.app.state.partner_desk.settings

    def use(**changes) -> None:
        platform.app.state.partner_desk.settings = original.model_copy(update=changes)

    yield use
    platform.app.state.partner_desk.settings = original


@pytest.fixture
def lifecycle_policy(platform):
    """Let one test create deliveries with other timers (the API stamps them on each new delivery)."""
    original = platform.app.state.partner_desk.settings

    def use(**changes) -> None:
        policy = original.lifecycle.model_copy(update=changes)
        platform.app.state.partner_desk.settings = original.model_copy(update={"lifecycle": policy})

    yield use
    platform.app.state.partner_desk.settings = original


async def order_rows(platform: Platform) -> dict[str, int]:
    """How many orders, sealed customers and quoted requests Integrations holds: a refused request adds none."""
    from sqlalchemy import func, select

    from services.integrations.models import PII, PartnerDelivery, QuoteRequest

    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        return {table.__tablename__: await session.scalar(select(func.count()).select_from(table))
                for table in (PartnerDelivery, PII, QuoteRequest)}


async def drive(market: Market_, robot: str, delivery_id) -> dict:
    """Play the robot from assignment to handing the order over; the delivery's final status."""
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.hand_over()
    return await wait_terminal(market.platform, delivery_id)
