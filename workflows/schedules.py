"""The platform's schedules: each starts one small workflow on the workflows' queue at a fixed interval, and skips a
start while the previous run still goes on."""

from collections.abc import Callable
from datetime import timedelta

from temporalio.client import (
    Client, Schedule, ScheduleActionStartWorkflow, ScheduleAlreadyRunningError, ScheduleIntervalSpec,
    ScheduleOverlapPolicy, SchedulePolicy, ScheduleSpec,
)

from core.services import TaskQueue


async def ensure_schedule(client: Client, schedule_id: str, run: Callable, every: timedelta) -> bool:
    """Create the schedule `schedule_id`, starting the workflow `run` every `every`, unless the namespace has it;
    True if it was created now. Its runs are named after it."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(run, id=schedule_id, task_queue=TaskQueue.DELIVERY_WORKFLOWS.value),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        return False
    return True
