"""`deliveryctl bench --idle-robots N`: what N connected, idle robots cost, and how fast one hears of new work.

Starts the stack as the bench does (fresh data dir, free ports, no simulator), seeds N robots as `--robots` does
(Device credential, Dispatch planning row, State sighting, Operations row, pilots on shift for them) and connects
each from this process to its stream (`/v1/robot/stream`, a WebSocket), as a robot holds it: the assignment pushed
on connecting, a heartbeat every `HEARTBEAT_SECONDS` on the stream (each robot at its own phase), no deliveries.

1. **Idle**: CPU seconds of every process (API, workers, Temporal, Postgres; `bench` is this process, the robots)
   over `--idle-seconds`, as % of one core; the heartbeats' round trip (sent to answered, with the version).
2. **Push delay**: deliveries created one at a time through `POST /v1/deliveries`. Each assignment is committed by
   Operations with a notice (`core.assignments`), which this process hears too, on its own LISTEN connection to
   the Operations database: from that notice (the commit) to the robot's stream pushing the new assignment is one
   sample; from the POST's answer to the push another. The robots never act, so each delivery keeps its robot.

The report (`--output FILE`) carries the figures, the targets (API ≤ 10% of one core idle, commit → robot p99 ≤
250 ms) and the machine's load average before and after.
"""

import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from bench.receiver import Receiver
from bench.sampler import Sampler
from bench.seed import seed_bench
from bench.stack import BenchError, Stack, free_ports, stack_settings
from bench.stats import stats
from core.assignments import CHANNEL
from core.services import Service
from core.settings import Settings
from simulator.demo_market import order_body

HEARTBEAT_SECONDS = 5.0
CONNECTING_AT_ONCE = 50
SETTLE_SECONDS = 5.0  # after the last robot connected, before sampling
PUSH_TIMEOUT = 30.0
TARGETS = {"api_cpu_percent": 10.0, "commit_to_robot_p99_ms": 250.0}
GROUPS = ("api", "workers", "temporal", "postgres", "bench")
# Deliveries are made one at a time and their robots never move: keep them from being declared lost or stuck.
RUN_ENVIRONMENT = {
    "DELIVERY_LIFECYCLE__CONNECTIVITY_DEGRADED_SECONDS": "43200",
    "DELIVERY_LIFECYCLE__CONNECTIVITY_LOST_SECONDS": "86400",
}


class IdleRobot:
    """One robot holding its stream: it keeps what is pushed, heartbeats on its own clock, and never acts."""

    def __init__(self, url: str, robot: dict, rng: random.Random):
        self.url, self.robot_id = url, robot["robot_id"]
        self.headers = {"authorization": f"Bearer {robot['credential']}"}
        self.beat = json.dumps({"type": "heartbeat", "latitude": robot["latitude"],
                                "longitude": robot["longitude"], "moving": False})
        self.phase = rng.uniform(0, HEARTBEAT_SECONDS)
        self.socket: ClientConnection | None = None
        self.assignment: dict | None = None
        self.heard: asyncio.Future | None = None  # set to the monotonic time an assignment is pushed
        self.sent: list[float] = []  # heartbeats in flight, oldest first (answers come in order)
        self.round_trips: list[float] = []
        self.failures = 0

    async def connect(self) -> None:
        # No client pings (the heartbeats keep the stream alive, as a robot's do), no compression (as the simulator).
        self.socket = await connect(self.url, additional_headers=self.headers, ping_interval=None, open_timeout=60,
                                    compression=None)
        first = json.loads(await self.socket.recv())
        self.assignment = first["assignment"]

    async def run(self) -> None:
        """Read what is pushed and heartbeat every HEARTBEAT_SECONDS, until cancelled."""
        reading = asyncio.create_task(self._read())
        try:
            await asyncio.sleep(self.phase)
            while True:
                self.sent.append(time.monotonic())
                try:
                    await self.socket.send(self.beat)
                except WebSocketException:
                    self.failures += 1
                    return
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            reading.cancel()

    async def _read(self) -> None:
        async for text in self.socket:
            now = time.monotonic()
            message = json.loads(text)
            if message["type"] == "heartbeat" and self.sent:
                self.round_trips.append(now - self.sent.pop(0))
            elif message["type"] == "assignment":
                self.assignment = message["assignment"]
                if self.assignment is not None and self.heard is not None and not self.heard.done():
                    self.heard.set_result(now)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


