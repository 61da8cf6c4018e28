"""The PII purge: run on a schedule, it erases customers' personal data a set time after their delivery ended.

Each service erases its own: Integrations the sealed personal data (and coarsens its orders' dropoffs),
Deliveries and Dispatch the exact dropoff of their deliveries, quotes and demands, each on its own queue.
"""

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DeliveriesActivities, DispatchActivities, IntegrationsActivities
    from core.services import TaskQueue
from workflows.schedules import ensure_schedule

SCHEDULE_ID = "pii-purge"
STEP_TIMEOUT = timedelta(minutes=10)


@dataclass
class PurgeResult:
    """What one pass erased: orders' personal data; dropoffs coarsened in Deliveries and in Dispatch."""

    orders: int
    deliveries: int
    demands: int


@workflow.defn
class PiiPurgeWorkflow:
    """One purge pass; the `pii-purge` schedule starts it every hour."""

    @workflow.run
    async def run(self) -> PurgeResult:
        """Each service's part of the purge, at once."""
        orders, deliveries, demands = await asyncio.gather(
            workflow.execute_activity_method(
                IntegrationsActivities.purge_pii, task_queue=TaskQueue.INTEGRATIONS.value,
                start_to_close_timeout=STEP_TIMEOUT, summary="erase personal data past retention"),
            workflow.execute_activity_method(
                DeliveriesActivities.coarsen_delivery_dropoffs, task_queue=TaskQueue.DELIVERIES.value,
                start_to_close_timeout=STEP_TIMEOUT, summary="coarsen dropoffs past retention"),
            workflow.execute_activity_method(
                DispatchActivities.coarsen_demand_dropoffs, task_queue=TaskQueue.DISPATCH.value,
                start_to_close_timeout=STEP_TIMEOUT, summary="coarsen dropoffs past retention"),
        )
        return PurgeResult(orders, deliveries, demands)


async def ensure_pii_purge_schedule(client: Client) -> bool:
    """Create the hourly `pii-purge` schedule unless the namespace has it; True if it was created now."""
    return await ensure_schedule(client, SCHEDULE_ID, PiiPurgeWorkflow.run, timedelta(hours=1))
