"""Starting a delivery's workflow: once per delivery, however often it is asked."""

from typing import Any

from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.contracts import DeliveryOrder, DeliveryStatus
from core.services import TaskQueue, delivery_workflow_id as workflow_id
from workflows.delivery.workflow import DeliveryWorkflow


def start_options(order: DeliveryOrder) -> dict[str, Any]:
    """How every start of a delivery's workflow is made, by a client or by another workflow: its id (a closed run
    keeps it, so a delivery never runs twice), queue, search attributes and summary."""
    attributes = TypedSearchAttributes([
        SearchAttributePair(SearchAttributeKey.for_keyword("PartnerId"), str(order.partner_id)),
        SearchAttributePair(SearchAttributeKey.for_keyword("ExternalDeliveryId"), order.external_delivery_id),
        SearchAttributePair(SearchAttributeKey.for_keyword("Market"), order.market),
        SearchAttributePair(SearchAttributeKey.for_keyword("DeliveryStatus"), DeliveryStatus.CREATED.value),
    ])
    return {"id": workflow_id(order.delivery_id), "task_queue": TaskQueue.DELIVERY_WORKFLOWS.value,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE, "search_attributes": attributes,
            "static_summary": f"partner {order.partner_id} · order {order.external_delivery_id}"}


async def start_delivery(client: Client, order: DeliveryOrder) -> bool:
    """Start the delivery's workflow, exactly once per delivery id; False if it had started already.

    Temporal being unreachable surfaces as its `RPCError`: the order is stored, and a later call starts it.
    """
    try:
        await client.start_workflow(DeliveryWorkflow.run, order,
                                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, **start_options(order))
    except WorkflowAlreadyStartedError:
        return False  # the delivery finished and its workflow closed: nothing to start again
    return True
