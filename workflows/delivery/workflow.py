"""The delivery workflow: its run, and the updates and queries robots, partners and operators send it.

The work is done by small collaborators over one `DeliveryState`: `Attempts` (robots, pilots, attempts),
`Following` (the robot's events and the trip watch), `Operator` (questions and decisions), `Callbacks` (the
partner's notices), `Progress` (statuses reached), `Steps` (running one activity) and `Visibility`.
"""

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DeliveriesActivities, IntegrationsActivities
    from core.contracts import (
        TERMINAL_STATUSES, CancelRequest, DeliveryOrder, DeliveryStatus, DeliveryView, EventReceipt, OperatorAction,
        OperatorDecision, RobotEvent, RobotEventKey,
    )
    from core.services import ROBOT_COMMITTED_SIGNAL, TaskQueue
from workflows.delivery.attempts import Attempts
from workflows.delivery.callbacks import RETRY_ONLY, Callbacks
from workflows.delivery.following import Following
from workflows.delivery.operator import (
    INVALID_ACTION, PARTNER, Operator, OperatorTookOver, cancel_action, cancel_reason,
)
from workflows.delivery.progress import Progress
from workflows.delivery.state import Decision, DeliveryState
from workflows.delivery.steps import Steps
from workflows.delivery.visibility import Visibility

S, D = DeliveryStatus, OperatorDecision
# An operator may redispatch a delivery whose robot has not picked the order up, unasked.
REDISPATCHABLE = (S.ROBOT_ASSIGNED, S.EN_ROUTE_TO_PICKUP)
# The type of the error a refused sandbox step carries (its message is worded for the partner).
SANDBOX_STEP_REFUSED = "sandbox_step_refused"


