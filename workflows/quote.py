"""A quote: Dispatch estimates the trip and its fee, Deliveries stores the offer. Short-lived, one per quote."""

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DeliveriesActivities, DispatchActivities
    from core.contracts import QuoteOffer, QuoteOrder
    from core.errors import NO_CAPACITY
    from core.services import TaskQueue

STEP_TIMEOUT = timedelta(seconds=10)
# A partner waits on the answer: a few quick retries, then the API reports the failure.
QUICK_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)


def quote_workflow_id(quote_id) -> str:
    return f"quote:{quote_id}"


@workflow.defn
class QuoteWorkflow:
    """Price a trip from the current plan; a trip no robot can take fails with `NoCapacity`."""

    @workflow.run
    async def run(self, order: QuoteOrder) -> QuoteOffer | None:
        """The stored offer, or None when no robot in the market can take the trip."""
        try:
            estimate = await workflow.execute_activity_method(
                DispatchActivities.estimate_quote, order.request, task_queue=TaskQueue.DISPATCH.value,
                start_to_close_timeout=STEP_TIMEOUT, retry_policy=QUICK_RETRY, summary="estimate the trip",
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type == NO_CAPACITY:
                return None
            raise
        offer = QuoteOffer(
            quote_id=order.quote_id, partner_id=order.partner_id, external_delivery_id=order.external_delivery_id,
            market=order.request.market, pickup=order.request.pickup, dropoff=order.request.dropoff,
            fee_cents=estimate.fee_cents, currency=estimate.currency, pickup_eta=estimate.pickup_eta,
            dropoff_eta=estimate.dropoff_eta, expires_at=workflow.now() + timedelta(seconds=order.valid_seconds),
            ready_at=order.request.ready_at,
        )
        await workflow.execute_activity_method(
            DeliveriesActivities.record_quote, offer, task_queue=TaskQueue.DELIVERIES.value,
            start_to_close_timeout=STEP_TIMEOUT, retry_policy=QUICK_RETRY, summary="store the offer",
        )
        return offer


async def request_quote(client: Client, order: QuoteOrder, timeout: timedelta) -> QuoteOffer | None:
    """Run the quote to its end: the stored offer, or None when no robot in the market can take the trip.

    Temporal being unreachable surfaces as its `RPCError`, a quote that failed or ran past `timeout` as
    `WorkflowFailureError`.
    """
    return await client.execute_workflow(
        QuoteWorkflow.run, order, id=quote_workflow_id(order.quote_id),
        task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, execution_timeout=timeout,
    )
