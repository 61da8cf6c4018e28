"""The robot desk: who a robot is, what it should be doing, and what it reports (events and heartbeats).

An event goes to the robot's delivery workflow as an update, which accepts or refuses it; State keeps every
event once, accepted or refused, and a resend of one already answered gets the same answer.

A robot hears of its assignment without polling: every change to it is announced when it commits
(`core.assignments`), and a robot's waiter, woken by the announcement, reads the assignment again. Each reading
carries a version (a digest of what the robot is told), so a robot that knows a version knows whether it is
current.
"""

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import Row
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from core.assignments import CHANNEL as ASSIGNMENT_CHANNEL
from core.assignments import AssignmentWaiter, assignment_notices
from core.contracts import (
    Deployment, EventReceipt, FieldTaskRequest, Point, RecordedRobotEvent, RobotEvent, RobotEventKey, RobotEventType,
)
from core.db import Databases
from core.services import Service
from core.settings import Settings
from desks.errors import Refusal, unavailable, workflow_refusal
from desks.heartbeats import HeartbeatBatch
from services.deliveries import repository as deliveries
from services.device import repository as devices
from services.operations import repository as operations
from services.state import repository as state
from services.trip_monitor import repository as trip_monitor
from workflows.delivery import DeliveryWorkflow, workflow_id
from workflows.field_task import start_field_task
from workflows.transitions import EventRejected

log = logging.getLogger(__name__)

# Events whose record in State changes what the robot is told (`lid_open`, `at_store`).
ASSIGNMENT_EVENTS = frozenset({RobotEventType.LID_OPENED, RobotEventType.LID_CLOSED,
                               RobotEventType.ARRIVED_AT_STORE})
NO_ASSIGNMENT = "none"
# The databases an assignment is read from, each announcing its own changes to it.
ASSIGNMENT_PARTS = (Service.OPERATIONS, Service.DELIVERIES, Service.STATE)


@dataclass(frozen=True)
class RobotAssignment:
    """What a robot should be doing: its task on a delivery, where to go, and the delivery's recorded status."""

    robot_id: str
    delivery_id: uuid.UUID
    attempt_id: uuid.UUID
    task_id: uuid.UUID
    kind: str
    status: str
    lid_open: bool
    at_store: bool
    pickup: Point
    dropoff: Point