class CommitClock:
    """This process's own LISTEN on Operations' assignment notices: when each robot's assignment was committed."""

    def __init__(self):
        self.connection: asyncpg.Connection | None = None
        self.committed: dict[str, float] = {}

    async def start(self, dsn: str) -> None:
        self.connection = await asyncpg.connect(dsn)
        await self.connection.add_listener(CHANNEL, self._heard)

    def _heard(self, connection, pid, channel, robot_id: str) -> None:
        self.committed.setdefault(robot_id, time.monotonic())

    async def commit_of(self, robot_id: str, timeout: float = 2.0) -> float | None:
        """When the robot's assignment was committed (its notice heard here), waiting a moment for the notice
        should this process's loop have read the robot's push first."""
        deadline = time.monotonic() + timeout
        while robot_id not in self.committed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.committed.pop(robot_id, None)

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def cpu_percent(resources: dict, seconds: float) -> dict:
    return {group: round(100 * resources[group]["cpu_seconds"] / seconds, 1) for group in GROUPS if group in resources}


async def connect_all(robots: list[IdleRobot], say) -> float:
    """Connect every robot, CONNECTING_AT_ONCE at a time; how long it took."""
    started, queue = time.monotonic(), list(robots)

    async def connector() -> None:
        while queue:
            robot = queue.pop()
            await robot.connect()

    await asyncio.gather(*(connector() for _ in range(CONNECTING_AT_ONCE)))
    took = time.monotonic() - started
    say(f"{len(robots)} robots connected to their streams in {took:.1f}s")
    return took


async def measure_pushes(http: httpx.AsyncClient, fleet: dict, robots: dict[str, IdleRobot], clock: CommitClock,
                         samples: int, say) -> dict:
    """Deliveries one at a time until `samples` robots on their streams heard of theirs: commit → robot and
    POST → robot, per delivery. A delivery Dispatch gives one of the demo market's robots (seeded by `up`, not on a
    stream) is not a sample."""
    rng, from_commit, from_post, missed, elsewhere = random.Random("idle-robots"), [], [], 0, 0
    loop = asyncio.get_running_loop()
    for number in range(1, 2 * samples + 1):
        if len(from_post) >= samples:
            break
        waiting = {robot_id: loop.create_future() for robot_id, robot in robots.items() if robot.assignment is None}
        for robot_id, heard in waiting.items():
            robots[robot_id].heard = heard
        response = await http.post("/v1/deliveries", json=order_body(rng, fleet, number, "idle", "bench"))
        posted = time.monotonic()
        if response.status_code != 201:
            raise BenchError(f"POST /v1/deliveries answered {response.status_code}: {response.text[:200]}")
        robot_id = None
        try:
            while time.monotonic() - posted < PUSH_TIMEOUT:
                robot_id = next((r for r, f in waiting.items() if f.done()), None)
                other = next((r for r in clock.committed if r not in robots), None)
                if robot_id is not None or other is not None:
                    break
                await asyncio.sleep(0.005)
        finally:
            for waiter in waiting:
                robots[waiter].heard = None
        if robot_id is None:
            if other is not None:
                clock.committed.pop(other)
                elsewhere += 1
            else:
                missed += 1
            continue
        heard_at = waiting[robot_id].result()
        committed = await clock.commit_of(robot_id)
        from_post.append(heard_at - posted)
        if committed is not None:
            from_commit.append(heard_at - committed)
            if heard_at < committed:
                say(f"  {robot_id}: the push was read here {1000 * (committed - heard_at):.1f} ms before the notice")
        if len(from_post) % 10 == 0:
            say(f"  {len(from_post)}/{samples} assignments heard")
    return {"deliveries": number, "heard": len(from_post), "missed": missed, "to_robots_off_stream": elsewhere,
            "commit_to_robot_ms": _ms(stats(from_commit)), "post_to_robot_ms": _ms(stats(from_post)),
            "commit_samples": len(from_commit)}


def _ms(seconds: dict) -> dict:
    return {key: None if value is None else round(1000 * value, 1) for key, value in seconds.items()}