@workflow.defn
class DeliveryWorkflow:
    """Creates the delivery, finds a robot and a pilot, follows the robot's events to a terminal status."""

    @workflow.init
    def __init__(self, order: DeliveryOrder) -> None:
        self.state = state = DeliveryState(order)
        self.visibility = Visibility(state)
        self.operator = Operator(state, self.visibility)
        self.steps = Steps(state, self.operator, self.visibility)
        self.callbacks = Callbacks(state, self.steps, self.operator)
        self.progress = Progress(state, self.steps, self.callbacks, self.visibility)
        self.following = Following(state, self.steps, self.progress, self.callbacks, self.operator, self.visibility)
        self.attempts = Attempts(state, self.steps, self.progress, self.following, self.operator, self.visibility)

    @workflow.run
    async def run(self, order: DeliveryOrder) -> DeliveryView:
        state = self.state
        sender = asyncio.create_task(self.callbacks.send())
        # Until the first attempt exists the only way forward is a retry.
        await self.steps.run(IntegrationsActivities.accept_order, order, TaskQueue.INTEGRATIONS, allowed=RETRY_ONLY)
        state.attempt = await self.steps.run(DeliveriesActivities.create_delivery, order, TaskQueue.DELIVERIES,
                                             allowed=RETRY_ONLY)
        await self.progress.reach(S.CREATED)
        decision: Decision | None = None
        while state.phase.status not in TERMINAL_STATUSES:
            try:
                await self.attempts.run_next(decision)
                decision = None
            except OperatorTookOver as took:
                decision = took.decision
        await workflow.wait_condition(lambda: self.callbacks.settled() or sender.done())
        if sender.done():
            await sender  # the callback sender broke: surface its error instead of waiting forever
        sender.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state.view()

    # ---- robots ----------------------------------------------------------------------------------

    @workflow.update
    async def robot_event(self, event: RobotEvent) -> EventReceipt:
        """A robot reports an event; it is applied in order, or refused if it does not fit."""
        return self.following.accept(event)

    @robot_event.validator
    def _validate_robot_event(self, event: RobotEvent) -> None:
        self.following.check_event(event)

    @workflow.signal(name=ROBOT_COMMITTED_SIGNAL)
    def robot_committed(self) -> None:
        """Dispatch: a planning round committed a robot to this delivery's demand; it asks for it now instead of
        at its next retry."""
        self.state.robot_committed = True

    @workflow.query
    def receipt(self, event: RobotEventKey) -> EventReceipt | None:
        """The answer this delivery gave to a robot's event it accepted; None if it never accepted it."""
        return self.state.receipts.get(event)

    # ---- partners --------------------------------------------------------------------------------

    @workflow.update
    async def cancel(self, request: CancelRequest) -> EventReceipt:
        """Cancel the delivery: before pickup everything is released; after loading the order goes back."""
        state = self.state
        if state.attention is not None and D.CANCEL in state.allowed_decisions:
            self.operator.decide(D.CANCEL, cancel_action(request, "cancelled while parked"))
        elif state.cancel is None:
            if request.requested_by != PARTNER:  # an operator's: its note and words stay on the operator's record
                self.operator.record(D.CANCEL, cancel_action(request, "cancelled"))
            state.cancel = request.model_copy(update={"reason": cancel_reason(request.requested_by, request.reason)})
        await workflow.wait_condition(lambda: state.reached in TERMINAL_STATUSES | {S.RETURNING})
        return EventReceipt(delivery_id=state.order.delivery_id, status=state.phase.status,
                            attempt_id=state.attempt.attempt_id if state.attempt else None)

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        status = self.state.phase.status
        if status in TERMINAL_STATUSES or status is S.RETURNING:
            raise ApplicationError(f"the delivery is {status.value} and can no longer be cancelled",
                                   type="noncancelable_delivery")

    # ---- the sandbox ------------------------------------------------------------------------------

    @workflow.update
    async def assign_sandbox_robot(self) -> EventReceipt:
        """A test order's first step: its sandbox robot takes it. Answers once the robot is assigned (or the
        delivery ended without one); every later step is one of the sandbox robot's events (`robot_event`)."""
        state = self.state
        state.sandbox_robot_asked = True
        await workflow.wait_condition(lambda: state.reached not in (None, S.CREATED))
        return EventReceipt(delivery_id=state.order.delivery_id, status=state.phase.status,
                            attempt_id=state.attempt.attempt_id if state.attempt else None)

    @assign_sandbox_robot.validator
    def _validate_assign_sandbox_robot(self) -> None:
        if self.state.order.live_mode:
            raise ApplicationError("a live delivery is played by a real robot: it cannot be stepped",
                                   type=SANDBOX_STEP_REFUSED)
        if self.state.phase.status is not S.CREATED:
            raise ApplicationError(f"the delivery is {self.state.phase.status.value}: it has its robot already",
                                   type=SANDBOX_STEP_REFUSED)

    # ---- operators -------------------------------------------------------------------------------

    @workflow.update
    async def retry(self, action: OperatorAction) -> str:
        """Operator: re-run the step the delivery is parked on."""
        return self.operator.decide(D.RETRY, action)

    @retry.validator
    def _validate_retry(self, action: OperatorAction) -> None:
        self.operator.check(D.RETRY)

    @workflow.update
    async def redispatch(self, action: OperatorAction) -> str:
        """Operator: end this attempt and start another, with `robot_id` if given."""
        return self.operator.decide(D.REDISPATCH, action)

    @redispatch.validator
    def _validate_redispatch(self, action: OperatorAction) -> None:
        self._unasked_only_when(D.REDISPATCH, self.state.phase.status in REDISPATCHABLE, "redispatch")

    @workflow.update
    async def resolve_delivered(self, action: OperatorAction) -> str:
        """Operator: the order was handed over by hand; close the delivery as delivered."""
        return self.operator.decide(D.RESOLVE_DELIVERED, action)

    @resolve_delivered.validator
    def _validate_resolve_delivered(self, action: OperatorAction) -> None:
        self._unasked_only_when(D.RESOLVE_DELIVERED, self.state.loaded, "resolve as delivered")

    @workflow.update
    async def resolve_returned(self, action: OperatorAction) -> str:
        """Operator: the order is back at the store though the lid stays open; close the delivery as returned."""
        return self.operator.decide(D.RESOLVE_RETURNED, action)

    @resolve_returned.validator
    def _validate_resolve_returned(self, action: OperatorAction) -> None:
        self.operator.check(D.RESOLVE_RETURNED)

    def _unasked_only_when(self, kind: D, applies: bool, what: str) -> None:
        """A decision an operator may also take unasked, where it `applies` to the delivery's status."""
        if self.state.attention is None and not applies:
            raise ApplicationError(f"cannot {what} a delivery that is {self.state.phase.status.value}",
                                   type=INVALID_ACTION)
        self.operator.check(kind, parked_only=False)

    # ---- everyone --------------------------------------------------------------------------------

    @workflow.query
    def status(self) -> DeliveryView:
        """The delivery's full current state."""
        return self.state.view()
