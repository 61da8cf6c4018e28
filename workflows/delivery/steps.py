"""Running one activity on its service's queue: bounded retries, typed business errors, parking on exhaustion."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import OperatorDecision
    from core.errors import BUSINESS_ERRORS
    from core.services import TaskQueue
from workflows.delivery.operator import Operator, OperatorTookOver
from workflows.delivery.state import DeliveryState
from workflows.delivery.visibility import Visibility

D = OperatorDecision
STEP_TIMEOUT = timedelta(seconds=30)
ANY_DECISION = (D.RETRY, D.REDISPATCH, D.CANCEL, D.RESOLVE_DELIVERED)
# Bringing an order back can be neither cancelled nor dispatched again: it is retried, or closed as taken back.
ON_A_RETURN = (D.RETRY, D.RESOLVE_RETURNED)


def error_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def error_message(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)[:200]


class Steps:
    def __init__(self, state: DeliveryState, operator: Operator, visibility: Visibility):
        self.state, self.operator, self.visibility = state, operator, visibility

    async def run(self, activity, arg, queue: TaskQueue, expect: tuple[str, ...] = (),
                  allowed: tuple[D, ...] | None = None):
        """Run one activity; park for an operator when it cannot succeed.

        Business errors named in `expect` are the caller's to handle; any other failure, once its bounded
        retries are spent, parks the delivery until an operator asks for a retry (or takes it over: any decision
        unless `allowed` says otherwise).
        """
        if allowed is None:
            allowed = ON_A_RETURN if self.state.returning else ANY_DECISION
        while True:
            try:
                return await workflow.execute_activity_method(
                    activity, arg, task_queue=queue.value, start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=self.retry_policy(), summary=self.visibility.summary(activity),
                )
            except ActivityError as err:
                if error_type(err) in expect:
                    raise
                decision = await self.operator.park(f"{activity.__name__} failed: {error_message(err)}", allowed,
                                                    cause=activity.__name__)
                if decision.kind is not D.RETRY:
                    raise OperatorTookOver(decision) from None

    def retry_policy(self) -> RetryPolicy:
        """Infrastructure failures retry with backoff, but boundedly: then the delivery parks for an operator."""
        policy = self.state.order.policy
        return RetryPolicy(initial_interval=timedelta(seconds=policy.step_retry_initial_seconds),
                           maximum_interval=timedelta(seconds=30), maximum_attempts=policy.step_retry_max_attempts,
                           non_retryable_error_types=list(BUSINESS_ERRORS))
