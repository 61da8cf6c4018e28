"""The partner's callbacks: numbered in one sequence per delivery and sent in order, beside the lifecycle."""

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import PartnerCallbackActivities
    from core.contracts import CallbackFailure, CallbackKind, DeliveryStatus, OperatorDecision, StatusCallback
    from core.errors import BUSINESS_ERRORS, PARTNER_ENDPOINT_GONE
    from core.services import TaskQueue
from workflows.delivery.operator import Operator
from workflows.delivery.state import DeliveryState
from workflows.delivery.steps import STEP_TIMEOUT, Steps, error_message, error_type

RETRY_ONLY = (OperatorDecision.RETRY,)


class Callbacks:
    def __init__(self, state: DeliveryState, steps: Steps, operator: Operator):
        self.state, self.steps, self.operator = state, steps, operator

    def queue(self, status: DeliveryStatus, now: datetime, reason: str | None,
              kind: CallbackKind = CallbackKind.STATUS) -> None:
        """Queue a partner callback, numbered in the delivery's one sequence; `send` sends them in order."""
        state = self.state
        state.callbacks.append(StatusCallback(
            partner_delivery_id=state.order.partner_delivery_id, delivery_id=state.order.delivery_id,
            sequence=len(state.callbacks) + 1, status=status, occurred_at=now, robot_id=state.robot_id,
            reason=reason, kind=kind, dropoff_eta=state.dropoff_eta))

    def settled(self) -> bool:
        return self.state.callbacks_done == len(self.state.callbacks)

    async def send(self) -> None:
        """Send each callback in order, for the delivery's whole life; a partner endpoint that is down never
        holds up the robot."""
        state, policy = self.state, self.state.order.policy
        retry = RetryPolicy(initial_interval=timedelta(seconds=policy.callback_initial_interval_seconds),
                            backoff_coefficient=4, maximum_attempts=policy.callback_max_attempts,
                            maximum_interval=timedelta(seconds=policy.callback_max_interval_seconds),
                            non_retryable_error_types=list(BUSINESS_ERRORS))
        while True:
            await workflow.wait_condition(lambda: not self.settled())
            callback = state.callbacks[state.callbacks_done]
            try:
                await workflow.execute_activity_method(
                    PartnerCallbackActivities.send_status_callback, callback,
                    task_queue=TaskQueue.PARTNER_CALLBACKS.value, start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=retry, summary=f"callback #{callback.sequence}: {callback.status.value}",
                )
            except ActivityError as err:
                if error_type(err) == PARTNER_ENDPOINT_GONE:
                    # The partner disabled its endpoint: hold the callbacks, in order, until an operator
                    # confirms it is back; the robot's lifecycle goes on meanwhile.
                    await self.operator.park("partner endpoint disabled (410 Gone)", RETRY_ONLY,
                                             cause="partner_endpoint_gone")
                    await self.steps.run(PartnerCallbackActivities.enable_webhook, callback.partner_delivery_id,
                                         TaskQueue.PARTNER_CALLBACKS, allowed=RETRY_ONLY)
                    continue
                failure = CallbackFailure(partner_delivery_id=callback.partner_delivery_id,
                                          sequence=callback.sequence, error=error_message(err))
                await self.steps.run(PartnerCallbackActivities.record_callback_failure, failure,
                                     TaskQueue.PARTNER_CALLBACKS, allowed=RETRY_ONLY)
            state.callbacks_done += 1
