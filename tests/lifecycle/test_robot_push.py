"""Robots hear of their assignment without polling: on their stream (a WebSocket) or a long poll, from whichever
API process they are connected to, and again after that process lost its Postgres notices."""

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect

from api.app import create_app
from core.contracts import Point, RecordedRobotEvent, RobotEvent, RobotEventType
from core.services import Service
from desks.robot import AssignmentReading
from services.state import repository as state
from services.state.models import Connectivity
from simulator.fleet import SimulatedRobot
from tests.support.lifecycle import create
from tests.support.platform import rows
from tests.support.robots import RobotDriver, drive
from tests.support.servers import free_port, serving
from tests.support.waiting import wait_for, wait_status, wait_terminal

NEVER = 600.0  # the streams under test read again on their own only after this long: what they hear was pushed


class Stream:
    """A robot's stream as a robot holds it: every message kept in order, read with a deadline."""

    def __init__(self, socket):
        self.socket = socket

    async def next(self, kind: str, timeout: float = 20, accept=lambda message: True) -> dict:
        """The next message of this kind that `accept` takes (earlier ones are skipped)."""
        async def read() -> dict:
            while True:
                message = json.loads(await self.socket.recv())
                if message["type"] == kind and accept(message):
                    return message

        return await asyncio.wait_for(read(), timeout)

    async def event(self, body: dict) -> dict:
        """Send an event on the stream; the answer to it (its receipt, or its refusal)."""
        await self.socket.send(json.dumps({"type": "event", "event": body}))
        return await self.next_answer(body["event_id"])

    async def next_answer(self, event_id: str, timeout: float = 20) -> dict:
        async def read() -> dict:
            while True:
                message = json.loads(await self.socket.recv())
                if message["type"] in ("receipt", "error") and message.get("event_id") == event_id:
                    return message

        return await asyncio.wait_for(read(), timeout)

    async def heartbeat(self, where: dict, moving: bool = False) -> None:
        await self.socket.send(json.dumps({"type": "heartbeat", **where, "moving": moving}))

    async def quiet(self, seconds: float) -> list[dict]:
        """Whatever arrives within `seconds` (nothing, when nothing was pushed)."""
        heard = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    heard.append(json.loads(await self.socket.recv()))
        except TimeoutError:
            return heard


@asynccontextmanager
async def stream(api_url: str, credential: str):
    url = api_url.replace("http://", "ws://") + "/v1/robot/stream"
    async with connect(url, additional_headers={"authorization": f"Bearer {credential}"}) as socket:
        yield Stream(socket)


@pytest.fixture
def pushed_only(platform):
    """The platform's streams read a robot's assignment only when told it changed, for one test."""
    platform.app.state.robot_reread_seconds = NEVER
    yield
    del platform.app.state.robot_reread_seconds


@asynccontextmanager
async def second_api(platform):
    """Another API process on its own port, against the same databases and Temporal: it shares nothing with the
    platform's API but them."""
    app = create_app(platform.settings)
    async with serving(app, free_port()) as url:
        app.state.robot_reread_seconds = NEVER
        yield app, url


def assigned(message: dict) -> bool:
    return message["assignment"] is not None


def lid_open(message: dict) -> bool:
    return message["assignment"] is not None and message["assignment"]["lid_open"]


def status(wanted: str):
    return lambda message: message["assignment"] is not None and message["assignment"]["status"] == wanted


async def test_a_waiting_robot_hears_its_new_assignment_without_asking(market, pushed_only):
    robot = await market.add_robot()
    await market.add_pilot()
    async with stream(market.platform.api_url, market.robots[robot]) as robot_stream:
        first = await robot_stream.next("assignment")
        assert first == {"type": "assignment", "version": "none", "assignment": None}
        delivery_id = await create(market)
        pushed = await robot_stream.next("assignment", accept=assigned)
    assert pushed["assignment"]["delivery_id"] == str(delivery_id)
    assert pushed["assignment"]["robot_id"] == robot and pushed["version"] == pushed["assignment"]["version"]
    assert (await drive(market, robot, delivery_id))["status"] == "delivered"


async def test_a_long_poll_answers_when_the_assignment_changes(market):
    robot = await market.add_robot()
    await market.add_pilot()
    async with market.robot_http(robot) as http:
        idle = await http.get("/v1/robot/assignment")
        assert idle.status_code == 204 and idle.headers["assignment-version"] == "none"
        held = asyncio.create_task(http.get("/v1/robot/assignment", params={"after": "none", "wait": 45}))
        await asyncio.sleep(0.5)
        assert not held.done()
        started = asyncio.get_running_loop().time()
        delivery_id = await create(market)
        answer = await asyncio.wait_for(held, 45)
        assert asyncio.get_running_loop().time() - started < 30  # answered on the change, not at the timeout
    assert answer.status_code == 200 and answer.json()["delivery_id"] == str(delivery_id)
    assert answer.headers["assignment-version"] == answer.json()["version"] != "none"
    assert (await drive(market, robot, delivery_id))["status"] == "delivered"


