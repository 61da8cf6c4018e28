"""Random robot events and operator actions against one delivery workflow: it never reaches an inconsistent state.

Hypothesis draws a sequence of steps: the event the delivery expects next, any robot event, a resend of the last
event, an event from a robot that is not serving the delivery, and the operators' and partner's `retry`,
`redispatch`, `resolve_delivered` and `cancel`. A model of the lifecycle written here, from the README's diagram and
docs/architecture.md and apart from the workflow's own table (`workflows/transitions.py`), predicts for each step
whether the workflow must accept or refuse it and where the delivery then stands; after every step the `status`
query must agree with the model (status, lid, attempt), attempt numbers only grow, and a terminal status stays
final. A robot whose attempt just ended (fault, redispatch) must be refused at once, even before the next attempt
exists. Each delivery is then brought to an end, and its trail of statuses must be exactly the one the model
expects, attempt by attempt. Besides the drawn sequences, two fixed ones walk every leg of a delivery to the door
and every leg of a return, so a wrong row anywhere in the workflow's table is met on every run.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings, strategies as st
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import (
    CancelRequest, DeliveryStatus as S, OperatorAction, Point, RobotEvent, RobotEventKey, RobotEventType as E,
)
from tests.support.lifecycle import create
from tests.support.waiting import wait_for
from workflows.delivery import DeliveryWorkflow, workflow_id

TERMINAL = {S.DELIVERED.value, S.CANCELLED.value, S.RETURNED.value}
LOADED = {S.PICKED_UP.value, S.EN_ROUTE_TO_DROPOFF.value, S.AT_DROPOFF.value}
REDISPATCHABLE = {S.ROBOT_ASSIGNED.value, S.EN_ROUTE_TO_PICKUP.value}
# The lifecycle as the README's diagram and docs/architecture.md draw it, leg by leg: from each status of a delivery
# attempt, the robot event that ends the leg and the status it reaches. A leg at a stop ends with a lid cycle:
# `lid_opened` (the status stays, the lid is open), then `lid_closed`, which reaches the next status.
LID_CYCLE = "lid cycle"
DELIVERY_LEGS = {S.ROBOT_ASSIGNED: (E.DEPARTED, S.EN_ROUTE_TO_PICKUP),
                 S.EN_ROUTE_TO_PICKUP: (E.ARRIVED_AT_PICKUP, S.AT_PICKUP),
                 S.AT_PICKUP: (LID_CYCLE, S.PICKED_UP),
                 S.PICKED_UP: (E.DEPARTED, S.EN_ROUTE_TO_DROPOFF),
                 S.EN_ROUTE_TO_DROPOFF: (E.ARRIVED_AT_DROPOFF, S.AT_DROPOFF),
                 S.AT_DROPOFF: (LID_CYCLE, S.DELIVERED)}
# A return attempt takes the order back to the store with the same robot, and reads `returning` all the way: on its
# way the robot may say it drives on (`departed`), then `arrived_at_store`; a lid cycle back at the store ends it.
RETURN_LEGS = {(S.RETURNING, False): (E.ARRIVED_AT_STORE, (S.RETURNING, True)),
               (S.RETURNING, True): (LID_CYCLE, (S.RETURNED, False))}
TIMERS = ("robot_search_seconds", "pilot_wait_seconds", "pickup_wait_seconds", "customer_no_show_seconds",
          "lid_open_seconds", "connectivity_lost_seconds", "stuck_window_seconds")
STEPS = st.lists(st.sampled_from(["next"] * 6 + [e.value for e in E if e is not E.FAULT]
                                 + ["fault", "resend", "stranger", "retry", "redispatch", "resolve", "cancel"]),
                 min_size=1, max_size=8)


@dataclass
class Model:
    """Where the delivery must stand, and the trail of (attempt number, status) it must have left."""

    status: str
    robot: str
    attempt: int = 1
    kind: str = "delivery"
    lid_open: bool = False
    at_store: bool = False
    trail: list[tuple[int, str]] = field(default_factory=list)
    last_event: tuple[RobotEvent, dict] | None = None

    def leg(self) -> tuple | None:
        """The event that ends the robot's current leg (or LID_CYCLE) and where it then stands: (status, at store)."""
        if self.status in TERMINAL:
            return None
        if self.kind == "return":
            return RETURN_LEGS.get((S(self.status), self.at_store))
        ends, reaches = DELIVERY_LEGS.get(S(self.status), (None, None))
        return (ends, (reaches, False)) if ends is not None else None

    def next_event(self) -> E | None:
        """What a well-behaved robot sends next: the event that ends its leg (of a lid cycle, the half to come)."""
        leg = self.leg()
        if leg is None:
            return None
        if leg[0] != LID_CYCLE:
            return leg[0]
        return E.LID_CLOSED if self.lid_open else E.LID_OPENED

    def after(self, event: E) -> tuple[str, bool, bool] | None:
        """Status, lid open and at the store once the robot's `event` is taken; None when it must be refused."""
        if self.kind == "return" and not self.at_store and event is E.DEPARTED:
            return self.status, False, False
        if event is not self.next_event():
            return None
        ends, (status, at_store) = self.leg()
        if ends == LID_CYCLE and not self.lid_open:
            return self.status, True, self.at_store
        return status.value, False, at_store

    def reach(self, status: str) -> None:
        if status != self.status or not self.trail or self.trail[-1] != (self.attempt, status):
            self.trail.append((self.attempt, status))
        self.status = status
        if status in TERMINAL:
            self.lid_open, self.at_store = False, False

    def new_attempt(self, kind: str, status: str) -> None:
        self.attempt, self.kind, self.lid_open, self.at_store = self.attempt + 1, kind, False, False
        self.reach(status)


