"""One chaos run for the module: the real stack, a steady flow of deliveries, and what each fault did.

The stack is `tests/chaos/stack.py`; the fleet is the demo market's robots plus EXTRA_ROBOTS seeded ones with
pilots for them, split into the main simulator's robots, VANISHING robots in a simulator of their own (killed to
make them disappear), and UNRULY robots played in this process (they duplicate and reorder events on demand).
PARTNERS partner clients keep deliveries flowing. Every fault is recorded with the deliveries in flight at that
moment, and the figures go to .data-chaos/report.json when the module ends.
"""

import asyncio
import json
import os
import platform
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from bench.runner import queue_kind
from bench.stack import free_ports
from core.contracts import LifecyclePolicy
from core.db import Databases
from core.services import TaskQueue
from tests.chaos.partners import PartnerFlow
from tests.chaos.receiver import ChaosReceiver
from tests.chaos.robots import UnrulyRobot, play
from tests.chaos.stack import ChaosStack

REPORT = Path(__file__).resolve().parents[2] / ".data-chaos" / "report.json"
PARTNERS = 115
MIN_IN_FLIGHT = 100
EXTRA_ROBOTS = 33
VANISHING = 2
UNRULY = 5
# The timers the chaos partner's deliveries are stamped with: no delivery may end for want of a robot while the
# fleet is busy, a robot silent for a minute is lost, and a partner's endpoint is retried every few seconds for
# long enough to outlast its outage (the defaults back off to an hour between tries).
POLICY = LifecyclePolicy(robot_search_seconds=3600, connectivity_lost_seconds=60,
                         callback_initial_interval_seconds=1, callback_max_interval_seconds=5,
                         callback_max_attempts=200)


