"""The PII purge: run on a schedule, it erases customers' personal data a set time after their delivery ended."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.integrations import IntegrationsActivities
    from core.services import TaskQueue


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