class Delivery:
    """One delivery driven through its workflow's updates, checked against the model after every step."""

    def __init__(self, market, delivery_id):
        self.market, self.delivery_id = market, delivery_id
        self.handle = market.platform.client.get_workflow_handle(workflow_id(delivery_id))

    async def status(self) -> dict:
        return (await self.handle.query(DeliveryWorkflow.status)).model_dump(mode="json")

    async def settle(self, attempt: int, status: str) -> dict:
        async def settled():
            view = await self.status()
            number = view["attempt"]["number"] if view["attempt"] else None
            return view if (number, view["status"]) == (attempt, status) else None

        settled.__name__ = f"attempt {attempt} {status}"
        return await wait_for(settled, timeout=60, interval=0.05)

    def event(self, robot: str, kind: E) -> RobotEvent:
        return RobotEvent(event_id=f"prop-{uuid.uuid4().hex[:12]}", robot_id=robot, type=kind,
                          location=Point(**self.market.point()), occurred_at=datetime.now(UTC))

    async def update(self, name: str, argument) -> tuple[bool, object]:
        """Send an update: (accepted, its result), or (False, why it was refused)."""
        try:
            return True, await self.handle.execute_update(name, argument)
        except WorkflowUpdateFailedError as refused:
            return False, refused.cause
        except RPCError as closed:  # the delivery ended and its workflow closed: nothing more is taken
            assert closed.status == RPCStatusCode.NOT_FOUND, closed
            return False, closed

    async def check(self, model: Model, seen_attempts: list[int]) -> None:
        view = await self.status()
        assert (view["status"], view["lid_open"], view["at_store"]) == (model.status, model.lid_open,
                                                                         model.at_store), (view, model)
        assert (view["attempt"]["number"], view["attempt"]["kind"]) == (model.attempt, model.kind), (view, model)
        assert not seen_attempts or view["attempt"]["number"] >= seen_attempts[-1]
        seen_attempts.append(view["attempt"]["number"])


async def robot_event(delivery: Delivery, model: Model, kind: E) -> None:
    expected = model.after(kind)
    event = delivery.event(model.robot, kind)
    accepted, answer = await delivery.update("robot_event", event)
    assert accepted == (expected is not None), (kind, model, answer)
    if accepted:
        status, lid_open, at_store = expected
        assert (answer["status"], answer["lid_open"]) == (status, lid_open), (answer, expected)
        model.lid_open, model.at_store = lid_open, at_store
        model.reach(status)
        model.last_event = (event, answer)


async def robot_left(delivery: Delivery, old_robot: str, next_event: E | None) -> None:
    """The attempt of `old_robot` has ended: the event it would have sent next is refused, whatever the timing."""
    if next_event is not None:
        accepted, answer = await delivery.update("robot_event", delivery.event(old_robot, next_event))
        assert not accepted, f"{old_robot}'s event was taken after its attempt ended: {answer}"


