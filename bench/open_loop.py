"""Open loop: deliveries created at a fixed rate, on a schedule drawn before the run, whatever the stack answers.

A closed loop at saturation measures its own queue: each client waits for its delivery before it creates the
next, so the stack is never asked for more than it gives. Here arrivals follow a schedule (Poisson, or one every
1/R seconds) made before the first one is sent; each create is sent at its time, concurrently with those still
waiting for an answer. Latency is measured from the time a create was due, not from when it left, so a create
the bench could not send on time (its own event loop busy) is counted `late` and its delay stays in the figures
instead of being hidden (coordinated omission).
"""

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from temporalio.client import Client

from bench.receiver import Receiver
from bench.stats import stats
from simulator.demo_market import order_body
from workflows.delivery import workflow_id

ARRIVALS = ("poisson", "uniform")
LATE_SECONDS = 0.010  # a create sent this long after it was due is late
RATE_LIMITED = "post answered 429"
PROBE_SECONDS = 0.5
PROBE_QUEUE = "bench-probe"  # no worker polls it: a probe workflow is only started, and times out


class Probes:
    """What creates lean on besides the API's own work, timed from the bench while the run goes: a Temporal
    `start_workflow` (each create makes one right after it answers) and one Postgres round trip, every
    PROBE_SECONDS."""

    def __init__(self, temporal: Client, dsn: str):
        self.temporal, self.dsn = temporal, dsn
        self.starts: list[float] = []
        self.round_trips: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            while not stop.is_set():
                began = time.perf_counter()
                await self.temporal.start_workflow("BenchProbe", id=f"bench-probe-{uuid.uuid4()}",
                                                   task_queue=PROBE_QUEUE, execution_timeout=timedelta(seconds=30))
                self.starts.append(time.perf_counter() - began)
                began = time.perf_counter()
                await connection.fetchval("SELECT 1")
                self.round_trips.append(time.perf_counter() - began)
                try:
                    await asyncio.wait_for(stop.wait(), PROBE_SECONDS)
                except TimeoutError:
                    pass
        finally:
            await connection.close()

    def report(self) -> dict:
        return {"temporal_start_workflow_seconds": stats(self.starts),
                "postgres_round_trip_seconds": stats(self.round_trips)}


def arrival_offsets(rate: float, seconds: float, arrivals: str, seed: str, cap: int | None = None) -> list[float]:
    """When each create is due, in seconds from the start: `rate` per second over `seconds`, at most `cap`."""
    rng, offsets, at = random.Random(seed), [], 0.0
    while cap is None or len(offsets) < cap:
        at += rng.expovariate(rate) if arrivals == "poisson" else 1 / rate
        if at > seconds:
            break
        offsets.append(at)
    return offsets


@dataclass
class Followed:
    """One delivery the bench created and followed: when the POST was answered, and its terminal callback."""

    created: float | None = None  # monotonic; None when the POST failed or was refused
    delivery_id: str | None = None
    status: str | None = None  # None when no terminal callback came in time
    received: float | None = None


async def create_and_follow(http: httpx.AsyncClient, receiver: Receiver, body: dict, timeout: float,
                            outcomes: Counter[str]) -> Followed:
    """POST one delivery and wait for its terminal callback, counting how it ended in `outcomes`."""
    try:
        response = await http.post("/v1/deliveries", json=body)
    except httpx.HTTPError as exc:
        outcomes[f"post failed: {type(exc).__name__}"] += 1
        return Followed()
    created = time.monotonic()
    if response.status_code != 201:
        outcomes[f"post answered {response.status_code}"] += 1
        return Followed()
    delivery_id = response.json()["id"]
    result = await receiver.wait_terminal(delivery_id, timeout)
    if result is None:
        outcomes["timed out"] += 1
        return Followed(created, delivery_id)
    status, received = result
    outcomes[status] += 1
    return Followed(created, delivery_id, status, received)


def api_own_post_seconds(logs: Path, since: datetime, until: datetime) -> list[float]:
    """How long the API itself took over each create answered 200 or 201 between `since` and `until`: the duration
    its request log gives (`api.log`, or `api-N.log` per process), timed from when the request reached the app to
    its answer, so without the client, the network or the HTTP parsing before it."""
    durations = []
    for path in sorted(logs.glob("api*.log")):
        with path.open() as lines:
            for line in lines:
                if '"/v1/deliveries"' not in line:
                    continue
                record = json.loads(line)
                if (record.get("method"), record.get("route")) != ("POST", "/v1/deliveries") or \
                        record.get("status") not in (200, 201):
                    continue
                if since <= datetime.fromisoformat(record["ts"]) <= until:
                    durations.append(record["duration_ms"] / 1000)
    return durations


async def drive_open(http: httpx.AsyncClient, receiver: Receiver, fleet: dict, rate: float, seconds: float,
                     arrivals: str, timeout: float, tag: str, cap: int | None = None,
                     probes: Probes | None = None, logs: Path | None = None) -> dict:
    """Create deliveries at `rate` per second for `seconds` on a fixed schedule; follow each to its end. With
    `probes`, time what a create waits on while they are sent; with the stack's `logs`, report the API's own time
    for each create beside the time the bench saw."""
    rng = random.Random(tag)
    offsets = arrival_offsets(rate, seconds, arrivals, f"{tag}-arrivals", cap)
    api, lifecycle, lags, lasts, delivered_ids = [], [], [], [], []
    outcomes: Counter[str] = Counter()

    async def one(number: int, due: float) -> None:
        followed = await create_and_follow(http, receiver, order_body(rng, fleet, number, tag, "bench"), timeout,
                                           outcomes)
        if followed.created is not None:
            api.append(followed.created - due)
        if followed.status == "delivered":
            lifecycle.append(followed.received - due)
            lasts.append(followed.received)
            delivered_ids.append(followed.delivery_id)

    stop_probes = asyncio.Event()
    probing = asyncio.create_task(probes.run(stop_probes)) if probes else None
    began = datetime.now(UTC)
    start = time.monotonic() + 0.05
    tasks = []
    for number, offset in enumerate(offsets, 1):
        due = start + offset
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        lags.append(max(0.0, time.monotonic() - due))
        tasks.append(asyncio.create_task(one(number, due)))
    sent_by = time.monotonic()
    stop_probes.set()
    if probing is not None:
        await probing
    await asyncio.gather(*tasks)
    duration = (max(lasts) - start) if lasts else None
    return {
        "rate_per_second": rate, "arrivals": arrivals, "seconds": seconds,
        "deliveries": len(offsets), "delivered": outcomes.get("delivered", 0), "outcomes": dict(outcomes),
        "rate_limited": outcomes.get(RATE_LIMITED, 0),
        "late": sum(lag > LATE_SECONDS for lag in lags), "late_after_seconds": LATE_SECONDS,
        "send_lag_seconds": stats(lags),
        "offered_per_second": round(len(offsets) / (sent_by - start), 3) if sent_by > start else None,
        "duration_seconds": round(duration, 3) if duration else None,
        "throughput_per_second": round(len(lasts) / duration, 3) if duration else 0.0,
        "api_post_seconds": stats(api), "latency_seconds": stats(lifecycle),
        **({"api_own_post_seconds": stats(api_own_post_seconds(logs, began, datetime.now(UTC)))} if logs else {}),
        "sample_workflow_id": workflow_id(delivered_ids[0]) if delivered_ids else None,
        **({"probes": probes.report()} if probes else {}),
    }