async def test_a_robot_on_one_api_process_hears_changes_made_through_another(market):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    driver = RobotDriver(market, robot)  # its events go to the platform's API; its stream to the other one
    async with second_api(platform) as (_, other_url), stream(other_url, market.robots[robot]) as robot_stream:
        assert (await robot_stream.next("assignment"))["assignment"] is None
        delivery_id = await create(market)  # through the platform's API: Operations commits the task
        pushed = await robot_stream.next("assignment", accept=assigned)
        assert pushed["assignment"]["delivery_id"] == str(delivery_id)

        await wait_status(platform, delivery_id, "robot_assigned")
        await driver.send("departed")  # Deliveries records the status
        moving = await robot_stream.next("assignment", accept=status("en_route_to_pickup"))
        await driver.send("arrived_at_pickup")
        await robot_stream.next("assignment", accept=status("at_pickup"))
        await driver.send("lid_opened")  # State records the lid, from the platform's API process
        opened = await robot_stream.next("assignment", accept=lid_open)
        assert len({pushed["version"], moving["version"], opened["version"]}) == 3
        await driver.send("lid_closed")
        await driver.send("departed")
        await driver.send("arrived_at_dropoff")
        await driver.hand_over()
        assert (await wait_terminal(platform, delivery_id))["status"] == "delivered"
        ended = await robot_stream.next("assignment", accept=lambda m: m["assignment"] is None)
    assert ended["version"] == "none"


async def test_events_on_the_stream_are_answered_there_as_the_post_answers_them(market):
    """An event sent on the stream is applied as `POST /v1/robot/events` applies it: its receipt, the same
    receipt for a resend, and the POST's status and code for an event that does not fit or cannot be read."""
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    where = market.point()
    async with stream(platform.api_url, market.robots[robot]) as robot_stream:
        await robot_stream.next("assignment")
        delivery_id = await create(market)
        await wait_status(platform, delivery_id, "robot_assigned")
        departed = {"event_id": f"{robot}-on-stream-1", "type": "departed", **where}
        first = await robot_stream.event(departed)
        assert first["type"] == "receipt" and first["receipt"]["status"] == "en_route_to_pickup"
        assert first["receipt"]["delivery_id"] == str(delivery_id)
        assert await robot_stream.event(departed) == first  # a resend: the first answer, applied once
        early = await robot_stream.event({"event_id": f"{robot}-on-stream-2", "type": "arrived_at_dropoff", **where})
        assert (early["type"], early["status"], early["code"]) == ("error", 409, "event_rejected")
        blind = await robot_stream.event({"event_id": f"{robot}-on-stream-3", "type": "lid_opened"})
        assert (blind["status"], blind["code"]) == (422, "location_required")
        garbled = await robot_stream.event({"event_id": f"{robot}-on-stream-4", "type": "teleported"})
        assert (garbled["status"], garbled["code"]) == (422, "invalid_request")
        await robot_stream.heartbeat(where)
        assert (await robot_stream.next("heartbeat"))["type"] == "heartbeat"  # the stream is still open
    async with market.robot_http(robot) as http:  # the resend over HTTP gets the same receipt too
        resent = await http.post("/v1/robot/events", json=departed)
    assert resent.status_code == 200 and resent.json() == first["receipt"]
    driver = RobotDriver(market, robot)
    await driver.send("arrived_at_pickup")
    await driver.load_and_go()
    await driver.hand_over()
    assert (await wait_terminal(platform, delivery_id))["status"] == "delivered"


async def test_a_simulated_robot_whose_stream_dropped_sends_its_event_over_http_with_the_same_id(market):
    """The stream drops while the simulator's robot is about to report: the event goes as an HTTP POST (not again
    and again onto the dead stream), is applied, and a resend of it gets the same receipt."""
    platform = market.platform
    robot_id = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    await wait_status(platform, delivery_id, "robot_assigned")
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=30) as http:
        robot = SimulatedRobot(http, robot_id, market.robots[robot_id], Point(**market.point()), speed=None)
        async with connect(robot.stream_url(), additional_headers=robot.headers) as socket:
            robot.socket, robot.listening = socket, asyncio.create_task(robot.listen(socket))

            async def pushed():
                return robot.job is not None

            await wait_for(pushed)
            assert robot.streaming()
            await socket.close()  # as if the API went away: the robot still holds the socket it had
            await robot.listening
            assert robot.socket is socket and not robot.streaming()
            departed = robot.event_body("departed")
            status_code, receipt = await asyncio.wait_for(robot.send(departed), 15)
        assert status_code == 200 and receipt["status"] == "en_route_to_pickup", (status_code, receipt)
        assert await robot.send(departed) == (200, receipt)  # the same event again: the answer it got
    await wait_status(platform, delivery_id, "en_route_to_pickup")