def version_of(assignment: RobotAssignment | None) -> str:
    """The assignment's version: the same for the same assignment in every process, another when anything the
    robot is told changes; `none` for no assignment."""
    if assignment is None:
        return NO_ASSIGNMENT
    text = json.dumps(asdict(assignment), default=str, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class AssignmentReading:
    """One robot's assignment as last read, part by part: its task (Operations), its delivery (Deliveries) and
    its attempt's lid and return marks (State). Read again after a change announced by some of these databases,
    only their parts are read, unless the task itself changed; the parts read earlier are still current, since
    each database announces every change to its part once it commits."""

    def __init__(self, desk: "RobotDesk", robot_id: str):
        self.desk, self.robot_id = desk, robot_id
        self.task: Row | None = None
        self.delivery: Row | None = None
        self.marks: tuple[bool, bool] = (False, False)

    async def read(self, changed: set[Service] | None = None) -> RobotAssignment | None:
        """The assignment now, reading the parts of the `changed` databases again (all of them: None)."""
        try:
            return await self._read(changed)
        except BaseException:
            self.task = None  # half read: the next reading reads everything
            raise

    async def _read(self, changed: set[Service] | None) -> RobotAssignment | None:
        if self.task is None:
            changed = None
        if changed is None or Service.OPERATIONS in changed:
            task = await self.desk._active_task(self.robot_id)
            if task is None or self.task is None or task.id != self.task.id:
                changed = None
            self.task = task
        task = self.task
        if task is None:
            return None
        if changed is None or Service.DELIVERIES in changed:
            self.delivery = await self.desk._robot_view(task.delivery_id)
        if changed is None or Service.STATE in changed:
            self.marks = await self.desk._attempt_marks(task.attempt_id)
        delivery, (lid_open, back_at_store) = self.delivery, self.marks
        at_store = task.kind == "return" and back_at_store
        return RobotAssignment(
            robot_id=self.robot_id, delivery_id=task.delivery_id, attempt_id=task.attempt_id, task_id=task.id,
            kind=task.kind, status=delivery.status, lid_open=lid_open, at_store=at_store,
            pickup=Point(latitude=delivery.pickup_latitude, longitude=delivery.pickup_longitude),
            dropoff=Point(latitude=delivery.dropoff_latitude, longitude=delivery.dropoff_longitude),
        )


class RobotDesk:
    """What robots may ask of the platform, each with its device credential."""

    def __init__(self, databases: Databases, temporal: Client, settings: Settings):
        self.databases, self.temporal, self.settings = databases, temporal, settings
        self.notices = assignment_notices({service: settings.database_dsn(service) for service in ASSIGNMENT_PARTS})
        self.heartbeats = HeartbeatBatch(databases)

    async def close(self) -> None:
        """Stop listening for assignment changes, after writing the heartbeats still pending."""
        await self.notices.close()
        await self.heartbeats.close()

    async def authenticate(self, credential: str) -> Deployment | None:
        """The active deployment of the robot whose device credential this is."""
        async with self.databases.reader(Service.DEVICE) as db:
            deployment = await devices.authenticate(db, credential)
        if deployment is None:
            return None
        return Deployment(robot_id=deployment.robot_id, market=deployment.market,
                          software_version=deployment.software_version)

    async def assignment(self, robot_id: str) -> RobotAssignment | None:
        """The robot's current assignment, read from the databases (Operations, Deliveries, State), never from the
        workflow: robots ask for it all the time."""
        return await AssignmentReading(self, robot_id).read()

    async def versioned_assignment(self, robot_id: str) -> tuple[RobotAssignment | None, str]:
        """The robot's current assignment and its version."""
        assignment = await self.assignment(robot_id)
        return assignment, version_of(assignment)

    def waiter(self, robot_id: str) -> AssignmentWaiter:
        """A waiter woken whenever the robot's assignment may have changed (call `follow` with the assignment's
        delivery after each reading, and `close` when done)."""
        return AssignmentWaiter(self.notices, robot_id)

    async def next_assignment(self, robot_id: str, after: str, wait: float,
                              ) -> tuple[RobotAssignment | None, str]:
        """The robot's assignment once its version is no longer `after`, or as it is after `wait` seconds."""
        waiter = self.waiter(robot_id)
        try:
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                assignment, version = await self.versioned_assignment(robot_id)
                remaining = deadline - asyncio.get_running_loop().time()
                if version != after or remaining <= 0:
                    return assignment, version
                waiter.follow(assignment.delivery_id if assignment else None)
                await waiter.wait(remaining)
        finally:
            waiter.close()

    async def _active_task(self, robot_id: str) -> Row | None:
        async with self.databases.reader(Service.OPERATIONS) as db:
            return await operations.active_task_for_robot(db, robot_id)

    async def _robot_view(self, delivery_id: uuid.UUID) -> Row | None:
        async with self.databases.reader(Service.DELIVERIES) as db:
            return await deliveries.robot_view(db, delivery_id)

    async def _attempt_marks(self, attempt_id: uuid.UUID) -> tuple[bool, bool]:
        async with self.databases.reader(Service.STATE) as db:
            return await state.attempt_marks(db, attempt_id)

    # ---- events --------------------------------------------------------------------------------------

    async def report(self, event: RobotEvent) -> EventReceipt:
        """Apply one event to the robot's delivery, or refuse it (409) and keep it as rejected; a resend gets the
        answer the event got first."""
        task = await self._active_task(event.robot_id)
        if task is None:
            return await self._refuse(event, None, None, "no_assignment", "the robot has no active assignment")
        async with self.databases.reader(Service.STATE) as db:
            earlier = await state.find_event(db, event.robot_id, event.event_id)
        this_delivery = str(task.delivery_id)
        if earlier is not None and not (earlier.accepted and earlier.payload.get("delivery_id") == this_delivery):
            # A resend of an event refused before, or taken by an earlier delivery: never applied to this one.
            return await self._answer_again(earlier, "event_rejected")
        handle = self.temporal.get_workflow_handle(workflow_id(task.delivery_id))
        try:
            receipt = await handle.execute_update(DeliveryWorkflow.robot_event, event)
        except WorkflowUpdateFailedError as exc:
            reason = workflow_refusal(exc, EventRejected.__name__, "the delivery could not take this event")
            return await self._refuse(event, task.delivery_id, task.attempt_id, "event_rejected", reason)
        except RPCError:
            raise unavailable("the delivery could not take the event; resend it", retry_after=1) from None
        # Accepted: State keeps it (with the lid cycle and GPS) before the robot hears so. If that fails the robot
        # resends the same event_id, the workflow answers with the same receipt, and State gets it then, once.
        recorded = RecordedRobotEvent(event=event, delivery_id=receipt.delivery_id, attempt_id=receipt.attempt_id,
                                      accepted=True)
        try:
            async with self.databases.sessions(Service.STATE).begin() as session:
                await state.record_event(session, recorded,
                                         announce_on=ASSIGNMENT_CHANNEL if event.type in ASSIGNMENT_EVENTS else None)
        except SQLAlchemyError:
            log.warning("accepted event not yet recorded in State", extra={"robot_id": event.robot_id,
                                                                         "delivery_id": str(receipt.delivery_id)})
            raise unavailable("the event was taken but not yet recorded; resend it", retry_after=1) from None
        return receipt

    async def _refuse(self, event: RobotEvent, delivery_id: uuid.UUID | None, attempt_id: uuid.UUID | None,
                      code: str, reason: str) -> EventReceipt:
        """Refuse an event and keep it as rejected, unless it is a resend of one already answered."""
        async with self.databases.sessions(Service.STATE).begin() as session:
            earlier = await state.find_event(session, event.robot_id, event.event_id)
            if earlier is None:
                await state.record_event(session, RecordedRobotEvent(
                    event=event, delivery_id=delivery_id, attempt_id=attempt_id, accepted=False,
                    rejection_reason=reason[:200]))
        if earlier is not None:
            return await self._answer_again(earlier, code)
        raise Refusal(409, code, reason)

    async def _answer_again(self, earlier: Row, code: str) -> EventReceipt:
        """The answer an event got the first time (maybe from a delivery that has ended since): the receipt of the
        delivery that accepted it, or the same refusal."""
        if earlier.accepted and earlier.payload.get("delivery_id"):
            handle = self.temporal.get_workflow_handle(workflow_id(earlier.payload["delivery_id"]))
            try:
                receipt = await handle.query(DeliveryWorkflow.receipt,
                                             RobotEventKey(robot_id=earlier.robot_id, event_id=earlier.event_id))
            except RPCError:
                raise unavailable("the event's first answer cannot be read right now; resend it",
                                  retry_after=1) from None
            if receipt is not None:
                return receipt
        raise Refusal(409, code, earlier.rejection_reason or "the event was already answered")

    # ---- heartbeats ----------------------------------------------------------------------------------

    async def heartbeat(self, robot_id: str, position: Point, moving: bool, battery: float | None) -> None:
        """Keep the robot's connectivity (State) and its trip watch (Trip Monitor) current; below the
        `battery_swap_below` setting, ask for a battery swap."""
        async with self.databases.sessions(Service.STATE).begin() as session:
            await state.record_sighting(session, robot_id, position.latitude, position.longitude)
        async with self.databases.sessions(Service.TRIP_MONITOR).begin() as session:
            await trip_monitor.record_heartbeat(session, robot_id, position.latitude, position.longitude, moving)
        if battery is not None and battery < self.settings.battery_swap_below:
            await self._ask_for_battery_swap(robot_id, battery)

    async def heartbeat_batched(self, robot_id: str, position: Point, moving: bool, battery: float | None) -> None:
        """The same as `heartbeat`, written with the other heartbeats of the next moment (`desks.heartbeats`): for
        heartbeats on a robot's stream, answered before they are written."""
        self.heartbeats.add(robot_id, position.latitude, position.longitude, moving)
        if battery is not None and battery < self.settings.battery_swap_below:
            await self._ask_for_battery_swap(robot_id, battery)

    async def _ask_for_battery_swap(self, robot_id: str, battery: float) -> None:
        """Open a battery_swap field task for the robot unless it has one open already."""
        async with self.databases.sessions(Service.OPERATIONS).begin() as session:
            if await operations.list_field_tasks(session, open_only=True, robot_id=robot_id, kind="battery_swap"):
                return
        request = FieldTaskRequest(robot_id=robot_id, kind="battery_swap", reason=f"battery at {battery:.0%}",
                                   fo_task_id=uuid.uuid4())
        try:
            # Heartbeats racing here each propose a task; Operations opens one, and the others' workflows end at once.
            await start_field_task(self.temporal, request)
        except RPCError as exc:  # the next heartbeat asks again; the heartbeat itself is recorded
            log.warning("battery swap not requested: %s", exc, extra={"robot_id": robot_id})
