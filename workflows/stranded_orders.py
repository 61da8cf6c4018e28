"""Stranded orders: an order the API stored but whose delivery workflow it never started (it died in between, or
Temporal was unreachable, and the partner did not send the order again) is started by the `stranded-orders`
schedule, so that it is delivered and its customer's data purged in time.

Integrations names the orders stored longer ago than a grace period that are still `created` and that no delivery
workflow has accepted (an order waiting for a robot was accepted by its workflow's first step, so it is not named
on every pass). Whether one of those has a workflow after all is left to Temporal, at the start itself: a delivery's
workflow id is kept by its running or closed run (`start_options`), so each start either makes the delivery's only
run or is refused. That costs no lookup besides the start, leaves no moment between a check and a start for the
partner's own retry to slip into, and never runs a finished delivery again.
"""

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import IntegrationsActivities
    from core.services import TaskQueue
from workflows.delivery import DeliveryWorkflow
from workflows.delivery.starter import start_options
from workflows.schedules import ensure_schedule

SCHEDULE_ID = "stranded-orders"
EVERY = timedelta(minutes=1)


@workflow.defn
class StrandedOrdersWorkflow:
    """One pass: start the delivery workflow of every order Integrations names that has none; the `stranded-orders`
    schedule runs it every minute."""

    @workflow.run
    async def run(self) -> list[uuid.UUID]:
        """The deliveries started by this pass."""
        orders = await workflow.execute_activity_method(
            IntegrationsActivities.stranded_orders, task_queue=TaskQueue.INTEGRATIONS.value,
            start_to_close_timeout=timedelta(minutes=1), summary="orders still created after the grace period")
        started = []
        for order in orders:
            try:
                # Abandoned: the delivery runs on by itself once this pass ends, as if the API had started it.
                await workflow.start_child_workflow(DeliveryWorkflow.run, order,
                                                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                                                    **start_options(order))
            except WorkflowAlreadyStartedError:
                continue  # it has its workflow, running or closed
            workflow.logger.info("started stranded delivery %s", order.delivery_id)
            started.append(order.delivery_id)
        return started


async def ensure_stranded_orders_schedule(client: Client) -> bool:
    """Create the `stranded-orders` schedule unless the namespace has it; True if it was created now."""
    return await ensure_schedule(client, SCHEDULE_ID, StrandedOrdersWorkflow.run, EVERY)
