"""Starting a delivery's workflow: once per delivery, however often it is asked."""

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.contracts import DeliveryOrder, DeliveryStatus
from core.services import TaskQueue
from workflows.delivery.workflow import DeliveryWorkflow


def workflow_id(delivery_id) -> str:
    """The workflow ID of a delivery: one workflow per delivery, ever."""
    return f"delivery:{delivery_id}"


async def start_delivery(client: Client, order: DeliveryOrder) -> bool:
    """Start the delivery's workflow, exactly once per delivery id; False if it had started already.

    Temporal being unreachable surfaces as its `RPCError`: the order is stored, and a later call starts it.
    """
    attributes = TypedSearchAttributes([
        SearchAttributePair(SearchAttributeKey.for_keyword("PartnerId"), str(order.partner_id)),
        SearchAttributePair(SearchAttributeKey.for_keyword("ExternalDeliveryId"), order.external_delivery_id),
        SearchAttributePair(SearchAttributeKey.for_keyword("Market"), order.market),
        SearchAttributePair(SearchAttributeKey.for_keyword("DeliveryStatus"), DeliveryStatus.CREATED.value),
    ])
    try:
        await client.start_workflow(
            DeliveryWorkflow.run, order, id=workflow_id(order.delivery_id),
            task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=attributes,
            static_summary=f"partner {order.partner_id} · order {order.external_delivery_id}",
        )
    except WorkflowAlreadyStartedError:
        return False  # the delivery finished and its workflow closed: nothing to start again
    return True