async def operator(delivery: Delivery, model: Model, step: str) -> None:
    action = OperatorAction(operator="prop", note=f"property step {step}")
    if step == "retry":  # never parked here
        accepted, _ = await delivery.update("retry", action)
        assert not accepted
        return
    if step == "cancel":
        accepted, answer = await delivery.update("cancel", CancelRequest(reason="customer_cancelled"))
        assert accepted == (model.status not in TERMINAL | {S.RETURNING.value}), (model, answer)
        if accepted:
            if model.status in LOADED:
                model.new_attempt("return", S.RETURNING.value)
            else:
                model.reach(S.CANCELLED.value)
            assert answer["status"] == model.status
        return
    old_robot, old_next = model.robot, model.next_event()
    if step == "resolve":
        accepted, _ = await delivery.update("resolve_delivered", action)
        assert accepted == (model.status in LOADED and model.kind == "delivery"), model
        if accepted:
            model.reach(S.DELIVERED.value)
    else:  # redispatch, to a robot of its own so the old one's events can only be refused
        spare = await delivery.market.add_robot()
        accepted, _ = await delivery.update("redispatch", action.model_copy(update={"robot_id": spare}))
        assert accepted == (model.status in REDISPATCHABLE), model
        if accepted:
            model.robot = spare
            model.new_attempt("delivery", S.ROBOT_ASSIGNED.value)
    if accepted:
        await robot_left(delivery, old_robot, old_next)
        await delivery.settle(model.attempt, model.status)


async def fault(delivery: Delivery, model: Model) -> None:
    await delivery.market.add_robot()  # the faulty robot goes out of service; another takes over
    old_robot, old_next = model.robot, model.next_event()
    accepted, answer = await delivery.update("robot_event", delivery.event(old_robot, E.FAULT))
    assert accepted == (model.status not in TERMINAL), (model, answer)
    if not accepted:
        return
    if model.kind == "return":
        model.reach(S.RETURNED.value)
    else:
        model.new_attempt("delivery", S.ROBOT_ASSIGNED.value)
    await robot_left(delivery, old_robot, old_next)
    view = await delivery.settle(model.attempt, model.status)
    assert view["robot_id"] != old_robot or model.status in TERMINAL
    model.robot = view["robot_id"]


async def play(delivery: Delivery, model: Model, step: str) -> None:
    if step == "next":
        kind = model.next_event()
        if kind is not None:
            await robot_event(delivery, model, kind)
    elif step == "fault":
        await fault(delivery, model)
    elif step in {e.value for e in E}:
        await robot_event(delivery, model, E(step))
    elif step == "resend" and model.last_event is not None:
        event, original = model.last_event
        accepted, answer = await delivery.update("robot_event", event)
        if not accepted and isinstance(answer, RPCError) and model.status in TERMINAL:
            # The delivery ended and its workflow closed: the first answer is still read from it, as the robot
            # desk does for a resend (`receipt`).
            receipt = await delivery.handle.query(DeliveryWorkflow.receipt,
                                                  RobotEventKey(robot_id=event.robot_id, event_id=event.event_id))
            accepted, answer = receipt is not None, receipt and receipt.model_dump(mode="json")
        assert accepted and answer == original, (answer, original)
    elif step == "stranger":
        accepted, _ = await delivery.update("robot_event", delivery.event("robot-of-nobody", E.DEPARTED))
        assert not accepted
    elif step in ("retry", "redispatch", "resolve", "cancel"):
        await operator(delivery, model, step)


async def bring_to_an_end(delivery: Delivery, model: Model) -> None:
    while model.status not in TERMINAL:
        if model.kind == "return":
            await play(delivery, model, "next")
        else:
            await operator(delivery, model, "resolve" if model.status in LOADED else "cancel")


@settings(max_examples=6, print_blob=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=STEPS)
@example(steps=["next"] * 8)  # every leg of a delivery, to the door
@example(steps=["next"] * 5 + ["cancel", "departed", "next", "next", "next"])  # loaded, cancelled: the way back
@example(steps=["next", "cancel", "resend"])  # a resend once the delivery ended and its workflow closed
async def test_random_events_and_actions_never_leave_a_delivery_inconsistent(market, lifecycle_policy, steps):
    # No timer may move the delivery behind the model's back, however slow the machine is.
    lifecycle_policy(**{timer: 3600 for timer in TIMERS})
    await market.add_pilot()  # a robot and a pilot of its own: an example that failed may still hold others
    await market.add_robot()
    delivery_id = await create(market)
    delivery = Delivery(market, delivery_id)
    view = await delivery.settle(1, S.ROBOT_ASSIGNED.value)
    model = Model(status=S.ROBOT_ASSIGNED.value, robot=view["robot_id"],
                  trail=[(1, S.CREATED.value), (1, S.ROBOT_ASSIGNED.value)])
    seen_attempts: list[int] = []
    for step in steps:
        was_terminal = model.status in TERMINAL
        await play(delivery, model, step)
        await delivery.check(model, seen_attempts)
        assert not was_terminal or model.status in TERMINAL
    await bring_to_an_end(delivery, model)
    result = await delivery.handle.result()
    assert result["status"] == model.status
    assert [(step["attempt"], step["status"]) for step in result["trail"]] == model.trail, (steps, result)
