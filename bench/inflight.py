"""`deliveryctl bench --in-flight N`: what the stack holds in memory with N deliveries open at once.

Starts the stack as the bench does (fresh data dir, free ports, `DELIVERY_WORKERS` as the caller set it), seeds
N robots (10% more) and the pilots for them, and no simulator: the robots never move, so every delivery, once it has its
robot and pilot, waits for the robot's first event, as a real delivery does for most of its half hour. For the
run, robots that stay silent are not declared lost (connectivity timers of a day) and the partner rate limit is
lifted. It creates N deliveries through `POST /v1/deliveries`, waits until each has sent its `robot_assigned`
callback (or none came for 30 s: a few wait for a robot with the charge for their trip), then samples CPU and RSS
of every process for a minute, and what the Temporal server was asked meanwhile (its Prometheus counters).
"""

import asyncio
import json
import os
import random
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import httpx

from bench.receiver import Receiver
from bench.sampler import Sampler
from bench.seed import seed_bench
from bench.stack import Stack, free_ports, stack_settings
from core.settings import Settings
from simulator.demo_market import order_body

# A minute: the stranded-orders pass and the planning rounds run within it, and half of the waiting deliveries ask
# Dispatch again (every robot_retry_seconds, 2 min), so a periodic burst is averaged in rather than hit or missed.
SAMPLE_SECONDS = 60
STALL_SECONDS = 30
CREATORS = 20
# What the Temporal server did in a sample, from its Prometheus counters: requests each service answered, and the
# writes and reads they cost, by operation.
TEMPORAL_COUNTERS = ("service_requests", "persistence_requests", "visibility_persistence_requests")
COUNTER_LINE = re.compile(r'^(\w+)\{([^}]*)\} ([0-9.e+]+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')
ROBOT_MARGIN = 1.1  # some seeded robots lack the charge for a given trip
# Silent robots stay "connected" for the run; callbacks and every other timer keep their defaults.
RUN_ENVIRONMENT = {
    "DELIVERY_LIFECYCLE__CONNECTIVITY_DEGRADED_SECONDS": "43200",
    "DELIVERY_LIFECYCLE__CONNECTIVITY_LOST_SECONDS": "86400",
    "DELIVERY_API_RATE_LIMIT_PER_SECOND": "10000",
    "DELIVERY_API_RATE_LIMIT_BURST": "10000",
}


async def create_all(http: httpx.AsyncClient, fleet: dict, count: int) -> list[str]:
    """POST `count` deliveries, CREATORS at a time; their ids."""
    rng, numbers, created = random.Random("in-flight"), iter(range(1, count + 1)), []

    async def creator() -> None:
        for number in numbers:
            response = await http.post("/v1/deliveries", json=order_body(rng, fleet, number, "inflight", "bench"))
            if response.status_code != 201:
                raise RuntimeError(f"POST /v1/deliveries answered {response.status_code}: {response.text[:200]}")
            created.append(response.json()["id"])

    await asyncio.gather(*(creator() for _ in range(CREATORS)))
    return created


async def wait_assigned(receiver: Receiver, count: int, timeout: float, say) -> int:
    """Wait until `count` robot_assigned callbacks arrived, or none for STALL_SECONDS (the rest wait for a robot
    with the charge for their trip), or `timeout`; how many arrived."""
    deadline, reported, progress = time.monotonic() + timeout, -1, (0, time.monotonic())
    while time.monotonic() < deadline:
        assigned = receiver.statuses["robot_assigned"]
        if assigned != progress[0]:
            progress = (assigned, time.monotonic())
        if assigned >= count or time.monotonic() - progress[1] > STALL_SECONDS:
            return assigned
        if assigned // 100 != reported // 100:
            say(f"  {assigned}/{count} deliveries have their robot")
            reported = assigned
        await asyncio.sleep(1)
    return receiver.statuses["robot_assigned"]


