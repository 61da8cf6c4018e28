"""The benchmark baseline: a workflow of one real delivery's shape, with no-op bodies.

Its input is a script taken from the history of a delivery that the same bench run delivered (see
`bench.history`): one entry per ActivityTaskScheduled event, naming the activity's task queue, and one
`UPDATE` entry per WorkflowExecutionUpdateAccepted event, in history order. The workflow plays it:

- each activity is the no-op `noop`, on `bare-<queue>` (so it never reaches a real worker);
- activities of the queues in `background` (the partner callbacks) go through a sender coroutine in order,
  as `DeliveryWorkflow._send_callbacks` does, and never hold up the main path;
- every other activity runs in order on the main path, as the delivery's steps do;
- at an `UPDATE` entry the main path waits until that many `event` updates have arrived; the first update's
  handler waits until the main path has reached its first `UPDATE` entry (a robot can report only once it is
  assigned), later ones are applied at once, like `robot_event`.

The workers are equivalent to the real ones: one process per queue (`python -m bench.bare --queue Q`), the
same SDK, data converter and `max_concurrent_activities`, and default workflow-task settings.
"""

import argparse
import asyncio
import logging
import signal
import sys
from collections import deque
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

UPDATE = "@update"
BARE_PREFIX = "bare-"
BARE_WORKFLOW_QUEUE = "bare-delivery-workflows"
STEP_TIMEOUT = timedelta(seconds=30)


def bare_queue(queue: str) -> str:
    """The baseline's twin of a real task queue."""
    return f"{BARE_PREFIX}{queue}"


class BareScript(BaseModel):
    """What the bare workflow plays: task queues (already `bare-`) and UPDATE markers, in history order."""

    steps: list[str]
    background: list[str] = []

    @property
    def updates(self) -> int:
        return self.steps.count(UPDATE)

    @property
    def activity_queues(self) -> list[str]:
        return sorted({step for step in self.steps if step != UPDATE})


@activity.defn(name="noop")
async def noop(step: int) -> int:
    """Does nothing: the baseline pays only for Temporal and the worker."""
    return step


@workflow.defn(name="BareDelivery")
class BareDeliveryWorkflow:
    def __init__(self) -> None:
        self._updates = 0
        self._ready = False
        self._outbox: deque[tuple[int, str]] = deque()
        self._sending = False

    @workflow.run
    async def run(self, script: BareScript) -> int:
        sender = asyncio.create_task(self._send())
        waited = 0
        for index, step in enumerate(script.steps):
            if step == UPDATE:
                self._ready = True
                waited += 1
                await workflow.wait_condition(lambda count=waited: self._updates >= count)
            elif step in script.background:
                self._outbox.append((index, step))
            else:
                await workflow.execute_activity(noop, index, task_queue=step, start_to_close_timeout=STEP_TIMEOUT)
        await workflow.wait_condition(lambda: not self._outbox and not self._sending)
        sender.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(script.steps)

    async def _send(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            self._sending = True
            index, queue = self._outbox.popleft()
            await workflow.execute_activity(noop, index, task_queue=queue, start_to_close_timeout=STEP_TIMEOUT)
            self._sending = False

    @workflow.update
    async def event(self, number: int) -> int:
        """A robot event's twin: accepted, counted, and applied by the main path."""
        await workflow.wait_condition(lambda: self._ready)
        self._updates += 1
        return self._updates


async def run_worker(queues: list[str]) -> None:
    """Poll the given bare queues until SIGINT/SIGTERM, like `worker.py` does for the real ones."""
    from temporalio.worker import Worker

    from core.settings import load_settings
    from core.temporal import connect

    client = await connect(load_settings())
    workers = []
    for queue in queues:
        if queue == BARE_WORKFLOW_QUEUE:
            workers.append(Worker(client, task_queue=queue, workflows=[BareDeliveryWorkflow]))
        else:
            workers.append(Worker(client, task_queue=queue, activities=[noop], max_concurrent_activities=100))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    logging.info("polling %s", ", ".join(queues))
    running = [asyncio.create_task(worker.run()) for worker in workers]
    await stop.wait()
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    await asyncio.gather(*running, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description="A worker for the bench baseline.")
    parser.add_argument("--queue", action="append", required=True,
                        help=f"{BARE_WORKFLOW_QUEUE} or a bare activity queue (bare-<queue>)")
    args = parser.parse_args(argv)
    bad = [q for q in args.queue if not q.startswith(BARE_PREFIX)]
    if bad:
        parser.error(f"not a bare queue: {', '.join(bad)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(list(dict.fromkeys(args.queue))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
