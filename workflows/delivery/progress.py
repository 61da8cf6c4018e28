"""A status reached: recorded in Deliveries, added to the trail, indexed, and queued for the partner."""

from temporalio import workflow


with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DeliveriesActivities
    from core.contracts import DeliveryStatus, StatusChange, TrailEntry
    from core.services import TaskQueue
    from workflows.transitions import Phase
from workflows.delivery.callbacks import Callbacks
from workflows.delivery.state import DeliveryState
from workflows.delivery.steps import Steps
from workflows.delivery.visibility import Visibility


class Progress:
    def __init__(self, state: DeliveryState, steps: Steps, callbacks: Callbacks, visibility: Visibility):
        self.state, self.steps, self.callbacks, self.visibility = state, steps, callbacks, visibility

    async def reach(self, status: DeliveryStatus, reason: str | None = None) -> None:
        """Record a delivery status in Deliveries and queue its partner callback."""
        state = self.state
        state.attempt_sequence += 1
        now = workflow.now()
        change = StatusChange(delivery_id=state.order.delivery_id, attempt_id=state.attempt.attempt_id,
                              status=status, sequence=state.attempt_sequence, occurred_at=now,
                              robot_id=state.robot_id, reason=reason)
        await self.steps.run(DeliveriesActivities.record_status, change, TaskQueue.DELIVERIES)
        self.visibility.count_status(status, now)
        state.trail.append(TrailEntry(status=status, at=now, attempt=state.attempt.number, robot_id=state.robot_id,
                                      reason=reason))
        self.callbacks.queue(status, now, reason)
        state.waiting_for = None
        self.visibility.show()

    async def finish(self, status: DeliveryStatus, reason: str | None, already_reached: bool = False) -> None:
        """End the delivery in a terminal status."""
        state = self.state
        state.phase, state.phase_deadline, state.reason = Phase(status), None, reason
        if not already_reached:
            await self.reach(status, reason)
