"""The composition root of the workers: settings -> engines -> activity objects -> one Worker per task queue.

    python worker.py --queue dispatch          # one queue (how production scales)
    python worker.py --queue state --queue device
    python worker.py --all                     # every queue in one process
"""

import argparse
import asyncio
import logging
import signal
import sys

from collections.abc import Sequence
from typing import TYPE_CHECKING

import uvloop
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from core.heap import settle_heap
from core.logging import ActivityLogContext, configure_logging
from core.services import QUEUE_DATABASE, TaskQueue
from core.settings import Settings, SettingsError, load_settings
from core.temporal import connect

if TYPE_CHECKING:
    from core.db import Databases


def activities_for(queue: TaskQueue, databases: "Databases", settings: Settings, client: Client) -> list:
    """The activity functions served on one activity queue, bound to their service's database (and the client,
    for Dispatch to tell deliveries of the robots its rounds commit)."""
    from activities import registry

    return registry.build(queue, databases, settings, client)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox the delivery workflows run in, with our workflow modules passed through.

    The sandbox re-imports (and compiles) every module it does not pass through for each workflow it starts,
    which cost a third of the workflow worker's CPU and a copy of the modules per cached workflow. Our
    workflow modules are pure (no I/O, clock or randomness at import), so they are imported once; the
    sandbox still restricts what the workflow code calls, and tests/replay checks determinism.
    """
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows"))


def build_worker(client: Client, queue: TaskQueue, databases: "Databases | None", settings: Settings,
                 interceptors: Sequence[Interceptor] = ()) -> Worker:
    """One Worker for one task queue: the delivery workflows, or one service's activities.

    Its metrics go wherever the client's runtime sends them (`core.temporal.connect`); activity logs carry
    the delivery's ids (`ActivityLogContext`).
    """
    if queue is TaskQueue.DELIVERY_WORKFLOWS:
        from workflows import WORKFLOWS

        return Worker(client, task_queue=queue.value, workflows=WORKFLOWS, workflow_runner=workflow_runner(),
                      max_cached_workflows=settings.workflow_cache_size, interceptors=interceptors)
    return Worker(
        client,
        task_queue=queue.value,
        activities=activities_for(queue, databases, settings, client),
        # A trip watch waits for news most of its life (a notice or a threshold), so one process holds many.
        max_concurrent_activities=2000 if queue is TaskQueue.TRIP_MONITOR else 100,
        interceptors=[ActivityLogContext(), *interceptors],
    )


async def run(queues: list[TaskQueue], settings: Settings) -> None:
    client = await connect(settings)
    services = {QUEUE_DATABASE[q] for q in queues if q in QUEUE_DATABASE}
    databases = None
    if services:  # a process serving only the workflows loads no database code
        from core.db import Databases

        databases = Databases(settings, services)
    workers = [build_worker(client, queue, databases, settings) for queue in queues]
    settle_heap()  # no task waits out a full collection of what start-up loaded
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    logging.info("polling %s on %s", ", ".join(q.value for q in queues), settings.temporal_address,
                 extra={"metrics": f"http://{settings.metrics_address}/metrics" if settings.metrics_address else None})
    running = [asyncio.create_task(worker.run()) for worker in workers]
    await stop.wait()
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    await asyncio.gather(*running, return_exceptions=True)
    if databases is not None:
        await databases.dispose()


def parse_queues(argv: list[str] | None) -> list[TaskQueue]:
    parser = argparse.ArgumentParser(description="Run Temporal workers for one or more task queues.")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--queue", action="append", choices=[q.value for q in TaskQueue], help="a task queue to poll")
    choice.add_argument("--all", action="store_true", help="poll every task queue in this process")
    args = parser.parse_args(argv)
    return list(TaskQueue) if args.all else [TaskQueue(q) for q in dict.fromkeys(args.queue)]


def main(argv: list[str] | None = None) -> int:
    queues = parse_queues(argv)
    configure_logging()
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"worker: error: {exc}", file=sys.stderr)
        return 2
    uvloop.run(run(queues, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
