"""The sandbox desk: a test partner steps its delivery to the next status, as a delivery simulator does.

The first step gives the delivery its sandbox robot (the workflow's `assign_sandbox_robot`); every later step is
that robot's events, reported through the robot desk exactly as a real robot reports them, so the rest of the
lifecycle (statuses, callbacks in the partner's dialect, tracking) is the real one. A live delivery is never
stepped: a real robot plays it.
"""

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from core.contracts import TERMINAL_STATUSES, AttemptKind, DeliveryStatus, DeliveryView, Point, RobotEvent
from core.contracts import RobotEventType as E
from desks.errors import Refusal, unavailable, workflow_refusal
from desks.orders import Order, OrderView
from desks.partner import PartnerDesk
from desks.records import DeliveryRecord, ask_workflow
from desks.robot import RobotDesk
from desks.views import OrderViews
from workflows.delivery import SANDBOX_STEP_REFUSED, DeliveryWorkflow, workflow_id
from workflows.transitions import Phase, next_phase

S = DeliveryStatus
# From where the robot is, the events that take it to the next status a partner sees.
STEPS: dict[Phase, tuple[E, ...]] = {
    Phase(S.ROBOT_ASSIGNED): (E.DEPARTED, E.ARRIVED_AT_PICKUP),
    Phase(S.EN_ROUTE_TO_PICKUP): (E.ARRIVED_AT_PICKUP,),
    Phase(S.AT_PICKUP): (E.LID_OPENED, E.LID_CLOSED),
    Phase(S.AT_PICKUP, lid_open=True): (E.LID_CLOSED,),
    Phase(S.PICKED_UP): (E.DEPARTED, E.ARRIVED_AT_DROPOFF),
    Phase(S.EN_ROUTE_TO_DROPOFF): (E.ARRIVED_AT_DROPOFF,),
    Phase(S.AT_DROPOFF): (E.LID_OPENED, E.LID_CLOSED),
    Phase(S.AT_DROPOFF, lid_open=True): (E.LID_CLOSED,),
    Phase(S.RETURNING): (E.DEPARTED, E.ARRIVED_AT_STORE),
    Phase(S.RETURNING, at_store=True): (E.LID_OPENED, E.LID_CLOSED),
    Phase(S.RETURNING, lid_open=True, at_store=True): (E.LID_CLOSED,),
}
# Where the robot is on its way to, or standing at, the dropoff; anywhere else it is at the pickup (the store).
AT_DROPOFF = frozenset({S.EN_ROUTE_TO_DROPOFF, S.AT_DROPOFF})


class SandboxDesk:
    """What a test partner may do that no live partner can: step its delivery."""

    def __init__(self, temporal: Client, views: OrderViews, robots: RobotDesk, partners: PartnerDesk):
        self.temporal, self.views, self.robots, self.partners = temporal, views, robots, partners

    async def advance(self, order: Order, field_name: str) -> OrderView:
        """Move a test delivery to its next status and answer with its view; 409 `live_delivery` for a live one,
        `delivery_finished` once it has ended. Stepping twice at once moves it once: both send the same events."""
        if order.live_mode:
            raise Refusal(409, "live_delivery", f"delivery {order.external_id} is live: a real robot plays it, and "
                                                "only a test partner's deliveries can be stepped", field_name)
        now = await ask_workflow(self.temporal, DeliveryRecord(order.delivery_id))
        if now is None and order.status is S.CREATED:  # its workflow may not have started yet
            await self.partners.ensure_started(order)
            now = await ask_workflow(self.temporal, DeliveryRecord(order.delivery_id))
        if now is None:
            raise unavailable("the delivery cannot be read just now; step it again", retry_after=1)
        if now.status in TERMINAL_STATUSES:
            raise Refusal(409, "delivery_finished", f"the delivery is {now.status.value}: it has no next step",
                          field_name)
        if now.status is S.CREATED:
            await self._assign_robot(order, field_name)
        else:
            for event in sandbox_events(now, order, field_name):
                await self.robots.report(event)
        return await self.views.view_of(order)

    async def _assign_robot(self, order: Order, field_name: str) -> None:
        handle = self.temporal.get_workflow_handle(workflow_id(order.delivery_id))
        try:
            await handle.execute_update(DeliveryWorkflow.assign_sandbox_robot)
        except WorkflowUpdateFailedError as exc:
            raise Refusal(409, "step_refused", workflow_refusal(
                exc, SANDBOX_STEP_REFUSED, "the delivery could not take this step"), field_name) from None
        except RPCError:
            raise unavailable("the step could not be delivered; step it again", retry_after=1) from None


def sandbox_events(now: DeliveryView, order: Order, field_name: str) -> list[RobotEvent]:
    """The sandbox robot's events from where the delivery is to its next status. Each event's id names the phase
    it moves from, so a step sent again is a resend the robot desk answers as before."""
    phase = Phase(now.status, lid_open=now.lid_open, at_store=now.at_store)
    steps = STEPS.get(phase)
    if steps is None or now.robot_id is None:
        raise Refusal(409, "step_refused", f"the delivery is {now.status.value}: it cannot be stepped now",
                      field_name)
    returning = now.attempt.kind is AttemptKind.RETURN
    occurred_at, events = datetime.now(UTC), []
    for event_type in steps:
        events.append(RobotEvent(
            event_id=f"sandbox-{now.attempt.number}-{_key(phase)}-{event_type.value}", robot_id=now.robot_id,
            type=event_type, location=_where(phase, order), occurred_at=occurred_at))
        phase = next_phase(phase, event_type, returning)
    return events


def _key(phase: Phase) -> str:
    return phase.status.value + ("-lid" if phase.lid_open else "") + ("-store" if phase.at_store else "")


def _where(phase: Phase, order: Order) -> Point:
    return order.dropoff if phase.status in AT_DROPOFF else order.pickup