async def test_heartbeat_answers_carry_the_version_and_follow_the_assignment(market, pushed_only):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    driver = RobotDriver(market, robot)
    where = market.point(north_m=30)
    async with stream(platform.api_url, market.robots[robot]) as robot_stream:
        await robot_stream.next("assignment")
        await robot_stream.heartbeat(where)
        assert (await robot_stream.next("heartbeat"))["version"] == "none"
        delivery_id = await create(market)

        async def heartbeat_version() -> str:
            await robot_stream.heartbeat(where)
            return (await robot_stream.next("heartbeat"))["version"]

        async def assigned():
            version = await heartbeat_version()
            return version if version != "none" else None

        async def follows_the_assignment():  # one event may change it twice (State, then Deliveries)
            version = await heartbeat_version()
            current = (await driver.assignment())["version"]
            return version if version == current and version not in ("none", first) else None

        first = await wait_for(assigned, 20)
        await wait_status(platform, delivery_id, "robot_assigned")
        await driver.send("departed")
        await wait_for(follows_the_assignment, 20)

        async def recorded():  # the stream's heartbeats reach State, written in batches
            connectivity = await rows(platform, Service.STATE, select(Connectivity).where(
                Connectivity.robot_id == robot))
            return connectivity and abs(connectivity[0].latitude - where["latitude"]) < 1e-9

        await wait_for(recorded, 10)
    await driver.send("arrived_at_pickup")
    await driver.load_and_go()
    await driver.hand_over()
    assert (await wait_terminal(platform, delivery_id))["status"] == "delivered"


async def test_a_stream_reads_again_when_its_process_loses_its_notices(market):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    async with second_api(platform) as (other, other_url), stream(other_url, market.robots[robot]) as robot_stream:
        await robot_stream.next("assignment")
        delivery_id = await create(market)
        pushed = (await robot_stream.next("assignment", accept=assigned))["assignment"]
        await wait_status(platform, delivery_id, "robot_assigned")
        await robot_stream.quiet(1)

        # A change no notice tells of: the attempt's lid opened, written straight to State.
        async with platform.databases.sessions(Service.STATE).begin() as session:
            await state.record_event(session, RecordedRobotEvent(
                event=RobotEvent(event_id=f"{robot}-unannounced", robot_id=robot, type=RobotEventType.LID_OPENED,
                                 location=Point(**market.point()), occurred_at=datetime.now(UTC)),
                delivery_id=delivery_id, attempt_id=pushed["attempt_id"], accepted=True))
        assert await robot_stream.quiet(2) == []  # nothing reads it again on its own

        # The other process's listening connections die: every waiter there reads its assignment again.
        listening = [c.get_server_pid() for c in other.state.robot_desk.notices.connections.values()]
        assert len(listening) == 3
        admin = await asyncpg.connect(platform.settings.postgres_admin_dsn)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", listening)
        finally:
            await admin.close()
        heard = await robot_stream.next("assignment", timeout=10, accept=lid_open)
        assert heard["assignment"]["delivery_id"] == str(delivery_id)
        assert await wait_for(lambda: _listening_again(other), 10)
    async with market.partner_http() as partner:
        assert (await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={})).status_code == 200
    assert (await wait_terminal(platform, delivery_id))["status"] == "cancelled"


async def test_a_reading_reads_again_only_what_the_announcing_databases_hold(market):
    """A stream's reading, after its first, reads again only the parts of the databases that announced a change,
    and everything once its robot's task changed: a change no database announced is not seen until then."""
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    reading = AssignmentReading(platform.app.state.robot_desk, robot)

    async def recorded_as_assigned():  # the workflow's status reaches Deliveries a moment after the workflow
        assignment = await reading.read()
        return assignment if assignment and assignment.status == "robot_assigned" else None

    first = await wait_for(recorded_as_assigned, 30)
    assert first.delivery_id == delivery_id and not first.lid_open

    async with platform.databases.sessions(Service.STATE).begin() as session:  # the lid opened, unannounced
        await state.record_event(session, RecordedRobotEvent(
            event=RobotEvent(event_id=f"{robot}-unannounced", robot_id=robot, type=RobotEventType.LID_OPENED,
                             location=Point(**market.point(north_m=7)), occurred_at=datetime.now(UTC)),
            delivery_id=delivery_id, attempt_id=first.attempt_id, accepted=True))
    (seen,) = await rows(platform, Service.STATE, select(Connectivity).where(Connectivity.robot_id == robot))
    assert (seen.latitude, seen.longitude) == tuple(market.point(north_m=7).values())  # its sighting, in the same statement
    assert not (await reading.read({Service.OPERATIONS, Service.DELIVERIES})).lid_open  # State not read again
    assert (await reading.read({Service.STATE})).lid_open
    async with market.partner_http() as partner:
        assert (await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={})).status_code == 200
    assert (await wait_terminal(platform, delivery_id))["status"] == "cancelled"
    assert (await reading.read({Service.DELIVERIES})).status == "cancelled"  # the task as read before
    assert await reading.read({Service.OPERATIONS}) is None  # its task closed
    assert await reading.read({Service.STATE}) is None  # nothing read since: no task, so everything is read


async def _listening_again(app) -> bool:
    return len(app.state.robot_desk.notices.connections) == 3
