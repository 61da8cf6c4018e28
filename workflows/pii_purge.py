"""The PII purge: run on a schedule, it erases customers' personal data a set time after their delivery ended."""

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client, Schedule, ScheduleActionStartWorkflow, ScheduleAlreadyRunningError, ScheduleIntervalSpec,
    ScheduleOverlapPolicy, SchedulePolicy, ScheduleSpec,
)

with workflow.unsafe.imports_passed_through():
    from activities.integrations import IntegrationsActivities
    from core.services import TaskQueue

SCHEDULE_ID = "pii-purge"


@workflow.defn
class PiiPurgeWorkflow:
    """One purge pass; the `pii-purge` schedule starts it every hour."""

    @workflow.run
    async def run(self) -> int:
        """How many orders' personal data were erased."""
        return await workflow.execute_activity_method(
            IntegrationsActivities.purge_pii, task_queue=TaskQueue.INTEGRATIONS.value,
            start_to_close_timeout=timedelta(minutes=10), summary="erase personal data past retention",
        )


async def ensure_pii_purge_schedule(client: Client) -> bool:
    """Create the hourly `pii-purge` schedule unless the namespace has it; True if it was created now."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(PiiPurgeWorkflow.run, id=SCHEDULE_ID,
                                           task_queue=TaskQueue.DELIVERY_WORKFLOWS.value),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        return False
    return True
