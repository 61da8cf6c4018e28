"""A fleet of simulated robots that drive deliveries through the same API a real robot uses.

Each robot holds its stream (`/v1/robot/stream`, a WebSocket): the platform pushes it its assignment the moment
it changes, and the robot sends its heartbeats on it. It looks at the delivery's status and takes the next step:
depart, drive (sending heartbeats), arrive, open and close the lid, each event sent on the stream too (an HTTP
POST while the stream is down) and answered there with its receipt. The assignment is
read from the databases, a moment behind the workflow, so while a task lasts the robot goes by the receipt of its
last accepted event (the workflow's own answer), takes the next step at once, and only waits for the next push
when there is nothing to do or an event is refused. That receipt is all it remembers, so a restarted simulator
picks up where the deliveries are. Like a real robot, it also reports its position on its own clock while it
serves a task, so waiting on a slow platform never looks like a lost link. An event that got no answer, or a
503, is resent with the same event_id until the platform says how it was taken. A robot whose stream drops
connects again and is pushed its assignment as it is.
"""

import asyncio
import itertools
import json
import logging
import time
import uuid

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from core.contracts import Point
from core.geo import meters_between

log = logging.getLogger("simulator")

HEARTBEAT_SECONDS = 5.0
KEEPALIVE_SECONDS = 10.0  # a robot on a task reports at least this often (wall time), even while it waits
NEWS_SECONDS = 5.0  # with nothing to do, the robot waits this long for a new assignment before it looks again
LID_DWELL_SECONDS = 20.0
RESEND_SECONDS = 1.0  # after no answer at all, before the same event is sent again
ANSWER_SECONDS = 30.0  # an event sent on the stream and not answered within this is sent again


def toward(start: Point, end: Point, fraction: float) -> Point:
    """The point `fraction` of the way along the straight line from start to end."""
    return Point(latitude=start.latitude + (end.latitude - start.latitude) * fraction,
                 longitude=start.longitude + (end.longitude - start.longitude) * fraction)


def parse_speed(value: str) -> float | None:
    """`instant` means no waiting at all; otherwise a multiple of real time (1 = real time)."""
    if value == "instant":
        return None
    speed = float(value)
    if speed <= 0:
        raise ValueError("sim speed must be positive or 'instant'")
    return speed


