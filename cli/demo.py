"""`deliveryctl demo`: create N deliveries through the partner API and follow each to a terminal status."""

import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter

import httpx

from bench.stats import percentile
from cli.errors import CommandError
from cli.up import running_stack
from core.contracts import TERMINAL_STATUSES
from core.settings import Settings
from simulator.demo_market import demo_file, order_body

POLL_SECONDS = 1.0


class Progress:
    """A live bar on a terminal; elsewhere (logs, CI) one line whenever the counts change."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.last = total, quiet, ""
        self.live = sys.stdout.isatty()

    def show(self, done: int, counts: Counter) -> None:
        summary = " ".join(f"{status}={n}" for status, n in sorted(counts.items()))
        if self.quiet or (not self.live and summary == self.last):
            return
        self.last = summary
        filled = int(30 * done / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} finished  {summary}"
        sys.stdout.write(f"\r{line[:120]:<120}" if self.live else line + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        if self.live and not self.quiet:
            print()


async def run_demo(settings: Settings, count: int, timeout: float, as_json: bool) -> int:
    stack = running_stack(settings)
    if stack is None:
        raise CommandError(f"no stack is running from {settings.data_dir}; start one with: deliveryctl up")
    demo = json.loads(demo_file(settings).read_text())
    rng, run_id = random.Random(), f"{int(time.time())}"
    headers = {"authorization": f"Bearer {demo['partner']['api_key']}"}
    async with httpx.AsyncClient(base_url=stack["api_url"], headers=headers, timeout=30) as http:
        started: dict[str, float] = {}
        for number in range(1, count + 1):
            response = await http.post("/v1/deliveries", json=order_body(rng, demo, number, run_id))
            if response.status_code not in (200, 201):
                raise CommandError(f"creating delivery {number} failed: {response.status_code} {response.text}")
            started[response.json()["id"]] = time.monotonic()
        if not as_json:
            print(f"created {count} deliveries (external ids demo-{run_id}-00001…); following them:")
        finished, statuses = await follow(http, started, timeout, as_json)
    durations = list(finished.values())
    summary = {
        "deliveries": count,
        "statuses": dict(Counter(statuses.values())),
        "unfinished": count - len(finished),
        "lifecycle_seconds": {"p50": percentile(durations, 0.5), "p95": percentile(durations, 0.95),
                              "mean": statistics.fmean(durations) if durations else None},
        "temporal_ui": f"{stack['temporal_ui_url']}/namespaces/{stack.get('temporal_namespace', 'default')}/workflows",
        "delivery_ids": list(started),
    }
    print_summary(summary, as_json)
    return 0 if summary["unfinished"] == 0 else 1


async def follow(http: httpx.AsyncClient, started: dict[str, float], timeout: float, quiet: bool):
    """Poll each delivery until it is terminal or the time runs out."""
    deadline = time.monotonic() + timeout
    finished: dict[str, float] = {}
    statuses: dict[str, str] = {}
    bar = Progress(len(started), quiet)
    while len(finished) < len(started) and time.monotonic() < deadline:
        pending = [d for d in started if d not in finished]
        replies = await asyncio.gather(*(http.get(f"/v1/deliveries/{d}") for d in pending))
        for delivery_id, reply in zip(pending, replies):
            if reply.status_code == 200:
                statuses[delivery_id] = reply.json()["status"]
                if statuses[delivery_id] in TERMINAL_STATUSES:
                    finished[delivery_id] = time.monotonic() - started[delivery_id]
        bar.show(len(finished), Counter(statuses.values()))
        await asyncio.sleep(POLL_SECONDS)
    bar.close()
    return finished, statuses


def print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    latency = summary["lifecycle_seconds"]
    print("statuses:   " + ", ".join(f"{k}: {v}" for k, v in sorted(summary["statuses"].items())))
    if summary["unfinished"]:
        print(f"unfinished: {summary['unfinished']}")
    if latency["p50"] is not None:
        print(f"lifecycle:  p50 {latency['p50']:.1f}s, p95 {latency['p95']:.1f}s")
    print(f"Temporal UI: {summary['temporal_ui']}")