class ChaosRun:
    def __init__(self, data_dir: Path):
        self.stack = ChaosStack(data_dir, POLICY)
        self.receiver = ChaosReceiver()
        self.flow: PartnerFlow | None = None
        self.fleet: dict = {}
        self.unruly: list[UnrulyRobot] = []
        self.robot_tally: Counter[str] = Counter()
        self.robot_problems: list[str] = []
        self.vanishing: list[dict] = []
        self.vanished: dict[str, str] = {}  # robot id -> the delivery it was serving when it disappeared
        self.outage_orders: list[dict] = []  # creates sent while the database was down, to be retried
        self.results: dict[str, dict] = {}  # workflow id -> its result, read from its history
        self.faults: list[dict] = []
        self.figures: dict = {}
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self._robot_http: httpx.AsyncClient | None = None
        self.databases: Databases | None = None

    async def start(self) -> None:
        await self.stack.start()
        await self.receiver.start(free_ports(1)[0])
        self.fleet = await self.stack.seed(EXTRA_ROBOTS, self.receiver.url)
        self.receiver.secret = self.fleet["partner"]["webhook_secret"]
        seeded = self.fleet["robots"]
        self.vanishing, unruly, main = (seeded[:VANISHING], seeded[VANISHING:VANISHING + UNRULY],
                                        seeded[VANISHING + UNRULY:])
        self.stack.start_simulator("main", self.fleet["demo_robots"] + main)
        self.stack.start_simulator("vanishing", self.vanishing)
        self._robot_http = httpx.AsyncClient(base_url=self.stack.settings.api_url, timeout=60)
        self.unruly = [UnrulyRobot(self._robot_http, robot, self.robot_tally, self.robot_problems) for robot in unruly]
        self._tasks.append(asyncio.create_task(play(self.unruly)))
        self.databases = Databases(self.stack.settings, pool_size=2)
        self.flow = PartnerFlow(self.stack.settings.api_url, self.fleet["partner"]["api_key"], self.fleet,
                                self.receiver, PARTNERS, f"{int(time.time())}")
        self.flow.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.flow is not None:
            await self.flow.close()
        if self._robot_http is not None:
            await self._robot_http.aclose()
        if self.databases is not None:
            await self.databases.dispose()
        await self.receiver.stop()
        await self.stack.stop()

    # ---- waiting on conditions ---------------------------------------------------------------------------

    async def until(self, condition, what: str, timeout: float, interval: float = 0.5):
        """Poll `condition` (sync or async) until it returns something truthy; fail naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout:.0f}s (in flight {self.flow.in_flight()}, "
                            f"finished {self.flow.finished()})\n{self.stack.up_output()[-2000:]}")
            await asyncio.sleep(interval)

    async def require_in_flight(self) -> int:
        """Wait until at least MIN_IN_FLIGHT deliveries are in flight; how many are."""
        await self.until(lambda: self.flow.in_flight() >= MIN_IN_FLIGHT, f"{MIN_IN_FLIGHT} deliveries in flight",
                         timeout=240)
        return self.flow.in_flight()

    async def progress(self, count: int = 5, timeout: float = 240) -> None:
        """Deliveries keep finishing: `count` more reach their terminal callback."""
        target = self.flow.finished() + count
        await self.until(lambda: self.flow.finished() >= target, f"{count} more deliveries finishing", timeout)

    async def restarted(self, name: str, offset: int, timeout: float = 90) -> int:
        """`up` reported `name` restarted after output offset `offset`; the new pid."""
        pattern = re.compile(rf"^\[up\] {re.escape(name)} restarted \(pid (\d+)\)$", re.MULTILINE)

        def line():
            return pattern.search(self.stack.up_output()[offset:])

        return int((await self.until(line, f"`up` restarting {name}", timeout)).group(1))

    async def polled(self, queue: TaskQueue, pid: int | None = None, timeout: float = 120) -> None:
        """A worker polls `queue` again (the process `pid`, when given)."""
        client = self.stack.client

        async def polling():
            described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueueRef(name=queue.value),
                task_queue_type=queue_kind(queue.value)))
            return any(pid is None or poller.identity.startswith(f"{pid}@") for poller in described.pollers)

        await self.until(polling, f"a worker polling {queue.value}" + (f" from pid {pid}" if pid else ""), timeout)

    async def healthy(self, timeout: float = 120) -> None:
        await self.until(self.stack.healthy, "the API healthy again", timeout)

    def fault(self, scenario: str, in_flight: int, **details) -> None:
        self.faults.append({"scenario": scenario, "in_flight": in_flight,
                            "at_seconds": round(time.monotonic() - self.started, 1), **details})

    # ---- the report --------------------------------------------------------------------------------------

    def write_report(self) -> None:
        flow = self.flow
        report = {
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "duration_seconds": round(time.monotonic() - self.started, 1),
            "partners": PARTNERS, "robots": len(self.fleet.get("robots", [])) + len(self.fleet.get("demo_robots", [])),
            "faults": self.faults,
            "faults_injected": len(self.faults),
            "min_in_flight_at_a_fault": min((f["in_flight"] for f in self.faults), default=0),
            "deliveries_accepted": len(flow.accepted) if flow else 0,
            "api_answers_to_partners": dict(sorted(flow.answers.items())) if flow else {},
            "partner_problems": flow.problems if flow else [],
            "robot_events": dict(sorted(self.robot_tally.items())),
            "robot_problems": self.robot_problems,
            "callbacks": {"answered_500": self.receiver.answered_500, "hung": self.receiver.hung,
                          "redeliveries_same_webhook_id": self.receiver.duplicates,
                          "bad_signatures": self.receiver.bad_signatures},
            **self.figures,
        }
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2, default=str) + "\n")


@pytest.fixture(scope="module")
async def chaos():
    """The run; its stack's data and logs stay in .data-chaos/stack until the next run."""
    data_dir = REPORT.parent / "stack"
    shutil.rmtree(data_dir, ignore_errors=True)
    run = ChaosRun(data_dir)
    try:
        await run.start()
        yield run
    finally:
        try:
            await run.stop()
        finally:
            run.write_report()