async def run_idle_fleet(count: int, base: Settings, say, idle_seconds: float = 30, samples: int = 60) -> dict:
    """The idle-robots report."""
    main, loop = asyncio.current_task(), asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the stack goes down in `finally`
        loop.add_signal_handler(signum, main.cancel)
    data_dir = Path(tempfile.mkdtemp(prefix="deliveryctl-idle-"))
    settings = stack_settings(base, data_dir)
    os.environ.update(RUN_ENVIRONMENT)
    receiver, stack, clock, robots = Receiver(), None, CommitClock(), []
    report: dict = {"command": " ".join(["deliveryctl bench", *sys.argv[sys.argv.index("bench") + 1:]])
                    if "bench" in sys.argv else f"deliveryctl bench --idle-robots {count}",
                    "parameters": {"robots": count, "heartbeat_seconds": HEARTBEAT_SECONDS,
                                   "idle_seconds": idle_seconds, "deliveries": samples},
                    "targets": TARGETS, "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    try:
        say(f"starting deliveryctl up (data {data_dir})")
        stack = Stack(settings)
        await asyncio.to_thread(stack.wait_ready)
        await receiver.start(free_ports(1)[0])
        fleet = await seed_bench(settings, count, receiver.url)
        receiver.secret = fleet["partner"]["webhook_secret"]
        say(f"seeded {count} robots and {fleet['pilots']} pilots")
        url = settings.api_url.replace("http://", "ws://") + "/v1/robot/stream"
        rng = random.Random("idle-robots")
        robots = [IdleRobot(url, robot, rng) for robot in fleet["robots"]]
        report["connect_seconds"] = round(await connect_all(robots, say), 1)
        running = [asyncio.create_task(robot.run()) for robot in robots]
        await asyncio.sleep(SETTLE_SECONDS)
        for robot in robots:
            robot.round_trips.clear()

        say(f"idle: sampling every process for {idle_seconds:g}s")
        sampler = Sampler([stack.pid, os.getpid()])
        sampler.start()
        await asyncio.sleep(idle_seconds)
        resources = await sampler.stop()
        elapsed = sampler.machine["elapsed_seconds"]
        beats = [t for robot in robots for t in robot.round_trips]
        report["idle"] = {"seconds": elapsed, "cpu_percent": cpu_percent(resources, elapsed),
                          "heartbeats_answered": len(beats),
                          "heartbeats_per_second": round(len(beats) / elapsed, 1),
                          "heartbeat_round_trip_ms": _ms(stats(beats)),
                          "resources": resources, "machine": sampler.machine}
        say("idle CPU % of one core: " + ", ".join(f"{g} {v}" for g, v in report["idle"]["cpu_percent"].items())
            + f"; {report['idle']['heartbeats_per_second']} heartbeats/s")

        await clock.start(settings.database_dsn(Service.OPERATIONS))
        say(f"push delay: {samples} deliveries, one at a time")
        headers = {"authorization": f"Bearer {fleet['partner']['api_key']}"}
        sampler.start()
        async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=60) as http:
            push = await measure_pushes(http, fleet, {r.robot_id: r for r in robots}, clock, samples, say)
        resources = await sampler.stop()
        push["cpu_percent"] = cpu_percent(resources, sampler.machine["elapsed_seconds"])
        push["machine"] = sampler.machine
        report["push"] = push
        report["stream_failures"] = sum(robot.failures for robot in robots)
        report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        report["met"] = {
            "api_cpu_percent": report["idle"]["cpu_percent"].get("api", 0) <= TARGETS["api_cpu_percent"],
            "commit_to_robot_p99_ms": (push["commit_to_robot_ms"]["p99"] is not None
                                       and push["commit_to_robot_ms"]["p99"] <= TARGETS["commit_to_robot_p99_ms"]
                                       and push["commit_samples"] >= 50)}
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        return report
    finally:
        await asyncio.gather(*(robot.close() for robot in robots), return_exceptions=True)
        await clock.stop()
        await receiver.stop()
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        shutil.rmtree(data_dir, ignore_errors=True)


