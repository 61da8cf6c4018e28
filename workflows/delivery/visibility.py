"""What operators see of a delivery: search attributes, the current details line, metrics and log context."""

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from core.contracts import Connectivity, DeliveryStatus
from workflows.delivery.state import DeliveryState

NEEDS_OPERATOR = "NEEDS_OPERATOR"
DELIVERY_STATUS = SearchAttributeKey.for_keyword("DeliveryStatus")
ROBOT_ID = SearchAttributeKey.for_keyword("RobotId")
ATTENTION_REASON = SearchAttributeKey.for_keyword("AttentionReason")


class Visibility:
    def __init__(self, state: DeliveryState):
        self.state = state
        self._indexed: tuple[str, str, str | None] | None = None

    def show(self) -> None:
        """Index what changed (DeliveryStatus, AttentionReason, RobotId) and refresh the details line."""
        state = self.state
        indexed = (NEEDS_OPERATOR if state.attention else state.phase.status.value, state.attention or "",
                   state.robot_id)
        if indexed != self._indexed:
            status, attention, robot_id = indexed
            updates = [DELIVERY_STATUS.value_set(status), ATTENTION_REASON.value_set(attention)]
            if robot_id is not None:
                updates.append(ROBOT_ID.value_set(robot_id))
            workflow.upsert_search_attributes(updates)
            self._indexed = indexed
        self.show_details()

    def show_details(self) -> None:
        """The one line the UI shows under the delivery: status, attempt, robot, pilot, what it waits for."""
        state = self.state
        lines = [f"**{state.attention and NEEDS_OPERATOR or state.phase.status.value}**"]
        if state.attention:
            lines.append(f"attention: {state.attention}")
        if state.attempt:
            lines.append(f"attempt {state.attempt.number} ({state.attempt.kind.value})")
        if state.choice:
            lines.append(f"robot `{state.choice.robot_id}`")
        if not state.order.live_mode:
            lines.append("sandbox")
        if state.task and state.task.pilot_id:
            lines.append(f"pilot `{state.task.pilot_id}`")
        if state.last_event:
            lines.append(f"last event: {state.last_event.value}")
        if state.connectivity is not Connectivity.CONNECTED:
            lines.append(f"connectivity {state.connectivity.value}: {state.connectivity_detail}")
        if state.dropoff_eta:
            lines.append(f"dropoff ETA {state.dropoff_eta:%H:%M:%S}")
        if state.waiting_for:
            lines.append(f"waiting for a {state.waiting_for} until {state.waiting_until:%H:%M:%S}")
        workflow.set_current_details(" · ".join(lines))

    def wait_for(self, what: str, until: datetime) -> None:
        self.state.waiting_for, self.state.waiting_until = what, until
        self.show_details()

    def stop_waiting(self) -> None:
        if self.state.waiting_for is not None:
            self.state.waiting_for = None
            self.show_details()

    def summary(self, activity) -> str:
        """What an activity is for, as the UI lists it."""
        state = self.state
        where = f"attempt {state.attempt.number}" if state.attempt else "order"
        robot = f", robot {state.choice.robot_id}" if state.choice else ""
        return f"{activity.__name__.replace('_', ' ')} ({where}{robot})"

    def log_context(self, **fields: Any) -> dict[str, Any]:
        """IDs only: the workflow logger adds the workflow_id; never the customer's details."""
        context = {"delivery_id": str(self.state.order.delivery_id)}
        if self.state.attempt is not None:
            context["attempt_id"] = str(self.state.attempt.attempt_id)
        return {**context, **fields}

    def count_status(self, status: DeliveryStatus, now: datetime) -> None:
        """Metrics (skipped on replay): delivery_status_total{status}, and the time the previous status lasted."""
        meter = workflow.metric_meter()
        meter.create_counter("delivery_status_total", "Deliveries reaching each status").add(
            1, {"status": status.value})
        if self.state.trail:
            previous = self.state.trail[-1]
            meter.create_histogram_float(
                "delivery_status_duration_seconds", "Time a delivery spent in each status", "s",
            ).record(max((now - previous.at).total_seconds(), 0.0), {"status": previous.status.value})
        workflow.logger.info("delivery %s", status.value, extra=self.log_context(status=status.value))

    def count_park(self, cause: str) -> None:
        """deliveries_parked_total{reason}, and a warning with the cause (a short fixed label)."""
        workflow.metric_meter().create_counter(
            "deliveries_parked_total", "Deliveries parked for an operator (NEEDS_OPERATOR), by cause",
        ).add(1, {"reason": cause})
        workflow.logger.warning("delivery parked for an operator: %s", cause, extra=self.log_context(reason=cause))