async def run_in_flight(count: int, base: Settings, say, timeout: float = 900) -> dict:
    """The in-flight report: how many were open, and every process's CPU and RSS meanwhile."""
    main, loop = asyncio.current_task(), asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the stack goes down in `finally`
        loop.add_signal_handler(signum, main.cancel)
    data_dir = Path(tempfile.mkdtemp(prefix="deliveryctl-inflight-"))
    settings = stack_settings(base, data_dir)
    os.environ.update(RUN_ENVIRONMENT)
    receiver, stack = Receiver(), None
    try:
        say(f"starting deliveryctl up (data {data_dir}, DELIVERY_WORKERS={settings.workers})")
        stack = Stack(settings)
        await asyncio.to_thread(stack.wait_ready)
        await receiver.start(free_ports(1)[0])
        robots = int(count * ROBOT_MARGIN)
        fleet = await seed_bench(settings, robots, receiver.url)
        receiver.secret = fleet["partner"]["webhook_secret"]
        say(f"seeded {robots} robots that never move and {fleet['pilots']} pilots; sampling the idle stack for "
            f"{SAMPLE_SECONDS}s (Temporal's metrics: {settings.temporal_metrics_url})")
        before = await sample(stack, settings)
        say(f"creating {count} deliveries")
        headers = {"authorization": f"Bearer {fleet['partner']['api_key']}"}
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=120) as http:
            created = await create_all(http, fleet, count)
        assigned = await wait_assigned(receiver, count, timeout, say)
        took = time.monotonic() - started
        say(f"{len(created)} deliveries in flight, {assigned} with their robot, after {took:.0f}s; "
            f"sampling for {SAMPLE_SECONDS}s")
        resources, machine, temporal = await sample(stack, settings)
        ended = sum(1 for status, _ in receiver.terminal.values())
        return {"deliveries": count, "in_flight": len(created) - ended, "with_robot": assigned,
                "workers": settings.workers,
                "seconds_to_fill": round(took, 1), "sample_seconds": SAMPLE_SECONDS,
                "resources": resources, "machine": machine, "temporal_requests": temporal,
                "idle_before": {"resources": before[0], "machine": before[1], "temporal_requests": before[2]}}
    finally:
        await receiver.stop()
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        shutil.rmtree(data_dir, ignore_errors=True)


async def sample(stack: Stack, settings: Settings) -> tuple[dict, dict, dict]:
    """Every process's CPU and peak RSS over SAMPLE_SECONDS, the machine's, and what Temporal did meanwhile."""
    sampler = Sampler([stack.pid])
    first = await temporal_counters(settings.temporal_metrics_url)
    sampler.start()
    await asyncio.sleep(SAMPLE_SECONDS)
    resources = await sampler.stop()
    last = await temporal_counters(settings.temporal_metrics_url)
    done = {key: round(last[key] - first.get(key, 0)) for key in last}
    return resources, sampler.machine, dict(sorted(((k, v) for k, v in done.items() if v > 0),
                                                   key=lambda item: -item[1]))


async def temporal_counters(url: str) -> dict[str, float]:
    """Temporal's request and persistence counters, summed by what was asked: `<counter> <service> <operation>`."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(url)).text
    counters: dict[str, float] = {}
    for line in text.splitlines():
        match = COUNTER_LINE.match(line)
        if match is None or match[1] not in TEMPORAL_COUNTERS:
            continue
        labels = dict(LABEL.findall(match[2]))
        key = f"{match[1]} {labels.get('service_name', '?')} {labels.get('operation', '?')}"
        counters[key] = counters.get(key, 0) + float(match[3])
    return counters


def summary(report: dict) -> str:
    """One line per process kind: peak RSS and CPU % while the deliveries waited (and before any was created, for
    reports that sampled that too)."""
    lines = [f"{report['in_flight']}/{report['deliveries']} deliveries in flight, {report['with_robot']} with their "
             f"robot (DELIVERY_WORKERS={report['workers']}), over {report['sample_seconds']}s:"]
    lines += _rows(report["resources"], report["sample_seconds"])
    lines += _requests(report.get("temporal_requests"))
    if "idle_before" in report:
        lines.append(f"the same stack before the first delivery, over {report['sample_seconds']}s:")
        lines += _rows(report["idle_before"]["resources"], report["sample_seconds"])
    return "\n".join(lines)


def _rows(resources: dict, seconds: float) -> list[str]:
    total = sum(value["cpu_seconds"] for label, value in resources.items() if label not in ("workers", "bench"))
    rows = [f"  {label:<60} RSS {value['peak_rss_mb']:7.0f} MB   CPU {100 * value['cpu_seconds'] / seconds:5.1f}%"
            for label, value in resources.items()]
    return rows + [f"  {'servers together':<60} {'':14} CPU {100 * total / seconds:5.1f}%"]


def _requests(done: dict | None, top: int = 8) -> list[str]:
    """Temporal's busiest operations of the sample (reports written before it was measured have none)."""
    if not done:
        return []
    return ["  Temporal's busiest operations (count in the sample):"] + [
        f"    {name:<70} {count:7d}" for name, count in list(done.items())[:top]]


def write(report: dict, path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    import sys

    print(summary(json.loads(Path(sys.argv[1]).read_text())))
