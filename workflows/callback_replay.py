"""Replaying a delivery's callbacks that ran out of retries, in sequence order, once the partner is back."""

import uuid
from collections import defaultdict
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import PartnerCallbackActivities
    from core.contracts import StatusCallback
    from core.errors import BUSINESS_ERRORS
    from core.services import TaskQueue

REPLAY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2, maximum_attempts=4,
                           non_retryable_error_types=list(BUSINESS_ERRORS))


@workflow.defn
class CallbackReplayWorkflow:
    """Re-enable the partner's endpoint, then send each failed callback of one delivery in order.

    It stops at the first callback that fails again, so none goes out ahead of an earlier one.
    """

    @workflow.run
    async def run(self, callbacks: list[StatusCallback]) -> dict:
        sent: list[int] = []
        await workflow.execute_activity_method(
            PartnerCallbackActivities.enable_webhook, callbacks[0].partner_delivery_id,
            task_queue=TaskQueue.PARTNER_CALLBACKS.value, start_to_close_timeout=timedelta(seconds=30),
            summary="re-enable the partner's endpoint")
        for callback in callbacks:
            try:
                await workflow.execute_activity_method(
                    PartnerCallbackActivities.send_status_callback, callback,
                    task_queue=TaskQueue.PARTNER_CALLBACKS.value, start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=REPLAY_RETRY, summary=f"replay #{callback.sequence}: {callback.status.value}")
            except ActivityError as err:
                return {"sent": sent, "failed": callback.sequence, "error": str(err.cause or err)}
            sent.append(callback.sequence)
        return {"sent": sent, "failed": None, "error": None}


async def replay_callbacks(client: Client, callbacks: list[StatusCallback]) -> list[str]:
    """Replay failed callbacks, one workflow per delivery; one line per delivery on how it went."""
    by_delivery: dict[uuid.UUID, list[StatusCallback]] = defaultdict(list)
    for callback in callbacks:
        by_delivery[callback.delivery_id].append(callback)
    lines = []
    for delivery_id, pending in by_delivery.items():
        outcome = await client.execute_workflow(
            CallbackReplayWorkflow.run, sorted(pending, key=lambda c: c.sequence),
            id=f"callback-replay:{delivery_id}:{uuid.uuid4().hex[:8]}", task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)
        line = f"delivery {delivery_id}: sent {outcome['sent'] or 'none'}"
        if outcome["failed"] is not None:
            line += f"; #{outcome['failed']} failed again ({outcome['error']}), later ones held back"
        lines.append(line)
    return lines