class SimulatedRobot:
    """One robot: credentials, a position, its stream, and the loop that serves whatever it is assigned."""

    def __init__(self, http: httpx.AsyncClient, robot_id: str, credential: str, position: Point,
                 speed: float | None, walking_speed_mps: float = 1.4):
        self.http, self.robot_id, self.position = http, robot_id, position
        self.headers = {"authorization": f"Bearer {credential}"}
        self.speed, self.walking_speed = speed, walking_speed_mps
        self.events = itertools.count(1)
        self.session = uuid.uuid4().hex[:8]
        self.task_id: str | None = None
        self.confirmed: tuple[str, str, bool, bool] | None = None  # (task, status, lid open, at store): last receipt
        self.on_task = False
        self.last_report = time.monotonic()
        self.socket: ClientConnection | None = None
        self.job: dict | None = None  # the last assignment pushed, and its version
        self.version: str | None = None
        self.news = asyncio.Event()  # a new version was pushed, or the stream dropped
        self.listening: asyncio.Task | None = None
        self.answers: dict[str, asyncio.Future] = {}  # by event_id: the stream's answer to an event sent on it

    def stream_url(self) -> str:
        return str(self.http.base_url).rstrip("/").replace("http", "ws", 1) + "/v1/robot/stream"

    async def run(self) -> None:
        while True:
            try:
                # Messages are a few hundred bytes: compressing them costs both sides more than it saves.
                async with connect(self.stream_url(), additional_headers=self.headers, open_timeout=30,
                                   compression=None) as socket:
                    await self.serve(socket)
            except (httpx.HTTPError, OSError, WebSocketException, TimeoutError) as exc:
                log.warning("%s: API unreachable (%s); retrying", self.robot_id, type(exc).__name__)
                await asyncio.sleep(1)

    async def serve(self, socket: ClientConnection) -> None:
        """Follow the pushed assignments until the stream drops."""
        self.socket, self.version = socket, None
        self.listening = listening = asyncio.create_task(self.listen(socket))
        try:
            while not listening.done():
                await self.keep_alive()
                await self.step()
            listening.result()  # the stream's end, raised
        finally:
            self.socket = None
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    async def listen(self, socket: ClientConnection) -> None:
        """Keep the latest assignment pushed; a heartbeat's answer naming another version asks for it again."""
        try:
            async for text in socket:
                message = json.loads(text)
                if message["type"] == "assignment":
                    self.job, self.version = message["assignment"], message["version"]
                    self.news.set()
                elif message["type"] == "heartbeat" and message["version"] not in (None, self.version):
                    await socket.send(json.dumps({"type": "assignment"}))
                elif message["type"] in ("receipt", "error") and message.get("event_id") in self.answers:
                    answer = self.answers.pop(message["event_id"])
                    if not answer.done():
                        answer.set_result(message)
        finally:
            self.news.set()  # a robot waiting for news finds the stream gone
            for answer in self.answers.values():  # events sent on it will never be answered there: resend them
                if not answer.done():
                    answer.set_exception(ConnectionError("the stream dropped"))
            self.answers.clear()

    async def ask_afresh(self) -> None:
        """Ask the stream to read the assignment again and push it, changed or not."""
        if self.streaming():
            try:
                await self.socket.send(json.dumps({"type": "assignment"}))
            except WebSocketException:
                pass  # the stream is gone: `serve` ends and a new one pushes on connecting

    async def wait_for_news(self, seen: str | None, seconds: float = NEWS_SECONDS) -> None:
        """Until the version pushed is no longer `seen` (or the stream drops), at most `seconds`."""
        deadline = time.monotonic() + seconds
        while self.version == seen and self.listening is not None and not self.listening.done():
            self.news.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self.news.wait(), remaining)
            except TimeoutError:
                return

    async def step(self) -> None:
        """Follow the assignment pushed last, step after step, for as long as the receipts say what is next."""
        job, version = self.job, self.version
        self.on_task = job is not None
        if job is None:
            await self.wait_for_news(version)
            return
        pickup, dropoff = Point(**job["pickup"]), Point(**job["dropoff"])
        self.task_id = job["task_id"]
        status, lid_open, at_store = job["status"], job["lid_open"], job["at_store"]
        while True:
            if self.confirmed and self.confirmed[0] == self.task_id:
                status, lid_open, at_store = self.confirmed[1:]
            if not await self.act(status, lid_open, at_store, pickup, dropoff):
                # Nothing to do, or refused: the assignment read afresh (it may have missed a notice while a
                # database was away), then wait until it changes.
                await self.ask_afresh()
                await self.wait_for_news(version)
                return

    async def act(self, status: str, lid_open: bool, at_store: bool, pickup: Point, dropoff: Point) -> bool:
        """Take the step the status calls for; whether an event of it was accepted."""
        if status == "robot_assigned" or status == "picked_up":
            return await self.report("departed")
        if status == "en_route_to_pickup":
            await self.drive_to(pickup)
            return await self.report("arrived_at_pickup")
        if status == "en_route_to_dropoff":
            await self.drive_to(dropoff)
            return await self.report("arrived_at_dropoff")
        if status in ("at_pickup", "at_dropoff", "returning") and lid_open:
            await self.wait(LID_DWELL_SECONDS)
            return await self.report("lid_closed")
        if status in ("at_pickup", "at_dropoff"):
            await self.wait(LID_DWELL_SECONDS)
            return await self.report("lid_opened")
        if status == "returning":
            return await self.return_to_store(pickup, at_store)
        return False

    async def return_to_store(self, store: Point, at_store: bool) -> bool:
        """Drive back and say so (unless already said), then open the lid for the store's staff."""
        if not at_store:
            if meters_between(self.position, store) > 5 and not await self.report("departed"):
                return False
            await self.drive_to(store)
            if not await self.report("arrived_at_store"):
                return False
        return await self.report("lid_opened")

    async def drive_to(self, target: Point) -> None:
        """Move in a straight line at walking speed, sending heartbeats on the way."""
        distance = meters_between(self.position, target)
        if self.speed is None:
            self.position = target
            await self.heartbeat(moving=False)
            return
        duration = distance / self.walking_speed / self.speed
        start, elapsed = self.position, 0.0
        while elapsed < duration:
            tick = min(HEARTBEAT_SECONDS, duration - elapsed)
            await asyncio.sleep(tick)
            elapsed += tick
            self.position = toward(start, target, elapsed / duration)
            await self.heartbeat(moving=elapsed < duration)

    async def wait(self, seconds: float) -> None:
        if self.speed is not None:
            await asyncio.sleep(seconds / self.speed)

    async def keep_alive(self) -> None:
        """On a task and silent for KEEPALIVE_SECONDS: report where it stands (tried once per period)."""
        if self.on_task and time.monotonic() - self.last_report >= KEEPALIVE_SECONDS:
            await self.heartbeat(moving=False)

    async def heartbeat(self, moving: bool) -> None:
        """On the stream (answered with the assignment's version), or over HTTP while it is down."""
        self.last_report = time.monotonic()
        beat = {"latitude": self.position.latitude, "longitude": self.position.longitude, "moving": moving}
        if self.streaming():
            try:
                await self.socket.send(json.dumps({"type": "heartbeat", **beat}))
                return
            except WebSocketException:
                pass
        await self.http.post("/v1/robot/heartbeat", headers=self.headers, json=beat)

    async def report(self, event_type: str) -> bool:
        """Send one event; whether it was accepted."""
        body = self.event_body(event_type)
        status_code, receipt = await self.send(body)
        if receipt is None:
            log.info("%s: %s refused (%s)", self.robot_id, event_type, status_code)
        return self.remember(receipt)

    def event_body(self, event_type: str) -> dict:
        """A new event, with an id unique to this robot, at the robot's position."""
        return {"event_id": f"{self.robot_id}-{self.session}-{next(self.events)}", "type": event_type,
                "latitude": self.position.latitude, "longitude": self.position.longitude}

    async def send(self, body: dict) -> tuple[int, dict | None]:
        """Send an event until the platform answers it with something other than 503, resending the same body
        (a resend of an event_id is idempotent) after no answer at all or a 503, however long that takes: the
        answer is the one the event got. An event given up on could have been applied without the robot knowing,
        and a new one in its place would then be refused. On the stream while it is up, else an HTTP POST.
        (status code, the receipt when accepted)."""
        while True:
            try:
                status_code, answer, retry_after = await self._send_once(body)
            except (httpx.TransportError, WebSocketException, ConnectionError, TimeoutError) as exc:
                log.warning("%s: no answer to %s (%s); resending it", self.robot_id, body["type"],
                            type(exc).__name__)
                await asyncio.sleep(RESEND_SECONDS)
                continue
            if status_code != 503:
                return status_code, answer
            await asyncio.sleep(retry_after)

    def streaming(self) -> bool:
        """Whether the stream is up: once it drops, events go over HTTP until `serve` connects again."""
        return self.socket is not None and self.listening is not None and not self.listening.done()

    async def _send_once(self, body: dict) -> tuple[int, dict | None, float]:
        """One try: (status code, the receipt when accepted, seconds to wait before a resend after a 503)."""
        if self.streaming():
            answer = self.answers[body["event_id"]] = asyncio.get_running_loop().create_future()
            try:
                await self.socket.send(json.dumps({"type": "event", "event": body}))
                message = await asyncio.wait_for(answer, ANSWER_SECONDS)
            finally:
                if self.answers.get(body["event_id"]) is answer:
                    del self.answers[body["event_id"]]
                if answer.done() and not answer.cancelled():
                    answer.exception()  # the stream dropped while sending: seen here, raised by `send` itself
            if message["type"] == "receipt":
                return 200, message["receipt"], 0
            return message["status"], None, float(message.get("retry_after") or 1)
        response = await self.http.post("/v1/robot/events", headers=self.headers, json=body)
        receipt = response.json() if response.status_code == 200 else None
        return response.status_code, receipt, float(response.headers.get("retry-after", "1"))

    def remember(self, receipt: dict | None) -> bool:
        """Go by an accepted event's receipt; after a refusal, by the assignment once it has caught up."""
        self.confirmed = None
        if receipt is not None:
            self.confirmed = (self.task_id, receipt["status"], receipt["lid_open"], receipt["at_store"])
        return receipt is not None


async def run_fleet(api_url: str, robots: list[dict], speed: float | None) -> None:
    """Run every robot until cancelled."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        fleet = [SimulatedRobot(http, r["robot_id"], r["credential"], Point(latitude=r["latitude"], longitude=r["longitude"]), speed)
                 for r in robots]
        log.info("simulating %d robots against %s", len(fleet), api_url)
        await asyncio.gather(*(robot.run() for robot in fleet))