def summary(report: dict) -> str:
    idle, push = report["idle"], report["push"]
    lines = [f"{report['parameters']['robots']} idle robots on their streams, heartbeat every "
             f"{report['parameters']['heartbeat_seconds']:g}s ({idle['heartbeats_per_second']}/s answered, round trip "
             f"p50 {idle['heartbeat_round_trip_ms']['p50']} ms p99 {idle['heartbeat_round_trip_ms']['p99']} ms)",
             "  idle CPU % of one core: " + ", ".join(f"{g} {v}" for g, v in idle["cpu_percent"].items())
             + f"  (target: api ≤ {report['targets']['api_cpu_percent']:g}: "
               f"{'met' if report['met']['api_cpu_percent'] else 'not met'})",
             f"  commit → robot over {push['commit_samples']} deliveries: p50 {push['commit_to_robot_ms']['p50']} ms, "
             f"p99 {push['commit_to_robot_ms']['p99']} ms (target ≤ {report['targets']['commit_to_robot_p99_ms']:g}: "
             f"{'met' if report['met']['commit_to_robot_p99_ms'] else 'not met'}); POST answered → robot p50 "
             f"{push['post_to_robot_ms']['p50']} ms, p99 {push['post_to_robot_ms']['p99']} ms",
             f"  load average before {report['load_average_before']}, after {report['load_average_after']}"]
    return "\n".join(lines)


def write(report: dict, path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


def markdown(report: dict) -> list[str]:
    """The lines docs/benchmarks.md quotes from a report: `python -m bench.idle_fleet REPORT` prints them."""
    idle, push, targets, met = report["idle"], report["push"], report["targets"], report["met"]
    cpu, idle_machine, push_machine = idle["cpu_percent"], idle["machine"], push["machine"]
    verdict = {True: "met", False: "**not met**"}
    return [
        f"| `{report['command']}` | idle, {idle['seconds']:g} s | deliveries one at a time |",
        "|---|---|---|",
        f"| robots on their streams | {report['parameters']['robots']} "
        f"(connected in {report['connect_seconds']:g} s) | {report['parameters']['robots']} |",
        f"| heartbeats answered | {idle['heartbeats_per_second']:g}/s, round trip p50 "
        f"{idle['heartbeat_round_trip_ms']['p50']:g} ms, p99 {idle['heartbeat_round_trip_ms']['p99']:g} ms | |",
        f"| API, % of one core (target ≤ {targets['api_cpu_percent']:g}) | **{cpu['api']:g}** "
        f"({verdict[met['api_cpu_percent']]}) | {push['cpu_percent']['api']:g} |",
        "| workers / Temporal / Postgres, % of one core | "
        + " / ".join(f"{cpu.get(g, 0):g}" for g in ("workers", "temporal", "postgres")) + " | "
        + " / ".join(f"{push['cpu_percent'].get(g, 0):g}" for g in ("workers", "temporal", "postgres")) + " |",
        f"| the robots (this bench's process), % of one core | {cpu.get('bench', 0):g} | "
        f"{push['cpu_percent'].get('bench', 0):g} |",
        f"| commit → robot, {push['commit_samples']} assignments (target p99 ≤ {targets['commit_to_robot_p99_ms']:g} "
        f"ms) | | p50 **{push['commit_to_robot_ms']['p50']:g} ms**, p99 **{push['commit_to_robot_ms']['p99']:g} ms** "
        f"({verdict[met['commit_to_robot_p99_ms']]}) |",
        f"| POST answered → robot | | p50 {push['post_to_robot_ms']['p50']:g} ms, p99 "
        f"{push['post_to_robot_ms']['p99']:g} ms |",
        f"| machine busy (2 cores), CPU s by other processes | {100 * idle_machine['utilisation']:.0f}%, "
        f"{idle_machine['other_cpu_seconds']:g} | {100 * push_machine['utilisation']:.0f}%, "
        f"{push_machine['other_cpu_seconds']:g} |",
        f"| load average (1, 5, 15 min) before / after | {', '.join(f'{v:g}' for v in report['load_average_before'])}"
        f" / {', '.join(f'{v:g}' for v in report['load_average_after'])} | |",
    ]


if __name__ == "__main__":
    print("\n".join(markdown(json.loads(Path(sys.argv[1]).read_text()))))
